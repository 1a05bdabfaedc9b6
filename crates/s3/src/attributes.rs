//! GetObjectAttributes: what a client learns of an object without its
//! body (size, ETag, checksums, parts), from the record alone.

use crate::access::ReadByAcl;
use crate::service::{timestamp, RingS3};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

/// Most parts listed in one answer (S3's limit).
const PARTS_MAX: usize = 1000;

pub(crate) async fn get(
    s3: &RingS3,
    req: S3Request<GetObjectAttributesInput>,
) -> S3Result<S3Response<GetObjectAttributesOutput>> {
    let by_acl = req.extensions.get::<ReadByAcl>().cloned();
    let i = req.input;
    let r = s3.existing_object(&i.bucket, &i.key).await?;
    if by_acl.is_some_and(|a| !a.allows(r.extra.acl)) {
        return Err(s3_error!(AccessDenied, "object {} is not public", i.key));
    }
    // One header, comma-separated: s3s may hand it over as one element.
    let wants = |a: &str| {
        i.object_attributes
            .iter()
            .flat_map(|x| x.as_str().split(','))
            .any(|x| x.trim() == a)
    };
    let sums = &r.checksums;
    let has_sum = sums.crc32.is_some()
        || sums.crc32c.is_some()
        || sums.sha1.is_some()
        || sums.sha256.is_some()
        || sums.crc64nvme.is_some();
    let checksum = (wants(ObjectAttributes::CHECKSUM) && has_sum).then(|| Checksum {
        checksum_crc32: sums.crc32.clone(),
        checksum_crc32c: sums.crc32c.clone(),
        checksum_crc64nvme: sums.crc64nvme.clone(),
        checksum_sha1: sums.sha1.clone(),
        checksum_sha256: sums.sha256.clone(),
        checksum_type: sums.kind.clone().map(ChecksumType::from),
    });
    let parts = (wants(ObjectAttributes::OBJECT_PARTS) && !r.part_sizes.is_empty()).then(|| {
        let max = i
            .max_parts
            .map_or(PARTS_MAX, |m| (m.max(0) as usize).min(PARTS_MAX));
        let after = i.part_number_marker.unwrap_or(0).max(0) as usize;
        let listed: Vec<ObjectPart> = r
            .part_sizes
            .iter()
            .enumerate()
            .skip(after)
            .take(max)
            .map(|(n, size)| ObjectPart {
                part_number: Some(n as i32 + 1),
                size: Some(*size as i64),
                ..Default::default()
            })
            .collect();
        let last = listed.last().and_then(|p| p.part_number).unwrap_or(0);
        let truncated = (last as usize) < r.part_sizes.len();
        GetObjectAttributesParts {
            is_truncated: Some(truncated),
            max_parts: Some(max as i32),
            next_part_number_marker: truncated.then_some(last),
            part_number_marker: i.part_number_marker,
            parts: Some(listed),
            total_parts_count: Some(r.part_sizes.len() as i32),
        }
    });
    Ok(S3Response::new(GetObjectAttributesOutput {
        checksum,
        e_tag: wants(ObjectAttributes::ETAG).then(|| ETag::Strong(r.etag.clone())),
        last_modified: Some(timestamp(r.modified_ms)),
        object_parts: parts,
        object_size: wants(ObjectAttributes::OBJECT_SIZE).then_some(r.size as i64),
        storage_class: wants(ObjectAttributes::STORAGE_CLASS)
            .then(|| StorageClass::from_static(StorageClass::STANDARD)),
        version_id: r.extra.version_id.clone(),
        ..Default::default()
    }))
}
