//! Key-value users: who may read and write which buckets when
//! `kv_auth` is on (Riak security's model, simplified: users with a
//! password and grants per bucket type and bucket; no groups, no CIDR
//! sources).
//!
//! Users are records in the replicated store (`_s3/kv-users`), so any
//! node checks any user; a node caches a user for [`USER_CACHE_TTL`], so a
//! deleted user or a changed grant takes effect everywhere within that
//! time. Passwords are made by the node (32 random bytes, hex) and only
//! their keyed BLAKE3 hash is stored: with that much entropy a fast hash
//! is as good as a slow one, and checking one costs nanoseconds.

use s3::cache::TtlCache;
use s3::catalog::Catalog;
use s3::records::TYPE_META;
use serde::{Deserialize, Serialize};
use std::time::Duration;

const USERS: &[u8] = b"kv-users";
/// How long a node trusts a cached user.
pub const USER_CACHE_TTL: Duration = Duration::from_secs(2);
const USER_CACHE_MAX: usize = 10_000;
const USER_NAME_BYTES_MAX: usize = 64;
const GRANTS_MAX: usize = 256;

/// What a user may do with the buckets matching `bucket_type`/`bucket`
/// (`*` matches any).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UserGrant {
    /// A bucket type, or `*`.
    pub bucket_type: String,
    /// A bucket, or `*`.
    pub bucket: String,
    /// GET and HEAD.
    #[serde(default)]
    pub read: bool,
    /// PUT, POST and DELETE.
    #[serde(default)]
    pub write: bool,
}

impl UserGrant {
    /// Compared as bytes: bucket names are bytes, and a lossy conversion
    /// could make two buckets look alike.
    fn covers(&self, bucket_type: &[u8], bucket: &[u8]) -> bool {
        (self.bucket_type == "*" || self.bucket_type.as_bytes() == bucket_type)
            && (self.bucket == "*" || self.bucket.as_bytes() == bucket)
    }
}

/// A stored user.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct UserRecord {
    /// Hex of the keyed hash of the password.
    password_hash: String,
    pub(crate) grants: Vec<UserGrant>,
    created_ms: u64,
}

impl s3::records::Record for UserRecord {}

fn password_hash(password: &str) -> blake3::Hash {
    let key = blake3::derive_key("ringstore kv user password 2026", b"");
    blake3::keyed_hash(&key, password.as_bytes())
}

impl UserRecord {
    /// Whether `password` is this user's (constant time: BLAKE3 hashes
    /// compare in constant time).
    pub(crate) fn password_is(&self, password: &str) -> bool {
        blake3::Hash::from_hex(&self.password_hash).is_ok_and(|h| h == password_hash(password))
    }

    /// Whether the user may read (or write) `bucket_type`/`bucket`.
    pub(crate) fn may(&self, write: bool, bucket_type: &[u8], bucket: &[u8]) -> bool {
        self.grants
            .iter()
            .any(|g| g.covers(bucket_type, bucket) && if write { g.write } else { g.read })
    }
}

/// Why a user could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UserError {
    #[error(
        "user name must be 1-{USER_NAME_BYTES_MAX} characters of letters, digits, '-', '_' or '.'"
    )]
    BadName,
    #[error("at most {GRANTS_MAX} grants per user")]
    TooManyGrants,
    #[error("user {0} exists; delete it first (DELETE /admin/users/{0})")]
    Exists(String),
    #[error("{0}")]
    Store(String),
}

/// Users, with a short-lived cache.
#[derive(Clone)]
pub(crate) struct Users {
    catalog: Catalog,
    cache: TtlCache<Option<UserRecord>>,
}

fn store_error(e: s3::s3s::S3Error) -> UserError {
    UserError::Store(
        e.message()
            .unwrap_or("the users' records are unavailable")
            .to_string(),
    )
}

impl Users {
    pub(crate) fn new(catalog: Catalog) -> Self {
        Users {
            catalog,
            cache: TtlCache::new(USER_CACHE_TTL, USER_CACHE_MAX),
        }
    }

    /// Create a user; returns its password (shown once).
    pub(crate) async fn create(
        &self,
        name: &str,
        grants: Vec<UserGrant>,
    ) -> Result<String, UserError> {
        let ok_name = !name.is_empty()
            && name.len() <= USER_NAME_BYTES_MAX
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !ok_name {
            return Err(UserError::BadName);
        }
        if grants.len() > GRANTS_MAX {
            return Err(UserError::TooManyGrants);
        }
        if self.refresh(name).await?.is_some() {
            return Err(UserError::Exists(name.to_string()));
        }
        let password = hex::encode(rand::random::<[u8; 32]>());
        let record = UserRecord {
            password_hash: password_hash(&password).to_hex().to_string(),
            grants,
            created_ms: s3::keys::now_ms(),
        };
        self.catalog
            .put(TYPE_META, USERS, name.as_bytes(), &record)
            .await
            .map_err(store_error)?;
        self.cache.put(name, Some(record));
        Ok(password)
    }

    /// Every user's name and grants.
    pub(crate) async fn list(&self) -> Result<Vec<(String, Vec<UserGrant>)>, UserError> {
        let mut out = Vec::new();
        for name in self
            .catalog
            .keys(TYPE_META, USERS)
            .await
            .map_err(store_error)?
        {
            let name = String::from_utf8_lossy(&name).into_owned();
            if let Some(u) = self.refresh(&name).await? {
                out.push((name, u.grants));
            }
        }
        Ok(out)
    }

    /// Delete a user; `false` if there was none.
    pub(crate) async fn delete(&self, name: &str) -> Result<bool, UserError> {
        if self.refresh(name).await?.is_none() {
            return Ok(false);
        }
        self.catalog
            .delete(TYPE_META, USERS, name.as_bytes())
            .await
            .map_err(store_error)?;
        self.cache.remove(name);
        Ok(true)
    }

    /// A user, from the cache when recent.
    pub(crate) async fn lookup(&self, name: &str) -> Result<Option<UserRecord>, UserError> {
        if let Some(u) = self.cache.get(name) {
            return Ok(u);
        }
        self.refresh(name).await
    }

    async fn refresh(&self, name: &str) -> Result<Option<UserRecord>, UserError> {
        let u: Option<UserRecord> = self
            .catalog
            .get(TYPE_META, USERS, name.as_bytes())
            .await
            .map_err(store_error)?;
        self.cache.put(name, u.clone());
        Ok(u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(grants: Vec<UserGrant>) -> UserRecord {
        UserRecord {
            password_hash: password_hash("right").to_hex().to_string(),
            grants,
            created_ms: 0,
        }
    }

    fn grant(t: &str, b: &str, read: bool, write: bool) -> UserGrant {
        UserGrant {
            bucket_type: t.into(),
            bucket: b.into(),
            read,
            write,
        }
    }

    #[test]
    fn passwords_and_grants_are_checked() {
        let u = user(vec![
            grant("default", "photos", true, true),
            grant("*", "logs", true, false),
        ]);
        assert!(u.password_is("right"));
        assert!(!u.password_is("wrong") && !u.password_is(""));
        assert!(u.may(true, b"default", b"photos"));
        assert!(u.may(false, b"maps", b"logs") && !u.may(true, b"maps", b"logs"));
        assert!(!u.may(false, b"default", b"other"));
        assert!(!u.may(false, b"other", b"photos"), "the type matters");
    }
}
