//! Entry points for the cargo-fuzz targets in `fuzz/` (docs/RELIABILITY.md):
//! the decoders that bytes from the network reach, before and after a
//! peer proved the cluster secret. Each runs the node's own code on
//! arbitrary bytes; none may panic or allocate what the bytes merely
//! claim. Not an API.

use crate::sealed::SealedCodec;
use bytes::{Bytes, BytesMut};
use std::sync::Mutex;
use tokio_util::codec::{Decoder, Encoder};

/// A handshake's first frame, as a listener reads it from a stranger.
/// Returns the dialer's node id if the frame was a valid hello.
pub fn hello_frame(data: &[u8]) -> Option<u64> {
    let keys =
        crate::handshake::Keys::new(b"fuzz secret", data.first().is_some_and(|b| b & 1 == 1));
    crate::handshake::hello_frame(&keys, data.get(1..).unwrap_or_default())
}

/// Bytes arriving on a connection, read as frames: plain (the handshake's
/// framing, 128-byte limit) when the first byte is even, else as sealed
/// records of an established session. Returns the frames decoded.
pub fn connection_bytes(data: &[u8]) -> usize {
    let Some((mode, rest)) = data.split_first() else {
        return 0;
    };
    let mut codec = if mode & 1 == 0 {
        SealedCodec::plain(crate::handshake::HANDSHAKE_FRAME_BYTES_MAX)
    } else {
        sealed_codec()
    };
    let mut src = BytesMut::from(rest);
    let mut frames = 0;
    while let Ok(Some(_)) = codec.decode(&mut src) {
        frames += 1;
    }
    frames
}

/// A frame sealed by one end of a session and opened by the other must
/// come out whole, whatever its bytes and size.
pub fn sealed_round_trip(data: &[u8]) {
    let (mut a, mut b) = crate::sealed::session_pair(1 << 20);
    let mut wire = BytesMut::new();
    let frame = Bytes::copy_from_slice(data);
    if a.encode(frame.clone(), &mut wire).is_err() {
        return;
    }
    let got = b.decode(&mut wire).ok().flatten();
    assert_eq!(
        got.as_deref(),
        Some(data),
        "a sealed frame did not come back whole"
    );
}

fn sealed_codec() -> SealedCodec {
    crate::sealed::session_pair(1 << 20).1
}

/// A gossip datagram, as the failure detector's socket receives it.
/// Returns whether it was accepted.
pub fn gossip_packet(data: &[u8]) -> bool {
    static REPLAYS: Mutex<Option<crate::replay::ReplayWindow>> = Mutex::new(None);
    let cipher = crate::datagram::gossip_cipher(b"fuzz secret");
    let mut guard = REPLAYS.lock().unwrap_or_else(|p| p.into_inner());
    let window = Mutex::new(guard.take().unwrap_or_default());
    let accepted = crate::datagram::open_packet(&cipher, &window, &Bytes::copy_from_slice(data));
    *guard = Some(window.into_inner().unwrap_or_else(|p| p.into_inner()));
    accepted.is_some()
}
