//! Object lock: versions that may not be deleted until a date (retention,
//! `GOVERNANCE` or `COMPLIANCE`) or while a legal hold is on.
//!
//! Only in versioned buckets, as on S3: a lock protects one version, and
//! a plain DELETE still adds a delete marker. The lock lives in the
//! version's record (`ObjectExtra::retention`, `legal_hold`), so it is
//! replicated, repaired and handed off with it; a bucket's default
//! retention is a setting applied to each new version.
//!
//! Enforcement: deleting a locked version is refused (403 AccessDenied);
//! governance retention yields to `x-amz-bypass-governance-retention`
//! from a key with rights on the bucket, compliance retention and legal
//! holds to nothing. Retention can be lengthened; shortening or removing
//! it takes the same bypass in governance mode and is refused in
//! compliance mode.

use crate::keys::now_ms;
use crate::records::{ObjectRecord, TYPE_OBJECTS};
use crate::service::RingS3;
use crate::settings::Sub;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};
use serde::{Deserialize, Serialize};
use std::time::{Duration, UNIX_EPOCH};

/// A bucket's object lock configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LockConfig {
    /// Default retention mode for new versions, if any.
    pub mode: Option<String>,
    /// Default retention in days.
    pub days: Option<i32>,
    /// Default retention in years.
    pub years: Option<i32>,
}

impl LockConfig {
    /// The retention a new version gets by default.
    pub fn default_retention(&self, now_ms: u64) -> Option<(String, i64)> {
        let mode = self.mode.clone()?;
        let days = i64::from(self.days.unwrap_or(0)) + 365 * i64::from(self.years.unwrap_or(0));
        Some((mode, now_ms as i64 + days * 86_400_000))
    }
}

fn not_found(bucket: &str) -> s3s::S3Error {
    crate::service::custom_error(
        "ObjectLockConfigurationNotFoundError",
        404,
        format!("bucket {bucket} has no object lock configuration"),
    )
}

/// Refuse deleting a version that is locked.
///
/// # Errors
///
/// `AccessDenied` naming the lock.
pub fn check_delete(r: &ObjectRecord, bypass_governance: bool) -> S3Result<()> {
    if r.extra.legal_hold {
        return Err(s3_error!(
            AccessDenied,
            "the version is under a legal hold; remove the hold first"
        ));
    }
    if let Some((mode, until)) = &r.extra.retention {
        let active = *until > now_ms() as i64;
        if active && (mode == "COMPLIANCE" || !bypass_governance) {
            return Err(s3_error!(
                AccessDenied,
                "the version is retained in {mode} mode until {until} ms; {}",
                if mode == "COMPLIANCE" {
                    "it cannot be deleted before"
                } else {
                    "send x-amz-bypass-governance-retention to delete it"
                }
            ));
        }
    }
    Ok(())
}

impl RingS3 {
    /// The bucket's object lock configuration (`None`: not enabled).
    pub(crate) async fn object_lock(&self, bucket: &str) -> S3Result<Option<LockConfig>> {
        Ok(self.settings.view(bucket).await?.lock.clone())
    }
}

fn mode_of(m: Option<&ObjectLockRetentionMode>) -> S3Result<Option<String>> {
    match m.map(|m| m.as_str().to_string()) {
        None => Ok(None),
        Some(m) if m == "GOVERNANCE" || m == "COMPLIANCE" => Ok(Some(m)),
        Some(m) => Err(s3_error!(MalformedXML, "unknown retention mode {m}")),
    }
}

pub(crate) async fn put_configuration(
    s3: &RingS3,
    req: S3Request<PutObjectLockConfigurationInput>,
) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
    let i = req.input;
    s3.bucket(&i.bucket).await?;
    if !s3.versioning(&i.bucket).await?.is_some_and(|v| v.enabled()) {
        return Err(s3_error!(
            InvalidBucketState,
            "object lock needs versioning enabled on bucket {}",
            i.bucket
        ));
    }
    let c = i.object_lock_configuration.unwrap_or_default();
    if c.object_lock_enabled.as_ref().map(|e| e.as_str()) != Some("Enabled") {
        return Err(s3_error!(MalformedXML, "ObjectLockEnabled must be Enabled"));
    }
    let mut cfg = LockConfig::default();
    if let Some(d) = c.rule.and_then(|r| r.default_retention) {
        cfg.mode = mode_of(d.mode.as_ref())?;
        if cfg.mode.is_none() {
            return Err(s3_error!(MalformedXML, "a default retention needs a Mode"));
        }
        match (d.days, d.years) {
            (Some(n), None) | (None, Some(n)) if n > 0 => {}
            (Some(_), Some(_)) | (None, None) => {
                return Err(s3_error!(
                    MalformedXML,
                    "a default retention has Days or Years, not both"
                ))
            }
            _ => {
                return Err(crate::service::custom_error(
                    "InvalidRetentionPeriod",
                    400,
                    "the default retention period must be a positive number of days or years"
                        .into(),
                ))
            }
        }
        (cfg.days, cfg.years) = (d.days, d.years);
    }
    s3.settings.put(&i.bucket, Sub::ObjectLock, &cfg).await?;
    Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
}

pub(crate) async fn get_configuration(
    s3: &RingS3,
    req: S3Request<GetObjectLockConfigurationInput>,
) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
    let bucket = req.input.bucket;
    s3.bucket(&bucket).await?;
    let cfg = s3
        .object_lock(&bucket)
        .await?
        .ok_or_else(|| not_found(&bucket))?;
    let rule = cfg.mode.clone().map(|m| ObjectLockRule {
        default_retention: Some(DefaultRetention {
            days: cfg.days,
            years: cfg.years,
            mode: Some(ObjectLockRetentionMode::from(m)),
        }),
    });
    Ok(S3Response::new(GetObjectLockConfigurationOutput {
        object_lock_configuration: Some(ObjectLockConfiguration {
            object_lock_enabled: Some(ObjectLockEnabled::from_static(ObjectLockEnabled::ENABLED)),
            rule,
        }),
    }))
}

/// The lock a new version gets: what the request asks, else the
/// bucket's default.
pub(crate) async fn lock_of_new(
    s3: &RingS3,
    bucket: &str,
    mode: Option<&ObjectLockMode>,
    until: Option<&Timestamp>,
    hold: Option<&ObjectLockLegalHoldStatus>,
) -> S3Result<(Option<(String, i64)>, bool)> {
    let asked = mode.is_some() || until.is_some() || hold.is_some();
    let Some(cfg) = s3.object_lock(bucket).await? else {
        if asked {
            return Err(s3_error!(
                InvalidRequest,
                "bucket {bucket} has no object lock; create it with object lock enabled"
            ));
        }
        return Ok((None, false));
    };
    let retention = match (mode, until) {
        (Some(m), Some(t)) => Some((
            mode_of(Some(&ObjectLockRetentionMode::from(m.as_str().to_string())))?
                .unwrap_or_default(),
            ms_of(t),
        )),
        (None, None) => cfg.default_retention(now_ms()),
        _ => {
            return Err(s3_error!(
                InvalidArgument,
                "x-amz-object-lock-mode and -retain-until-date go together"
            ))
        }
    };
    Ok((retention, hold.is_some_and(|h| h.as_str() == "ON")))
}

fn ms_of(t: &Timestamp) -> i64 {
    let o: time::OffsetDateTime = t.clone().into();
    (o.unix_timestamp_nanos() / 1_000_000) as i64
}

fn timestamp_ms(ms: i64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))
}

/// Change one version's record (the current one when `version_id` is
/// `None`), in its version record and, when current, in `_s3o` too. An
/// object written without versioning has only its `_s3o` record.
pub(crate) async fn update_version(
    s3: &RingS3,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    change: impl FnOnce(&mut ObjectRecord) -> S3Result<()>,
) -> S3Result<()> {
    let current = s3.object(bucket, key).await?;
    if let Some(mut c) = current.clone().filter(|c| c.extra.version_id.is_none()) {
        if matches!(version_id, None | Some("null")) {
            change(&mut c)?;
            return s3
                .catalog
                .put_referencing(TYPE_OBJECTS, bucket.as_bytes(), key.as_bytes(), &c, &c.data)
                .await;
        }
    }
    let id = match version_id {
        Some(id) => id.to_string(),
        None => current
            .as_ref()
            .and_then(|c| c.extra.version_id.clone())
            .ok_or_else(|| s3_error!(NoSuchKey, "no object {key} in bucket {bucket}"))?,
    };
    let suffix = s3
        .suffix_of(bucket, key, &id)
        .await?
        .ok_or_else(|| s3_error!(NoSuchVersion, "no version {id} of {key}"))?;
    let mut record = s3
        .get_version(bucket, key, &suffix)
        .await?
        .ok_or_else(|| s3_error!(NoSuchVersion, "no version {id} of {key}"))?;
    change(&mut record)?;
    s3.put_version(bucket, key, &suffix, &record).await?;
    if current.is_some_and(|c| c.extra.version_id.as_deref() == Some(id.as_str())) {
        s3.catalog
            .put_referencing(
                TYPE_OBJECTS,
                bucket.as_bytes(),
                key.as_bytes(),
                &record,
                &record.data,
            )
            .await?;
    }
    Ok(())
}

/// A version's record (the current one when `id` is `None`).
pub(crate) async fn version_record(
    s3: &RingS3,
    bucket: &str,
    key: &str,
    id: Option<&str>,
) -> S3Result<ObjectRecord> {
    match id {
        Some(id) => crate::versions_ops::read_version(s3, bucket, key, id).await,
        None => s3.existing_object(bucket, key).await,
    }
}

/// Refuses unless `bucket` exists and has object lock.
async fn require_lock(s3: &RingS3, bucket: &str) -> S3Result<()> {
    s3.bucket(bucket).await?;
    if s3.object_lock(bucket).await?.is_none() {
        return Err(s3_error!(
            InvalidRequest,
            "bucket {bucket} has no object lock; create it with object lock enabled"
        ));
    }
    Ok(())
}

pub(crate) async fn put_retention(
    s3: &RingS3,
    req: S3Request<PutObjectRetentionInput>,
) -> S3Result<S3Response<PutObjectRetentionOutput>> {
    let i = req.input;
    require_lock(s3, &i.bucket).await?;
    let r = i.retention.unwrap_or_default();
    let mode = mode_of(r.mode.as_ref())?;
    let until = r.retain_until_date.as_ref().map(ms_of);
    let new = match (mode, until) {
        (Some(m), Some(u)) => Some((m, u)),
        (None, None) => None,
        _ => {
            return Err(s3_error!(
                MalformedXML,
                "a retention has a Mode and a RetainUntilDate"
            ))
        }
    };
    let bypass = i.bypass_governance_retention.unwrap_or(false);
    update_version(s3, &i.bucket, &i.key, i.version_id.as_deref(), |rec| {
        if let Some((old_mode, old_until)) = &rec.extra.retention {
            let active = *old_until > now_ms() as i64;
            // Any change but a longer retention in the same mode
            // overrides the old one.
            let weaker = match &new {
                None => true,
                Some((m, u)) => u < old_until || m != old_mode,
            };
            if active && weaker && (old_mode == "COMPLIANCE" || !bypass) {
                return Err(s3_error!(
                    AccessDenied,
                    "the version's {old_mode} retention cannot be shortened{}",
                    if old_mode == "COMPLIANCE" {
                        ""
                    } else {
                        " without x-amz-bypass-governance-retention"
                    }
                ));
            }
        }
        rec.extra.retention = new;
        Ok(())
    })
    .await?;
    Ok(S3Response::new(PutObjectRetentionOutput::default()))
}

pub(crate) async fn get_retention(
    s3: &RingS3,
    req: S3Request<GetObjectRetentionInput>,
) -> S3Result<S3Response<GetObjectRetentionOutput>> {
    let i = req.input;
    require_lock(s3, &i.bucket).await?;
    let r = version_record(s3, &i.bucket, &i.key, i.version_id.as_deref()).await?;
    let (mode, until) = r.extra.retention.ok_or_else(|| {
        crate::service::custom_error(
            "NoSuchObjectLockConfiguration",
            404,
            "the version has no retention".into(),
        )
    })?;
    Ok(S3Response::new(GetObjectRetentionOutput {
        retention: Some(ObjectLockRetention {
            mode: Some(ObjectLockRetentionMode::from(mode)),
            retain_until_date: Some(timestamp_ms(until)),
        }),
    }))
}

pub(crate) async fn put_legal_hold(
    s3: &RingS3,
    req: S3Request<PutObjectLegalHoldInput>,
) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
    let i = req.input;
    require_lock(s3, &i.bucket).await?;
    let status = i
        .legal_hold
        .and_then(|h| h.status)
        .map(|s| s.as_str().to_string());
    let on = match status.as_deref() {
        Some("ON") => true,
        Some("OFF") => false,
        _ => {
            return Err(s3_error!(
                MalformedXML,
                "a legal hold's Status is ON or OFF"
            ))
        }
    };
    update_version(s3, &i.bucket, &i.key, i.version_id.as_deref(), |rec| {
        rec.extra.legal_hold = on;
        Ok(())
    })
    .await?;
    Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
}

pub(crate) async fn get_legal_hold(
    s3: &RingS3,
    req: S3Request<GetObjectLegalHoldInput>,
) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
    let i = req.input;
    require_lock(s3, &i.bucket).await?;
    let r = version_record(s3, &i.bucket, &i.key, i.version_id.as_deref()).await?;
    let status = if r.extra.legal_hold { "ON" } else { "OFF" };
    Ok(S3Response::new(GetObjectLegalHoldOutput {
        legal_hold: Some(ObjectLockLegalHold {
            status: Some(ObjectLockLegalHoldStatus::from(status.to_string())),
        }),
    }))
}

/// The lock headers of a GET or HEAD.
pub(crate) fn headers_of(
    r: &ObjectRecord,
) -> (
    Option<ObjectLockMode>,
    Option<Timestamp>,
    Option<ObjectLockLegalHoldStatus>,
) {
    let (mode, until) = match &r.extra.retention {
        Some((m, u)) => (
            Some(ObjectLockMode::from(m.clone())),
            Some(timestamp_ms(*u)),
        ),
        None => (None, None),
    };
    let hold = r
        .extra
        .legal_hold
        .then(|| ObjectLockLegalHoldStatus::from_static("ON"));
    (mode, until, hold)
}
