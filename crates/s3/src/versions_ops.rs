//! The versioning operations: Put/GetBucketVersioning, the versioned
//! side of writes and deletes, and ListObjectVersions over versioned
//! buckets (see `versions` for the layout).

use crate::keys::now_ms;
use crate::lifecycle::Kind;
use crate::listing::{RecordHead, RECORD_HEAD_BYTES};
use crate::records::{self, Data, ObjectExtra, ObjectRecord, TYPE_OBJECTS};
use crate::service::{timestamp, RingS3};
use crate::settings::Sub;
use crate::versions::{
    new_suffix, parse_suffix, split_version_key, version_key, Versioning, TYPE_VERSIONS,
};
use bytes::Bytes;
use node::{ListStart, Listed, PageQuery};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

/// Versions listed per page at most (S3's limit).
const PAGE_MAX: usize = 1000;

pub(crate) async fn put_bucket_versioning(
    s3: &RingS3,
    req: S3Request<PutBucketVersioningInput>,
) -> S3Result<S3Response<PutBucketVersioningOutput>> {
    let i = req.input;
    s3.bucket(&i.bucket).await?;
    let status = i
        .versioning_configuration
        .status
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    if status != "Enabled" && status != "Suspended" {
        return Err(s3_error!(
            MalformedXML,
            "versioning status must be Enabled or Suspended"
        ));
    }
    let old = s3.versioning(&i.bucket).await?;
    if status == "Suspended" && s3.object_lock(&i.bucket).await?.is_some() {
        return Err(s3_error!(
            InvalidBucketState,
            "versioning cannot be suspended on a bucket with object lock"
        ));
    }
    let since_ms = old.map_or_else(now_ms, |o| o.since_ms);
    s3.settings
        .put(&i.bucket, Sub::Versioning, &Versioning { status, since_ms })
        .await?;
    Ok(S3Response::new(PutBucketVersioningOutput::default()))
}

pub(crate) async fn get_bucket_versioning(
    s3: &RingS3,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    s3.bucket(&req.input.bucket).await?;
    let v = s3.versioning(&req.input.bucket).await?;
    Ok(S3Response::new(GetBucketVersioningOutput {
        status: v.map(|v| BucketVersioningStatus::from(v.status)),
        ..Default::default()
    }))
}

/// Before `record` becomes `key`'s current object: in a versioned
/// bucket, give it its version id and store it as a version. Returns
/// the id to answer with.
pub(crate) async fn versioned_write(
    s3: &RingS3,
    bucket: &str,
    key: &str,
    record: &mut ObjectRecord,
) -> S3Result<Option<String>> {
    s3.note_due(bucket, Kind::Current, key, key, record.modified_ms)
        .await?;
    let Some(v) = s3.versioning(bucket).await? else {
        return Ok(None);
    };
    // The version this one supersedes is noncurrent from now.
    s3.note_due(bucket, Kind::Noncurrent, key, key, record.modified_ms)
        .await?;
    let null = !v.enabled();
    s3.settle_null(bucket, key, v.since_ms, null).await?;
    let suffix = new_suffix(null, false);
    let id = if null {
        "null".to_string()
    } else {
        suffix.clone()
    };
    record.extra.version_id = Some(id.clone());
    s3.put_version(bucket, key, &suffix, record).await?;
    // S3 names the version only when versioning is on: a suspended
    // bucket's null version goes unnamed.
    Ok((!null).then_some(id))
}

/// Make `record` `key`'s current object: as a version first in a
/// versioned bucket, then the current record, which is the commit point
/// (readers see the previous object until it lands). Returns the
/// version id to answer with.
pub(crate) async fn write_current(
    s3: &RingS3,
    bucket: &str,
    key: &str,
    record: &mut ObjectRecord,
) -> S3Result<Option<String>> {
    let version_id = versioned_write(s3, bucket, key, record).await?;
    s3.catalog
        .put_referencing(
            TYPE_OBJECTS,
            bucket.as_bytes(),
            key.as_bytes(),
            &*record,
            &record.data,
        )
        .await?;
    Ok(version_id)
}

/// What a delete did in a versioned bucket.
pub(crate) struct Deleted {
    /// The version removed, or the delete marker added.
    pub version_id: Option<String>,
    /// Whether a delete marker was added or removed.
    pub delete_marker: bool,
}

/// A delete in a versioned bucket (`None`: the bucket is not versioned
/// and no version was named; the caller deletes plainly).
pub(crate) async fn versioned_delete(
    s3: &RingS3,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    bypass_governance: bool,
) -> S3Result<Option<Deleted>> {
    let v = s3.versioning(bucket).await?;
    let since_ms = v.as_ref().map_or(u64::MAX, |v| v.since_ms);
    if let Some(id) = version_id {
        let Some(suffix) = s3.suffix_of(bucket, key, id).await? else {
            // The implicit null version: the unversioned object itself.
            if id == "null" {
                if let Some(r) = s3.object(bucket, key).await? {
                    if r.extra.version_id.is_none() {
                        crate::lock::check_delete(&r, bypass_governance)?;
                        s3.catalog
                            .delete(TYPE_OBJECTS, bucket.as_bytes(), key.as_bytes())
                            .await?;
                    }
                }
            }
            return Ok(Some(Deleted {
                version_id: Some(id.to_string()),
                delete_marker: false,
            }));
        };
        let record = s3.get_version(bucket, key, &suffix).await?;
        if let Some(r) = &record {
            crate::lock::check_delete(r, bypass_governance)?;
        }
        s3.catalog
            .delete(TYPE_VERSIONS, bucket.as_bytes(), &version_key(key, &suffix))
            .await?;
        s3.restore_current(bucket, key, since_ms).await?;
        let marker = parse_suffix(&suffix).is_some_and(|(_, d)| d);
        return Ok(Some(Deleted {
            version_id: Some(id.to_string()),
            delete_marker: marker,
        }));
    }
    let Some(v) = v else { return Ok(None) };
    let null = !v.enabled();
    s3.settle_null(bucket, key, v.since_ms, null).await?;
    let suffix = new_suffix(null, true);
    let id = if null {
        "null".to_string()
    } else {
        suffix.clone()
    };
    let marker = ObjectRecord {
        size: 0,
        etag: String::new(),
        modified_ms: now_ms(),
        headers: records::Headers::default(),
        checksums: records::Checksums::default(),
        part_sizes: Vec::new(),
        data: Data::Inline(Bytes::new()),
        extra: ObjectExtra {
            version_id: Some(id.clone()),
            delete_marker: true,
            ..ObjectExtra::default()
        },
    };
    s3.put_version(bucket, key, &suffix, &marker).await?;
    s3.catalog
        .delete(TYPE_OBJECTS, bucket.as_bytes(), key.as_bytes())
        .await?;
    // The version the marker hides is noncurrent from now.
    s3.note_due(bucket, Kind::Noncurrent, key, key, marker.modified_ms)
        .await?;
    Ok(Some(Deleted {
        version_id: Some(id),
        delete_marker: true,
    }))
}

/// A 404 for `key` says whether a delete marker hides it
/// (`x-amz-delete-marker`), as S3's does.
pub(crate) async fn mark_deleted(
    s3: &RingS3,
    bucket: &str,
    key: &str,
    mut e: s3s::S3Error,
) -> s3s::S3Error {
    let marker = match s3.versioning(bucket).await {
        Ok(Some(_)) => s3
            .version_suffixes(bucket, key)
            .await
            .ok()
            .and_then(|s| s.first().and_then(|s| parse_suffix(s)))
            .is_some_and(|(_, marker)| marker),
        _ => false,
    };
    let mut h = hyper::HeaderMap::new();
    h.insert(
        "x-amz-delete-marker",
        hyper::header::HeaderValue::from_static(if marker { "true" } else { "false" }),
    );
    e.set_headers(h);
    e
}

/// A version of `key` by id, for GET and HEAD with `versionId`.
pub(crate) async fn read_version(
    s3: &RingS3,
    bucket: &str,
    key: &str,
    id: &str,
) -> S3Result<ObjectRecord> {
    let missing = || s3_error!(NoSuchVersion, "no version {id} of {key} in bucket {bucket}");
    let record = match s3.suffix_of(bucket, key, id).await? {
        Some(suffix) => s3.get_version(bucket, key, &suffix).await?,
        None if id == "null" => s3
            .object(bucket, key)
            .await?
            .filter(|r| r.extra.version_id.is_none()),
        None => return Err(missing()),
    };
    let r = record.ok_or_else(missing)?;
    if r.extra.delete_marker {
        let mut e = s3_error!(MethodNotAllowed, "version {id} of {key} is a delete marker");
        let mut h = hyper::HeaderMap::new();
        h.insert(
            "x-amz-delete-marker",
            hyper::header::HeaderValue::from_static("true"),
        );
        e.set_headers(h);
        return Err(e);
    }
    Ok(r)
}

/// One listed version, before it becomes S3's XML.
struct Item {
    key: String,
    /// Sorts a key's versions newest first; implicit nulls last.
    rank: String,
    id: String,
    marker: bool,
    head: RecordHead,
}

async fn scan(
    s3: &RingS3,
    bucket_type: &'static [u8],
    bucket: &str,
    prefix: &str,
    start: ListStart,
    max: usize,
) -> S3Result<(Vec<(Vec<u8>, RecordHead)>, bool)> {
    let query = PageQuery {
        bucket_type: Bytes::from_static(bucket_type),
        bucket: Bytes::copy_from_slice(bucket.as_bytes()),
        prefix: Bytes::copy_from_slice(prefix.as_bytes()),
        delimiter: None,
        start,
        page_max: max,
        value_head_bytes: RECORD_HEAD_BYTES,
    };
    let page = s3.catalog.page(&query).await?;
    let mut out = Vec::new();
    for e in page.entries {
        if let Listed::Key { key, versions } = e {
            if let Some(head) =
                crate::listing::newest_live_head(&versions).and_then(|h| records::decode_head(h))
            {
                out.push((key.to_vec(), head));
            }
        }
    }
    Ok((out, page.truncated))
}

/// ListObjectVersions of a bucket that has had versioning: its stored
/// versions merged with the implicit null versions of objects written
/// before, a key's newest first.
pub(crate) async fn list_versions(
    s3: &RingS3,
    i: ListObjectVersionsInput,
    v: Versioning,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let prefix = i.prefix.clone().unwrap_or_default();
    let max = i
        .max_keys
        .map_or(PAGE_MAX, |m| (m.max(0) as usize).min(PAGE_MAX));
    let marker_key = i.key_marker.clone().filter(|k| !k.is_empty());
    let (a_start, b_start) = match (&marker_key, i.version_id_marker.as_deref()) {
        (None, _) => (ListStart::First, ListStart::First),
        (Some(k), Some(id)) if !id.is_empty() => match s3.suffix_of(&i.bucket, k, id).await? {
            Some(s) => (
                ListStart::After(Bytes::from(version_key(k, &s))),
                ListStart::At(Bytes::copy_from_slice(k.as_bytes())),
            ),
            None => (
                past_key(k),
                ListStart::After(Bytes::copy_from_slice(k.as_bytes())),
            ),
        },
        (Some(k), _) => (
            past_key(k),
            ListStart::After(Bytes::copy_from_slice(k.as_bytes())),
        ),
    };
    let (stored, a_trunc) = scan(s3, TYPE_VERSIONS, &i.bucket, &prefix, a_start, max + 1).await?;
    let (current, b_trunc) = scan(s3, TYPE_OBJECTS, &i.bucket, &prefix, b_start, max + 1).await?;
    let mut items: Vec<Item> = stored
        .into_iter()
        .filter_map(|(k, head)| {
            let (key, suffix) = split_version_key(&k)?;
            let (id, marker) = parse_suffix(&suffix)?;
            Some(Item {
                key,
                rank: suffix,
                id,
                marker,
                head,
            })
        })
        .collect();
    items.extend(
        current
            .into_iter()
            .filter(|(_, h)| h.modified_ms < v.since_ms)
            .filter_map(|(k, head)| {
                Some(Item {
                    key: String::from_utf8(k).ok()?,
                    rank: "~".into(),
                    id: "null".into(),
                    marker: false,
                    head,
                })
            }),
    );
    items.sort_by(|x, y| (&x.key, &x.rank).cmp(&(&y.key, &y.rank)));
    // Nothing past the end of a truncated scan may be shown: the other
    // scan's later items wait for the next page.
    let truncated = items.len() > max || a_trunc || b_trunc;
    items.truncate(max);
    let owner = crate::acl::owner(&s3.bucket(&i.bucket).await?.owner);
    let (mut versions, mut markers) = (Vec::new(), Vec::new());
    let mut previous: Option<String> = marker_key.clone();
    for it in &items {
        let latest = previous.as_deref() != Some(it.key.as_str());
        previous = Some(it.key.clone());
        if it.marker {
            markers.push(DeleteMarkerEntry {
                is_latest: Some(latest),
                key: Some(it.key.clone()),
                last_modified: Some(timestamp(it.head.modified_ms)),
                owner: Some(owner.clone()),
                version_id: Some(it.id.clone()),
            });
        } else {
            versions.push(ObjectVersion {
                key: Some(it.key.clone()),
                version_id: Some(it.id.clone()),
                is_latest: Some(latest),
                size: Some(it.head.size as i64),
                e_tag: Some(ETag::Strong(it.head.etag.clone())),
                last_modified: Some(timestamp(it.head.modified_ms)),
                owner: Some(owner.clone()),
                storage_class: Some(ObjectVersionStorageClass::from_static(
                    ObjectVersionStorageClass::STANDARD,
                )),
                ..Default::default()
            });
        }
    }
    let last = items.last().filter(|_| truncated);
    Ok(S3Response::new(ListObjectVersionsOutput {
        versions: Some(versions),
        delete_markers: (!markers.is_empty()).then_some(markers),
        is_truncated: Some(truncated),
        next_key_marker: last.map(|l| l.key.clone()),
        next_version_id_marker: last.map(|l| l.id.clone()),
        key_marker: i.key_marker,
        version_id_marker: i.version_id_marker,
        max_keys: Some(max as i32),
        prefix: Some(prefix),
        name: Some(i.bucket),
        ..Default::default()
    }))
}

/// Past every version of `key`.
fn past_key(key: &str) -> ListStart {
    let mut k = key.as_bytes().to_vec();
    k.push(0);
    ListStart::past_prefix(&k).unwrap_or(ListStart::First)
}
