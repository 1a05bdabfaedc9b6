//! CopyObject: a new record that shares the source's blocks (they are
//! content-addressed, so no bytes move), with the source's or the
//! request's metadata and tags as the directives say.

use crate::keys::now_ms;
use crate::objects::{check_copy_source, extra_of};
use crate::records::{ObjectExtra, ObjectRecord};
use crate::service::{etag, headers_from, timestamp, RingS3};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

pub(crate) async fn copy(
    s3: &RingS3,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let creds = req.credentials.clone();
    let input = req.input;
    let CopySource::Bucket {
        bucket: src_bucket,
        key: src_key,
        version_id: src_version,
    } = &input.copy_source
    else {
        return Err(s3_error!(
            NotImplemented,
            "copy sources other than bucket/key"
        ));
    };
    s3.bucket(&input.bucket).await?;
    let reader = creds.as_ref().map(|c| c.access_key.as_str());
    let src =
        crate::access::readable_source(s3, reader, src_bucket, src_key, src_version.as_deref())
            .await?;
    check_copy_source(
        &src,
        input.copy_source_if_match.as_ref(),
        input.copy_source_if_none_match.as_ref(),
        input.copy_source_if_modified_since.as_ref(),
        input.copy_source_if_unmodified_since.as_ref(),
    )?;
    let replace = input
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    let onto_itself = **src_bucket == *input.bucket && **src_key == *input.key;
    if onto_itself
        && !replace
        && input.website_redirect_location.is_none()
        && input.storage_class.is_none()
    {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without \
             changing the object's metadata, storage class, website redirect location or encryption attributes."
        ));
    }
    let headers = if replace {
        headers_from(
            input.content_type,
            input.content_encoding,
            input.content_disposition,
            input.content_language,
            input.cache_control,
            input.metadata,
        )
    } else {
        src.headers
    };
    let mut extra = extra_of(
        s3,
        creds.as_ref().map(|c| c.access_key.as_str()),
        &input.bucket,
        input.acl.as_ref(),
        input.website_redirect_location,
        input.expires.as_ref().filter(|_| replace),
        input.tagging.as_deref(),
    )
    .await?;
    let replace_tags = input
        .tagging_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == TaggingDirective::REPLACE);
    if !replace_tags {
        extra.tags = src.extra.tags.clone();
    }
    if !replace {
        extra.expires_ms = src.extra.expires_ms;
    }
    let (retention, legal_hold) = crate::lock::lock_of_new(
        s3,
        &input.bucket,
        input.object_lock_mode.as_ref(),
        input.object_lock_retain_until_date.as_ref(),
        input.object_lock_legal_hold_status.as_ref(),
    )
    .await?;
    let source_version = src.extra.version_id.clone();
    // Blocks are content-addressed: the copy shares them, no bytes move.
    let mut record = ObjectRecord {
        modified_ms: now_ms(),
        headers,
        extra: ObjectExtra {
            retention,
            legal_hold,
            version_id: None,
            delete_marker: false,
            ..extra
        },
        ..src
    };
    let version_id =
        crate::versions_ops::write_current(s3, &input.bucket, &input.key, &mut record).await?;
    Ok(S3Response::new(CopyObjectOutput {
        version_id,
        copy_source_version_id: source_version,
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(etag(&record)),
            last_modified: Some(timestamp(record.modified_ms)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}
