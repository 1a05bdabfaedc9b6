//! Typed reads and writes of S3 records through the node's quorum paths.
//!
//! S3 is last-writer-wins: the reserved bucket types collapse concurrent
//! writes to the one with the newest hybrid-logical-clock timestamp at the
//! coordinator (`node::put`, `keep_newest`), and a read picks the newest
//! sibling again in case replicas that never met both answered.

use crate::records::{self, Data, Record, TYPE_BLOCKS};
use bytes::Bytes;
use causal::{Meta, VersionVector};
use node::{BKey, ErrorKind, Node, NodeError, RequestOptions};
use s3s::{s3_error, S3Error, S3ErrorCode};
use serde::{de::DeserializeOwned, Serialize};

/// Map a node error to the S3 error a client can act on.
pub fn s3_err(e: NodeError) -> S3Error {
    match e.kind() {
        ErrorKind::BadRequest => s3_error!(InvalidRequest, "{e}"),
        ErrorKind::PreconditionFailed => s3_error!(PreconditionFailed),
        ErrorKind::Unavailable => s3_error!(ServiceUnavailable, "{e}"),
        ErrorKind::Internal => s3_error!(InternalError, "storage failed: {e}"),
    }
}

/// Tries of one block write before the upload fails.
const BLOCK_WRITE_ATTEMPTS: u32 = 3;

/// The S3 view of a node: records and blocks by name.
#[derive(Clone)]
pub struct Catalog {
    node: Node,
}

impl Catalog {
    /// Over `node`.
    pub fn new(node: Node) -> Self {
        Catalog { node }
    }

    /// The node underneath.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The newest live value of a key, if any.
    pub async fn get_raw(&self, key: &BKey) -> Result<Option<(Bytes, u64)>, S3Error> {
        let obj = self
            .node
            .get(key, &RequestOptions::default())
            .await
            .map_err(s3_err)?;
        Ok(Self::newest_live(obj))
    }

    /// A record read with a nearby read (see `node::nearby`), decoded.
    pub async fn get_nearby<T: Record>(
        &self,
        key: &BKey,
        how: node::NearbyRead,
    ) -> Result<Option<T>, S3Error> {
        let obj = self.node.get_nearby(key, how).await.map_err(s3_err)?;
        Ok(Self::newest_live(obj).and_then(|(v, _)| records::decode(&v)))
    }

    /// The newest sibling's value and time, unless it is a tombstone.
    fn newest_live(obj: Option<causal::Object>) -> Option<(Bytes, u64)> {
        let obj = obj?;
        let newest = obj
            .siblings()
            .iter()
            .max_by_key(|s| s.meta.last_modified_ms);
        newest
            .filter(|s| !s.meta.deleted)
            .map(|s| (s.value.clone(), s.meta.last_modified_ms))
    }

    /// A record, decoded; a value that does not decode counts as absent.
    pub async fn get<T: Record>(
        &self,
        bucket_type: &[u8],
        bucket: &[u8],
        key: &[u8],
    ) -> Result<Option<T>, S3Error> {
        let k = bkey(bucket_type, bucket, key);
        Ok(self
            .get_raw(&k)
            .await?
            .and_then(|(v, _)| records::decode(&v)))
    }

    /// Write a record (last writer wins).
    pub async fn put<T: Record>(
        &self,
        bucket_type: &[u8],
        bucket: &[u8],
        key: &[u8],
        record: &T,
    ) -> Result<(), S3Error> {
        self.put_raw(bkey(bucket_type, bucket, key), records::encode(record))
            .await
    }

    /// Write a record whose body is `data`: each block it lists is a
    /// `$ref` term of the record's metadata, which keeps the block from
    /// being collected while the record lives (`node::collect`).
    pub async fn put_referencing<T: Record>(
        &self,
        bucket_type: &[u8],
        bucket: &[u8],
        key: &[u8],
        record: &T,
        data: &Data,
    ) -> Result<(), S3Error> {
        let meta = Meta {
            indexes: block_refs(data),
            ..Meta::default()
        };
        let k = bkey(bucket_type, bucket, key);
        self.put_with_meta(k, records::encode(record), meta).await
    }

    /// A JSON record (bucket settings), decoded; one that does not decode
    /// counts as absent.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        bucket_type: &[u8],
        bucket: &[u8],
        key: &[u8],
    ) -> Result<Option<T>, S3Error> {
        let k = bkey(bucket_type, bucket, key);
        Ok(self
            .get_raw(&k)
            .await?
            .and_then(|(v, _)| serde_json::from_slice(&v).ok()))
    }

    /// Write a JSON record (last writer wins).
    pub async fn put_json<T: Serialize>(
        &self,
        bucket_type: &[u8],
        bucket: &[u8],
        key: &[u8],
        record: &T,
    ) -> Result<(), S3Error> {
        let value = serde_json::to_vec(record)
            .map_err(|e| s3_error!(InternalError, "cannot encode a setting: {e}"))?;
        self.put_raw(bkey(bucket_type, bucket, key), Bytes::from(value))
            .await
    }

    async fn put_raw(&self, key: BKey, value: Bytes) -> Result<(), S3Error> {
        self.put_with_meta(key, value, Meta::default()).await
    }

    async fn put_with_meta(&self, key: BKey, value: Bytes, meta: Meta) -> Result<(), S3Error> {
        self.node
            .put(
                key,
                value,
                meta,
                VersionVector::new(),
                RequestOptions::default(),
            )
            .await
            .map(|_| ())
            .map_err(s3_err)
    }

    /// Delete a record: a blind tombstone, which last-writer-wins makes
    /// win over every older write without reading first.
    pub async fn delete(
        &self,
        bucket_type: &[u8],
        bucket: &[u8],
        key: &[u8],
    ) -> Result<(), S3Error> {
        let meta = Meta {
            deleted: true,
            ..Meta::default()
        };
        self.node
            .put(
                bkey(bucket_type, bucket, key),
                Bytes::new(),
                meta,
                VersionVector::new(),
                RequestOptions::default(),
            )
            .await
            .map(|_| ())
            .map_err(s3_err)
    }

    /// One listing page of a reserved bucket type.
    ///
    /// # Errors
    ///
    /// A listing that could not cover every partition.
    pub async fn page(&self, query: &node::PageQuery) -> Result<node::Page, S3Error> {
        self.node.list_page(query).await.map_err(s3_err)
    }

    /// Whether a bucket of a reserved type holds no live key: a listing
    /// page of one, whatever the bucket's size.
    pub async fn is_empty(&self, bucket_type: &[u8], bucket: &[u8]) -> Result<bool, S3Error> {
        let query = node::PageQuery {
            bucket_type: Bytes::copy_from_slice(bucket_type),
            bucket: Bytes::copy_from_slice(bucket),
            prefix: Bytes::new(),
            delimiter: None,
            start: node::ListStart::First,
            page_max: 1,
            value_head_bytes: 0,
        };
        let page = self.node.list_page(&query).await.map_err(s3_err)?;
        Ok(page.entries.is_empty())
    }

    /// Every live key of a bucket of a reserved type, sorted.
    pub async fn keys(&self, bucket_type: &[u8], bucket: &[u8]) -> Result<Vec<Bytes>, S3Error> {
        let mut rx = self.node.list_keys(
            Bytes::copy_from_slice(bucket_type),
            Bytes::copy_from_slice(bucket),
        );
        let mut all = Vec::new();
        while let Some(chunk) = rx.recv().await {
            all.extend(chunk.map_err(s3_err)?);
        }
        all.sort();
        all.dedup();
        Ok(all)
    }

    /// Store a block under its hash.
    ///
    /// Retried (at most [`BLOCK_WRITE_ATTEMPTS`] times) when its quorum is
    /// missed: under a burst of large uploads a replica can take longer
    /// than the write's patience to fsync a 1 MiB block, and failing the
    /// whole upload for it would throw away every block already written.
    /// A block write is idempotent (same key, same bytes), so a retry is
    /// always safe.
    pub async fn put_block(&self, hash: &[u8; 32], bytes: Bytes) -> Result<(), S3Error> {
        let key = block_key(hash);
        // The block is a collectable: the collector checks it once
        // written, and drops it when no record references it.
        let meta = Meta {
            indexes: vec![(node::COLLECT_INDEX.into(), node::ref_term(&key))],
            ..Meta::default()
        };
        let mut attempt = 1;
        loop {
            match self
                .put_with_meta(key.clone(), bytes.clone(), meta.clone())
                .await
            {
                Err(e)
                    if attempt < BLOCK_WRITE_ATTEMPTS
                        && *e.code() == S3ErrorCode::ServiceUnavailable =>
                {
                    // Back off: the replicas are behind, not gone.
                    tokio::time::sleep(std::time::Duration::from_millis(100 * u64::from(attempt)))
                        .await;
                    attempt += 1;
                    tracing::debug!(block = %hex::encode(hash), attempt, "block write missed its quorum; retrying");
                }
                other => return other,
            }
        }
    }

    /// A block's bytes, checked against its hash.
    pub async fn get_block(&self, hash: &[u8; 32]) -> Result<Bytes, S3Error> {
        let key = block_key(hash);
        let Some((bytes, _)) = self.get_raw(&key).await? else {
            return Err(s3_error!(
                InternalError,
                "block {} of this object is missing on every replica asked",
                hex::encode(hash)
            ));
        };
        if blake3::hash(&bytes).as_bytes() != hash {
            return Err(s3_error!(
                InternalError,
                "block {} is damaged on the replicas asked",
                hex::encode(hash)
            ));
        }
        Ok(bytes)
    }
}

pub(crate) fn bkey(bucket_type: &[u8], bucket: &[u8], key: &[u8]) -> BKey {
    BKey::typed(
        Bytes::copy_from_slice(bucket_type),
        Bytes::copy_from_slice(bucket),
        Bytes::copy_from_slice(key),
    )
}

/// The `$ref` terms of the blocks `data` lists, each once.
fn block_refs(data: &Data) -> Vec<(String, String)> {
    let Data::Blocks(blocks) = data else {
        return Vec::new();
    };
    let hashes: std::collections::BTreeSet<&[u8; 32]> = blocks.iter().map(|b| &b.hash).collect();
    hashes
        .into_iter()
        .map(|h| (node::REF_INDEX.to_string(), node::ref_term(&block_key(h))))
        .collect()
}

/// Where a block is stored: under its hash.
pub fn block_key(hash: &[u8; 32]) -> BKey {
    BKey::typed(
        Bytes::from_static(TYPE_BLOCKS),
        Bytes::from_static(records::BLOCKS),
        Bytes::from(hex::encode(hash)),
    )
}
