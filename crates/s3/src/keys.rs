//! Access keys: created, listed, deleted and granted rights through the
//! admin API; looked up on every S3 request to check its signature and
//! its rights on the bucket.
//!
//! Keys are records in the replicated store, so any node can check any
//! key. A node caches a key for [`KEY_CACHE_TTL`] to keep a quorum read
//! off every request; a deleted key or revoked right therefore stops
//! working on every node within that time. A refusal is never served from
//! the cache alone: a right granted through another node (a bucket just
//! created there) works at once.

use crate::cache::TtlCache;
use crate::catalog::Catalog;
use crate::records::{Grant, KeyRecord, KEYS, TYPE_META};
use rand::RngExt;
use s3s::auth::{S3Auth, SecretKey};
use s3s::{s3_error, S3Result};
use std::time::Duration;

/// How long a node trusts a cached key.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(2);
/// Cached keys per node; beyond it the cache starts over.
const KEY_CACHE_MAX: usize = 10_000;
/// Longest key name accepted.
const KEY_NAME_BYTES_MAX: usize = 128;

/// A key as the admin API shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KeyInfo {
    /// Access key id.
    pub access_key_id: String,
    /// Name.
    pub name: String,
    /// May create buckets.
    pub create_buckets: bool,
    /// Rights per bucket.
    pub buckets: std::collections::BTreeMap<String, Grant>,
}

/// Keys, with a short-lived cache.
#[derive(Clone)]
pub struct KeyStore {
    catalog: Catalog,
    /// Key id → what was read (`None`: no such key).
    cache: TtlCache<Option<KeyRecord>>,
}

impl KeyStore {
    /// Keys kept through `catalog`.
    pub fn new(catalog: Catalog) -> Self {
        KeyStore {
            catalog,
            cache: TtlCache::new(KEY_CACHE_TTL, KEY_CACHE_MAX),
        }
    }

    /// Create a key that may create buckets; returns (id, secret).
    ///
    /// # Errors
    ///
    /// A bad name, or the write missing its quorum.
    pub async fn create(&self, name: &str) -> S3Result<(String, String)> {
        if name.len() > KEY_NAME_BYTES_MAX {
            return Err(s3_error!(
                InvalidArgument,
                "key name is {} bytes; at most {KEY_NAME_BYTES_MAX}",
                name.len()
            ));
        }
        // The thread-local generator is not Send: use it before any await.
        let (id_bytes, secret_bytes): ([u8; 12], [u8; 32]) = {
            let mut rng = rand::rng();
            (rng.random(), rng.random())
        };
        let id = format!("RS{}", hex::encode_upper(id_bytes));
        let secret = hex::encode(secret_bytes);
        let record = KeyRecord {
            name: name.to_string(),
            secret: secret.clone(),
            created_ms: now_ms(),
            create_buckets: true,
            buckets: Default::default(),
        };
        self.save(&id, record).await?;
        Ok((id, secret))
    }

    /// Every key (without secrets).
    ///
    /// # Errors
    ///
    /// The listing or a read missing its quorum.
    pub async fn list(&self) -> S3Result<Vec<KeyInfo>> {
        let mut out = Vec::new();
        for id in self.catalog.keys(TYPE_META, KEYS).await? {
            let id = String::from_utf8_lossy(&id).into_owned();
            if let Some(k) = self
                .catalog
                .get::<KeyRecord>(TYPE_META, KEYS, id.as_bytes())
                .await?
            {
                out.push(KeyInfo {
                    access_key_id: id,
                    name: k.name,
                    create_buckets: k.create_buckets,
                    buckets: k.buckets,
                });
            }
        }
        Ok(out)
    }

    /// Delete a key; `false` if there was none.
    ///
    /// # Errors
    ///
    /// The write missing its quorum.
    pub async fn delete(&self, id: &str) -> S3Result<bool> {
        if self.refresh(id).await?.is_none() {
            return Ok(false);
        }
        self.catalog.delete(TYPE_META, KEYS, id.as_bytes()).await?;
        self.forget(id);
        Ok(true)
    }

    /// Set a key's rights on a bucket; `false` if the key does not exist.
    ///
    /// # Errors
    ///
    /// The write missing its quorum.
    pub async fn grant(&self, id: &str, bucket: &str, grant: Grant) -> S3Result<bool> {
        let Some(mut k) = self.refresh(id).await? else {
            return Ok(false);
        };
        if grant == Grant::default() {
            k.buckets.remove(bucket);
        } else {
            k.buckets.insert(bucket.to_string(), grant);
        }
        self.save(id, k).await?;
        Ok(true)
    }

    /// A key, from the cache when recent.
    ///
    /// # Errors
    ///
    /// The read missing its quorum.
    pub async fn lookup(&self, id: &str) -> S3Result<Option<KeyRecord>> {
        if let Some(k) = self.cache.get(id) {
            return Ok(k);
        }
        self.refresh(id).await
    }

    /// A key read from its replicas, bypassing (and then updating) the
    /// cache.
    ///
    /// # Errors
    ///
    /// The read missing its quorum.
    pub async fn refresh(&self, id: &str) -> S3Result<Option<KeyRecord>> {
        let k: Option<KeyRecord> = self.catalog.get(TYPE_META, KEYS, id.as_bytes()).await?;
        self.cache.put(id, k.clone());
        Ok(k)
    }

    async fn save(&self, id: &str, record: KeyRecord) -> S3Result<()> {
        self.catalog
            .put(TYPE_META, KEYS, id.as_bytes(), &record)
            .await?;
        self.cache.put(id, Some(record));
        Ok(())
    }

    fn forget(&self, id: &str) {
        self.cache.remove(id);
    }
}

#[async_trait::async_trait]
impl S3Auth for KeyStore {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.lookup(access_key).await? {
            Some(k) => Ok(SecretKey::from(k.secret)),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "no access key {access_key}; create one with `ringstore key create`"
            )),
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
