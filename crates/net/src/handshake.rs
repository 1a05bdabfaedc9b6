//! Mutual proof of the cluster secret.
//!
//! ```text
//! dialer → listener: Hello     { version, node, nonce_d }
//! listener → dialer: Challenge { version, node, nonce_l, mac("listener", nonce_d, nonce_l) }
//! dialer → listener: Proof     { mac("dialer", nonce_d, nonce_l) }
//! ```
//!
//! `mac` is keyed BLAKE3 with a key derived from the secret. Fresh nonces on
//! both sides stop replays; the role label stops reflecting one side's proof
//! back at it. This authenticates, it does not encrypt (rustls comes later).

use crate::RpcError;
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Wire protocol version; peers with another version are refused.
pub(crate) const PROTOCOL_VERSION: u16 = 1;

pub(crate) type Wire = Framed<crate::BoxStream, LengthDelimitedCodec>;

#[derive(Serialize, Deserialize)]
struct Hello {
    version: u16,
    node: u64,
    nonce: [u8; 32],
}

#[derive(Serialize, Deserialize)]
struct Challenge {
    version: u16,
    node: u64,
    nonce: [u8; 32],
    mac: [u8; 32],
}

#[derive(Serialize, Deserialize)]
struct Proof {
    mac: [u8; 32],
}

fn mac(key: &[u8; 32], role: &str, dialer: &[u8; 32], listener: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(role.as_bytes());
    h.update(dialer);
    h.update(listener);
    *h.finalize().as_bytes()
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
            node,
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
    if c.mac != mac(key, "listener", &nonce, &c.nonce) {
        return Err(RpcError::Handshake(
            "peer does not know the cluster secret; check --cluster-secret on both nodes".into(),
        ));
    }
    send(
        wire,
        &Proof {
            mac: mac(key, "dialer", &nonce, &c.nonce),
        },
    )
    .await?;
    Ok(c.node)
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
    let proof = mac(key, "listener", &h.nonce, &nonce);
    send(
        wire,
        &Challenge {
            version: PROTOCOL_VERSION,
            node,
            nonce,
            mac: proof,
        },
    )
    .await?;
    let p: Proof = recv(wire).await?;
    if p.mac != mac(key, "dialer", &h.nonce, &nonce) {
        return Err(RpcError::Handshake(
            "dialer does not know the cluster secret".into(),
        ));
    }
    Ok(h.node)
}
