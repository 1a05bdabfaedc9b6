//! Mutual proof of the cluster secret, before any request is read.
//!
//! ```text
//! dialer → listener: Hello     { version, nonce_d }
//! listener → dialer: Challenge { version, nonce_l, seal(node_l), mac("listener", nonce_d, nonce_l, node_l) }
//! dialer → listener: Proof     { seal(node_d), mac("dialer", nonce_d, nonce_l, node_d) }
//! ```
//!
//! `mac` is keyed BLAKE3 with a key derived from the secret; `seal` XORs a
//! node id with 8 bytes of another keyed hash of both nonces. Fresh nonces
//! on both sides stop replays; the role label stops reflecting one side's
//! proof back at it; the MAC covers the node id each side claims.
//!
//! ## What an unauthenticated peer learns, and what it can cost us
//!
//! Anyone can connect to the RPC port. Before they prove the secret they
//! get one `Challenge`: the protocol version (so a node of another version
//! gets a clear error rather than a MAC mismatch), a random nonce, the
//! listener's node id sealed so that only a holder of the secret can read
//! it, and a MAC that is worthless without the secret (it covers a nonce
//! the listener chose, so it cannot be replayed as a proof, and the role
//! label keeps it from being reflected). They learn that a ringstore node
//! of this version listens there, which the open port tells anyway, and
//! nothing about the cluster's membership: node ids, which name actors in
//! ETags and fault rules, stay sealed. Both ids were sent in the clear up
//! to protocol 1.
//!
//! What they can make us hold is small and bounded: frames during the
//! handshake are at most [`HANDSHAKE_FRAME_BYTES_MAX`] (a length prefix
//! above it closes the connection before a byte of the body is read), the
//! whole exchange must finish within [`HANDSHAKE_TIMEOUT`], and the RPC
//! listener runs at most [`HANDSHAKES_MAX`] handshakes at once, at most
//! [`HANDSHAKES_PER_SOURCE_MAX`] from one IP address (rpc.rs). This
//! authenticates, it does not encrypt.

use crate::RpcError;
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Wire protocol version; peers with another version are refused.
/// 2: node ids sealed and covered by the MACs, small handshake frames.
pub(crate) const PROTOCOL_VERSION: u16 = 2;
/// Largest frame either side accepts before the handshake is done; the
/// three messages are at most 82 bytes.
pub(crate) const HANDSHAKE_FRAME_BYTES_MAX: usize = 128;
/// Longest a connection may take to finish the handshake.
pub(crate) const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// Handshakes the RPC listener runs at once; further connections are
/// closed at once. Peers hold one connection each to a node, so a healthy
/// cluster needs a handful at a time.
pub(crate) const HANDSHAKES_MAX: usize = 64;
/// Handshakes from one IP address at once.
pub(crate) const HANDSHAKES_PER_SOURCE_MAX: usize = 8;

pub(crate) type Wire = Framed<crate::BoxStream, LengthDelimitedCodec>;

#[derive(Serialize, Deserialize)]
struct Hello {
    version: u16,
    nonce: [u8; 32],
}

#[derive(Serialize, Deserialize)]
struct Challenge {
    version: u16,
    nonce: [u8; 32],
    sealed_node: u64,
    mac: [u8; 32],
}

#[derive(Serialize, Deserialize)]
struct Proof {
    sealed_node: u64,
    mac: [u8; 32],
}

fn mac(key: &[u8; 32], role: &str, dialer: &[u8; 32], listener: &[u8; 32], node: u64) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(role.as_bytes());
    h.update(dialer);
    h.update(listener);
    h.update(&node.to_le_bytes());
    *h.finalize().as_bytes()
}

/// Seal (or unseal: XOR is its own inverse) `role`'s node id.
fn seal(key: &[u8; 32], role: &str, dialer: &[u8; 32], listener: &[u8; 32], node: u64) -> u64 {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(b"seal ");
    h.update(role.as_bytes());
    h.update(dialer);
    h.update(listener);
    let pad: [u8; 8] = h.finalize().as_bytes()[..8].try_into().unwrap_or_default();
    node ^ u64::from_le_bytes(pad)
}

/// The key both sides derive from the cluster secret.
pub(crate) fn secret_key(secret: &[u8]) -> [u8; 32] {
    blake3::derive_key("ringstore 2026 cluster secret", secret)
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

/// Run the dialer's side; returns the listener's node id.
pub(crate) async fn dial(
    wire: &mut Wire,
    key: &[u8; 32],
    node: u64,
    nonce: [u8; 32],
) -> Result<u64, RpcError> {
    send(
        wire,
        &Hello {
            version: PROTOCOL_VERSION,
            nonce,
        },
    )
    .await?;
    let c: Challenge = recv(wire).await?;
    if c.version != PROTOCOL_VERSION {
        return Err(RpcError::Handshake(format!(
            "peer speaks protocol {}, we speak {PROTOCOL_VERSION}",
            c.version
        )));
    }
    let peer = seal(key, "listener", &nonce, &c.nonce, c.sealed_node);
    if c.mac != mac(key, "listener", &nonce, &c.nonce, peer) {
        return Err(RpcError::Handshake(
            "peer does not know the cluster secret; check --cluster-secret on both nodes".into(),
        ));
    }
    send(
        wire,
        &Proof {
            sealed_node: seal(key, "dialer", &nonce, &c.nonce, node),
            mac: mac(key, "dialer", &nonce, &c.nonce, node),
        },
    )
    .await?;
    Ok(peer)
}

/// Run the listener's side; returns the dialer's node id.
pub(crate) async fn accept(
    wire: &mut Wire,
    key: &[u8; 32],
    node: u64,
    nonce: [u8; 32],
) -> Result<u64, RpcError> {
    let h: Hello = recv(wire).await?;
    if h.version != PROTOCOL_VERSION {
        return Err(RpcError::Handshake(format!(
            "dialer speaks protocol {}",
            h.version
        )));
    }
    send(
        wire,
        &Challenge {
            version: PROTOCOL_VERSION,
            nonce,
            sealed_node: seal(key, "listener", &h.nonce, &nonce, node),
            mac: mac(key, "listener", &h.nonce, &nonce, node),
        },
    )
    .await?;
    let p: Proof = recv(wire).await?;
    let peer = seal(key, "dialer", &h.nonce, &nonce, p.sealed_node);
    if p.mac != mac(key, "dialer", &h.nonce, &nonce, peer) {
        return Err(RpcError::Handshake(
            "dialer does not know the cluster secret".into(),
        ));
    }
    Ok(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_messages_fit_the_pre_auth_frame_limit() {
        let c = Challenge {
            version: u16::MAX,
            nonce: [0xff; 32],
            sealed_node: u64::MAX,
            mac: [0xff; 32],
        };
        let p = Proof {
            sealed_node: u64::MAX,
            mac: [0xff; 32],
        };
        let h = Hello {
            version: u16::MAX,
            nonce: [0xff; 32],
        };
        for len in [
            postcard::to_stdvec(&c).unwrap().len(),
            postcard::to_stdvec(&p).unwrap().len(),
            postcard::to_stdvec(&h).unwrap().len(),
        ] {
            assert!(len <= HANDSHAKE_FRAME_BYTES_MAX, "{len} bytes");
        }
    }

    #[test]
    fn seal_hides_and_restores_a_node_id() {
        let key = secret_key(b"s");
        let (d, l) = ([1u8; 32], [2u8; 32]);
        let sealed = seal(&key, "listener", &d, &l, 42);
        assert_ne!(sealed, 42);
        assert_eq!(seal(&key, "listener", &d, &l, sealed), 42);
        assert_ne!(seal(&secret_key(b"t"), "listener", &d, &l, sealed), 42);
    }
}
