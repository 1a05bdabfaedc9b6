//! Put/Get/DeleteBucketLifecycleConfiguration: S3's XML rules to and from
//! [`Lifecycle`], checked before they are stored.

use crate::lifecycle::{Filter, Lifecycle, Rule};
use crate::service::{secs_of, timestamp, RingS3};
use crate::settings::Sub;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

fn tags_of(set: Option<TagSet>, one: Option<Tag>) -> Vec<(String, String)> {
    set.into_iter()
        .flatten()
        .chain(one)
        .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
        .collect()
}

fn filter_of(r: &mut LifecycleRule) -> Filter {
    let legacy = r.prefix.take().unwrap_or_default();
    let Some(f) = r.filter.take() else {
        return Filter {
            prefix: legacy,
            ..Filter::default()
        };
    };
    match f.and {
        Some(a) => Filter {
            prefix: a.prefix.unwrap_or_default(),
            tags: tags_of(a.tags, None),
            size_gt: a.object_size_greater_than.map(|n| n.max(0) as u64),
            size_lt: a.object_size_less_than.map(|n| n.max(0) as u64),
        },
        None => Filter {
            prefix: f.prefix.unwrap_or(legacy),
            tags: tags_of(None, f.tag),
            size_gt: f.object_size_greater_than.map(|n| n.max(0) as u64),
            size_lt: f.object_size_less_than.map(|n| n.max(0) as u64),
        },
    }
}

fn days(n: Option<i32>, id: &str) -> S3Result<Option<u32>> {
    match n {
        None => Ok(None),
        Some(d) if d > 0 => Ok(Some(d as u32)),
        Some(_) => Err(s3_error!(
            InvalidArgument,
            "rule {id}: days must be a positive integer"
        )),
    }
}

fn rule_of(mut r: LifecycleRule, index: usize) -> S3Result<Rule> {
    let id = r.id.clone().unwrap_or_else(|| format!("rule-{index}"));
    if r.transitions.as_ref().is_some_and(|t| !t.is_empty())
        || r.noncurrent_version_transitions
            .as_ref()
            .is_some_and(|t| !t.is_empty())
    {
        return Err(s3_error!(
            NotImplemented,
            "rule {id}: ringstore has one storage class, so it has no transitions; use Expiration"
        ));
    }
    let status = r.status.as_str().to_string();
    if status != "Enabled" && status != "Disabled" {
        return Err(s3_error!(
            MalformedXML,
            "rule {id}: Status is Enabled or Disabled"
        ));
    }
    let legacy_prefix = r.filter.is_none() && r.prefix.is_some();
    let filter = filter_of(&mut r);
    let exp = r.expiration.unwrap_or_default();
    Ok(Rule {
        enabled: status == "Enabled",
        filter,
        legacy_prefix,
        expire_days: days(exp.days, &id)?,
        expire_at_ms: exp.date.as_ref().map(|t| secs_of(t).max(0) as u64 * 1000),
        expired_marker: exp.expired_object_delete_marker.unwrap_or(false),
        noncurrent_days: days(
            r.noncurrent_version_expiration
                .and_then(|n| n.noncurrent_days),
            &id,
        )?,
        abort_upload_days: days(
            r.abort_incomplete_multipart_upload
                .and_then(|a| a.days_after_initiation),
            &id,
        )?,
        id,
    })
}

pub(crate) async fn put(
    s3: &RingS3,
    req: S3Request<PutBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
    let i = req.input;
    s3.bucket(&i.bucket).await?;
    let rules = i
        .lifecycle_configuration
        .map(|c| c.rules)
        .unwrap_or_default();
    let lc = Lifecycle {
        rules: rules
            .into_iter()
            .enumerate()
            .map(|(n, r)| rule_of(r, n))
            .collect::<S3Result<_>>()?,
    };
    lc.check().map_err(|e| s3_error!(InvalidArgument, "{e}"))?;
    s3.settings.put(&i.bucket, Sub::Lifecycle, &lc).await?;
    crate::lifecycle_run::note_existing_later(s3, &i.bucket)?;
    Ok(S3Response::new(
        PutBucketLifecycleConfigurationOutput::default(),
    ))
}

fn xml_rule(r: Rule) -> LifecycleRule {
    let legacy = r.legacy_prefix.then(|| r.filter.prefix.clone());
    let f = r.filter;
    let tag = |(k, v): (String, String)| Tag {
        key: Some(k),
        value: Some(v),
    };
    let simple = f.tags.len() <= 1 && f.size_gt.is_none() && f.size_lt.is_none();
    let filter = if simple && f.tags.is_empty() {
        LifecycleRuleFilter {
            prefix: Some(f.prefix),
            ..Default::default()
        }
    } else if simple && f.prefix.is_empty() {
        LifecycleRuleFilter {
            tag: f.tags.into_iter().next().map(tag),
            ..Default::default()
        }
    } else {
        LifecycleRuleFilter {
            and: Some(LifecycleRuleAndOperator {
                prefix: Some(f.prefix),
                tags: Some(f.tags.into_iter().map(tag).collect()),
                object_size_greater_than: f.size_gt.map(|n| n as i64),
                object_size_less_than: f.size_lt.map(|n| n as i64),
            }),
            ..Default::default()
        }
    };
    let has_expiration = r.expire_days.is_some() || r.expire_at_ms.is_some() || r.expired_marker;
    LifecycleRule {
        id: Some(r.id),
        status: ExpirationStatus::from(if r.enabled { "Enabled" } else { "Disabled" }.to_string()),
        filter: legacy.is_none().then_some(filter),
        expiration: has_expiration.then(|| LifecycleExpiration {
            days: r.expire_days.map(|d| d as i32),
            date: r.expire_at_ms.map(timestamp),
            expired_object_delete_marker: r.expired_marker.then_some(true),
        }),
        noncurrent_version_expiration: r.noncurrent_days.map(|d| NoncurrentVersionExpiration {
            noncurrent_days: Some(d as i32),
            newer_noncurrent_versions: None,
        }),
        abort_incomplete_multipart_upload: r.abort_upload_days.map(|d| {
            AbortIncompleteMultipartUpload {
                days_after_initiation: Some(d as i32),
            }
        }),
        noncurrent_version_transitions: None,
        prefix: legacy,
        transitions: None,
    }
}

pub(crate) async fn get(
    s3: &RingS3,
    req: S3Request<GetBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
    let bucket = req.input.bucket;
    s3.bucket(&bucket).await?;
    let lc = s3.lifecycle(&bucket).await?.ok_or_else(|| {
        crate::service::custom_error(
            "NoSuchLifecycleConfiguration",
            404,
            format!("bucket {bucket} has no lifecycle configuration"),
        )
    })?;
    Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
        rules: Some(lc.rules.into_iter().map(xml_rule).collect()),
        ..Default::default()
    }))
}

pub(crate) async fn delete(
    s3: &RingS3,
    req: S3Request<DeleteBucketLifecycleInput>,
) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
    let bucket = req.input.bucket;
    s3.bucket(&bucket).await?;
    s3.settings.delete(&bucket, Sub::Lifecycle).await?;
    Ok(S3Response::new(DeleteBucketLifecycleOutput::default()))
}
