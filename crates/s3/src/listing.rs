//! ListObjects (v1 and v2) and ListObjectVersions over a bucket's keys.
//!
//! The keys come from the node's coverage listing (one replica per
//! partition), sorted here; a page then reads the records of at most
//! `max-keys` objects for their size, ETag and date. Continuation tokens
//! are the last key or common prefix returned, so a page is found again
//! without server-side cursor state.

use crate::records::{ObjectRecord, TYPE_OBJECTS};
use crate::service::{etag, timestamp, RingS3};
use futures::StreamExt;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

/// Largest page, as S3's.
const PAGE_KEYS_MAX: usize = 1000;
/// Object records read at once for one page.
const RECORD_READS_IN_FLIGHT: usize = 32;

/// One page of a listing.
struct Page {
    contents: Vec<(String, ObjectRecord)>,
    prefixes: Vec<String>,
    truncated: bool,
    /// The last key or prefix in the page: where the next one starts.
    last: Option<String>,
}

async fn page(
    s3: &RingS3,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<&str>,
    max_keys: Option<i32>,
) -> S3Result<Page> {
    s3.bucket(bucket).await?;
    // rclone sends `delimiter=` for a recursive listing; S3 reads an empty
    // delimiter as none.
    let delimiter = delimiter.filter(|d| !d.is_empty());
    let max = max_keys.map_or(PAGE_KEYS_MAX, |m| (m.max(0) as usize).min(PAGE_KEYS_MAX));
    let keys = s3.catalog.keys(TYPE_OBJECTS, bucket.as_bytes()).await?;
    let mut names: Vec<String> = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut last: Option<String> = None;
    let mut truncated = false;
    for k in keys {
        let Ok(key) = String::from_utf8(k.to_vec()) else {
            continue;
        };
        if !key.starts_with(prefix) || after.is_some_and(|a| key.as_str() <= a) {
            continue;
        }
        // After a common prefix, skip the keys it rolled up.
        if let (Some(a), Some(d)) = (after, delimiter) {
            if a.ends_with(d) && key.starts_with(a) {
                continue;
            }
        }
        let entry = match delimiter.and_then(|d| key[prefix.len()..].find(d).map(|i| (i, d))) {
            Some((i, d)) => {
                let cp = key[..prefix.len() + i + d.len()].to_string();
                if prefixes.last() == Some(&cp) {
                    continue;
                }
                Err(cp)
            }
            None => Ok(key),
        };
        if names.len() + prefixes.len() >= max {
            truncated = true;
            break;
        }
        match entry {
            Ok(key) => {
                last = Some(key.clone());
                names.push(key);
            }
            Err(cp) => {
                last = Some(cp.clone());
                prefixes.push(cp);
            }
        }
    }
    let contents = futures::stream::iter(names)
        .map(|name| async move {
            let r = s3.object(bucket, &name).await;
            r.map(|r| r.map(|r| (name, r)))
        })
        .buffered(RECORD_READS_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<S3Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    Ok(Page {
        contents,
        prefixes,
        truncated,
        last,
    })
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

fn objects(p: &Page, enc: &impl Fn(String) -> String) -> Vec<Object> {
    p.contents
        .iter()
        .map(|(k, r)| Object {
            key: Some(enc(k.clone())),
            size: Some(r.size as i64),
            e_tag: Some(etag(r)),
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
    let after = match (&i.continuation_token, &i.start_after) {
        (Some(t), _) => Some(t.as_str()),
        (None, s) => s.as_deref(),
    };
    let p = page(
        s3,
        &i.bucket,
        &prefix,
        i.delimiter.as_deref(),
        after,
        i.max_keys,
    )
    .await?;
    let enc = encoder(i.encoding_type.as_ref());
    let contents = objects(&p, &enc);
    Ok(S3Response::new(ListObjectsV2Output {
        key_count: Some((p.contents.len() + p.prefixes.len()) as i32),
        max_keys: Some(i.max_keys.unwrap_or(PAGE_KEYS_MAX as i32)),
        is_truncated: Some(p.truncated),
        next_continuation_token: if p.truncated { p.last.clone() } else { None },
        common_prefixes: common_prefixes(&p, &enc),
        contents: Some(contents),
        continuation_token: i.continuation_token,
        delimiter: i.delimiter.map(&enc),
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
    let p = page(
        s3,
        &i.bucket,
        &prefix,
        i.delimiter.as_deref(),
        i.marker.as_deref(),
        i.max_keys,
    )
    .await?;
    let enc = encoder(i.encoding_type.as_ref());
    Ok(S3Response::new(ListObjectsOutput {
        max_keys: Some(i.max_keys.unwrap_or(PAGE_KEYS_MAX as i32)),
        is_truncated: Some(p.truncated),
        next_marker: if p.truncated {
            p.last.clone().map(&enc)
        } else {
            None
        },
        common_prefixes: common_prefixes(&p, &enc),
        contents: Some(objects(&p, &enc)),
        marker: i.marker.map(&enc),
        delimiter: i.delimiter.map(&enc),
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
    let p = page(
        s3,
        &i.bucket,
        &prefix,
        i.delimiter.as_deref(),
        i.key_marker.as_deref(),
        i.max_keys,
    )
    .await?;
    let enc = encoder(i.encoding_type.as_ref());
    let versions = p
        .contents
        .iter()
        .map(|(k, r)| ObjectVersion {
            key: Some(enc(k.clone())),
            size: Some(r.size as i64),
            e_tag: Some(etag(r)),
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
            p.last.clone().map(&enc)
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
    use super::url_encode;

    #[test]
    fn url_encoding_keeps_slashes_and_unreserved() {
        assert_eq!(url_encode("a b/c+d~é"), "a%20b/c%2Bd~%C3%A9");
    }
}
