//! Key encoding: objects sort by partition, then type, then bucket, then
//! key, so one prefix scan lists a bucket's keys in one partition.

use crate::StoreError;
use bytes::Bytes;

/// Longest bucket type name, in bytes.
pub const TYPE_BYTES_MAX: usize = 255;
/// Longest bucket name, in bytes.
pub const BUCKET_BYTES_MAX: usize = 1024;
/// Longest key, in bytes. fjall keys hold at most 64 KiB in all.
pub const KEY_BYTES_MAX: usize = 16 * 1024;
const _: () = assert!(2 + 2 + TYPE_BYTES_MAX + 2 + BUCKET_BYTES_MAX + KEY_BYTES_MAX < 65_536);

/// Where one replica lives in the objects space.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    /// The key's partition.
    pub partition: u16,
    /// Bucket type (`default` unless the client named one).
    pub bucket_type: Bytes,
    /// Bucket.
    pub bucket: Bytes,
    /// Key.
    pub key: Bytes,
}

pub(crate) fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    // Lengths are bounded by the constants above, checked at the API edge.
    out.extend_from_slice(&(field.len() as u16).to_be_bytes());
    out.extend_from_slice(field);
}

impl ObjectKey {
    /// The engine key.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Self::bucket_prefix(self.partition, &self.bucket_type, &self.bucket);
        out.extend_from_slice(&self.key);
        out
    }

    /// Decode what [`ObjectKey::encode`] made; `None` for malformed bytes.
    pub fn decode(bytes: &[u8]) -> Option<ObjectKey> {
        let partition = u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]);
        let (t, rest) = take_field(bytes.get(2..)?)?;
        let (b, key) = take_field(rest)?;
        Some(ObjectKey {
            partition,
            bucket_type: Bytes::copy_from_slice(t),
            bucket: Bytes::copy_from_slice(b),
            key: Bytes::copy_from_slice(key),
        })
    }

    /// The prefix shared by every key of a bucket in one partition.
    pub fn bucket_prefix(partition: u16, bucket_type: &[u8], bucket: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(6 + bucket_type.len() + bucket.len());
        out.extend_from_slice(&partition.to_be_bytes());
        push_field(&mut out, bucket_type);
        push_field(&mut out, bucket);
        out
    }
}

pub(crate) fn bucket_index_key(bucket_type: &[u8], bucket: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    push_field(&mut out, bucket_type);
    push_field(&mut out, bucket);
    out
}

pub(crate) fn take_field(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = usize::from(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]));
    let rest = bytes.get(2..)?;
    Some((rest.get(..len)?, rest.get(len..)?))
}

pub(crate) fn decode_bucket_index_key(bytes: &[u8]) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
    let corrupt = || StoreError::Corrupt {
        what: "bucket index key",
        detail: format!("{} bytes", bytes.len()),
    };
    let (t, rest) = take_field(bytes).ok_or_else(corrupt)?;
    let (b, rest) = take_field(rest).ok_or_else(corrupt)?;
    if !rest.is_empty() {
        return Err(corrupt());
    }
    Ok((t.to_vec(), b.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_key_roundtrip_and_garbage() {
        let k = ObjectKey {
            partition: 7,
            bucket_type: Bytes::from_static(b"default"),
            bucket: Bytes::from_static(b"b"),
            key: Bytes::from_static(b"k/1"),
        };
        assert_eq!(ObjectKey::decode(&k.encode()), Some(k));
        assert_eq!(ObjectKey::decode(&[0, 1, 0, 9]), None);
        assert_eq!(ObjectKey::decode(&[]), None);
    }

    #[test]
    fn bucket_index_roundtrip_and_garbage() {
        let k = bucket_index_key(b"default", b"photos");
        assert_eq!(
            decode_bucket_index_key(&k).unwrap(),
            (b"default".to_vec(), b"photos".to_vec())
        );
        assert!(decode_bucket_index_key(&[0, 9, 1]).is_err());
        assert!(decode_bucket_index_key(&[]).is_err());
    }
}
