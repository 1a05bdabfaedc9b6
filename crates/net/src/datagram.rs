//! # Datagrams for the failure detector
//!
//! SWIM wants a lossy, connectionless transport: a probe that is lost is
//! information, and a dead peer must not hold a connection slot or a
//! retransmit timer. [`Datagram`] is that seam (UDP for real, in-memory for
//! tests), and [`GossipSocket`] is what a node actually uses on top of it:
//!
//! - every packet is sealed with a keyed BLAKE3 tag over the sender's node
//!   id and the payload, under a key derived from the cluster secret, so a
//!   stranger cannot declare members down or inject itself. (There is no
//!   replay protection: a replayed probe only proves liveness again.)
//! - the fault rules of [`crate::faults`] apply by node id in both
//!   directions, exactly as for RPC, so a test that cuts a node off cuts
//!   its gossip too.
//!
//! The detector listens on the same port number as RPC (UDP beside TCP),
//! so an operator opens one port per node.

use crate::faults::{FaultRules, Verdict};
use bytes::Bytes;
use futures::future::BoxFuture;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// Sender id plus tag, in front of every payload.
const HEADER_BYTES: usize = 1 + 8 + 32;
const VERSION: u8 = 1;
/// Largest datagram sent or accepted: below a typical 1500-byte MTU.
pub const DATAGRAM_BYTES_MAX: usize = 1400;
/// Largest payload a [`GossipSocket`] carries.
pub const PAYLOAD_BYTES_MAX: usize = DATAGRAM_BYTES_MAX - HEADER_BYTES;

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
    key: [u8; 32],
    node: u64,
    faults: Arc<FaultRules>,
}

impl GossipSocket {
    /// Seal packets from `node` with a key derived from `secret`.
    pub fn new(
        socket: Arc<dyn Datagram>,
        secret: &[u8],
        node: u64,
        faults: Arc<FaultRules>,
    ) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key("ringstore gossip datagram v1");
        hasher.update(secret);
        GossipSocket {
            socket,
            key: *hasher.finalize().as_bytes(),
            node,
            faults,
        }
    }

    /// Where peers reach this socket.
    pub fn local_addr(&self) -> String {
        self.socket.local_addr()
    }

    fn tag(&self, from: u64, payload: &[u8]) -> blake3::Hash {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(&[VERSION]);
        h.update(&from.to_be_bytes());
        h.update(payload);
        h.finalize()
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
        let mut packet = Vec::with_capacity(HEADER_BYTES + payload.len());
        packet.push(VERSION);
        packet.extend_from_slice(&self.node.to_be_bytes());
        packet.extend_from_slice(self.tag(self.node, payload).as_bytes());
        packet.extend_from_slice(payload);
        match self.faults.verdict(to) {
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

    /// Wait for the next packet that is well sealed and not dropped by a
    /// fault rule. Packets that fail either check are skipped.
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
        if packet.len() < HEADER_BYTES || packet.len() > DATAGRAM_BYTES_MAX || packet[0] != VERSION
        {
            return None;
        }
        let from = u64::from_be_bytes(packet[1..9].try_into().ok()?);
        let tag: [u8; 32] = packet[9..HEADER_BYTES].try_into().ok()?;
        let payload = packet.slice(HEADER_BYTES..);
        // blake3::Hash compares in constant time.
        if self.tag(from, &payload) != blake3::Hash::from_bytes(tag) {
            return None;
        }
        Some(Inbound {
            from,
            payload,
            delay: None,
        })
    }
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
    async fn oversized_payloads_are_refused() {
        let (a, _b) = pair(b"secret").await;
        let big = vec![0u8; PAYLOAD_BYTES_MAX + 1];
        assert!(a.send(2, "b:1", &big).await.is_err());
    }
}
