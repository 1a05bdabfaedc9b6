//! Who may do what: every S3 request is signed by a key (s3s checks the
//! signature against [`KeyStore`]), and that key needs a right on the
//! bucket the request touches: `read` for GET, HEAD and listings, `write`
//! for everything else on objects, `owner` to delete the bucket. Creating
//! a bucket needs a key allowed to create buckets; it then owns it.

use crate::catalog::Catalog;
use crate::keys::KeyStore;
use crate::records::{BucketRecord, KeyRecord, BUCKETS, TYPE_META};
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
        _ if op.starts_with("Get") || op.starts_with("Head") || op.starts_with("List") => {
            Need::Read
        }
        _ => Need::Write,
    }
}

/// Checks signed requests against key rights.
pub struct KeyAccess {
    keys: KeyStore,
    catalog: Catalog,
}

impl KeyAccess {
    /// Over `keys`; `catalog` tells a missing bucket from a forbidden one.
    pub fn new(keys: KeyStore, catalog: Catalog) -> Self {
        KeyAccess { keys, catalog }
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

#[async_trait::async_trait]
impl S3Access for KeyAccess {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(creds) = cx.credentials() else {
            return Err(s3_error!(
                AccessDenied,
                "the request is not signed; sign it with an access key"
            ));
        };
        let id = creds.access_key.clone();
        let need = need_of(cx.s3_op().name());
        match cx.s3_path() {
            // ListBuckets: each key sees the buckets it has rights on.
            S3Path::Root => Ok(()),
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => {
                let bucket = bucket.to_string();
                let denied = match check(&self.keys, &id, &bucket, need).await {
                    Ok(()) => return Ok(()),
                    Err(e) => e,
                };
                // A bucket that does not exist is a 404 to everyone, as
                // on S3, so clients can tell "create it" from "no right".
                let exists = self
                    .catalog
                    .get::<BucketRecord>(TYPE_META, BUCKETS, bucket.as_bytes())
                    .await?
                    .is_some();
                if exists || need == Need::Create {
                    Err(denied)
                } else {
                    Err(s3_error!(NoSuchBucket, "bucket {bucket} does not exist"))
                }
            }
        }
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
