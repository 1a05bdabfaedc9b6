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
//! version byte first ([`Record::VERSION`]); a record type that gained
//! fields reads its older layouts through [`Record::upgrade`], so data
//! written by an older ringstore stays readable after an upgrade.
//!
//! Bucket settings (CORS, policy, ACL, website) are JSON records in the
//! meta type, one bucket per subresource (see `settings`): JSON because
//! they grow fields often and are read rarely (cached), one record per
//! subresource so that setting the CORS rules on one node and the policy
//! on another at the same moment keeps both.

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

/// The newest format version of any record: [`decode_head`] reads the
/// leading fields of every version up to it.
const FORMAT_VERSION_MAX: u8 = 2;

/// A record kept in the store, with its layout's version.
///
/// Fields are only ever appended: a new layout bumps `VERSION` and reads
/// the old one in `upgrade`, and leading fields keep their meaning (the
/// listing decodes them alone, see [`decode_head`]).
pub trait Record: Serialize + DeserializeOwned {
    /// The version [`encode`] writes.
    const VERSION: u8 = 1;

    /// A record written in an older `version` (`rest` follows the version
    /// byte), in today's layout; `None` if it does not decode.
    fn upgrade(_version: u8, _rest: &[u8]) -> Option<Self> {
        None
    }
}

impl Record for BucketRecord {}
impl Record for KeyRecord {}
impl Record for PartRecord {}

/// Encode a record: format version, then postcard.
pub fn encode<T: Record>(record: &T) -> Bytes {
    const { assert!(T::VERSION >= 1 && T::VERSION <= FORMAT_VERSION_MAX) };
    // Encoding plain structs into a Vec cannot fail. One allocation of
    // the record's size: an inline object's record holds its data.
    let size = postcard::experimental::serialized_size(record).unwrap_or(0);
    let mut out = Vec::with_capacity(1 + size);
    out.push(T::VERSION);
    Bytes::from(postcard::to_extend(record, out).unwrap_or_else(|_| vec![T::VERSION]))
}

/// Decode a record written by [`encode`] in any of its versions; `None`
/// if it is not one.
pub fn decode<T: Record>(bytes: &[u8]) -> Option<T> {
    match bytes.split_first() {
        Some((&v, rest)) if v == T::VERSION => postcard::from_bytes(rest).ok(),
        Some((&v, rest)) => T::upgrade(v, rest),
        None => None,
    }
}

/// Decode the leading fields of a record written by [`encode`] from a
/// prefix of its bytes (postcard writes fields in order): `T` declares
/// the record's first fields, which every version shares. `None` if
/// they are not there.
pub fn decode_head<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    match bytes.split_first() {
        Some((&v, rest)) if (1..=FORMAT_VERSION_MAX).contains(&v) => {
            postcard::take_from_bytes(rest).ok().map(|(t, _)| t)
        }
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
    /// Access, redirect, expiry and tags (version 2).
    pub extra: ObjectExtra,
}

/// What an object holds beyond its bytes and content headers (added in
/// record version 2; version 1 records read as the default: private, no
/// redirect, no `Expires`, no tags).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectExtra {
    /// Who besides the bucket's keys may read it.
    pub acl: ObjectAcl,
    /// `x-amz-website-redirect-location`: the website endpoint answers a
    /// GET of this object with a 301 to it.
    pub website_redirect: Option<String>,
    /// `Expires`, in ms since the epoch (HTTP dates have whole seconds).
    pub expires_ms: Option<i64>,
    /// Object tags, in order.
    pub tags: Vec<(String, String)>,
    /// The access key that wrote it (its owner in S3's ACL terms); the
    /// bucket's owner when absent.
    pub owner: Option<String>,
    /// Its version id in a versioned bucket (`null` for the null
    /// version); `None` for objects written without versioning.
    pub version_id: Option<String>,
    /// A delete marker, not an object (versions only).
    pub delete_marker: bool,
    /// Object lock retention: `GOVERNANCE` or `COMPLIANCE`, until when
    /// (ms since the epoch).
    pub retention: Option<(String, i64)>,
    /// Object lock legal hold.
    pub legal_hold: bool,
}

/// The canned ACLs of an object that ringstore honours; grants to
/// anyone else are the bucket's key rights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectAcl {
    /// Only keys with rights on the bucket.
    #[default]
    Private,
    /// Anyone may read it, unsigned requests included.
    PublicRead,
    /// Anyone may read it; writes follow the bucket.
    PublicReadWrite,
    /// Any signed request may read it.
    AuthenticatedRead,
    /// The bucket's owner may read it (shown in its ACL; the bucket
    /// owner's key rights already allow it).
    BucketOwnerRead,
    /// The bucket's owner has full control (as above).
    BucketOwnerFullControl,
}

impl ObjectAcl {
    /// Whether an unsigned request may read the object.
    pub fn public_read(self) -> bool {
        matches!(self, ObjectAcl::PublicRead | ObjectAcl::PublicReadWrite)
    }

    /// Whether it grants anything beyond the owners (what a public
    /// access block refuses; S3 counts `authenticated-read`).
    pub fn is_public(self) -> bool {
        self.public_read() || self == ObjectAcl::AuthenticatedRead
    }
}

/// Version 1 of [`ObjectRecord`]: without `extra`.
#[derive(Deserialize)]
struct ObjectRecordV1 {
    size: u64,
    etag: String,
    modified_ms: u64,
    headers: Headers,
    checksums: Checksums,
    part_sizes: Vec<u64>,
    data: Data,
}

impl Record for ObjectRecord {
    const VERSION: u8 = 2;

    fn upgrade(version: u8, rest: &[u8]) -> Option<Self> {
        if version != 1 {
            return None;
        }
        let v1: ObjectRecordV1 = postcard::from_bytes(rest).ok()?;
        Some(ObjectRecord {
            size: v1.size,
            etag: v1.etag,
            modified_ms: v1.modified_ms,
            headers: v1.headers,
            checksums: v1.checksums,
            part_sizes: v1.part_sizes,
            data: v1.data,
            extra: ObjectExtra::default(),
        })
    }
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
    /// What the object will hold besides its bytes (version 2).
    pub extra: ObjectExtra,
}

/// Version 1 of [`UploadRecord`]: without `extra`.
#[derive(Deserialize)]
struct UploadRecordV1 {
    key: String,
    initiated_ms: u64,
    headers: Headers,
    checksum_algorithm: Option<String>,
    checksum_type: Option<String>,
}

impl Record for UploadRecord {
    const VERSION: u8 = 2;

    fn upgrade(version: u8, rest: &[u8]) -> Option<Self> {
        if version != 1 {
            return None;
        }
        let v1: UploadRecordV1 = postcard::from_bytes(rest).ok()?;
        Some(UploadRecord {
            key: v1.key,
            initiated_ms: v1.initiated_ms,
            headers: v1.headers,
            checksum_algorithm: v1.checksum_algorithm,
            checksum_type: v1.checksum_type,
            extra: ObjectExtra::default(),
        })
    }
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
            extra: ObjectExtra {
                acl: ObjectAcl::PublicRead,
                website_redirect: Some("/elsewhere".into()),
                expires_ms: None,
                tags: vec![("a".into(), "b".into())],
                owner: Some("KEY".into()),
                version_id: None,
                delete_marker: false,
                retention: Some(("GOVERNANCE".into(), 9)),
                legal_hold: true,
            },
        };
        let back: ObjectRecord = decode(&encode(&r)).unwrap();
        assert_eq!(back, r);
        assert!(decode::<ObjectRecord>(b"").is_none());
        assert!(decode::<ObjectRecord>(b"\x09junk").is_none());
        assert_eq!(part_key(12), "00012");
    }

    /// Bytes an older ringstore wrote (record version 1, before `extra`)
    /// still read, as private objects without tags.
    #[test]
    fn version_1_objects_and_uploads_still_read() {
        #[derive(Serialize)]
        struct V1<'a>(u64, &'a str, u64, Headers, Checksums, Vec<u64>, Data);
        let v1 = V1(
            3,
            "abc",
            7,
            Headers::default(),
            Checksums::default(),
            vec![],
            Data::Inline(Bytes::from_static(b"xyz")),
        );
        let mut bytes = vec![1u8];
        bytes.extend(postcard::to_allocvec(&v1).unwrap());
        let r: ObjectRecord = decode(&bytes).unwrap();
        assert_eq!(
            (r.size, r.etag.as_str(), r.extra.acl),
            (3, "abc", ObjectAcl::Private)
        );
        let head: (u64, String) = decode_head(&bytes).unwrap();
        assert_eq!(head, (3, "abc".into()));

        #[derive(Serialize)]
        struct U1<'a>(&'a str, u64, Headers, Option<String>, Option<String>);
        let mut bytes = vec![1u8];
        bytes.extend(postcard::to_allocvec(&U1("k", 9, Headers::default(), None, None)).unwrap());
        let u: UploadRecord = decode(&bytes).unwrap();
        assert_eq!((u.key.as_str(), u.initiated_ms), ("k", 9));
        assert!(decode::<ObjectRecord>(&[3, 0, 0]).is_none());
    }
}
