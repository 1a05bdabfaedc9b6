//! On-disk object format: a 4-byte version marker, then postcard.
//!
//! Bump the marker and keep a frozen copy of the old type with a migration
//! whenever `causal::Object` changes shape; the golden test below fails
//! first.

use crate::StoreError;
use causal::Object;

/// Marks version 1 of the stored object encoding.
pub const OBJECT_VERSION_MARKER: &[u8; 4] = b"RSo1";
/// Stored objects larger than this are refused before decoding.
const OBJECT_BYTES_MAX: usize = 1 << 30;

/// Encode an object for disk, into one allocation of its size (grown
/// from empty, a `Vec` copies a 4 KiB value about ten times).
///
/// # Panics
///
/// If `obj` breaks [`Object::check`]: every object stored was made by
/// `causal`'s rules or checked on arrival, so a broken one is a bug that
/// must not reach the disk.
///
/// # Errors
///
/// [`StoreError::Encode`] if postcard refuses the object (it takes any
/// plain data; kept an error rather than a silent empty record).
pub fn encode_object(obj: &Object) -> Result<Vec<u8>, StoreError> {
    if let Err(e) = obj.check() {
        panic!("refusing to store an object that breaks an invariant: {e}");
    }
    let encode = |e: postcard::Error| StoreError::Encode {
        what: "object",
        detail: e.to_string(),
    };
    let size = postcard::experimental::serialized_size(obj).map_err(encode)?;
    let mut out = Vec::with_capacity(OBJECT_VERSION_MARKER.len() + size);
    out.extend_from_slice(OBJECT_VERSION_MARKER);
    postcard::to_extend(obj, out).map_err(encode)
}

/// Decode an object written by [`encode_object`].
///
/// # Errors
///
/// [`StoreError::Corrupt`] for unknown markers, undecodable bytes, or an
/// object that breaks [`Object::check`].
pub fn decode_object(bytes: &[u8]) -> Result<Object, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        what: "object",
        detail,
    };
    if bytes.len() > OBJECT_BYTES_MAX {
        return Err(corrupt(format!("{} bytes", bytes.len())));
    }
    match bytes.split_at_checked(4) {
        Some((marker, body)) if marker == OBJECT_VERSION_MARKER => {
            let obj: Object = postcard::from_bytes(body).map_err(|e| corrupt(e.to_string()))?;
            obj.check().map_err(|e| corrupt(e.to_string()))?;
            Ok(obj)
        }
        Some((marker, _)) => Err(corrupt(format!("unknown version marker {marker:?}"))),
        None => Err(corrupt("shorter than its version marker".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use causal::{Actor, Meta, VersionVector};

    #[test]
    fn golden_bytes_v1() {
        let mut obj = Object::new();
        let meta = Meta {
            content_type: "text/plain".into(),
            last_modified_ms: 1,
            ..Meta::default()
        };
        obj.update(
            &VersionVector::new(),
            Actor { node: 2, epoch: 3 },
            Bytes::from_static(b"hi"),
            meta,
        )
        .unwrap();
        let bytes = encode_object(&obj).unwrap();
        assert_eq!(
            bytes,
            b"RSo1\x01\x02\x03\x01\x01\x02\x03\x01\x02hi\x0atext/plain\x00\x00\x01\x00".to_vec()
        );
        assert_eq!(decode_object(&bytes).unwrap(), obj);
        assert!(decode_object(b"RSo9").is_err());
        assert!(decode_object(b"RS").is_err());
        assert!(decode_object(b"RSo1\xff\xff").is_err());
        // A sibling whose dot the context lacks: decodes, but is refused.
        let outside = b"RSo1\x00\x01\x02\x03\x01\x02hi\x0atext/plain\x00\x00\x01\x00";
        let err = decode_object(outside).unwrap_err().to_string();
        assert!(err.contains("outside the context"), "{err}");
    }
}
