//! What the S3 API keeps in the replicated store, and where.
//!
//! Every S3 thing is an ordinary replicated object in a reserved bucket
//! type (names starting `_s3`, whose default props are last-writer-wins,
//! see `cluster::BucketProps::defaults_for`), so it inherits quorums, read
//! repair, hinted handoff, anti-entropy and handoff on membership changes
//! without any code of its own:
//!
//! | type | bucket | key | value |
//! |---|---|---|---|
//! | `_s3` | `buckets` | bucket name | [`BucketRecord`] |
//! | `_s3` | `keys` | access key id | [`KeyRecord`] |
//! | `_s3o` | bucket name | object key | [`ObjectRecord`] |
//! | `_s3u` | bucket name | upload id (hex of the key, `.`, random hex) | [`UploadRecord`] |
//! | `_s3p` | upload id | part number (5 digits) | [`PartRecord`] |
//! | `_s3b` | `blocks` | blake3 of the block (hex) | the block's bytes |
//!
//! A block's key is its hash, so it lands on the ring by its hash and
//! identical blocks are one object. Records are postcard-encoded with a
//! version byte first, so a later layout can still read these.

use bytes::Bytes;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bucket type of bucket and key records.
pub const TYPE_META: &[u8] = b"_s3";
/// Bucket type of object records.
pub const TYPE_OBJECTS: &[u8] = b"_s3o";
/// Bucket type of multipart upload records.
pub const TYPE_UPLOADS: &[u8] = b"_s3u";
/// Bucket type of uploaded parts.
pub const TYPE_PARTS: &[u8] = b"_s3p";
/// Bucket type of blocks.
pub const TYPE_BLOCKS: &[u8] = b"_s3b";
/// Bucket (within [`TYPE_META`]) of bucket records.
pub const BUCKETS: &[u8] = b"buckets";
/// Bucket (within [`TYPE_META`]) of access keys.
pub const KEYS: &[u8] = b"keys";
/// Bucket (within [`TYPE_BLOCKS`]) of blocks.
pub const BLOCKS: &[u8] = b"blocks";

const FORMAT_VERSION: u8 = 1;

/// Encode a record: format version, then postcard.
pub fn encode<T: Serialize>(record: &T) -> Bytes {
    // Encoding plain structs into a Vec cannot fail. One allocation of
    // the record's size: an inline object's record holds its data.
    let size = postcard::experimental::serialized_size(record).unwrap_or(0);
    let mut out = Vec::with_capacity(1 + size);
    out.push(FORMAT_VERSION);
    Bytes::from(postcard::to_extend(record, out).unwrap_or_else(|_| vec![FORMAT_VERSION]))
}

/// Decode a record written by [`encode`]; `None` if it is not one.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    match bytes.split_first() {
        Some((&FORMAT_VERSION, rest)) => postcard::from_bytes(rest).ok(),
        _ => None,
    }
}

/// Decode the leading fields of a record written by [`encode`] from a
/// prefix of its bytes (postcard writes fields in order): `T` declares
/// the record's first fields. `None` if they are not there.
pub fn decode_head<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    match bytes.split_first() {
        Some((&FORMAT_VERSION, rest)) => postcard::take_from_bytes(rest).ok().map(|(t, _)| t),
        _ => None,
    }
}

/// An S3 bucket.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BucketRecord {
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
    /// The access key that created it (and owns it).
    pub owner: String,
}

/// What a key may do with one bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Grant {
    /// List and read objects.
    pub read: bool,
    /// Write and delete objects.
    pub write: bool,
    /// Delete the bucket, change grants.
    pub owner: bool,
}

/// An access key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyRecord {
    /// A name for people.
    pub name: String,
    /// The SigV4 secret.
    pub secret: String,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
    /// May create buckets (and then owns them).
    pub create_buckets: bool,
    /// Rights per bucket.
    pub buckets: BTreeMap<String, Grant>,
}

/// The checksums S3 clients send and expect back (base64, as on the wire).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksums {
    /// `x-amz-checksum-crc32`.
    pub crc32: Option<String>,
    /// `x-amz-checksum-crc32c`.
    pub crc32c: Option<String>,
    /// `x-amz-checksum-sha1`.
    pub sha1: Option<String>,
    /// `x-amz-checksum-sha256`.
    pub sha256: Option<String>,
    /// `x-amz-checksum-crc64nvme`.
    pub crc64nvme: Option<String>,
    /// `FULL_OBJECT` or `COMPOSITE` (multipart objects).
    pub kind: Option<String>,
}

impl Checksums {
    /// The value for `algorithm` (`CRC32`, `CRC32C`, `SHA1`, `SHA256`,
    /// `CRC64NVME`), if any.
    pub fn value(&self, algorithm: &str) -> Option<&str> {
        match algorithm {
            "CRC32" => self.crc32.as_deref(),
            "CRC32C" => self.crc32c.as_deref(),
            "SHA1" => self.sha1.as_deref(),
            "SHA256" => self.sha256.as_deref(),
            "CRC64NVME" => self.crc64nvme.as_deref(),
            _ => None,
        }
    }

    /// Only `value` for `algorithm`, of checksum type `kind`.
    pub fn one(algorithm: &str, value: String, kind: &str) -> Checksums {
        let mut c = Checksums {
            kind: Some(kind.into()),
            ..Checksums::default()
        };
        let slot = match algorithm {
            "CRC32" => &mut c.crc32,
            "CRC32C" => &mut c.crc32c,
            "SHA1" => &mut c.sha1,
            "SHA256" => &mut c.sha256,
            _ => &mut c.crc64nvme,
        };
        *slot = Some(value);
        c
    }
}

/// One block of a large object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRef {
    /// blake3 of the bytes: the block's key.
    pub hash: [u8; 32],
    /// Its length.
    pub len: u32,
}

/// Where an object's bytes are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Data {
    /// In the record itself (small objects).
    Inline(Bytes),
    /// In blocks, in order.
    Blocks(Vec<BlockRef>),
}

/// Content headers stored with an object and returned on GET and HEAD.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Headers {
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Content-Encoding`.
    pub content_encoding: Option<String>,
    /// `Content-Disposition`.
    pub content_disposition: Option<String>,
    /// `Content-Language`.
    pub content_language: Option<String>,
    /// `Cache-Control`.
    pub cache_control: Option<String>,
    /// `x-amz-meta-*`, without the prefix.
    pub user_meta: BTreeMap<String, String>,
}

/// An S3 object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    /// Length in bytes.
    pub size: u64,
    /// ETag without quotes: hex MD5, or `hex-N` for multipart objects.
    pub etag: String,
    /// ms since the epoch.
    pub modified_ms: u64,
    /// Content headers and user metadata.
    pub headers: Headers,
    /// Checksums the client asked for.
    pub checksums: Checksums,
    /// Sizes of the parts of a multipart object (empty otherwise).
    pub part_sizes: Vec<u64>,
    /// The bytes.
    pub data: Data,
}

/// A multipart upload in progress.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UploadRecord {
    /// The object key it will complete to.
    pub key: String,
    /// ms since the epoch.
    pub initiated_ms: u64,
    /// Headers the object will have.
    pub headers: Headers,
    /// The checksum algorithm asked for at creation, if any.
    pub checksum_algorithm: Option<String>,
    /// `COMPOSITE` or `FULL_OBJECT`, if asked for.
    pub checksum_type: Option<String>,
}

/// One uploaded part.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PartRecord {
    /// Length in bytes.
    pub size: u64,
    /// Hex MD5 of the part.
    pub etag: String,
    /// ms since the epoch.
    pub modified_ms: u64,
    /// Checksums of the part.
    pub checksums: Checksums,
    /// The bytes.
    pub data: Data,
}

/// The key of a part record: zero-padded so keys sort by part number.
pub fn part_key(part_number: i32) -> String {
    format!("{part_number:05}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_garbage_is_none() {
        let r = ObjectRecord {
            size: 3,
            etag: "abc".into(),
            modified_ms: 7,
            headers: Headers::default(),
            checksums: Checksums::default(),
            part_sizes: vec![],
            data: Data::Inline(Bytes::from_static(b"xyz")),
        };
        let back: ObjectRecord = decode(&encode(&r)).unwrap();
        assert_eq!(back, r);
        assert!(decode::<ObjectRecord>(b"").is_none());
        assert!(decode::<ObjectRecord>(b"\x09junk").is_none());
        assert_eq!(part_key(12), "00012");
    }
}
