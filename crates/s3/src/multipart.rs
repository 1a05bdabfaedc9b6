//! Multipart uploads. The upload and each part are replicated records, so
//! an upload started through one node continues and completes through
//! any other, also after the first one died. Completing writes one object
//! record listing every part's blocks in order: no bytes are copied.

use crate::blocks::{into_blocks, write_body};
use crate::checksum::{add_trailers, composite, full_object, hasher_for, verify};
use crate::keys::now_ms;
use crate::objects::check_write;
use crate::records;
use crate::records::{
    part_key, Checksums, Data, ObjectExtra, ObjectRecord, PartRecord, UploadRecord, TYPE_PARTS,
    TYPE_UPLOADS,
};
use crate::service::{headers_from, timestamp, RingS3};
use bytes::Bytes;
use node::ListStart;
use rand::RngExt;
use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

/// S3's limits on parts.
pub(crate) const PART_NUMBER_MAX: i32 = 10_000;
const PART_BYTES_MIN: u64 = 5 * 1024 * 1024;
const PARTS_PAGE_MAX: usize = 1000;
/// Largest page of ListMultipartUploads, as S3's.
const UPLOADS_PAGE_MAX: usize = 1000;

pub(crate) async fn upload(
    s3: &RingS3,
    bucket: &str,
    key: &str,
    id: &str,
) -> S3Result<UploadRecord> {
    let u: Option<UploadRecord> = s3
        .catalog
        .get(TYPE_UPLOADS, bucket.as_bytes(), id.as_bytes())
        .await?;
    match u {
        Some(u) if u.key == key => Ok(u),
        _ => Err(s3_error!(
            NoSuchUpload,
            "no upload {id} for {bucket}/{key}; it was completed, aborted or never started"
        )),
    }
}

pub(crate) async fn create(
    s3: &RingS3,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let writer = req.credentials.as_ref().map(|c| c.access_key.clone());
    let i = req.input;
    s3.bucket(&i.bucket).await?;
    let extra = crate::objects::extra_of(
        s3,
        writer.as_deref(),
        &i.bucket,
        i.acl.as_ref(),
        i.website_redirect_location,
        i.expires.as_ref(),
        i.tagging.as_deref(),
    )
    .await?;
    let (retention, legal_hold) = crate::lock::lock_of_new(
        s3,
        &i.bucket,
        i.object_lock_mode.as_ref(),
        i.object_lock_retain_until_date.as_ref(),
        i.object_lock_legal_hold_status.as_ref(),
    )
    .await?;
    let extra = ObjectExtra {
        retention,
        legal_hold,
        ..extra
    };
    let id = new_upload_id(&i.key);
    let record = UploadRecord {
        key: i.key.clone(),
        initiated_ms: now_ms(),
        headers: headers_from(
            i.content_type,
            i.content_encoding,
            i.content_disposition,
            i.content_language,
            i.cache_control,
            i.metadata,
        ),
        checksum_algorithm: i
            .checksum_algorithm
            .as_ref()
            .map(|a| a.as_str().to_ascii_uppercase()),
        checksum_type: i
            .checksum_type
            .as_ref()
            .map(|t| t.as_str().to_ascii_uppercase()),
        extra,
    };
    s3.catalog
        .put(TYPE_UPLOADS, i.bucket.as_bytes(), id.as_bytes(), &record)
        .await?;
    s3.note_due(
        &i.bucket,
        crate::lifecycle::Kind::Upload,
        &i.key,
        &id,
        record.initiated_ms,
    )
    .await?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(i.bucket),
        key: Some(i.key),
        upload_id: Some(id),
        checksum_algorithm: i.checksum_algorithm,
        checksum_type: i.checksum_type,
        ..Default::default()
    }))
}

/// Write part `number` of upload `upload_id` (its blocks referenced).
pub(crate) async fn store_part(
    s3: &RingS3,
    upload_id: &str,
    number: i32,
    part: &PartRecord,
) -> S3Result<()> {
    s3.catalog
        .put_referencing(
            TYPE_PARTS,
            upload_id.as_bytes(),
            part_key(number).as_bytes(),
            part,
            &part.data,
        )
        .await
}

pub(crate) async fn upload_part(
    s3: &RingS3,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let i = req.input;
    if !(1..=PART_NUMBER_MAX).contains(&i.part_number) {
        return Err(s3_error!(
            InvalidArgument,
            "part number must be 1 to {PART_NUMBER_MAX}"
        ));
    }
    let u = upload(s3, &i.bucket, &i.key, &i.upload_id).await?;
    let mut claimed = Checksums {
        crc32: i.checksum_crc32,
        crc32c: i.checksum_crc32c,
        sha1: i.checksum_sha1,
        sha256: i.checksum_sha256,
        crc64nvme: i.checksum_crc64nvme,
        kind: None,
    };
    let alg = i
        .checksum_algorithm
        .or_else(|| u.checksum_algorithm.clone().map(ChecksumAlgorithm::from));
    let hasher = hasher_for(&claimed, alg.as_ref())?;
    let body = i
        .body
        .ok_or_else(|| s3_error!(IncompleteBody, "a part needs a body"))?;
    let written = write_body(&s3.catalog, body, hasher).await?;
    add_trailers(&mut claimed, req.trailing_headers.as_ref());
    let checksums = verify(written.checksums, &claimed)?;
    let part = PartRecord {
        size: written.size,
        etag: written.md5_hex,
        modified_ms: now_ms(),
        checksums: checksums.clone(),
        data: written.data,
    };
    store_part(s3, &i.upload_id, i.part_number, &part).await?;
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(ETag::Strong(part.etag)),
        checksum_crc32: checksums.crc32,
        checksum_crc32c: checksums.crc32c,
        checksum_sha1: checksums.sha1,
        checksum_sha256: checksums.sha256,
        checksum_crc64nvme: checksums.crc64nvme,
        ..Default::default()
    }))
}

/// A Complete sent again (a client retrying after a lost answer): the
/// upload is gone, but if the object there is the one these parts make
/// (its ETag is theirs), the retry succeeds as S3's does.
async fn completed_before(
    s3: &RingS3,
    i: &CompleteMultipartUploadInput,
) -> S3Result<Option<S3Response<CompleteMultipartUploadOutput>>> {
    let listed = i.multipart_upload.as_ref().and_then(|m| m.parts.as_ref());
    let Some(listed) = listed.filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    let mut md5s = Vec::with_capacity(listed.len() * 16);
    for p in listed {
        let Some(raw) = p.e_tag.as_ref().and_then(|e| hex::decode(e.value()).ok()) else {
            return Ok(None);
        };
        md5s.extend(raw);
    }
    let etag = format!("{}-{}", hex::encode(Md5::checksum(&md5s)), listed.len());
    match s3.object(&i.bucket, &i.key).await? {
        Some(r) if r.etag == etag => Ok(Some(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(i.bucket.clone()),
            key: Some(i.key.clone()),
            location: Some(format!("/{}/{}", i.bucket, i.key)),
            e_tag: Some(ETag::Strong(r.etag)),
            checksum_crc32: r.checksums.crc32,
            checksum_crc32c: r.checksums.crc32c,
            checksum_sha1: r.checksums.sha1,
            checksum_sha256: r.checksums.sha256,
            checksum_crc64nvme: r.checksums.crc64nvme,
            checksum_type: r.checksums.kind.map(ChecksumType::from),
            version_id: r.extra.version_id,
            ..Default::default()
        }))),
        _ => Ok(None),
    }
}

pub(crate) async fn complete(
    s3: &RingS3,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let i = req.input;
    let u = match upload(s3, &i.bucket, &i.key, &i.upload_id).await {
        Ok(u) => u,
        Err(e) => return completed_before(s3, &i).await?.ok_or(e),
    };
    if i.if_match.is_some() || i.if_none_match.is_some() {
        let existing = s3.object(&i.bucket, &i.key).await?;
        check_write(
            existing.as_ref(),
            i.if_match.as_ref(),
            i.if_none_match.as_ref(),
        )?;
    }
    let listed = i.multipart_upload.and_then(|m| m.parts).unwrap_or_default();
    if listed.is_empty() {
        return Err(s3_error!(MalformedXML, "complete needs at least one part"));
    }
    let mut parts: Vec<PartRecord> = Vec::with_capacity(listed.len());
    let mut previous = 0;
    for (n, p) in listed.iter().enumerate() {
        let number = p.part_number.unwrap_or(0);
        if number <= previous {
            return Err(s3_error!(
                InvalidPartOrder,
                "parts must be listed in ascending order"
            ));
        }
        previous = number;
        let rec: PartRecord = s3
            .catalog
            .get(
                TYPE_PARTS,
                i.upload_id.as_bytes(),
                part_key(number).as_bytes(),
            )
            .await?
            .ok_or_else(|| s3_error!(InvalidPart, "part {number} was not uploaded"))?;
        if p.e_tag.as_ref().is_some_and(|e| e.value() != rec.etag) {
            return Err(s3_error!(
                InvalidPart,
                "part {number} has ETag {}, not the one listed",
                rec.etag
            ));
        }
        if n + 1 < listed.len() && rec.size < PART_BYTES_MIN {
            return Err(s3_error!(
                EntityTooSmall,
                "part {number} is {} bytes; all but the last need 5 MiB",
                rec.size
            ));
        }
        parts.push(rec);
    }
    let claimed = Checksums {
        crc32: i.checksum_crc32.clone(),
        crc32c: i.checksum_crc32c.clone(),
        sha1: i.checksum_sha1.clone(),
        sha256: i.checksum_sha256.clone(),
        crc64nvme: i.checksum_crc64nvme.clone(),
        ..Checksums::default()
    };
    let checksums = object_checksums(&u, &parts, &claimed)?;
    let mut md5s = Vec::with_capacity(parts.len() * 16);
    let mut blocks = Vec::new();
    let mut part_sizes = Vec::with_capacity(parts.len());
    let count = parts.len();
    for p in parts {
        md5s.extend(hex::decode(&p.etag).unwrap_or_default());
        part_sizes.push(p.size);
        blocks.extend(into_blocks(&s3.catalog, p.data).await?);
    }
    let mut record = ObjectRecord {
        size: part_sizes.iter().sum(),
        etag: format!("{}-{}", hex::encode(Md5::checksum(&md5s)), count),
        modified_ms: now_ms(),
        headers: u.headers.clone(),
        checksums: checksums.clone(),
        part_sizes,
        data: Data::Blocks(blocks),
        extra: u.extra.clone(),
    };
    if record.extra.retention.is_none() && !record.extra.legal_hold {
        // An upload started before the bucket had a default retention.
        let (retention, legal_hold) =
            crate::lock::lock_of_new(s3, &i.bucket, None, None, None).await?;
        (record.extra.retention, record.extra.legal_hold) = (retention, legal_hold);
    }
    let version_id = crate::versions_ops::write_current(s3, &i.bucket, &i.key, &mut record).await?;
    forget_upload(s3, &i.bucket, &i.upload_id).await?;
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        version_id,
        bucket: Some(i.bucket.clone()),
        key: Some(i.key.clone()),
        location: Some(format!("/{}/{}", i.bucket, i.key)),
        e_tag: Some(ETag::Strong(record.etag)),
        checksum_crc32: checksums.crc32,
        checksum_crc32c: checksums.crc32c,
        checksum_sha1: checksums.sha1,
        checksum_sha256: checksums.sha256,
        checksum_crc64nvme: checksums.crc64nvme,
        checksum_type: checksums.kind.map(ChecksumType::from),
        ..Default::default()
    }))
}

/// The object's checksum: composite over the parts, or the CRC of the
/// whole (combined from the parts') if the upload asked for a full-object
/// one; a full-object value the client sent with the completion must
/// match it.
fn object_checksums(
    u: &UploadRecord,
    parts: &[PartRecord],
    claimed: &Checksums,
) -> S3Result<Checksums> {
    let Some(alg) = &u.checksum_algorithm else {
        return Ok(Checksums::default());
    };
    let alg = alg.to_ascii_uppercase();
    if u.checksum_type.as_deref() != Some("FULL_OBJECT") && alg != "CRC64NVME" {
        let sums: Vec<&Checksums> = parts.iter().map(|p| &p.checksums).collect();
        let whole = composite(&alg, &sums)?;
        return check_claim(&alg, whole, claimed);
    }
    let sized: Vec<(&Checksums, u64)> = parts.iter().map(|p| (&p.checksums, p.size)).collect();
    check_claim(&alg, full_object(&alg, &sized)?, claimed)
}

/// `whole`, unless the completion claimed another value for `alg` (a
/// composite claim may leave out its `-N`): then 400 `BadDigest`.
fn check_claim(alg: &str, whole: Checksums, claimed: &Checksums) -> S3Result<Checksums> {
    if let (Some(want), Some(got)) = (claimed.value(alg), whole.value(alg)) {
        let base = got.rsplit_once('-').map_or(got, |(b, _)| b);
        if want != got && want != base {
            return Err(s3_error!(
                BadDigest,
                "the object's {alg} is {got} but the completion claims {want}; upload the parts again"
            ));
        }
    }
    Ok(whole)
}

/// Drop an upload's record and its parts' records (their blocks stay
/// for the object, or for block collection).
pub(crate) async fn forget_upload(s3: &RingS3, bucket: &str, id: &str) -> S3Result<()> {
    for k in s3.catalog.keys(TYPE_PARTS, id.as_bytes()).await? {
        s3.catalog.delete(TYPE_PARTS, id.as_bytes(), &k).await?;
    }
    s3.catalog
        .delete(TYPE_UPLOADS, bucket.as_bytes(), id.as_bytes())
        .await
}

pub(crate) async fn abort(
    s3: &RingS3,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let i = req.input;
    upload(s3, &i.bucket, &i.key, &i.upload_id).await?;
    forget_upload(s3, &i.bucket, &i.upload_id).await?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

pub(crate) async fn list_parts(
    s3: &RingS3,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let i = req.input;
    let u = upload(s3, &i.bucket, &i.key, &i.upload_id).await?;
    let owner = match u.extra.owner {
        Some(o) => o,
        None => s3.bucket(&i.bucket).await?.owner,
    };
    let max = i
        .max_parts
        .map_or(PARTS_PAGE_MAX, |m| (m.max(0) as usize).min(PARTS_PAGE_MAX));
    let after = i.part_number_marker.unwrap_or(0);
    let mut parts = Vec::new();
    let mut truncated = false;
    for k in s3.catalog.keys(TYPE_PARTS, i.upload_id.as_bytes()).await? {
        let Some(number) = std::str::from_utf8(&k)
            .ok()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if number <= after {
            continue;
        }
        if parts.len() >= max {
            truncated = true;
            break;
        }
        if let Some(p) = s3
            .catalog
            .get::<PartRecord>(TYPE_PARTS, i.upload_id.as_bytes(), &k)
            .await?
        {
            parts.push(Part {
                part_number: Some(number),
                size: Some(p.size as i64),
                e_tag: Some(ETag::Strong(p.etag)),
                last_modified: Some(timestamp(p.modified_ms)),
                checksum_crc32: p.checksums.crc32,
                checksum_crc32c: p.checksums.crc32c,
                checksum_sha1: p.checksums.sha1,
                checksum_sha256: p.checksums.sha256,
                checksum_crc64nvme: p.checksums.crc64nvme,
            });
        }
    }
    let next = if truncated {
        parts.last().and_then(|p| p.part_number)
    } else {
        None
    };
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(i.bucket),
        key: Some(i.key),
        upload_id: Some(i.upload_id),
        parts: Some(parts),
        is_truncated: Some(truncated),
        next_part_number_marker: next,
        max_parts: Some(max as i32),
        part_number_marker: i.part_number_marker,
        owner: Some(crate::acl::owner(&owner)),
        initiator: Some(Initiator {
            display_name: Some(owner.clone()),
            id: Some(owner),
        }),
        ..Default::default()
    }))
}

/// A new upload id for `key`: the key in hex, a dot, 16 random bytes in
/// hex. Why the key: upload records are keyed by id, so ids that sort by
/// key (hex keeps byte order, and `.` sorts before every hex digit, so
/// `a`'s ids come before `ab`'s) let ListMultipartUploads page through
/// them in S3's order with a seek, like objects.
fn new_upload_id(key: &str) -> String {
    let random: [u8; 16] = rand::rng().random();
    format!("{}.{}", hex::encode(key), hex::encode(random))
}

/// The key an upload id made by [`new_upload_id`] is for.
fn key_of_upload_id(id: &str) -> Option<String> {
    let (hex_key, _) = id.split_once('.')?;
    String::from_utf8(hex::decode(hex_key).ok()?).ok()
}

/// Where a ListMultipartUploads page starts: after the upload-id-marker
/// (ids sort by key first), or past every upload of the key-marker.
fn uploads_start(key_marker: Option<&str>, id_marker: Option<&str>) -> ListStart {
    match (
        key_marker.filter(|k| !k.is_empty()),
        id_marker.filter(|i| !i.is_empty()),
    ) {
        (Some(_), Some(id)) => ListStart::After(Bytes::copy_from_slice(id.as_bytes())),
        (Some(k), None) => ListStart::past_prefix(format!("{}.", hex::encode(k)).as_bytes())
            .unwrap_or(ListStart::First),
        _ => ListStart::First,
    }
}

/// Uploads in progress, a page at a time: a listing page over the upload
/// records (see [`new_upload_id`]), never every upload of the bucket.
/// Uploads started before ids carried their key list in id order.
pub(crate) async fn list_uploads(
    s3: &RingS3,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let i = req.input;
    s3.bucket(&i.bucket).await?;
    let prefix = i.prefix.clone().unwrap_or_default();
    let max = i.max_uploads.map_or(UPLOADS_PAGE_MAX, |m| {
        (m.max(0) as usize).min(UPLOADS_PAGE_MAX)
    });
    let query = node::PageQuery {
        bucket_type: Bytes::from_static(TYPE_UPLOADS),
        bucket: Bytes::copy_from_slice(i.bucket.as_bytes()),
        prefix: Bytes::from(hex::encode(&prefix)),
        delimiter: None,
        start: uploads_start(i.key_marker.as_deref(), i.upload_id_marker.as_deref()),
        page_max: max,
        value_head_bytes: node::VALUE_HEAD_BYTES_MAX,
    };
    let page = s3.catalog.page(&query).await?;
    // The next page starts after the last id listed, shown or not.
    let next_id = page
        .entries
        .last()
        .filter(|_| page.truncated)
        .map(|e| String::from_utf8_lossy(e.name()).into_owned());
    let bucket_owner = s3.bucket(&i.bucket).await?.owner;
    let mut uploads = Vec::new();
    for entry in page.entries {
        let node::Listed::Key { key: id, versions } = entry else {
            continue;
        };
        let Some(head) = crate::listing::newest_live_head(&versions) else {
            continue;
        };
        // A record larger than the head is read whole.
        let record = match records::decode::<UploadRecord>(head) {
            Some(u) => Some(u),
            None => {
                s3.catalog
                    .get::<UploadRecord>(TYPE_UPLOADS, i.bucket.as_bytes(), &id)
                    .await?
            }
        };
        let Some(u) = record.filter(|u| u.key.starts_with(&prefix)) else {
            continue;
        };
        let owner = u
            .extra
            .owner
            .clone()
            .unwrap_or_else(|| bucket_owner.clone());
        uploads.push(MultipartUpload {
            owner: Some(crate::acl::owner(&owner)),
            initiator: Some(Initiator {
                display_name: Some(owner.clone()),
                id: Some(owner),
            }),
            key: Some(u.key),
            upload_id: Some(String::from_utf8_lossy(&id).into_owned()),
            initiated: Some(timestamp(u.initiated_ms)),
            checksum_algorithm: u.checksum_algorithm.map(ChecksumAlgorithm::from),
            ..Default::default()
        });
    }
    // An id from before ids carried their key has only its record's.
    let next_key = next_id
        .as_deref()
        .and_then(|id| key_of_upload_id(id).or_else(|| uploads.last()?.key.clone()));
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(i.bucket),
        prefix: i.prefix,
        next_key_marker: next_key,
        next_upload_id_marker: next_id,
        key_marker: i.key_marker,
        upload_id_marker: i.upload_id_marker,
        uploads: Some(uploads),
        is_truncated: Some(page.truncated),
        max_uploads: Some(max as i32),
        ..Default::default()
    }))
}
