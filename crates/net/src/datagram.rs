//! # Datagrams for the failure detector
//!
//! SWIM wants a lossy, connectionless transport: a probe that is lost is
//! information, and a dead peer must not hold a connection slot or a
//! retransmit timer. [`Datagram`] is that seam (UDP for real, in-memory for
//! tests), and [`GossipSocket`] is what a node actually uses on top of it:
//!
//! - every packet is encrypted and authenticated with XChaCha20-Poly1305
//!   under a key derived from the cluster secret, so a stranger can
//!   neither read the membership it carries nor declare members down or
//!   inject itself;
//! - the header (sender id, a random id of the sender's process and a
//!   strictly rising microsecond stamp) is the 24-byte nonce, so no two
//!   packets share one, and [`crate::replay::ReplayWindow`] refuses a
//!   recorded packet sent again (it could revive a member the cluster
//!   declared dead, or hide a failure);
//! - the fault rules of [`crate::faults`] apply by node id in both
//!   directions, exactly as for RPC, so a test that cuts a node off cuts
//!   its gossip too.
//!
//! ```text
//! [version 1][from u64][boot u64][stamp u64][ciphertext][tag 16]
//! ```
//!
//! The detector listens on the same port number as RPC (UDP beside TCP),
//! so an operator opens one port per node.

use crate::faults::{FaultRules, Verdict};
use crate::replay::ReplayWindow;
use bytes::Bytes;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use futures::future::BoxFuture;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Version, sender, boot and stamp in front of the ciphertext.
const HEADER_BYTES: usize = 1 + 8 + 8 + 8;
const TAG_BYTES: usize = 16;
/// 1: BLAKE3-tagged, in the clear. 2: encrypted, replays refused.
const VERSION: u8 = 2;
/// Largest datagram sent or accepted: below a typical 1500-byte MTU.
pub const DATAGRAM_BYTES_MAX: usize = 1400;
/// Largest payload a [`GossipSocket`] carries.
pub const PAYLOAD_BYTES_MAX: usize = DATAGRAM_BYTES_MAX - HEADER_BYTES - TAG_BYTES;

/// A connectionless socket: each datagram arrives whole or not at all.
pub trait Datagram: Send + Sync + 'static {
    /// Send one datagram to `addr` (`host:port`). Loss is not an error.
    fn send_to<'a>(&'a self, data: &'a [u8], addr: &'a str) -> BoxFuture<'a, io::Result<()>>;
    /// Wait for the next datagram and its sender's address.
    fn recv_from(&self) -> BoxFuture<'_, io::Result<(Bytes, String)>>;
    /// The address peers should send to.
    fn local_addr(&self) -> String;
}

/// A real UDP socket.
pub(crate) struct UdpDatagram(pub(crate) tokio::net::UdpSocket);

impl Datagram for UdpDatagram {
    fn send_to<'a>(&'a self, data: &'a [u8], addr: &'a str) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move { self.0.send_to(data, addr).await.map(|_| ()) })
    }

    fn recv_from(&self) -> BoxFuture<'_, io::Result<(Bytes, String)>> {
        Box::pin(async move {
            let mut buf = vec![0u8; DATAGRAM_BYTES_MAX + 1];
            let (n, from) = self.0.recv_from(&mut buf).await?;
            buf.truncate(n);
            Ok((Bytes::from(buf), from.to_string()))
        })
    }

    fn local_addr(&self) -> String {
        self.0
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    }
}

/// A packet that arrived through a [`GossipSocket`].
#[derive(Debug)]
pub struct Inbound {
    /// The node that sealed it.
    pub from: u64,
    /// What it carries.
    pub payload: Bytes,
    /// Hold it this long before use (an injected delay), if any.
    pub delay: Option<Duration>,
}

/// Authenticated, fault-injectable datagrams between nodes.
pub struct GossipSocket {
    socket: Arc<dyn Datagram>,
    cipher: XChaCha20Poly1305,
    node: u64,
    /// This process's random id: with `stamp`, makes every nonce unique
    /// even if the clock steps back across a restart.
    boot: u64,
    /// The last stamp sent; stamps only rise.
    stamp: AtomicU64,
    replays: Mutex<ReplayWindow>,
    faults: Arc<FaultRules>,
}

fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl GossipSocket {
    /// Seal packets from `node` with a key derived from `secret`.
    pub fn new(
        socket: Arc<dyn Datagram>,
        secret: &[u8],
        node: u64,
        faults: Arc<FaultRules>,
    ) -> Self {
        GossipSocket {
            socket,
            cipher: gossip_cipher(secret),
            node,
            boot: rand::random(),
            stamp: AtomicU64::new(0),
            replays: Mutex::default(),
            faults,
        }
    }

    /// Where peers reach this socket.
    pub fn local_addr(&self) -> String {
        self.socket.local_addr()
    }

    /// The next stamp: our clock, or one above the last if the clock has
    /// not moved on (or stepped back).
    fn next_stamp(&self) -> u64 {
        let now = micros_now();
        let prev = self
            .stamp
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                Some(now.max(last + 1))
            })
            .unwrap_or(now);
        now.max(prev + 1)
    }

    /// Encrypt `payload` into a packet from this node.
    fn seal(&self, payload: &[u8]) -> io::Result<Vec<u8>> {
        let mut packet = Vec::with_capacity(HEADER_BYTES + payload.len() + TAG_BYTES);
        packet.push(VERSION);
        packet.extend_from_slice(&self.node.to_be_bytes());
        packet.extend_from_slice(&self.boot.to_be_bytes());
        packet.extend_from_slice(&self.next_stamp().to_be_bytes());
        packet.extend_from_slice(payload);
        let (header, body) = packet.split_at_mut(HEADER_BYTES);
        let nonce = *XNonce::from_slice(&header[1..]);
        let tag = self
            .cipher
            .encrypt_in_place_detached(&nonce, header, body)
            .map_err(|_| io::Error::other("sealing a gossip packet failed"))?;
        packet.extend_from_slice(&tag);
        Ok(packet)
    }

    /// Send `payload` to node `to` at `addr`, unless a fault rule drops
    /// it; a delay rule sends it later, from a task of its own.
    ///
    /// # Errors
    ///
    /// The payload exceeds [`PAYLOAD_BYTES_MAX`], or the socket failed.
    pub async fn send(&self, to: u64, addr: &str, payload: &[u8]) -> io::Result<()> {
        if payload.len() > PAYLOAD_BYTES_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "gossip payload of {} bytes exceeds {PAYLOAD_BYTES_MAX}",
                    payload.len()
                ),
            ));
        }
        let packet = self.seal(payload)?;
        let verdict = match self.faults.link(to) {
            Some(link) if link.loses() => Verdict::Drop,
            Some(link) => Verdict::Delay(link.sample()),
            None => self.faults.verdict(to),
        };
        match verdict {
            Verdict::Drop => Ok(()),
            Verdict::Pass => self.socket.send_to(&packet, addr).await,
            Verdict::Delay(d) => {
                let (socket, addr) = (self.socket.clone(), addr.to_string());
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    let _ = socket.send_to(&packet, &addr).await;
                });
                Ok(())
            }
        }
    }

    /// Wait for the next packet that is well sealed, new, and not dropped
    /// by a fault rule. Packets that fail a check are skipped.
    ///
    /// # Errors
    ///
    /// Only when the socket itself fails.
    pub async fn recv(&self) -> io::Result<Inbound> {
        loop {
            let (packet, from_addr) = self.socket.recv_from().await?;
            let Some(inbound) = self.open(&packet) else {
                tracing::debug!(%from_addr, len = packet.len(), "discarded unsealed gossip packet");
                continue;
            };
            match self.faults.verdict(inbound.from) {
                Verdict::Drop => continue,
                Verdict::Pass => return Ok(inbound),
                Verdict::Delay(d) => {
                    return Ok(Inbound {
                        delay: Some(d),
                        ..inbound
                    })
                }
            }
        }
    }

    fn open(&self, packet: &Bytes) -> Option<Inbound> {
        open_packet(&self.cipher, &self.replays, packet)
    }
}

/// The gossip key derived from the cluster secret.
pub(crate) fn gossip_cipher(secret: &[u8]) -> XChaCha20Poly1305 {
    let key = blake3::derive_key("ringstore gossip datagram v2", secret);
    XChaCha20Poly1305::new(&key.into())
}

/// Check and decrypt one packet: well formed, authentic, new.
pub(crate) fn open_packet(
    cipher: &XChaCha20Poly1305,
    replays: &Mutex<ReplayWindow>,
    packet: &Bytes,
) -> Option<Inbound> {
    if packet.len() < HEADER_BYTES + TAG_BYTES
        || packet.len() > DATAGRAM_BYTES_MAX
        || packet[0] != VERSION
    {
        return None;
    }
    let (header, sealed) = packet.split_at(HEADER_BYTES);
    let word = |i: usize| {
        let bytes: [u8; 8] = header[i..i + 8].try_into().unwrap_or_default();
        u64::from_be_bytes(bytes)
    };
    let (from, boot, stamp) = (word(1), word(9), word(17));
    let nonce = *XNonce::from_slice(&header[1..]);
    let mut body = sealed.to_vec();
    cipher.decrypt_in_place(&nonce, header, &mut body).ok()?;
    let verdict =
        replays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .check(from, boot, stamp, micros_now());
    if let Err(refusal) = verdict {
        if let crate::replay::Refusal::Stale { skew_micros } = refusal {
            // Loud: a node whose clock is off looks dead to the others.
            tracing::warn!(
                    from,
                    skew_ms = skew_micros / 1000,
                    "gossip packet stamped too far from this node's clock; refused (check NTP on both nodes)"
                );
        }
        return None;
    }
    Some(Inbound {
        from,
        payload: Bytes::from(body),
        delay: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryNetwork, Network};

    async fn pair(secret_b: &[u8]) -> (GossipSocket, GossipSocket) {
        let net = MemoryNetwork::new();
        let a = net.bind_datagram("a:1").await.unwrap();
        let b = net.bind_datagram("b:1").await.unwrap();
        (
            GossipSocket::new(a, b"secret", 1, Arc::default()),
            GossipSocket::new(b, secret_b, 2, Arc::default()),
        )
    }

    #[tokio::test]
    async fn sealed_packets_arrive_with_their_sender() {
        let (a, b) = pair(b"secret").await;
        a.send(2, "b:1", b"hello").await.unwrap();
        let got = b.recv().await.unwrap();
        assert_eq!((got.from, &got.payload[..]), (1, &b"hello"[..]));
    }

    #[tokio::test]
    async fn packets_sealed_with_another_secret_are_skipped() {
        let (a, b) = pair(b"other").await;
        a.send(2, "b:1", b"forged").await.unwrap();
        let got = tokio::time::timeout(Duration::from_millis(50), b.recv()).await;
        assert!(got.is_err(), "a packet under a wrong key was accepted");
    }

    #[tokio::test]
    async fn drop_rules_apply_both_ways() {
        let (a, b) = pair(b"secret").await;
        b.faults.set(crate::FaultRuleSet {
            drop: [1].into(),
            ..Default::default()
        });
        a.send(2, "b:1", b"in").await.unwrap();
        let got = tokio::time::timeout(Duration::from_millis(50), b.recv()).await;
        assert!(got.is_err(), "inbound packet from a dropped peer arrived");
        b.send(1, "a:1", b"out").await.unwrap();
        let got = tokio::time::timeout(Duration::from_millis(50), a.recv()).await;
        assert!(got.is_err(), "outbound packet to a dropped peer was sent");
    }

    #[tokio::test]
    async fn packets_hide_their_payload_and_are_accepted_once() {
        let (a, b) = pair(b"secret").await;
        let packet = Bytes::from(a.seal(b"the membership list").unwrap());
        assert!(!packet.windows(10).any(|w| w == b"membership"));
        assert!(b.open(&packet).is_some());
        assert!(b.open(&packet).is_none(), "a replayed packet was accepted");
        let mut altered = packet.to_vec();
        altered[20] ^= 1;
        assert!(b.open(&Bytes::from(altered)).is_none());
    }

    #[tokio::test]
    async fn oversized_payloads_are_refused() {
        let (a, _b) = pair(b"secret").await;
        let big = vec![0u8; PAYLOAD_BYTES_MAX + 1];
        assert!(a.send(2, "b:1", &big).await.is_err());
    }
}
