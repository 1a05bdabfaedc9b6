//! Mutual authentication and session keys, before any request is read.
//!
//! The handshake is the Noise protocol's `NNpsk0` pattern (snow does the
//! cryptography), keyed by a pre-shared key derived from the cluster
//! secret, and bound by its prologue to the protocol version and to
//! whether the link is sealed:
//!
//! ```text
//! dialer → listener: Hello   { version, sealed, noise(psk, e; payload: dialer id) }
//! listener → dialer: Welcome { version, sealed, noise(e, ee; payload: listener id) }
//! dialer → listener: Confirm { noise transport message }
//! ```
//!
//! What each step proves:
//!
//! - Only a holder of the secret can write a `Hello` the listener can
//!   open, or open the `Welcome` it answers; node ids travel encrypted, so
//!   a stranger learns nothing about the cluster's membership.
//! - Both sides' ephemeral keys make fresh session keys (`ee`), so a
//!   recorded `Hello` replayed later gets a `Welcome` its sender cannot
//!   open, and the `Confirm` that must follow fails: the listener reads no
//!   request from a replayed handshake. Old recorded traffic cannot be
//!   decrypted even by someone who later learns the secret (forward
//!   secrecy).
//! - `Confirm` is the dialer's proof that it holds this session's keys;
//!   it matters when the link is not sealed (`internode_encryption =
//!   false`), where frames after the handshake are plain.
//!
//! When the link is sealed, every later frame goes through
//! [`crate::sealed::SealedCodec`] under the session's keys.
//!
//! ## What an unauthenticated peer can cost us
//!
//! Frames during the handshake are at most [`HANDSHAKE_FRAME_BYTES_MAX`]
//! (a longer length prefix closes the connection before a byte of the
//! body is read), the whole exchange must finish within
//! [`HANDSHAKE_TIMEOUT`], and the RPC listener runs at most
//! [`HANDSHAKES_MAX`] handshakes at once, at most
//! [`HANDSHAKES_PER_SOURCE_MAX`] from one IP address ([`Handshakes`]). A stranger
//! costs one X25519 operation per connection.

use crate::sealed::SealedCodec;
use crate::RpcError;
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio_util::codec::Framed;

/// Wire protocol version; peers with another version are refused.
/// 2: node ids sealed and covered by the MACs, small handshake frames.
/// 3: the Noise handshake; links sealed with its session keys.
/// 4: index queries scan per node (`IndexScan`), not per partition.
pub(crate) const PROTOCOL_VERSION: u16 = 4;
/// The Noise pattern, curve, cipher and hash.
pub(crate) const NOISE_PARAMS: &str = "Noise_NNpsk0_25519_AESGCM_BLAKE2s";
/// Largest frame either side accepts before the handshake is done; the
/// three messages are at most 70 bytes.
pub(crate) const HANDSHAKE_FRAME_BYTES_MAX: usize = 128;
/// Longest a connection may take to finish the handshake.
pub(crate) const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// Handshakes the RPC listener runs at once; further connections are
/// closed at once. Peers hold one connection each to a node, so a healthy
/// cluster needs a handful at a time.
pub(crate) const HANDSHAKES_MAX: usize = 64;
/// Handshakes from one IP address at once.
pub(crate) const HANDSHAKES_PER_SOURCE_MAX: usize = 8;

pub(crate) type Wire = Framed<crate::BoxStream, SealedCodec>;

/// The first message each way: the dialer's `Hello`, the listener's
/// `Welcome` (an empty `noise` when the listener refuses).
#[derive(Serialize, Deserialize)]
struct Greeting {
    version: u16,
    sealed: bool,
    noise: Vec<u8>,
}

impl Greeting {
    fn ours(keys: &Keys, noise: Vec<u8>) -> Self {
        Greeting {
            version: PROTOCOL_VERSION,
            sealed: keys.sealed,
            noise,
        }
    }

    /// Whether `who` speaks our protocol version and link mode.
    fn agrees(&self, keys: &Keys, who: &str) -> Result<(), String> {
        if self.version != PROTOCOL_VERSION {
            return Err(format!(
                "{who} speaks protocol {}, this node {PROTOCOL_VERSION}; run one ringstore version across the cluster",
                self.version
            ));
        }
        if self.sealed != keys.sealed {
            return Err(format!(
                "{who} has internode_encryption {}, this node {}; set it the same on every node",
                mode(self.sealed),
                mode(keys.sealed)
            ));
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct Confirm {
    noise: Vec<u8>,
}

/// What both ends of a link must agree on, from the node's settings.
#[derive(Clone)]
pub(crate) struct Keys {
    psk: [u8; 32],
    /// Seal frames after the handshake (`internode_encryption`).
    pub(crate) sealed: bool,
}

impl Keys {
    pub(crate) fn new(secret: &[u8], sealed: bool) -> Self {
        Keys {
            psk: blake3::derive_key("ringstore 2026 noise psk", secret),
            sealed,
        }
    }

    fn prologue(&self) -> [u8; 20] {
        let mut p = *b"ringstore rpc v0000s";
        p[15..17].copy_from_slice(&PROTOCOL_VERSION.to_be_bytes());
        p[19] = u8::from(self.sealed);
        p
    }

    fn builder<'a>(&'a self, prologue: &'a [u8]) -> Result<snow::Builder<'a>, snow::Error> {
        let params: snow::params::NoiseParams = NOISE_PARAMS.parse()?;
        snow::Builder::new(params)
            .psk(0, &self.psk)?
            .prologue(prologue)
    }
}

fn failed(what: &str) -> impl Fn(snow::Error) -> RpcError + '_ {
    move |e| RpcError::Handshake(format!("{what}: {e}"))
}

async fn send<T: Serialize>(wire: &mut Wire, msg: &T) -> Result<(), RpcError> {
    let bytes = postcard::to_stdvec(msg).map_err(|e| RpcError::Handshake(e.to_string()))?;
    wire.send(bytes::Bytes::from(bytes))
        .await
        .map_err(|e| RpcError::Handshake(e.to_string()))
}

async fn recv<T: for<'a> Deserialize<'a>>(wire: &mut Wire) -> Result<T, RpcError> {
    let frame = wire
        .next()
        .await
        .ok_or_else(|| RpcError::Handshake("peer closed the connection".into()))?
        .map_err(|e| RpcError::Handshake(e.to_string()))?;
    postcard::from_bytes(&frame).map_err(|e| RpcError::Handshake(format!("malformed frame: {e}")))
}

fn node_id(payload: &[u8]) -> Result<u64, RpcError> {
    let bytes: [u8; 8] = payload
        .try_into()
        .map_err(|_| RpcError::Handshake("handshake payload is not a node id".into()))?;
    Ok(u64::from_be_bytes(bytes))
}

fn mode(sealed: bool) -> &'static str {
    if sealed {
        "on"
    } else {
        "off"
    }
}

/// Run the dialer's side; returns the listener's node id. On success the
/// wire is sealed if the keys say so.
pub(crate) async fn dial(wire: &mut Wire, keys: &Keys, node: u64) -> Result<u64, RpcError> {
    let prologue = keys.prologue();
    let mut hs = keys
        .builder(&prologue)
        .and_then(|b| b.build_initiator())
        .map_err(failed("starting the handshake"))?;
    let mut buf = [0u8; HANDSHAKE_FRAME_BYTES_MAX];
    let n = hs
        .write_message(&node.to_be_bytes(), &mut buf)
        .map_err(failed("writing the hello"))?;
    send(wire, &Greeting::ours(keys, buf[..n].to_vec())).await?;
    let w: Greeting = recv(wire).await?;
    w.agrees(keys, "the peer").map_err(RpcError::Handshake)?;
    let n = hs.read_message(&w.noise, &mut buf).map_err(|_| {
        RpcError::Handshake(
            "the peer and this node do not share the cluster secret; check cluster_secret on both nodes".into(),
        )
    })?;
    let peer = node_id(&buf[..n])?;
    let mut transport = hs
        .into_transport_mode()
        .map_err(failed("finishing the handshake"))?;
    let n = transport
        .write_message(&[], &mut buf)
        .map_err(failed("writing the confirmation"))?;
    send(
        wire,
        &Confirm {
            noise: buf[..n].to_vec(),
        },
    )
    .await?;
    if keys.sealed {
        wire.codec_mut().seal_with(transport);
    }
    Ok(peer)
}

/// Run the listener's side; returns the dialer's node id. On success the
/// wire is sealed if the keys say so.
pub(crate) async fn accept(wire: &mut Wire, keys: &Keys, node: u64) -> Result<u64, RpcError> {
    let h: Greeting = recv(wire).await?;
    if let Err(why) = h.agrees(keys, "the dialer") {
        return Err(refuse(wire, keys, why).await);
    }
    let (mut hs, peer) = match read_hello(keys, &h) {
        Ok(opened) => opened,
        Err(why) => return Err(refuse(wire, keys, why).await),
    };
    let mut buf = [0u8; HANDSHAKE_FRAME_BYTES_MAX];
    let n = hs
        .write_message(&node.to_be_bytes(), &mut buf)
        .map_err(failed("writing the welcome"))?;
    send(wire, &Greeting::ours(keys, buf[..n].to_vec())).await?;
    let mut transport = hs
        .into_transport_mode()
        .map_err(failed("finishing the handshake"))?;
    let c: Confirm = recv(wire).await?;
    transport.read_message(&c.noise, &mut buf).map_err(|_| {
        RpcError::Handshake("dialer did not confirm the session (a replayed hello?)".into())
    })?;
    if keys.sealed {
        wire.codec_mut().seal_with(transport);
    }
    Ok(peer)
}

/// The listener's first step, pure: open a `Hello` (whose version and
/// mode were checked) and learn the dialer's node id.
fn read_hello(keys: &Keys, h: &Greeting) -> Result<(snow::HandshakeState, u64), String> {
    let prologue = keys.prologue();
    let mut hs = keys
        .builder(&prologue)
        .and_then(|b| b.build_responder())
        .map_err(|e| format!("starting the handshake: {e}"))?;
    let mut buf = [0u8; HANDSHAKE_FRAME_BYTES_MAX];
    let n = hs
        .read_message(&h.noise, &mut buf)
        .map_err(|_| "dialer does not know the cluster secret".to_string())?;
    let peer = node_id(&buf[..n]).map_err(|e| e.to_string())?;
    Ok((hs, peer))
}

/// Decode a frame as the listener's first message and open it: what any
/// stranger can make a node do before it proves anything (for fuzzing).
pub(crate) fn hello_frame(keys: &Keys, frame: &[u8]) -> Option<u64> {
    let h: Greeting = postcard::from_bytes(frame).ok()?;
    h.agrees(keys, "the dialer").ok()?;
    read_hello(keys, &h).ok().map(|(_, peer)| peer)
}

/// Tell the dialer our version and mode, so that it can name the
/// mismatch, and fail.
async fn refuse(wire: &mut Wire, keys: &Keys, why: String) -> RpcError {
    let _ = send(wire, &Greeting::ours(keys, Vec::new())).await;
    RpcError::Handshake(why)
}

/// Handshakes in progress on one listener, in total and per source IP:
/// a peer that has not proved the secret gets at most a slot of these.
#[derive(Default)]
pub(crate) struct Handshakes {
    by_source: Mutex<HashMap<String, usize>>,
}

/// One handshake's slot; frees it when dropped.
pub(crate) struct HandshakeSlot {
    handshakes: Arc<Handshakes>,
    source: String,
}

impl Handshakes {
    pub(crate) fn enter(self: &Arc<Self>, peer: &str) -> Option<HandshakeSlot> {
        // "ip:port" (or "[v6]:port"); the port changes with every connect.
        let source = peer.rsplit_once(':').map_or(peer, |(ip, _)| ip).to_string();
        let mut by = self.by_source.lock().unwrap_or_else(|p| p.into_inner());
        let total: usize = by.values().sum();
        let mine = by.get(&source).copied().unwrap_or(0);
        if total >= HANDSHAKES_MAX || mine >= HANDSHAKES_PER_SOURCE_MAX {
            return None;
        }
        *by.entry(source.clone()).or_insert(0) += 1;
        Some(HandshakeSlot {
            handshakes: self.clone(),
            source,
        })
    }
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut by = self
            .handshakes
            .by_source
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = by.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                by.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_messages_fit_the_pre_auth_frame_limit() {
        // Hello and Welcome: an ephemeral key, a node id and a tag.
        let greeting = Greeting {
            version: u16::MAX,
            sealed: true,
            noise: vec![0xffu8; 32 + 8 + 16],
        };
        let c = Confirm {
            noise: vec![0xff; 16],
        };
        for len in [
            postcard::to_stdvec(&greeting).unwrap().len(),
            postcard::to_stdvec(&c).unwrap().len(),
        ] {
            assert!(len <= HANDSHAKE_FRAME_BYTES_MAX, "{len} bytes");
        }
    }

    #[test]
    fn the_prologue_binds_version_and_mode() {
        let (a, b) = (Keys::new(b"s", true), Keys::new(b"s", false));
        assert_ne!(a.prologue(), b.prologue());
        assert_eq!(&a.prologue()[15..17], &PROTOCOL_VERSION.to_be_bytes());
    }
}
