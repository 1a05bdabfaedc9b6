//! Object operations: PUT streams the body into the store (inline or as
//! blocks) and then writes the object record; GET reads the record and
//! streams the blocks a range covers. The record write is the commit
//! point: until it lands, readers see the previous version, never a
//! partial one.

use crate::access::ReadByAcl;
use crate::blocks::{read_range, write_body};
use crate::checksum::{add_trailers, hasher_for, verify};
use crate::keys::now_ms;
use crate::records::{Checksums, Data, ObjectExtra, ObjectRecord, TYPE_OBJECTS};
use crate::service::{etag, headers_from, secs_of, timestamp, RingS3};
use bytes::Bytes;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

/// Conditions of a GET or HEAD (RFC 9110 §13.2.2 order).
struct ReadConditions<'a> {
    if_match: Option<&'a ETagCondition>,
    if_none_match: Option<&'a ETagCondition>,
    if_modified_since: Option<&'a Timestamp>,
    if_unmodified_since: Option<&'a Timestamp>,
}

fn matches(cond: &ETagCondition, r: &ObjectRecord) -> bool {
    match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == r.etag,
    }
}

fn check_read(c: &ReadConditions<'_>, r: &ObjectRecord) -> S3Result<()> {
    let modified = (r.modified_ms / 1000) as i64;
    if let Some(m) = c.if_match {
        if !matches(m, r) {
            return Err(s3_error!(
                PreconditionFailed,
                "If-Match: the ETag is {}",
                r.etag
            ));
        }
    } else if let Some(t) = c.if_unmodified_since {
        if modified > secs_of(t) {
            return Err(s3_error!(
                PreconditionFailed,
                "modified since If-Unmodified-Since"
            ));
        }
    }
    if let Some(m) = c.if_none_match {
        if matches(m, r) {
            return Err(not_modified(r));
        }
    } else if let Some(t) = c.if_modified_since {
        if modified <= secs_of(t) {
            return Err(not_modified(r));
        }
    }
    Ok(())
}

/// A 304 carries the validators a cache refreshes (RFC 9110 §15.4.5).
fn not_modified(r: &ObjectRecord) -> s3s::S3Error {
    let mut e = s3_error!(NotModified);
    let mut h = hyper::HeaderMap::new();
    if let Ok(v) = hyper::header::HeaderValue::from_str(&format!("\"{}\"", r.etag)) {
        h.insert(hyper::header::ETAG, v);
    }
    let modified = httpdate::fmt_http_date(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(r.modified_ms),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(&modified) {
        h.insert(hyper::header::LAST_MODIFIED, v);
    }
    e.set_headers(h);
    e
}

/// `If-None-Match` and `If-Match` on writes (conditional writes, as S3
/// has them since 2024): a missing object fails `If-Match` with 404.
pub(crate) fn check_write(
    existing: Option<&ObjectRecord>,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<()> {
    if let (Some(r), Some(m)) = (existing, if_none_match) {
        if matches(m, r) {
            return Err(s3_error!(
                PreconditionFailed,
                "If-None-Match: the object exists with ETag {}",
                r.etag
            ));
        }
    }
    if let Some(m) = if_match {
        match existing {
            Some(r) if matches(m, r) => {}
            Some(r) => {
                return Err(s3_error!(
                    PreconditionFailed,
                    "If-Match does not match the object's ETag {}",
                    r.etag
                ))
            }
            None => return Err(s3_error!(NoSuchKey, "If-Match: the object does not exist")),
        }
    }
    Ok(())
}

pub(crate) async fn put(
    s3: &RingS3,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let writer = req.credentials.as_ref().map(|c| c.access_key.clone());
    let input = req.input;
    s3.bucket(&input.bucket).await?;
    let extra = extra_of(
        s3,
        writer.as_deref(),
        &input.bucket,
        input.acl.as_ref(),
        input.website_redirect_location,
        input.expires.as_ref(),
        input.tagging.as_deref(),
    )
    .await?;
    let (retention, legal_hold) = crate::lock::lock_of_new(
        s3,
        &input.bucket,
        input.object_lock_mode.as_ref(),
        input.object_lock_retain_until_date.as_ref(),
        input.object_lock_legal_hold_status.as_ref(),
    )
    .await?;
    if input.if_match.is_some() || input.if_none_match.is_some() {
        let existing = s3.object(&input.bucket, &input.key).await?;
        check_write(
            existing.as_ref(),
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
        )?;
    }
    let mut claimed = Checksums {
        crc32: input.checksum_crc32,
        crc32c: input.checksum_crc32c,
        sha1: input.checksum_sha1,
        sha256: input.checksum_sha256,
        crc64nvme: input.checksum_crc64nvme,
        kind: None,
    };
    let hasher = hasher_for(&claimed, input.checksum_algorithm.as_ref())?;
    let body = input.body.unwrap_or_else(|| {
        StreamingBlob::wrap(futures::stream::empty::<Result<Bytes, std::io::Error>>())
    });
    let written = write_body(&s3.catalog, body, hasher).await?;
    if let Some(md5) = &input.content_md5 {
        check_content_md5(md5, &written.md5_hex)?;
    }
    add_trailers(&mut claimed, req.trailing_headers.as_ref());
    let mut checksums = verify(written.checksums, &claimed)?;
    if checksums != Checksums::default() {
        checksums.kind = Some("FULL_OBJECT".into());
    }
    let mut record = ObjectRecord {
        size: written.size,
        etag: written.md5_hex,
        modified_ms: now_ms(),
        headers: headers_from(
            input.content_type,
            input.content_encoding,
            input.content_disposition,
            input.content_language,
            input.cache_control,
            input.metadata,
        ),
        checksums: checksums.clone(),
        part_sizes: Vec::new(),
        data: written.data,
        extra: ObjectExtra {
            retention,
            legal_hold,
            ..extra
        },
    };
    let version_id =
        crate::versions_ops::write_current(s3, &input.bucket, &input.key, &mut record).await?;
    Ok(S3Response::new(PutObjectOutput {
        version_id,
        e_tag: Some(etag(&record)),
        checksum_crc32: checksums.crc32,
        checksum_crc32c: checksums.crc32c,
        checksum_sha1: checksums.sha1,
        checksum_sha256: checksums.sha256,
        checksum_crc64nvme: checksums.crc64nvme,
        checksum_type: checksums.kind.map(ChecksumType::from),
        ..Default::default()
    }))
}

/// What a PUT-like request asks the object to hold besides its bytes.
pub(crate) async fn extra_of(
    s3: &RingS3,
    writer: Option<&str>,
    bucket: &str,
    acl: Option<&ObjectCannedACL>,
    website_redirect: Option<String>,
    expires: Option<&Timestamp>,
    tagging: Option<&str>,
) -> S3Result<ObjectExtra> {
    let view = s3.settings.view(bucket).await?;
    let canned = acl.map(|a| a.as_str());
    let acl = crate::subresources::object_acl_of(acl)?;
    if acl.is_public() && view.pab.block_public_acls {
        return Err(s3_error!(
            AccessDenied,
            "bucket {bucket} blocks public ACLs (its public access block)"
        ));
    }
    let owner = crate::subresources::object_owner(s3, bucket, &view, writer, canned).await?;
    if let Some(r) = &website_redirect {
        if !(r.starts_with('/') || r.starts_with("http://") || r.starts_with("https://")) {
            return Err(crate::service::custom_error(
                "InvalidRedirectLocation",
                400,
                "the website redirect must start with /, http:// or https://".into(),
            ));
        }
    }
    Ok(ObjectExtra {
        acl,
        website_redirect,
        expires_ms: expires.map(|t| secs_of(t) * 1000),
        tags: tagging
            .map(crate::tagging::parse_tagging)
            .transpose()?
            .unwrap_or_default(),
        owner,
        ..ObjectExtra::default()
    })
}

fn check_content_md5(b64: &str, md5_hex: &str) -> S3Result<()> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| s3_error!(InvalidDigest, "Content-MD5 is not base64"))?;
    if hex::encode(raw) != md5_hex {
        return Err(s3_error!(
            BadDigest,
            "Content-MD5 does not match the body; send it again"
        ));
    }
    Ok(())
}

/// The byte range a GET or HEAD asks for, and its `Content-Range`.
fn wanted_range(
    r: &ObjectRecord,
    range: Option<&Range>,
    part_number: Option<i32>,
) -> S3Result<(std::ops::Range<u64>, Option<String>)> {
    if let Some(n) = part_number {
        let sizes: Vec<u64> = if r.part_sizes.is_empty() {
            vec![r.size]
        } else {
            r.part_sizes.clone()
        };
        let i = usize::try_from(n - 1)
            .ok()
            .filter(|i| *i < sizes.len())
            .ok_or_else(|| {
                s3_error!(
                    InvalidPart,
                    "partNumber is beyond the object's {} parts",
                    sizes.len()
                )
            })?;
        let start: u64 = sizes[..i].iter().sum();
        let end = start + sizes[i];
        return Ok((start..end, Some(content_range(start, end, r.size))));
    }
    match range {
        None => Ok((0..r.size, None)),
        Some(range) => {
            let span = range.check(r.size)?;
            let cr = content_range(span.start, span.end, r.size);
            Ok((span, Some(cr)))
        }
    }
}

fn content_range(start: u64, end: u64, size: u64) -> String {
    format!("bytes {start}-{}/{size}", end.saturating_sub(1))
}

/// Checksums are returned only for the whole object, when asked for.
fn returned_checksums(r: &ObjectRecord, mode: Option<&ChecksumMode>, whole: bool) -> Checksums {
    let enabled = mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case("ENABLED"));
    if enabled && whole {
        r.checksums.clone()
    } else {
        Checksums::default()
    }
}

/// What a GET or HEAD answers with, before the body: the record after
/// its conditions held, the byte span, and the checksums to return.
struct Answer {
    record: ObjectRecord,
    span: std::ops::Range<u64>,
    content_range: Option<String>,
    sums: Checksums,
}

/// The object a GET or HEAD reads, when its caller may read it.
async fn readable(
    s3: &RingS3,
    bucket: &str,
    key: &str,
    by_acl: Option<&ReadByAcl>,
    version_id: Option<&str>,
) -> S3Result<ObjectRecord> {
    if let Some(id) = version_id {
        // Boxed: a cold path whose state would otherwise enlarge every
        // GET's future.
        let r = Box::pin(crate::versions_ops::read_version(s3, bucket, key, id)).await?;
        if by_acl.is_some_and(|a| !a.allows(r.extra.acl)) {
            return Err(s3_error!(
                AccessDenied,
                "version {id} of {key} is not public"
            ));
        }
        return Ok(r);
    }
    let Some(by_acl) = by_acl else {
        return s3.existing_object(bucket, key).await;
    };
    let denied = || {
        s3_error!(AccessDenied, "object {key} in bucket {bucket} is not public; sign the request with a key that may read it")
    };
    match s3.object(bucket, key).await? {
        Some(r) if by_acl.allows(r.extra.acl) => Ok(r),
        Some(_) => Err(denied()),
        None if by_acl.may_list => Err(s3_error!(NoSuchKey, "no object {key} in bucket {bucket}")),
        None => Err(denied()),
    }
}

#[allow(clippy::too_many_arguments)]
async fn answer(
    s3: &RingS3,
    bucket: &str,
    key: &str,
    by_acl: Option<&ReadByAcl>,
    version_id: Option<&str>,
    conditions: ReadConditions<'_>,
    range: Option<&Range>,
    part_number: Option<i32>,
    mode: Option<&ChecksumMode>,
) -> S3Result<Answer> {
    let record = match readable(s3, bucket, key, by_acl, version_id).await {
        Err(e) if *e.code() == s3s::S3ErrorCode::NoSuchKey => {
            return Err(Box::pin(crate::versions_ops::mark_deleted(s3, bucket, key, e)).await)
        }
        other => other?,
    };
    check_read(&conditions, &record)?;
    let (span, content_range) = wanted_range(&record, range, part_number)?;
    let whole = span.start == 0 && span.end == record.size;
    let sums = returned_checksums(&record, mode, whole);
    Ok(Answer {
        record,
        span,
        content_range,
        sums,
    })
}

pub(crate) async fn get(
    s3: &RingS3,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let by_acl = req.extensions.get::<ReadByAcl>().cloned();
    let input = req.input;
    let conditions = ReadConditions {
        if_match: input.if_match.as_ref(),
        if_none_match: input.if_none_match.as_ref(),
        if_modified_since: input.if_modified_since.as_ref(),
        if_unmodified_since: input.if_unmodified_since.as_ref(),
    };
    let Answer {
        record: r,
        span,
        content_range,
        sums,
    } = answer(
        s3,
        &input.bucket,
        &input.key,
        by_acl.as_ref(),
        input.version_id.as_deref(),
        conditions,
        input.range.as_ref(),
        input.part_number,
        input.checksum_mode.as_ref(),
    )
    .await?;
    let len = span.end - span.start;
    let body = match &r.data {
        // Why not the block reader: a small body sent whole goes out with
        // the headers in one write, with no task and channel per GET.
        Data::Inline(bytes) => StreamingBlob::from(s3s::Body::from(
            bytes.slice(span.start as usize..span.end as usize),
        )),
        Data::Blocks(_) => StreamingBlob::wrap(read_range(&s3.catalog, &r.data, span)),
    };
    let lock = crate::lock::headers_of(&r);
    let h = r.headers;
    Ok(S3Response::new(GetObjectOutput {
        body: Some(body),
        content_length: Some(len as i64),
        content_range,
        accept_ranges: Some("bytes".into()),
        last_modified: Some(timestamp(r.modified_ms)),
        e_tag: Some(ETag::Strong(r.etag)),
        content_type: input
            .response_content_type
            .or(h.content_type.and_then(|c| c.parse().ok())),
        content_encoding: input.response_content_encoding.or(h.content_encoding),
        content_disposition: input.response_content_disposition.or(h.content_disposition),
        content_language: input.response_content_language.or(h.content_language),
        cache_control: input.response_cache_control.or(h.cache_control),
        metadata: Some(h.user_meta.into_iter().collect()),
        version_id: r.extra.version_id.clone(),
        object_lock_mode: lock.0.clone(),
        object_lock_retain_until_date: lock.1.clone(),
        object_lock_legal_hold_status: lock.2.clone(),
        expires: r.extra.expires_ms.map(|ms| timestamp(ms.max(0) as u64)),
        website_redirect_location: r.extra.website_redirect.clone(),
        tag_count: (!r.extra.tags.is_empty()).then_some(r.extra.tags.len() as i32),
        parts_count: (!r.part_sizes.is_empty()).then_some(r.part_sizes.len() as i32),
        checksum_crc32: sums.crc32,
        checksum_crc32c: sums.crc32c,
        checksum_sha1: sums.sha1,
        checksum_sha256: sums.sha256,
        checksum_crc64nvme: sums.crc64nvme,
        checksum_type: sums.kind.map(ChecksumType::from),
        ..Default::default()
    }))
}

pub(crate) async fn head(
    s3: &RingS3,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let by_acl = req.extensions.get::<ReadByAcl>().cloned();
    let input = req.input;
    let conditions = ReadConditions {
        if_match: input.if_match.as_ref(),
        if_none_match: input.if_none_match.as_ref(),
        if_modified_since: input.if_modified_since.as_ref(),
        if_unmodified_since: input.if_unmodified_since.as_ref(),
    };
    let Answer {
        record: r,
        span,
        content_range,
        sums,
    } = answer(
        s3,
        &input.bucket,
        &input.key,
        by_acl.as_ref(),
        input.version_id.as_deref(),
        conditions,
        input.range.as_ref(),
        input.part_number,
        input.checksum_mode.as_ref(),
    )
    .await?;
    let lock = crate::lock::headers_of(&r);
    let h = r.headers;
    Ok(S3Response::new(HeadObjectOutput {
        content_length: Some((span.end - span.start) as i64),
        content_range,
        accept_ranges: Some("bytes".into()),
        last_modified: Some(timestamp(r.modified_ms)),
        e_tag: Some(ETag::Strong(r.etag)),
        content_type: h.content_type.and_then(|c| c.parse().ok()),
        content_encoding: h.content_encoding,
        content_disposition: h.content_disposition,
        content_language: h.content_language,
        cache_control: h.cache_control,
        metadata: Some(h.user_meta.into_iter().collect()),
        version_id: r.extra.version_id.clone(),
        object_lock_mode: lock.0.clone(),
        object_lock_retain_until_date: lock.1.clone(),
        object_lock_legal_hold_status: lock.2.clone(),
        expires: r.extra.expires_ms.map(|ms| timestamp(ms.max(0) as u64)),
        website_redirect_location: r.extra.website_redirect.clone(),
        parts_count: (!r.part_sizes.is_empty()).then_some(r.part_sizes.len() as i32),
        checksum_crc32: sums.crc32,
        checksum_crc32c: sums.crc32c,
        checksum_sha1: sums.sha1,
        checksum_sha256: sums.sha256,
        checksum_crc64nvme: sums.crc64nvme,
        checksum_type: sums.kind.map(ChecksumType::from),
        ..Default::default()
    }))
}

pub(crate) async fn delete(
    s3: &RingS3,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let input = req.input;
    s3.bucket(&input.bucket).await?;
    let bypass = input.bypass_governance_retention.unwrap_or(false);
    let d = delete_one(
        s3,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
        bypass,
    )
    .await?;
    Ok(S3Response::new(DeleteObjectOutput {
        version_id: d.version_id,
        delete_marker: d.delete_marker.then_some(true),
        ..Default::default()
    }))
}

/// Delete one object, or one version of it, as the bucket's versioning
/// says.
pub(crate) async fn delete_one(
    s3: &RingS3,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    bypass_governance: bool,
) -> S3Result<crate::versions_ops::Deleted> {
    if let Some(d) =
        crate::versions_ops::versioned_delete(s3, bucket, key, version_id, bypass_governance)
            .await?
    {
        return Ok(d);
    }
    s3.catalog
        .delete(TYPE_OBJECTS, bucket.as_bytes(), key.as_bytes())
        .await?;
    Ok(crate::versions_ops::Deleted {
        version_id: None,
        delete_marker: false,
    })
}

/// Objects of one DeleteObjects request (S3's own limit).
const DELETE_MANY_MAX: usize = 1000;

pub(crate) async fn delete_many(
    s3: &RingS3,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let input = req.input;
    s3.bucket(&input.bucket).await?;
    let objects = input.delete.objects;
    if objects.len() > DELETE_MANY_MAX {
        return Err(s3_error!(
            MalformedXML,
            "at most {DELETE_MANY_MAX} keys per request"
        ));
    }
    let quiet = input.delete.quiet.unwrap_or(false);
    let bypass = input.bypass_governance_retention.unwrap_or(false);
    let (mut deleted, mut errors) = (Vec::new(), Vec::new());
    for o in objects {
        let asked = o.version_id.clone();
        match delete_one(s3, &input.bucket, &o.key, asked.as_deref(), bypass).await {
            Ok(_) if quiet => {}
            Ok(d) => deleted.push(DeletedObject {
                key: Some(o.key),
                delete_marker: d.delete_marker.then_some(true),
                delete_marker_version_id: if d.delete_marker && asked.is_none() {
                    d.version_id.clone()
                } else {
                    None
                },
                version_id: asked.or(if d.delete_marker { None } else { d.version_id }),
            }),
            Err(e) => errors.push(Error {
                code: Some(e.code().as_str().to_string()),
                key: Some(o.key),
                message: e.message().map(str::to_string),
                version_id: asked,
            }),
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: (!errors.is_empty()).then_some(errors),
        ..Default::default()
    }))
}

/// The `x-amz-copy-source-if-*` conditions: any that fails is a 412.
pub(crate) fn check_copy_source(
    src: &ObjectRecord,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let conditions = ReadConditions {
        if_match,
        if_none_match,
        if_modified_since,
        if_unmodified_since,
    };
    check_read(&conditions, src).map_err(|e| {
        if *e.code() == s3s::S3ErrorCode::NotModified {
            s3_error!(PreconditionFailed)
        } else {
            e
        }
    })
}
