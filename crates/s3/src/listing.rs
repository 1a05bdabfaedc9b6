//! ListObjects (v1 and v2) and ListObjectVersions over a bucket's keys.
//!
//! A page is one `node::list_page`: each partition's replica seeks to the
//! page's start and yields a few keys at a time with the head of each
//! record (size, ETag, date), the node merges them in key order and stops
//! at `max-keys`. Nothing is read from the start of the bucket and no
//! record is fetched separately, so a page of 1,000 keys costs the same in
//! a bucket of ten thousand or ten million objects.
//!
//! V2 continuation tokens are opaque: the last key or common prefix of the
//! page, bound to the bucket, prefix and delimiter by a MAC keyed with the
//! cluster secret (`token`). Any node can resume any page, across
//! restarts, without server-side cursor state; a forged, truncated or
//! foreign token is a 400 InvalidArgument.

use crate::records::{self, TYPE_OBJECTS};
use crate::service::{timestamp, RingS3};
use crate::token;
use bytes::Bytes;
use node::{resume_after, ListStart, Listed, PageQuery};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

/// Largest page, as S3's.
const PAGE_KEYS_MAX: usize = 1000;
/// Bytes of each record a listing reads: the version byte, size, ETag and
/// date come first in a [`crate::records::ObjectRecord`]'s encoding, and an ETag is at
/// most a hex MD5 with a part count.
pub(crate) const RECORD_HEAD_BYTES: u32 = 96;

/// The fields of a [`crate::records::ObjectRecord`] a listing shows, decoded from the
/// head of its encoding (postcard encodes fields in order).
#[derive(serde::Deserialize)]
pub(crate) struct RecordHead {
    pub(crate) size: u64,
    pub(crate) etag: String,
    pub(crate) modified_ms: u64,
}

/// One page of a listing.
struct Page {
    contents: Vec<(String, RecordHead)>,
    prefixes: Vec<String>,
    truncated: bool,
    /// The last entry of the page: where the next one starts.
    last: Option<Listed>,
}

/// Where a listing starts when the client names a key (v1 `marker`, v2
/// `start-after`, `key-marker`): after it, or past every key under it when
/// it is a common prefix (it ends with the delimiter).
fn start_at_marker(marker: Option<&str>, delimiter: Option<&str>) -> ListStart {
    match marker.filter(|m| !m.is_empty()) {
        None => ListStart::First,
        Some(m) if delimiter.is_some_and(|d| m.ends_with(d)) => {
            ListStart::past_prefix(m.as_bytes()).unwrap_or(ListStart::First)
        }
        Some(m) => ListStart::After(Bytes::copy_from_slice(m.as_bytes())),
    }
}

/// The head of a listed key's value under last-writer-wins: its newest
/// version's, unless that is a tombstone.
pub(crate) fn newest_live_head(versions: &[node::ListedVersion]) -> Option<&Bytes> {
    let newest = versions.iter().max_by_key(|v| v.modified_ms)?;
    (!newest.deleted).then_some(&newest.head)
}

/// The head of a listed key's record under last-writer-wins: its newest
/// version's, unless that is a tombstone or does not decode.
fn newest_record(versions: &[node::ListedVersion]) -> Option<RecordHead> {
    records::decode_head(newest_live_head(versions)?)
}

async fn page(
    s3: &RingS3,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    start: ListStart,
    max_keys: Option<i32>,
) -> S3Result<Page> {
    s3.bucket(bucket).await?;
    let delimiter = delimiter.filter(|d| !d.is_empty());
    let max = max_keys.map_or(PAGE_KEYS_MAX, |m| (m.max(0) as usize).min(PAGE_KEYS_MAX));
    if max == 0 {
        // `max-keys=0` asks for nothing and, on S3, is not truncated.
        return Ok(Page {
            contents: Vec::new(),
            prefixes: Vec::new(),
            truncated: false,
            last: None,
        });
    }
    let query = PageQuery {
        bucket_type: Bytes::from_static(TYPE_OBJECTS),
        bucket: Bytes::copy_from_slice(bucket.as_bytes()),
        prefix: Bytes::copy_from_slice(prefix.as_bytes()),
        delimiter: delimiter.map(|d| Bytes::copy_from_slice(d.as_bytes())),
        start,
        page_max: max,
        value_head_bytes: RECORD_HEAD_BYTES,
    };
    let listed = s3.catalog.page(&query).await?;
    let last = listed.entries.last().cloned();
    let (mut contents, mut prefixes) = (Vec::new(), Vec::new());
    for entry in listed.entries {
        match entry {
            Listed::Prefix(p) => prefixes.push(String::from_utf8_lossy(&p).into_owned()),
            Listed::Key { key, versions } => {
                // Keys are UTF-8 (S3 checks them on PUT); a record that
                // does not decode or whose newest version is a tombstone
                // is not an object.
                let (Ok(name), Some(record)) =
                    (String::from_utf8(key.to_vec()), newest_record(&versions))
                else {
                    continue;
                };
                contents.push((name, record));
            }
        }
    }
    Ok(Page {
        contents,
        prefixes,
        truncated: listed.truncated,
        last,
    })
}

/// The name of a page's last entry (v1 `NextMarker`, `NextKeyMarker`).
fn last_name(p: &Page) -> Option<String> {
    p.last
        .as_ref()
        .map(|l| String::from_utf8_lossy(l.name()).into_owned())
}

/// Percent-encode for `encoding-type=url` (everything but unreserved
/// characters and `/`).
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn encoder(encoding: Option<&EncodingType>) -> impl Fn(String) -> String {
    let url = encoding.is_some_and(|e| e.as_str().eq_ignore_ascii_case("url"));
    move |s| if url { url_encode(&s) } else { s }
}

/// Listed objects; `owner` (the bucket's, since a listing reads only
/// the head of each record) when the request wants owners.
fn objects(p: &Page, enc: &impl Fn(String) -> String, owner: Option<&str>) -> Vec<Object> {
    p.contents
        .iter()
        .map(|(k, r)| Object {
            owner: owner.map(crate::acl::owner),
            key: Some(enc(k.clone())),
            size: Some(r.size as i64),
            e_tag: Some(ETag::Strong(r.etag.clone())),
            last_modified: Some(timestamp(r.modified_ms)),
            storage_class: Some(ObjectStorageClass::from_static(
                ObjectStorageClass::STANDARD,
            )),
            ..Default::default()
        })
        .collect()
}

fn common_prefixes(p: &Page, enc: &impl Fn(String) -> String) -> Option<Vec<CommonPrefix>> {
    (!p.prefixes.is_empty()).then(|| {
        p.prefixes
            .iter()
            .map(|cp| CommonPrefix {
                prefix: Some(enc(cp.clone())),
            })
            .collect()
    })
}

pub(crate) async fn list_v2(
    s3: &RingS3,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let i = req.input;
    let prefix = i.prefix.clone().unwrap_or_default();
    let delimiter = i.delimiter.as_deref().filter(|d| !d.is_empty());
    let scope = token::Scope {
        bucket: &i.bucket,
        prefix: &prefix,
        delimiter: delimiter.unwrap_or(""),
    };
    let secret = s3.catalog.node().config().cluster_secret.as_bytes();
    let start = match i.continuation_token.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => token::open(secret, &scope, t)
            .map_err(|e| s3_error!(InvalidArgument, "the continuation token is invalid: {e}"))?,
        None => start_at_marker(i.start_after.as_deref(), delimiter),
    };
    let p = page(s3, &i.bucket, &prefix, delimiter, start, i.max_keys).await?;
    let owner = match i.fetch_owner {
        Some(true) => Some(s3.bucket(&i.bucket).await?.owner),
        _ => None,
    };
    let next_token = p
        .last
        .as_ref()
        .filter(|_| p.truncated)
        .and_then(resume_after)
        .map(|at| token::seal(secret, &scope, &at));
    let enc = encoder(i.encoding_type.as_ref());
    let contents = objects(&p, &enc, owner.as_deref());
    Ok(S3Response::new(ListObjectsV2Output {
        key_count: Some((p.contents.len() + p.prefixes.len()) as i32),
        max_keys: Some(i.max_keys.unwrap_or(PAGE_KEYS_MAX as i32)),
        is_truncated: Some(p.truncated),
        next_continuation_token: next_token,
        common_prefixes: common_prefixes(&p, &enc),
        contents: Some(contents),
        continuation_token: i.continuation_token,
        delimiter: i.delimiter.filter(|d| !d.is_empty()).map(&enc),
        prefix: Some(enc(prefix)),
        start_after: i.start_after.map(&enc),
        encoding_type: i.encoding_type,
        name: Some(i.bucket),
        ..Default::default()
    }))
}

pub(crate) async fn list_v1(
    s3: &RingS3,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let i = req.input;
    let prefix = i.prefix.clone().unwrap_or_default();
    let delimiter = i.delimiter.as_deref().filter(|d| !d.is_empty());
    let start = start_at_marker(i.marker.as_deref(), delimiter);
    let p = page(s3, &i.bucket, &prefix, delimiter, start, i.max_keys).await?;
    let enc = encoder(i.encoding_type.as_ref());
    let owner = s3.bucket(&i.bucket).await?.owner;
    Ok(S3Response::new(ListObjectsOutput {
        max_keys: Some(i.max_keys.unwrap_or(PAGE_KEYS_MAX as i32)),
        is_truncated: Some(p.truncated),
        next_marker: if p.truncated {
            last_name(&p).map(&enc)
        } else {
            None
        },
        common_prefixes: common_prefixes(&p, &enc),
        contents: Some(objects(&p, &enc, Some(&owner))),
        marker: Some(i.marker.map(&enc).unwrap_or_default()),
        delimiter: i.delimiter.filter(|d| !d.is_empty()).map(&enc),
        prefix: Some(enc(prefix)),
        encoding_type: i.encoding_type,
        name: Some(i.bucket),
        ..Default::default()
    }))
}

/// Buckets are unversioned: every object is its own only version, `null`.
pub(crate) async fn list_versions(
    s3: &RingS3,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let i = req.input;
    let prefix = i.prefix.clone().unwrap_or_default();
    let delimiter = i.delimiter.as_deref().filter(|d| !d.is_empty());
    let start = start_at_marker(i.key_marker.as_deref(), delimiter);
    let p = page(s3, &i.bucket, &prefix, delimiter, start, i.max_keys).await?;
    let enc = encoder(i.encoding_type.as_ref());
    let versions = p
        .contents
        .iter()
        .map(|(k, r)| ObjectVersion {
            key: Some(enc(k.clone())),
            size: Some(r.size as i64),
            e_tag: Some(ETag::Strong(r.etag.clone())),
            last_modified: Some(timestamp(r.modified_ms)),
            is_latest: Some(true),
            version_id: Some("null".into()),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListObjectVersionsOutput {
        versions: Some(versions),
        common_prefixes: common_prefixes(&p, &enc),
        is_truncated: Some(p.truncated),
        next_key_marker: if p.truncated {
            last_name(&p).map(&enc)
        } else {
            None
        },
        next_version_id_marker: p.truncated.then(|| "null".to_string()),
        key_marker: i.key_marker.map(&enc),
        max_keys: Some(i.max_keys.unwrap_or(PAGE_KEYS_MAX as i32)),
        prefix: Some(enc(prefix)),
        delimiter: i.delimiter.map(&enc),
        encoding_type: i.encoding_type,
        name: Some(i.bucket),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::{url_encode, RecordHead, RECORD_HEAD_BYTES};
    use crate::records::{self, Checksums, Data, Headers, ObjectRecord};

    #[test]
    fn a_record_head_holds_size_etag_and_date() {
        // The longest ETag ringstore writes (multipart, 10,000 parts) and
        // the largest numbers, with headers and data after them.
        let r = ObjectRecord {
            size: u64::MAX,
            etag: format!("{}-10000", "f".repeat(32)),
            modified_ms: u64::MAX,
            headers: Headers {
                content_type: Some("image/jpeg".into()),
                ..Headers::default()
            },
            checksums: Checksums::default(),
            part_sizes: vec![5 << 20; 3],
            data: Data::Inline(bytes::Bytes::from(vec![7u8; 4096])),
            extra: records::ObjectExtra::default(),
        };
        let encoded = records::encode(&r);
        let head = &encoded[..RECORD_HEAD_BYTES as usize];
        let h: RecordHead = records::decode_head(head).expect("the head decodes");
        assert_eq!(
            (h.size, h.etag, h.modified_ms),
            (r.size, r.etag, r.modified_ms)
        );
        assert!(records::decode_head::<RecordHead>(&head[..20]).is_none());
    }

    #[test]
    fn url_encoding_keeps_slashes_and_unreserved() {
        assert_eq!(url_encode("a b/c+d~é"), "a%20b/c%2Bd~%C3%A9");
    }
}
