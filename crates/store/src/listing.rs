//! Listing one bucket's keys in one partition, a page at a time.
//!
//! A listing of a bucket is a k-way merge of one such scan per partition
//! (`node::listing`). What makes its cost the cost of a page, whatever the
//! size of the bucket:
//!
//! - a scan *seeks* to where the previous page ended ([`ListStart`]), it
//!   never reads from the start of the bucket;
//! - with a delimiter, a common prefix is reported once and the scan seeks
//!   past every key under it, so a page of "folders" reads about one key
//!   per folder, not the folders' contents;
//! - a scan stops after `entries_max` entries *or* after reading
//!   `bytes_max` bytes, tombstones included, and says where to resume, so
//!   one request never costs more than its budget even in a range full of
//!   deleted keys.

use crate::engine::{Space, Start};
use crate::keys::ObjectKey;
use crate::{decode_object, Store, StoreError};
use bytes::Bytes;
use causal::Object;
use serde::{Deserialize, Serialize};

/// Bytes read from the engine at once within one scan. Small, because a
/// delimiter scan may seek away after the first entry of a read.
const SCAN_CHUNK_BYTES: usize = 32 * 1024;

/// Where a partition's scan starts, as a key within the bucket.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ListStart {
    /// At the bucket's first key with the prefix.
    First,
    /// Strictly after this key.
    After(Bytes),
    /// At this key or the first after it.
    At(Bytes),
}

impl ListStart {
    /// Where to start to skip every key that begins with `prefix`: at the
    /// smallest key greater than all of them. `None` when no key is (the
    /// prefix is all `0xFF` bytes).
    pub fn past_prefix(prefix: &[u8]) -> Option<ListStart> {
        let mut next = prefix.to_vec();
        while next.last() == Some(&0xFF) {
            next.pop();
        }
        let last = next.last_mut()?;
        *last += 1;
        Some(ListStart::At(Bytes::from(next)))
    }
}

/// What one partition scan looks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListQuery {
    /// Only keys that begin with this.
    pub prefix: Bytes,
    /// Roll keys up at the first occurrence of this after the prefix.
    pub delimiter: Option<Bytes>,
    /// Stop after this many entries.
    pub entries_max: u32,
    /// Stop after reading about this many bytes (keys and stored values).
    pub bytes_max: u32,
    /// Return each key's versions with the first this-many bytes of their
    /// values (0: none). S3 listings need a record's head (size, ETag,
    /// date), not the object's inline data.
    pub value_head_bytes: u32,
}

/// One version (sibling) of a listed key, with the head of its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedVersion {
    /// The first [`ListQuery::value_head_bytes`] bytes of the value.
    pub head: Bytes,
    /// When it was written (ms since the epoch, the writer's clock).
    pub modified_ms: u64,
    /// Whether it is a tombstone.
    pub deleted: bool,
}

/// One entry of a listing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Listed {
    /// A live key, with its versions if the query asked for values.
    Key {
        /// The key within the bucket.
        key: Bytes,
        /// Its versions (empty unless [`ListQuery::value_head_bytes`]).
        versions: Vec<ListedVersion>,
    },
    /// A common prefix: at least one live key begins with it.
    Prefix(Bytes),
}

impl Listed {
    /// The key or prefix, which orders the listing.
    pub fn name(&self) -> &Bytes {
        match self {
            Listed::Key { key, .. } => key,
            Listed::Prefix(p) => p,
        }
    }
}

/// A page of one partition's scan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ListedPage {
    /// Entries in key order.
    pub entries: Vec<Listed>,
    /// Where the next page starts; `None` when the partition has no more.
    pub resume: Option<ListStart>,
}

/// The common prefix `key` rolls up into, if any.
fn common_prefix<'k>(key: &'k [u8], prefix: &[u8], delimiter: Option<&[u8]>) -> Option<&'k [u8]> {
    let d = delimiter.filter(|d| !d.is_empty())?;
    let rest = key.get(prefix.len()..)?;
    let at = rest.windows(d.len()).position(|w| w == d)?;
    Some(&key[..prefix.len() + at + d.len()])
}

/// The versions of `object` with the heads of their values.
fn versions(object: &Object, head_bytes: u32) -> Vec<ListedVersion> {
    if head_bytes == 0 {
        return Vec::new();
    }
    object
        .siblings()
        .iter()
        .map(|s| ListedVersion {
            head: s.value.slice(..s.value.len().min(head_bytes as usize)),
            modified_ms: s.meta.last_modified_ms,
            deleted: s.meta.deleted,
        })
        .collect()
}

impl Store {
    /// One page of the live keys of a bucket in one partition, from
    /// `start`, as [`ListQuery`] says. See the module docs for the costs.
    ///
    /// # Errors
    ///
    /// Engine failures and undecodable bytes.
    pub fn list_page(
        &self,
        partition: u16,
        bucket_type: &[u8],
        bucket: &[u8],
        query: &ListQuery,
        start: &ListStart,
    ) -> Result<ListedPage, StoreError> {
        let base = ObjectKey::bucket_prefix(partition, bucket_type, bucket);
        let scan_prefix = [base.as_slice(), &query.prefix].concat();
        let delimiter = query.delimiter.as_deref();
        let (entries_max, bytes_max) =
            (query.entries_max.max(1) as usize, query.bytes_max as usize);
        let mut entries: Vec<Listed> = Vec::new();
        let mut position = Some(start.clone());
        let mut scanned = 0usize;
        while let Some(at) = position.clone() {
            if entries.len() >= entries_max || scanned >= bytes_max {
                break;
            }
            let from: Vec<u8>;
            let engine_start = match &at {
                ListStart::First => Start::First,
                ListStart::After(k) => {
                    from = [base.as_slice(), k].concat();
                    Start::After(&from)
                }
                ListStart::At(k) => {
                    from = [base.as_slice(), k].concat();
                    Start::At(&from)
                }
            };
            let chunk_bytes = (bytes_max - scanned).clamp(1, SCAN_CHUNK_BYTES);
            let chunk =
                self.engine
                    .scan_page(Space::Objects, &scan_prefix, engine_start, chunk_bytes)?;
            if chunk.is_empty() {
                position = None;
                break;
            }
            // Why a rolled-up prefix is remembered across the chunk: the
            // keys under a small folder usually follow in the same chunk and
            // are skipped in memory; only a folder that outlasts the chunk
            // costs a seek.
            let mut rolled: Option<Bytes> = None;
            for (k, v) in chunk {
                if entries.len() >= entries_max || scanned >= bytes_max {
                    break;
                }
                scanned += k.len() + v.len();
                let key = Bytes::copy_from_slice(&k[base.len()..]);
                if rolled.as_ref().is_some_and(|cp| key.starts_with(cp)) {
                    continue;
                }
                rolled = None;
                position = Some(ListStart::After(key.clone()));
                let object = decode_object(&v)?;
                if object.is_absent() {
                    continue;
                }
                match common_prefix(&key, &query.prefix, delimiter) {
                    Some(cp) => {
                        let cp = key.slice(..cp.len());
                        rolled = Some(cp.clone());
                        entries.push(Listed::Prefix(cp));
                    }
                    None => entries.push(Listed::Key {
                        key,
                        versions: versions(&object, query.value_head_bytes),
                    }),
                }
            }
            if let Some(cp) = rolled {
                position = ListStart::past_prefix(&cp);
            }
        }
        Ok(ListedPage {
            entries,
            resume: position,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryEngine;
    use causal::{Actor, Meta, VersionVector};
    use std::sync::Arc;

    fn object(deleted: bool) -> Object {
        let mut o = Object::new();
        let meta = Meta {
            deleted,
            ..Meta::default()
        };
        o.update(
            &VersionVector::new(),
            Actor { node: 1, epoch: 1 },
            Bytes::new(),
            meta,
        )
        .unwrap();
        o
    }

    async fn store_with(keys: &[(&str, bool)]) -> Store {
        let store = Store::new(Arc::new(MemoryEngine::default()));
        for (k, deleted) in keys {
            let key = ObjectKey {
                partition: 3,
                bucket_type: Bytes::from_static(b"t"),
                bucket: Bytes::from_static(b"b"),
                key: Bytes::copy_from_slice(k.as_bytes()),
            };
            store
                .put_object_staged(
                    &key,
                    &object(*deleted),
                    &crate::IndexTerms::default(),
                    false,
                )
                .await
                .unwrap();
        }
        store
    }

    /// Every entry of a listing, paging with `entries_max` per page.
    fn all(store: &Store, prefix: &str, delimiter: Option<&str>, per_page: u32) -> Vec<String> {
        let query = ListQuery {
            prefix: Bytes::copy_from_slice(prefix.as_bytes()),
            delimiter: delimiter.map(|d| Bytes::copy_from_slice(d.as_bytes())),
            entries_max: per_page,
            bytes_max: 1 << 20,
            value_head_bytes: 0,
        };
        let mut out = Vec::new();
        let mut start = ListStart::First;
        for _ in 0..1000 {
            let page = store.list_page(3, b"t", b"b", &query, &start).unwrap();
            for e in &page.entries {
                let name = String::from_utf8(e.name().to_vec()).unwrap();
                match e {
                    Listed::Key { .. } => out.push(name),
                    Listed::Prefix(_) => out.push(format!("[{name}]")),
                }
            }
            match page.resume {
                Some(next) => start = next,
                None => return out,
            }
        }
        panic!("the listing did not end");
    }

    #[tokio::test]
    async fn pages_list_live_keys_once_in_order() {
        let store = store_with(&[("a", false), ("b", true), ("c", false), ("d", false)]).await;
        for per_page in [1, 2, 10] {
            assert_eq!(all(&store, "", None, per_page), ["a", "c", "d"]);
        }
    }

    #[tokio::test]
    async fn delimiters_roll_up_and_skip_folders() {
        let store = store_with(&[
            ("p/a/1", false),
            ("p/a/2", false),
            ("p/b/1", true),
            ("p/c", false),
            ("p/d/x/1", false),
            ("q/1", false),
        ])
        .await;
        for per_page in [1, 2, 10] {
            assert_eq!(
                all(&store, "p/", Some("/"), per_page),
                ["[p/a/]", "p/c", "[p/d/]"]
            );
            assert_eq!(all(&store, "", Some("/"), per_page), ["[p/]", "[q/]"]);
        }
    }

    #[tokio::test]
    async fn a_byte_budget_stops_a_scan_of_tombstones() {
        let keys: Vec<(String, bool)> = (0..100).map(|i| (format!("k{i:03}"), i != 99)).collect();
        let refs: Vec<(&str, bool)> = keys.iter().map(|(k, d)| (k.as_str(), *d)).collect();
        let store = store_with(&refs).await;
        let query = ListQuery {
            prefix: Bytes::new(),
            delimiter: None,
            entries_max: 10,
            bytes_max: 200,
            value_head_bytes: 0,
        };
        let page = store
            .list_page(3, b"t", b"b", &query, &ListStart::First)
            .unwrap();
        assert!(page.entries.is_empty());
        assert!(matches!(page.resume, Some(ListStart::After(_))));
        assert_eq!(all(&store, "", None, 5), ["k099"]);
    }

    #[test]
    fn past_prefix_is_the_next_key_after_everything_under_it() {
        assert_eq!(
            ListStart::past_prefix(b"a/"),
            Some(ListStart::At(Bytes::from_static(b"a0")))
        );
        assert_eq!(
            ListStart::past_prefix(b"a\xFF"),
            Some(ListStart::At(Bytes::from_static(b"b")))
        );
        assert_eq!(ListStart::past_prefix(b"\xFF\xFF"), None);
    }
}
