//! Key → partition hashing.
//!
//! The partition count is fixed when the cluster is created: changing it
//! would move every key. The hash covers the bucket type, the bucket and the
//! key, each length-prefixed so that `("ab", "c")` and `("a", "bc")` differ.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

/// Default partition bits: 2^8 = 256 partitions.
pub const PARTITION_BITS_DEFAULT: u8 = 8;
/// At most 2^16 partitions; partition ids are stored as `u16`.
pub const PARTITION_BITS_MAX: u8 = 16;
const _: () = assert!(PARTITION_BITS_DEFAULT <= PARTITION_BITS_MAX);

/// One of the `2^bits` slices of the key space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartitionId(pub u16);

/// The partition of a key: the top `bits` bits of `xxh3_64(type, bucket, key)`.
///
/// # Panics
///
/// If `bits` is 0 or above [`PARTITION_BITS_MAX`] (a configuration bug that
/// config validation rejects before a layout exists).
pub fn partition_of(bits: u8, bucket_type: &[u8], bucket: &[u8], key: &[u8]) -> PartitionId {
    assert!(
        (1..=PARTITION_BITS_MAX).contains(&bits),
        "partition bits {bits} out of range"
    );
    let mut h = Xxh3::new();
    for part in [bucket_type, bucket, key] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    PartitionId((h.digest() >> (64 - u32::from(bits))) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_prefix_separates_fields() {
        let a = partition_of(16, b"default", b"ab", b"c");
        let b = partition_of(16, b"default", b"a", b"bc");
        assert_ne!(a, b);
    }

    #[test]
    fn stays_in_range() {
        for i in 0..1000u32 {
            let p = partition_of(3, b"t", b"b", &i.to_le_bytes());
            assert!(p.0 < 8);
        }
    }
}
