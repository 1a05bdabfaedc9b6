//! UploadPartCopy: a part of a multipart upload made from a byte range
//! of an existing object. The range is read through the block reader and
//! written as a new part, so the part is independent of its source (a
//! source deleted before Complete loses nothing).

use crate::blocks::{read_range, write_body};
use crate::checksum::hasher_for;
use crate::keys::now_ms;
use crate::multipart::{upload, PART_NUMBER_MAX};
use crate::records::{Checksums, PartRecord};
use crate::service::{timestamp, RingS3};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

/// `x-amz-copy-source-range`: `bytes=FIRST-LAST`, both given, inside an
/// object of `size` bytes.
fn source_range(range: &str, size: u64) -> S3Result<std::ops::Range<u64>> {
    let improper = || {
        s3_error!(
            InvalidArgument,
            "the copy source range must be bytes=FIRST-LAST, got {range}"
        )
    };
    let spec = range.strip_prefix("bytes=").ok_or_else(improper)?;
    let (a, b) = spec.split_once('-').ok_or_else(improper)?;
    let (first, last) = match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(f), Ok(l)) => (f, l),
        _ => return Err(improper()),
    };
    if first > last || last >= size {
        return Err(s3_error!(
            InvalidRange,
            "the range {range} is outside the {size}-byte source"
        ));
    }
    Ok(first..last + 1)
}

pub(crate) async fn upload_part_copy(
    s3: &RingS3,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let reader = req.credentials.as_ref().map(|c| c.access_key.clone());
    let i = req.input;
    if !(1..=PART_NUMBER_MAX).contains(&i.part_number) {
        return Err(s3_error!(
            InvalidArgument,
            "part number must be 1 to {PART_NUMBER_MAX}"
        ));
    }
    let CopySource::Bucket {
        bucket: src_bucket,
        key: src_key,
        version_id: src_version,
    } = &i.copy_source
    else {
        return Err(s3_error!(
            NotImplemented,
            "copy sources other than bucket/key"
        ));
    };
    upload(s3, &i.bucket, &i.key, &i.upload_id).await?;
    let src = crate::access::readable_source(
        s3,
        reader.as_deref(),
        src_bucket,
        src_key,
        src_version.as_deref(),
    )
    .await?;
    crate::objects::check_copy_source(
        &src,
        i.copy_source_if_match.as_ref(),
        i.copy_source_if_none_match.as_ref(),
        i.copy_source_if_modified_since.as_ref(),
        i.copy_source_if_unmodified_since.as_ref(),
    )?;
    let span = match &i.copy_source_range {
        Some(r) => source_range(r, src.size)?,
        None => 0..src.size,
    };
    let body = StreamingBlob::wrap(read_range(&s3.catalog, &src.data, span));
    let written = write_body(&s3.catalog, body, hasher_for(&Checksums::default(), None)?).await?;
    let part = PartRecord {
        size: written.size,
        etag: written.md5_hex,
        modified_ms: now_ms(),
        checksums: Checksums::default(),
        data: written.data,
    };
    crate::multipart::store_part(s3, &i.upload_id, i.part_number, &part).await?;
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(ETag::Strong(part.etag)),
            last_modified: Some(timestamp(part.modified_ms)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_ranges_are_whole_and_inside() {
        assert_eq!(source_range("bytes=0-4", 5).unwrap(), 0..5);
        assert_eq!(source_range("bytes=2-2", 5).unwrap(), 2..3);
        for bad in [
            "0-2",
            "bytes=0",
            "bytes=hello-world",
            "bytes=0-bar",
            "bytes=hello-",
            "bytes=0-2,3-5",
        ] {
            assert_eq!(
                source_range(bad, 5).unwrap_err().code(),
                &s3s::S3ErrorCode::InvalidArgument,
                "{bad}"
            );
        }
        assert_eq!(
            source_range("bytes=0-21", 5).unwrap_err().code(),
            &s3s::S3ErrorCode::InvalidRange
        );
    }
}
