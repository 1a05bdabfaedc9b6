//! # Frames on an inter-node connection, sealed or plain
//!
//! [`SealedCodec`] turns a byte stream into frames (a 4-byte big-endian
//! length, then the body, as `LengthDelimitedCodec` would) and, once the
//! handshake has made session keys, seals that stream with them:
//!
//! ```text
//! plain stream:   [len u32][body ...........][len u32][body ...]
//! on the wire:    [n u16][Noise message n bytes][n u16][Noise message] ...
//! ```
//!
//! Each Noise transport message carries up to [`RECORD_PLAIN_BYTES_MAX`]
//! bytes of the plain stream under AES-256-GCM (ring) with an implicit
//! counter nonce, so a record that is altered, dropped, reordered or
//! replayed (within this connection or from another one, whose keys
//! differ) fails authentication and closes the connection. A 4 KiB value
//! is one record; a 20 MiB one is 321.
//!
//! Why a codec and not an encrypting `AsyncRead`/`AsyncWrite`: the RPC
//! layer already works in frames, and a codec is plain functions over
//! buffers, which are easy to test and to bound. Memory per connection:
//! the decrypted bytes of at most one frame in progress (at most
//! `frame_bytes_max`, checked as soon as its length prefix is decrypted)
//! plus one record.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::io;
use tokio_util::codec::{Decoder, Encoder};

/// Noise's largest message, tag included.
const RECORD_BYTES_MAX: usize = 65535;
const TAG_BYTES: usize = 16;
/// Plain-stream bytes one record carries.
pub(crate) const RECORD_PLAIN_BYTES_MAX: usize = RECORD_BYTES_MAX - TAG_BYTES;
const LEN_BYTES: usize = 4;

/// Frames over a connection; see the module docs.
pub(crate) struct SealedCodec {
    /// Largest frame body accepted or sent.
    frame_max: usize,
    /// Session keys, once the handshake made them and the link is sealed.
    transport: Option<snow::TransportState>,
    /// Decrypted stream bytes not yet returned as frames.
    opened: BytesMut,
    /// One record's plaintext, gathered before it is sealed.
    scratch: Vec<u8>,
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl SealedCodec {
    /// Plain frames of at most `frame_max` bytes (the handshake's limit).
    pub(crate) fn plain(frame_max: usize) -> Self {
        SealedCodec {
            frame_max,
            transport: None,
            opened: BytesMut::new(),
            scratch: Vec::new(),
        }
    }

    /// Raise the frame limit once the peer is authenticated.
    pub(crate) fn set_frame_max(&mut self, frame_max: usize) {
        self.frame_max = frame_max;
    }

    /// Seal every later frame, both ways, with the session's keys. Called
    /// between frames, so no half-read plain frame can be misread.
    pub(crate) fn seal_with(&mut self, transport: snow::TransportState) {
        assert!(self.opened.is_empty(), "sealing started mid-frame");
        self.transport = Some(transport);
    }

    /// Take one frame from the start of `buf`, if it is complete.
    fn take_frame(buf: &mut BytesMut, frame_max: usize) -> io::Result<Option<BytesMut>> {
        if buf.len() < LEN_BYTES {
            return Ok(None);
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len > frame_max {
            return Err(invalid(format!(
                "frame of {len} bytes exceeds the {frame_max}-byte limit"
            )));
        }
        if buf.len() < LEN_BYTES + len {
            buf.reserve(LEN_BYTES + len - buf.len());
            return Ok(None);
        }
        buf.advance(LEN_BYTES);
        Ok(Some(buf.split_to(len)))
    }

    /// Decrypt whole records from `src` into `opened` until a frame is
    /// complete or `src` holds no whole record.
    fn open_records(&mut self, src: &mut BytesMut) -> io::Result<Option<BytesMut>> {
        let Some(transport) = self.transport.as_mut() else {
            return Self::take_frame(src, self.frame_max);
        };
        loop {
            if let Some(frame) = Self::take_frame(&mut self.opened, self.frame_max)? {
                return Ok(Some(frame));
            }
            if src.len() < 2 {
                return Ok(None);
            }
            let n = u16::from_be_bytes([src[0], src[1]]) as usize;
            if n < TAG_BYTES {
                return Err(invalid(format!("sealed record of {n} bytes is too short")));
            }
            if src.len() < 2 + n {
                src.reserve(2 + n - src.len());
                return Ok(None);
            }
            src.advance(2);
            let record = src.split_to(n);
            let start = self.opened.len();
            self.opened.resize(start + n - TAG_BYTES, 0);
            let got = transport
                .read_message(&record, &mut self.opened[start..])
                .map_err(|_| {
                    invalid("a sealed record failed authentication (altered, replayed or out of order); closing the connection")
                })?;
            self.opened.truncate(start + got);
        }
    }

    fn seal_frame(&mut self, body: &[u8], dst: &mut BytesMut) -> io::Result<()> {
        let Some(transport) = self.transport.as_mut() else {
            dst.reserve(LEN_BYTES + body.len());
            dst.put_u32(body.len() as u32);
            dst.extend_from_slice(body);
            return Ok(());
        };
        let total = LEN_BYTES + body.len();
        let records = total.div_ceil(RECORD_PLAIN_BYTES_MAX);
        dst.reserve(total + records * (2 + TAG_BYTES));
        let header = (body.len() as u32).to_be_bytes();
        let mut rest = body;
        let mut first = true;
        while first || !rest.is_empty() {
            self.scratch.clear();
            if first {
                self.scratch.extend_from_slice(&header);
                first = false;
            }
            let take = rest.len().min(RECORD_PLAIN_BYTES_MAX - self.scratch.len());
            self.scratch.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            let n = self.scratch.len() + TAG_BYTES;
            dst.put_u16(n as u16);
            let start = dst.len();
            dst.resize(start + n, 0);
            transport
                .write_message(&self.scratch, &mut dst[start..])
                .map_err(|e| invalid(format!("sealing a frame failed: {e}")))?;
        }
        Ok(())
    }
}

/// Both ends of a fresh session under a fixed key, for tests and fuzzing.
pub(crate) fn session_pair(frame_max: usize) -> (SealedCodec, SealedCodec) {
    let psk = [7u8; 32];
    let make = || -> Result<(snow::TransportState, snow::TransportState), snow::Error> {
        let params: snow::params::NoiseParams = crate::handshake::NOISE_PARAMS.parse()?;
        let mut i = snow::Builder::new(params.clone())
            .psk(0, &psk)?
            .build_initiator()?;
        let mut r = snow::Builder::new(params).psk(0, &psk)?.build_responder()?;
        let (mut m, mut p) = ([0u8; 256], [0u8; 256]);
        let n = i.write_message(&[], &mut m)?;
        r.read_message(&m[..n], &mut p)?;
        let n = r.write_message(&[], &mut m)?;
        i.read_message(&m[..n], &mut p)?;
        Ok((i.into_transport_mode()?, r.into_transport_mode()?))
    };
    let (i, r) = make().expect("a Noise session under a fixed key");
    let (mut a, mut b) = (SealedCodec::plain(frame_max), SealedCodec::plain(frame_max));
    a.seal_with(i);
    b.seal_with(r);
    (a, b)
}

impl Decoder for SealedCodec {
    type Item = BytesMut;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<BytesMut>> {
        self.open_records(src)
    }
}

impl Encoder<Bytes> for SealedCodec {
    type Error = io::Error;

    fn encode(&mut self, body: Bytes, dst: &mut BytesMut) -> io::Result<()> {
        if body.len() > self.frame_max {
            return Err(invalid(format!(
                "frame of {} bytes exceeds the {}-byte limit",
                body.len(),
                self.frame_max
            )));
        }
        self.seal_frame(&body, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (SealedCodec, SealedCodec) {
        session_pair(1 << 22)
    }

    #[test]
    fn frames_of_every_size_cross_sealed_and_hide_their_bytes() {
        let (mut a, mut b) = pair();
        let mut wire = BytesMut::new();
        let sizes = [
            0,
            1,
            RECORD_PLAIN_BYTES_MAX - 4,
            RECORD_PLAIN_BYTES_MAX,
            200_000,
        ];
        for (i, size) in sizes.iter().enumerate() {
            a.encode(Bytes::from(vec![b'v' + i as u8; *size]), &mut wire)
                .unwrap();
        }
        assert!(
            !wire.windows(64).any(|w| w.iter().all(|&c| c == b'v')),
            "plain bytes on the wire"
        );
        // Arriving a few bytes at a time changes nothing.
        let mut src = BytesMut::new();
        let mut got = Vec::new();
        for chunk in wire.chunks(977) {
            src.extend_from_slice(chunk);
            while let Some(f) = b.decode(&mut src).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got.len(), sizes.len());
        for (i, (f, size)) in got.iter().zip(sizes).enumerate() {
            assert_eq!(f.len(), size);
            assert!(f.iter().all(|&c| c == b'v' + i as u8));
        }
    }

    #[test]
    fn an_altered_or_replayed_record_closes_the_connection() {
        let (mut a, mut b) = pair();
        let mut wire = BytesMut::new();
        a.encode(Bytes::from_static(b"hello"), &mut wire).unwrap();
        let mut altered = wire.clone();
        altered[5] ^= 1;
        assert!(b.decode(&mut altered).is_err());
        let (mut a, mut b) = pair();
        let mut wire = BytesMut::new();
        a.encode(Bytes::from_static(b"pay me"), &mut wire).unwrap();
        let replay = wire.clone();
        assert!(b.decode(&mut wire).unwrap().is_some());
        assert!(b.decode(&mut replay.clone()).is_err(), "replay accepted");
    }

    #[test]
    fn an_oversized_frame_is_refused_from_its_length() {
        let (mut a, mut b) = pair();
        b.set_frame_max(10);
        let mut wire = BytesMut::new();
        a.encode(Bytes::from(vec![0u8; 100]), &mut wire).unwrap();
        assert!(b.decode(&mut wire).is_err());
        let mut plain = SealedCodec::plain(10);
        let mut src = BytesMut::from(&[0u8, 0, 1, 0][..]);
        assert!(plain.decode(&mut src).is_err());
    }
}
