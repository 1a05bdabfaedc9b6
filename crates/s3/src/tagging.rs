//! Tags on objects and buckets. An object's tags live in its record
//! (`ObjectExtra::tags`), so they are versioned, replicated and repaired
//! with it; a bucket's tags are one settings record (`Sub::Tagging`).

use crate::lock::{update_version, version_record};
use crate::service::RingS3;
use crate::settings::Sub;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

/// Most tags on one object (S3's own limit).
pub(crate) const TAGS_MAX: usize = 10;
/// Most tags on one bucket (S3's own limit).
pub(crate) const BUCKET_TAGS_MAX: usize = 50;

/// Tags from an `x-amz-tagging` header (`k1=v1&k2=v2`, URL-encoded).
pub(crate) fn parse_tagging(header: &str) -> S3Result<Vec<(String, String)>> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| s3_error!(InvalidTag, "a tag is not UTF-8"))
    };
    let mut tags = Vec::new();
    for pair in header.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        tags.push((decode(k)?, decode(v)?));
    }
    check(&tags, TAGS_MAX)?;
    Ok(tags)
}

/// S3's rules for a tag set: at most `max` tags, keys of 1 to 128
/// characters, values of at most 256, no key twice.
fn check(tags: &[(String, String)], max: usize) -> S3Result<()> {
    if tags.len() > max {
        return Err(s3_error!(InvalidTag, "at most {max} tags here"));
    }
    for (i, (k, v)) in tags.iter().enumerate() {
        if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            return Err(s3_error!(
                InvalidTag,
                "tag keys hold 1 to 128 characters, values at most 256"
            ));
        }
        if tags[..i].iter().any(|(other, _)| other == k) {
            return Err(s3_error!(InvalidTag, "tag key {k} is given twice"));
        }
    }
    Ok(())
}

fn pairs_of(set: TagSet, max: usize) -> S3Result<Vec<(String, String)>> {
    let tags: Vec<_> = set
        .into_iter()
        .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
        .collect();
    check(&tags, max)?;
    Ok(tags)
}

fn set_of(tags: Vec<(String, String)>) -> TagSet {
    tags.into_iter()
        .map(|(k, v)| Tag {
            key: Some(k),
            value: Some(v),
        })
        .collect()
}

pub(crate) async fn put_object(
    s3: &RingS3,
    req: S3Request<PutObjectTaggingInput>,
) -> S3Result<S3Response<PutObjectTaggingOutput>> {
    let i = req.input;
    s3.bucket(&i.bucket).await?;
    let tags = pairs_of(i.tagging.tag_set, TAGS_MAX)?;
    let mut version_id = None;
    update_version(s3, &i.bucket, &i.key, i.version_id.as_deref(), |r| {
        version_id = r.extra.version_id.clone();
        r.extra.tags = tags;
        Ok(())
    })
    .await?;
    Ok(S3Response::new(PutObjectTaggingOutput { version_id }))
}

pub(crate) async fn get_object(
    s3: &RingS3,
    req: S3Request<GetObjectTaggingInput>,
) -> S3Result<S3Response<GetObjectTaggingOutput>> {
    let i = req.input;
    s3.bucket(&i.bucket).await?;
    let r = version_record(s3, &i.bucket, &i.key, i.version_id.as_deref()).await?;
    Ok(S3Response::new(GetObjectTaggingOutput {
        version_id: r.extra.version_id.clone(),
        tag_set: set_of(r.extra.tags),
    }))
}

pub(crate) async fn delete_object(
    s3: &RingS3,
    req: S3Request<DeleteObjectTaggingInput>,
) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
    let i = req.input;
    s3.bucket(&i.bucket).await?;
    let mut version_id = None;
    update_version(s3, &i.bucket, &i.key, i.version_id.as_deref(), |r| {
        version_id = r.extra.version_id.clone();
        r.extra.tags.clear();
        Ok(())
    })
    .await?;
    Ok(S3Response::new(DeleteObjectTaggingOutput { version_id }))
}

pub(crate) async fn put_bucket(
    s3: &RingS3,
    req: S3Request<PutBucketTaggingInput>,
) -> S3Result<S3Response<PutBucketTaggingOutput>> {
    let i = req.input;
    s3.bucket(&i.bucket).await?;
    let tags = pairs_of(i.tagging.tag_set, BUCKET_TAGS_MAX)?;
    s3.settings.put(&i.bucket, Sub::Tagging, &tags).await?;
    Ok(S3Response::new(PutBucketTaggingOutput::default()))
}

pub(crate) async fn get_bucket(
    s3: &RingS3,
    req: S3Request<GetBucketTaggingInput>,
) -> S3Result<S3Response<GetBucketTaggingOutput>> {
    let bucket = req.input.bucket;
    s3.bucket(&bucket).await?;
    let tags: Option<Vec<(String, String)>> = s3.settings.get(&bucket, Sub::Tagging).await?;
    let tags = tags.ok_or_else(|| {
        crate::service::custom_error("NoSuchTagSet", 404, format!("bucket {bucket} has no tags"))
    })?;
    Ok(S3Response::new(GetBucketTaggingOutput {
        tag_set: set_of(tags),
    }))
}

pub(crate) async fn delete_bucket(
    s3: &RingS3,
    req: S3Request<DeleteBucketTaggingInput>,
) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
    let bucket = req.input.bucket;
    s3.bucket(&bucket).await?;
    s3.settings.delete(&bucket, Sub::Tagging).await?;
    Ok(S3Response::new(DeleteBucketTaggingOutput::default()))
}
