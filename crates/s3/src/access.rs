//! Who may do what: every S3 request is signed by a key (s3s checks the
//! signature against [`KeyStore`]), and that key needs a right on the
//! bucket the request touches: `read` for GET, HEAD and listings, `write`
//! for everything else on objects, `owner` to delete the bucket and to
//! change its settings. Creating a bucket needs a key allowed to create
//! buckets; it then owns it.
//!
//! Beyond keys' rights, a bucket owner may open a bucket to everyone
//! (ACL `public-read`, a public policy, `public-read` on single objects;
//! see `settings`). Unsigned requests, and signed ones whose key has no
//! right on the bucket, get what those allow. Whether one object is
//! public is only known once its record is read, so for reads the access
//! check lets the request through with a [`ReadByAcl`] mark and the GET
//! or HEAD decides.

use crate::keys::KeyStore;
use crate::records::{KeyRecord, ObjectAcl, ObjectRecord};
use crate::service::RingS3;
use crate::settings::BucketView;
use s3s::access::{S3Access, S3AccessContext};
use s3s::path::S3Path;
use s3s::{s3_error, S3Result};

/// The right an operation needs on its bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// List and read.
    Read,
    /// Write and delete objects.
    Write,
    /// Delete the bucket.
    Owner,
    /// Create buckets.
    Create,
}

/// The right operation `op` (an s3s operation name) needs.
pub fn need_of(op: &str) -> Need {
    match op {
        "CreateBucket" => Need::Create,
        "DeleteBucket" => Need::Owner,
        // A bucket's settings are its owner's to change.
        _ if op.starts_with("PutBucket")
            || op.starts_with("DeleteBucket")
            || op.ends_with("PublicAccessBlock") && !op.starts_with("Get") =>
        {
            Need::Owner
        }
        _ if op.starts_with("Get") || op.starts_with("Head") || op.starts_with("List") => {
            Need::Read
        }
        _ => Need::Write,
    }
}

/// Checks requests against key rights and bucket settings.
pub struct KeyAccess {
    s3: RingS3,
}

impl KeyAccess {
    /// Over the keys, buckets and settings of `s3`.
    pub fn new(s3: RingS3) -> Self {
        KeyAccess { s3 }
    }
}

/// Marks a request let through without a right on the bucket: the
/// object's own ACL (for GET and HEAD) or its owner (for its ACL)
/// decides, once its record is read.
#[derive(Clone, Debug)]
pub struct ReadByAcl {
    /// The signing key, if the request is signed (`authenticated-read`
    /// counts).
    pub key: Option<String>,
    /// Whether the caller may list the bucket: a missing key is then a
    /// 404, otherwise a 403 that does not tell whether it exists.
    pub may_list: bool,
}

impl ReadByAcl {
    /// Whether an object with `acl` may be read.
    pub fn allows(&self, acl: ObjectAcl) -> bool {
        acl.public_read() || (self.key.is_some() && acl == ObjectAcl::AuthenticatedRead)
    }

    /// Refuses unless the caller wrote `record` (and so owns its ACL).
    ///
    /// # Errors
    ///
    /// `AccessDenied`.
    pub fn owns(&self, record: &ObjectRecord) -> S3Result<()> {
        match (&self.key, &record.extra.owner) {
            (Some(k), Some(o)) if k == o => Ok(()),
            _ => Err(s3_error!(
                AccessDenied,
                "only the object's owner or the bucket's keys may read or change its ACL"
            )),
        }
    }
}

/// What a request without a right on the bucket may do there.
enum Verdict {
    Allow,
    ByObjectAcl,
    Deny,
}

/// The IAM action of a write operation, for policies.
fn write_action(op: &str) -> &'static str {
    match op {
        "DeleteObject" | "DeleteObjects" => "s3:DeleteObject",
        "AbortMultipartUpload" => "s3:AbortMultipartUpload",
        _ => "s3:PutObject",
    }
}

/// The IAM action of an operation, for policies.
fn iam_action(op: &str) -> String {
    match op {
        "ListObjects" | "ListObjectsV2" | "HeadBucket" => "s3:ListBucket".into(),
        "ListObjectVersions" => "s3:ListBucketVersions".into(),
        "ListMultipartUploads" => "s3:ListBucketMultipartUploads".into(),
        "ListParts" => "s3:ListMultipartUploadParts".into(),
        "HeadObject" => "s3:GetObject".into(),
        "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload"
        | "CopyObject" => "s3:PutObject".into(),
        "DeleteObjects" => "s3:DeleteObject".into(),
        other => format!("s3:{other}"),
    }
}

/// What the bucket's settings let a caller without key rights do.
fn verdict(op: &str, view: &BucketView, key: Option<&str>, signed: bool) -> Verdict {
    let any_read = view.acl.authenticated_read && signed && !view.pab.ignore_public_acls;
    let allow = |yes: bool| if yes { Verdict::Allow } else { Verdict::Deny };
    // A public policy grants what it names, the bucket's settings
    // included if it says so (the owner's choice, as on S3).
    if view.policy_allows(&iam_action(op), key) {
        return Verdict::Allow;
    }
    match (op, key) {
        ("GetObjectAcl" | "PutObjectAcl", Some(_)) if signed => Verdict::ByObjectAcl,
        ("GetObject" | "HeadObject" | "GetObjectAttributes", Some(k)) => {
            if view.anyone_may_read(k) || any_read {
                Verdict::Allow
            } else if view.pab.ignore_public_acls {
                // Every grant an object ACL can make is a public one.
                Verdict::Deny
            } else {
                Verdict::ByObjectAcl
            }
        }
        (
            "ListObjects" | "ListObjectsV2" | "ListObjectVersions" | "HeadBucket"
            | "GetBucketLocation",
            _,
        ) => allow(view.anyone_may_list() || any_read),
        (
            "PutObject"
            | "PostObject"
            | "DeleteObject"
            | "DeleteObjects"
            | "CreateMultipartUpload"
            | "UploadPart"
            | "CompleteMultipartUpload"
            | "AbortMultipartUpload",
            _,
        ) => allow(view.anyone_may_write(write_action(op), key)),
        _ => Verdict::Deny,
    }
}

/// Whether key `id` has the right `need` on `bucket`.
///
/// # Errors
///
/// `AccessDenied` when it has not; a failed key read.
pub async fn check(keys: &KeyStore, id: &str, bucket: &str, need: Need) -> S3Result<()> {
    let Some(key) = keys.lookup(id).await? else {
        return Err(s3_error!(InvalidAccessKeyId, "no access key {id}"));
    };
    if allows(&key, bucket, need) {
        return Ok(());
    }
    // The cached key may predate a grant made through another node (a
    // bucket created there a moment ago): read it afresh before refusing.
    if keys
        .refresh(id)
        .await?
        .is_some_and(|k| allows(&k, bucket, need))
    {
        return Ok(());
    }
    Err(s3_error!(
        AccessDenied,
        "key {id} has no {need:?} right on bucket {bucket}; grant it with PUT /admin/keys/{id}/buckets/{bucket}"
    ))
}

fn allows(key: &KeyRecord, bucket: &str, need: Need) -> bool {
    let grant = key.buckets.get(bucket).copied().unwrap_or_default();
    match need {
        Need::Read => grant.read || grant.owner,
        Need::Write => grant.write || grant.owner,
        Need::Owner => grant.owner,
        Need::Create => key.create_buckets,
    }
}

/// The source object of a copy, if `reader` (None: unsigned) may read
/// it: by its key's rights on the bucket, the bucket's policy or the
/// object's ACL.
///
/// # Errors
///
/// `AccessDenied`, `NoSuchBucket`, `NoSuchKey`.
pub async fn readable_source(
    s3: &RingS3,
    reader: Option<&str>,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> S3Result<ObjectRecord> {
    let by_key = match reader {
        Some(id) => check(&s3.keys, id, bucket, Need::Read).await.is_ok(),
        None => false,
    };
    let record = match version_id {
        Some(id) => crate::versions_ops::read_version(s3, bucket, key, id).await?,
        None => s3.existing_object(bucket, key).await?,
    };
    if by_key {
        return Ok(record);
    }
    let view = s3.settings.view(bucket).await?;
    let acl = ReadByAcl {
        key: reader.map(str::to_string),
        may_list: false,
    };
    if view.anyone_may_read(key) || acl.allows(record.extra.acl) {
        return Ok(record);
    }
    Err(s3_error!(
        AccessDenied,
        "no right to read {bucket}/{key}, the source of the copy"
    ))
}

impl KeyAccess {
    /// A request without a right on `bucket` (unsigned, or its key has
    /// none): what the bucket's settings allow, or `denied`.
    async fn by_settings(
        &self,
        cx: &mut S3AccessContext<'_>,
        bucket: &str,
        key: Option<&str>,
        denied: s3s::S3Error,
    ) -> S3Result<()> {
        // A bucket that does not exist is a 404 to everyone, as on S3,
        // so clients can tell "create it" from "no right".
        self.s3.bucket(bucket).await?;
        let view = self.s3.settings.view(bucket).await?;
        let signed = cx.credentials().is_some();
        match verdict(cx.s3_op().name(), &view, key, signed) {
            Verdict::Allow => Ok(()),
            Verdict::ByObjectAcl => {
                let may_list = view.anyone_may_list();
                let key = cx.credentials().map(|c| c.access_key.clone());
                cx.extensions_mut().insert(ReadByAcl { key, may_list });
                Ok(())
            }
            Verdict::Deny => Err(denied),
        }
    }
}

#[async_trait::async_trait]
impl S3Access for KeyAccess {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let need = need_of(cx.s3_op().name());
        let (bucket, key) = match cx.s3_path() {
            // ListBuckets: each key sees the buckets it has rights on.
            S3Path::Root if cx.credentials().is_some() => return Ok(()),
            S3Path::Root => {
                return Err(s3_error!(
                    AccessDenied,
                    "the request is not signed; sign it with an access key"
                ))
            }
            S3Path::Bucket { bucket } => (bucket.to_string(), None),
            S3Path::Object { bucket, key } => (bucket.to_string(), Some(key.to_string())),
        };
        if let Some(expected) = cx.headers().get("x-amz-expected-bucket-owner") {
            let owner = self.s3.bucket(&bucket).await?.owner;
            if expected.as_bytes() != owner.as_bytes() {
                return Err(s3_error!(
                    AccessDenied,
                    "bucket {bucket} is not owned by the expected owner"
                ));
            }
        }
        let denied = match cx.credentials() {
            None => s3_error!(
                AccessDenied,
                "the request is not signed and bucket {bucket} does not allow it to anyone; sign it with an access key"
            ),
            Some(creds) => {
                let id = creds.access_key.clone();
                match check(&self.s3.keys, &id, &bucket, need).await {
                    Ok(()) => return Ok(()),
                    Err(e) if need == Need::Create => return Err(e),
                    Err(e) => e,
                }
            }
        };
        self.by_settings(cx, &bucket, key.as_deref(), denied).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_need_the_right_rights() {
        assert_eq!(need_of("GetObject"), Need::Read);
        assert_eq!(need_of("HeadBucket"), Need::Read);
        assert_eq!(need_of("ListObjectsV2"), Need::Read);
        assert_eq!(need_of("PutObject"), Need::Write);
        assert_eq!(need_of("DeleteObjects"), Need::Write);
        assert_eq!(need_of("CompleteMultipartUpload"), Need::Write);
        assert_eq!(need_of("DeleteBucket"), Need::Owner);
        assert_eq!(need_of("CreateBucket"), Need::Create);
    }
}
