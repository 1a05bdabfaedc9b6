//! A bucket's settings: who may read it without signing (ACL, policy,
//! public access block), which web pages may call it (CORS) and how the
//! website endpoint serves it.
//!
//! Each subresource is its own JSON record in the meta type
//! (`_s3`/`cors`/BUCKET, `_s3`/`policy`/BUCKET, ...), written last-writer-
//! wins, so two settings changed at once on two nodes both stay. Nearly
//! every anonymous or cross-origin request needs them, so a node keeps a
//! [`BucketView`] of all of them per bucket for [`VIEW_TTL`]: a setting
//! changed on another node takes effect here within that time (S3 itself
//! documents such changes as eventually consistent). Writes through this
//! node take effect here at once.

use crate::cache::TtlCache;
use crate::catalog::Catalog;
use crate::policy::Policy;
use crate::records::TYPE_META;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How long a node trusts its view of a bucket's settings.
pub const VIEW_TTL: Duration = Duration::from_secs(2);
/// Bucket views cached per node.
const VIEW_CACHE_MAX: usize = 10_000;

/// Most CORS rules per bucket (S3's own limit).
pub const CORS_RULES_MAX: usize = 100;
/// Most routing rules per website (S3's own limit).
pub const ROUTING_RULES_MAX: usize = 50;
/// Largest bucket policy, in bytes (S3's own limit).
pub const POLICY_BYTES_MAX: usize = 20 * 1024;

/// The subresources, each a bucket of the meta type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sub {
    /// [`BucketAcl`].
    Acl,
    /// [`Policy`] (its text).
    Policy,
    /// [`CorsConfig`].
    Cors,
    /// [`Website`].
    Website,
    /// [`PublicAccessBlock`].
    PublicAccessBlock,
    /// The `LocationConstraint` given at creation (a string).
    Location,
    /// Object ownership (`BucketOwnerEnforced`, ...; a string).
    Ownership,
    /// `versions::Versioning`.
    Versioning,
    /// `lock::LockConfig`.
    ObjectLock,
    /// The bucket's tags (`Vec<(String, String)>`).
    Tagging,
    /// `lifecycle::Lifecycle`.
    Lifecycle,
}

impl Sub {
    /// Every subresource, for deleting a bucket.
    pub const ALL: [Sub; 11] = [
        Sub::Tagging,
        Sub::Lifecycle,
        Sub::ObjectLock,
        Sub::Versioning,
        Sub::Acl,
        Sub::Policy,
        Sub::Cors,
        Sub::Website,
        Sub::PublicAccessBlock,
        Sub::Location,
        Sub::Ownership,
    ];

    pub(crate) fn bucket(self) -> &'static [u8] {
        match self {
            Sub::Acl => b"acl",
            Sub::Policy => b"policy",
            Sub::Cors => b"cors",
            Sub::Website => b"website",
            Sub::PublicAccessBlock => b"pab",
            Sub::Location => b"location",
            Sub::Ownership => b"ownership",
            Sub::Versioning => b"versioning",
            Sub::ObjectLock => b"objectlock",
            Sub::Tagging => b"tagging",
            Sub::Lifecycle => b"lifecycle",
        }
    }
}

/// A bucket's canned ACL and its grants to groups.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BucketAcl {
    /// Anyone may list and read.
    pub public_read: bool,
    /// Anyone may write and delete objects.
    pub public_write: bool,
    /// Any signed request may list and read.
    pub authenticated_read: bool,
    /// Keys granted rights by the ACL: (read, write). They hold them as
    /// key grants too (what is enforced); kept here to show them and to
    /// take them back when the ACL changes.
    pub keys: BTreeMap<String, (bool, bool)>,
}

impl BucketAcl {
    /// Whether the ACL grants anything beyond the owner's keys (S3 counts
    /// `AuthenticatedUsers` as public: any AWS account may sign).
    pub fn is_public(&self) -> bool {
        self.public_read || self.public_write || self.authenticated_read
    }
}

/// One CORS rule, as PutBucketCors gives it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CorsRule {
    /// `ID`.
    pub id: Option<String>,
    /// Origins, each with at most one `*`.
    pub allowed_origins: Vec<String>,
    /// `GET`, `PUT`, `POST`, `DELETE`, `HEAD`.
    pub allowed_methods: Vec<String>,
    /// Request headers a preflight may ask for, each with at most one `*`.
    pub allowed_headers: Vec<String>,
    /// Response headers the page may read.
    pub expose_headers: Vec<String>,
    /// How long a browser may cache the preflight, in seconds.
    pub max_age_seconds: Option<i32>,
}

/// A bucket's CORS rules, in order: the first that matches answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CorsConfig {
    /// The rules.
    pub rules: Vec<CorsRule>,
}

/// Where a redirect goes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Redirect {
    /// Host to send the browser to (this host when absent).
    pub host_name: Option<String>,
    /// `http` or `https` (the request's when absent).
    pub protocol: Option<String>,
    /// Replaces the matched key prefix.
    pub replace_key_prefix_with: Option<String>,
    /// Replaces the whole key.
    pub replace_key_with: Option<String>,
    /// 301 unless given.
    pub http_redirect_code: Option<String>,
}

/// A website routing rule: when the condition holds, redirect.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoutingRule {
    /// Keys starting with this.
    pub key_prefix_equals: Option<String>,
    /// Only when the answer would have been this status (e.g. `404`).
    pub http_error_code_returned_equals: Option<String>,
    /// Where to.
    pub redirect: Redirect,
}

/// A bucket's website configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Website {
    /// Appended to keys ending in `/` (`index.html`).
    pub index_suffix: Option<String>,
    /// Served with a 4xx status when the object is missing or private.
    pub error_key: Option<String>,
    /// Every request goes elsewhere (host and protocol only).
    pub redirect_all: Option<Redirect>,
    /// Redirects by key prefix or error code, first match wins.
    pub routing_rules: Vec<RoutingRule>,
}

/// S3's public access block: switches that override public ACLs and
/// policies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PublicAccessBlock {
    /// Refuse PUTs of public ACLs.
    pub block_public_acls: bool,
    /// Public ACLs grant nothing.
    pub ignore_public_acls: bool,
    /// Refuse public policies.
    pub block_public_policy: bool,
    /// A public policy grants nothing to anonymous requests.
    pub restrict_public_buckets: bool,
}

/// Every setting of one bucket, as a request needs them.
#[derive(Clone, Debug, Default)]
pub struct BucketView {
    /// Canned ACL.
    pub acl: BucketAcl,
    /// Parsed policy, if any.
    pub policy: Option<Arc<Policy>>,
    /// CORS rules, if any.
    pub cors: Option<Arc<CorsConfig>>,
    /// Website configuration, if any.
    pub website: Option<Arc<Website>>,
    /// Public access block (all off when unset).
    pub pab: PublicAccessBlock,
    /// Object ownership: `BucketOwnerEnforced`, `BucketOwnerPreferred`
    /// or `ObjectWriter` (the default when unset).
    pub ownership: Option<String>,
    /// Versioning, if it was ever enabled.
    pub versioning: Option<crate::versions::Versioning>,
    /// Object lock, if enabled.
    pub lock: Option<crate::lock::LockConfig>,
    /// Lifecycle rules, if any.
    pub lifecycle: Option<Arc<crate::lifecycle::Lifecycle>>,
}

impl BucketView {
    /// Whether unsigned requests may list the bucket (READ on a bucket
    /// is listing, as on S3).
    pub fn anyone_may_list(&self) -> bool {
        (self.acl.public_read && !self.pab.ignore_public_acls)
            || self.policy_allows("s3:ListBucket", None)
    }

    /// Whether the policy lets unsigned requests read `key` (otherwise
    /// the object's own ACL decides).
    pub fn anyone_may_read(&self, key: &str) -> bool {
        self.policy_allows("s3:GetObject", Some(key))
    }

    /// Whether unsigned requests may write or delete objects.
    pub fn anyone_may_write(&self, action: &str, key: Option<&str>) -> bool {
        (self.acl.public_write && !self.pab.ignore_public_acls) || self.policy_allows(action, key)
    }

    /// Whether ACLs are off (`BucketOwnerEnforced`): the bucket owner owns
    /// every object and only `bucket-owner-full-control` is accepted.
    pub fn acls_disabled(&self) -> bool {
        self.ownership.as_deref() == Some("BucketOwnerEnforced")
    }

    /// Whether the policy lets anyone do `action` (an IAM action name).
    pub fn policy_allows(&self, action: &str, key: Option<&str>) -> bool {
        !self.pab.restrict_public_buckets
            && self
                .policy
                .as_ref()
                .is_some_and(|p| p.allows_anyone(action, key))
    }
}

/// Reads and writes bucket settings, and caches each bucket's view.
#[derive(Clone)]
pub struct Settings {
    catalog: Catalog,
    /// Shared, not copied: every request of a bucket reads its view.
    views: TtlCache<Arc<BucketView>>,
}

impl Settings {
    /// Over `catalog`.
    pub fn new(catalog: Catalog) -> Self {
        Settings {
            catalog,
            views: TtlCache::new(VIEW_TTL, VIEW_CACHE_MAX),
        }
    }

    /// The bucket's settings, from the cache when fresh.
    ///
    /// # Errors
    ///
    /// A read that found no quorum.
    pub async fn view(&self, bucket: &str) -> s3s::S3Result<Arc<BucketView>> {
        if let Some(v) = self.views.get(bucket) {
            return Ok(v);
        }
        let (acl, policy, cors, website, pab, ownership, versioning, lock, lifecycle) = tokio::try_join!(
            self.get::<BucketAcl>(bucket, Sub::Acl),
            self.get::<String>(bucket, Sub::Policy),
            self.get::<CorsConfig>(bucket, Sub::Cors),
            self.get::<Website>(bucket, Sub::Website),
            self.get::<PublicAccessBlock>(bucket, Sub::PublicAccessBlock),
            self.get::<String>(bucket, Sub::Ownership),
            self.get::<crate::versions::Versioning>(bucket, Sub::Versioning),
            self.get::<crate::lock::LockConfig>(bucket, Sub::ObjectLock),
            self.get::<crate::lifecycle::Lifecycle>(bucket, Sub::Lifecycle),
        )?;
        let view = Arc::new(BucketView {
            acl: acl.unwrap_or_default(),
            // Stored policies were checked when put; one that no longer
            // parses (a later, stricter parser) grants nothing.
            policy: policy
                .and_then(|text| Policy::parse(&text, bucket).ok())
                .map(Arc::new),
            cors: cors.map(Arc::new),
            website: website.map(Arc::new),
            pab: pab.unwrap_or_default(),
            ownership,
            versioning,
            lock,
            lifecycle: lifecycle.map(Arc::new),
        });
        self.views.put(bucket, view.clone());
        Ok(view)
    }

    /// One subresource's record.
    ///
    /// # Errors
    ///
    /// A read that found no quorum.
    pub async fn get<T: serde::de::DeserializeOwned>(
        &self,
        bucket: &str,
        sub: Sub,
    ) -> s3s::S3Result<Option<T>> {
        self.catalog
            .get_json(TYPE_META, sub.bucket(), bucket.as_bytes())
            .await
    }

    /// Set one subresource.
    ///
    /// # Errors
    ///
    /// A write that found no quorum.
    pub async fn put<T: Serialize>(&self, bucket: &str, sub: Sub, value: &T) -> s3s::S3Result<()> {
        self.catalog
            .put_json(TYPE_META, sub.bucket(), bucket.as_bytes(), value)
            .await?;
        self.views.remove(bucket);
        Ok(())
    }

    /// Remove one subresource.
    ///
    /// # Errors
    ///
    /// A write that found no quorum.
    pub async fn delete(&self, bucket: &str, sub: Sub) -> s3s::S3Result<()> {
        self.catalog
            .delete(TYPE_META, sub.bucket(), bucket.as_bytes())
            .await?;
        self.views.remove(bucket);
        Ok(())
    }

    /// Remove every setting of a bucket being deleted, so a bucket made
    /// again under its name starts private.
    ///
    /// # Errors
    ///
    /// A write that found no quorum.
    pub async fn delete_all(&self, bucket: &str) -> s3s::S3Result<()> {
        for sub in Sub::ALL {
            self.delete(bucket, sub).await?;
        }
        Ok(())
    }
}
