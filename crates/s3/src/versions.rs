//! Object versions: S3 versioning on the replicated records.
//!
//! A bucket whose owner enabled versioning keeps every version of an
//! object as its own record in the `_s3v` type, keyed `KEY\0SUFFIX`:
//!
//! - `SUFFIX` is 24 characters: 16 hex digits of `u64::MAX - t` (t: a
//!   per-node strictly increasing microsecond clock), so a key's versions
//!   sort newest first; 7 characters, random hex for a version or
//!   `nullver` for the `null` version; and `o` (object) or `d` (delete
//!   marker). A real version's id is its suffix; the null version's id is
//!   `null`.
//! - The current version stays where unversioned objects are (`_s3o`),
//!   so GETs, listings and the website cost what they cost without
//!   versioning; a delete marker as current removes it there.
//!
//! Versions get quorums, repair, handoff and anti-entropy like every
//! other record. Objects written before versioning was enabled are
//! `null` versions that live only in `_s3o` until they are overwritten
//! or deleted, when they move to `_s3v` first ("implicit null").
//!
//! What concurrency costs: two writers of one key through two nodes at
//! the same moment each add a version; which becomes current follows the
//! records' last-writer-wins, which may disagree with the version order
//! by the nodes' clock skew (milliseconds).

use crate::records::{ObjectRecord, TYPE_OBJECTS};
use crate::service::RingS3;
use bytes::Bytes;
use node::{ListStart, Listed, PageQuery};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

/// Bucket type of object versions.
pub const TYPE_VERSIONS: &[u8] = b"_s3v";
/// Versions of one key read to find its null or newest version.
const KEY_VERSIONS_SCAN_MAX: usize = 1000;
/// Length of a version suffix.
const SUFFIX_LEN: usize = 24;
/// The tag of the null version.
const NULL_TAG: &str = "nullver";

/// A bucket's versioning, as PutBucketVersioning set it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Versioning {
    /// `Enabled` or `Suspended`.
    pub status: String,
    /// When it was first enabled (ms): objects older than this in `_s3o`
    /// are implicit null versions.
    pub since_ms: u64,
}

impl Versioning {
    /// New versions get ids (not `null`).
    pub fn enabled(&self) -> bool {
        self.status == "Enabled"
    }
}

static LAST_MICROS: AtomicU64 = AtomicU64::new(0);

/// A strictly increasing microsecond clock on this node.
fn next_micros() -> u64 {
    let now = crate::keys::now_ms().saturating_mul(1000);
    let mut last = LAST_MICROS.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST_MICROS.compare_exchange(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// A new version suffix: newest sorts first.
pub fn new_suffix(null: bool, delete_marker: bool) -> String {
    let inverted = u64::MAX - next_micros();
    let tag = if null {
        NULL_TAG.to_string()
    } else {
        format!("{:07x}", rand::random::<u32>() & 0x0fff_ffff)
    };
    let kind = if delete_marker { 'd' } else { 'o' };
    format!("{inverted:016x}{tag}{kind}")
}

/// When the version of `suffix` was written, ms since the epoch.
pub fn suffix_ms(suffix: &str) -> Option<u64> {
    let inverted = u64::from_str_radix(suffix.get(..16)?, 16).ok()?;
    Some((u64::MAX - inverted) / 1000)
}

/// The suffix of an implicit null version written at `modified_ms`.
fn implicit_suffix(modified_ms: u64) -> String {
    format!(
        "{:016x}{NULL_TAG}o",
        u64::MAX - modified_ms.saturating_mul(1000)
    )
}

/// What a suffix says: its version id and whether it is a delete marker.
pub fn parse_suffix(suffix: &str) -> Option<(String, bool)> {
    if suffix.len() != SUFFIX_LEN || !suffix.is_ascii() {
        return None;
    }
    let id = if &suffix[16..23] == NULL_TAG {
        "null".to_string()
    } else {
        suffix.to_string()
    };
    Some((id, suffix.ends_with('d')))
}

/// The record key of a version.
pub fn version_key(key: &str, suffix: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1 + suffix.len());
    k.extend_from_slice(key.as_bytes());
    k.push(0);
    k.extend_from_slice(suffix.as_bytes());
    k
}

/// Split a version record key into object key and suffix.
pub fn split_version_key(k: &[u8]) -> Option<(String, String)> {
    let at = k.iter().rposition(|b| *b == 0)?;
    let key = std::str::from_utf8(&k[..at]).ok()?.to_string();
    let suffix = std::str::from_utf8(&k[at + 1..]).ok()?.to_string();
    Some((key, suffix))
}

impl RingS3 {
    /// The bucket's versioning (`None`: never enabled).
    ///
    /// From the bucket's cached view: a change made through another node
    /// holds here within 2 s (docs/S3.md), and a write pays no read.
    pub(crate) async fn versioning(&self, bucket: &str) -> s3s::S3Result<Option<Versioning>> {
        Ok(self.settings.view(bucket).await?.versioning.clone())
    }

    /// The suffixes of `key`'s stored versions, newest first (at most
    /// [`KEY_VERSIONS_SCAN_MAX`]).
    pub(crate) async fn version_suffixes(
        &self,
        bucket: &str,
        key: &str,
    ) -> s3s::S3Result<Vec<String>> {
        let mut prefix = key.as_bytes().to_vec();
        prefix.push(0);
        let query = PageQuery {
            bucket_type: Bytes::from_static(TYPE_VERSIONS),
            bucket: Bytes::copy_from_slice(bucket.as_bytes()),
            prefix: Bytes::from(prefix),
            delimiter: None,
            start: ListStart::First,
            page_max: KEY_VERSIONS_SCAN_MAX,
            // One byte: enough to tell a live record from a tombstone.
            value_head_bytes: 1,
        };
        let page = self.catalog.page(&query).await?;
        Ok(page
            .entries
            .into_iter()
            .filter_map(|e| match e {
                Listed::Key { key, versions }
                    if crate::listing::newest_live_head(&versions).is_some() =>
                {
                    split_version_key(&key).map(|(_, s)| s)
                }
                _ => None,
            })
            .collect())
    }

    /// Write a version record.
    pub(crate) async fn put_version(
        &self,
        bucket: &str,
        key: &str,
        suffix: &str,
        record: &ObjectRecord,
    ) -> s3s::S3Result<()> {
        self.catalog
            .put_referencing(
                TYPE_VERSIONS,
                bucket.as_bytes(),
                &version_key(key, suffix),
                record,
                &record.data,
            )
            .await
    }

    /// A version's record.
    pub(crate) async fn get_version(
        &self,
        bucket: &str,
        key: &str,
        suffix: &str,
    ) -> s3s::S3Result<Option<ObjectRecord>> {
        self.catalog
            .get(TYPE_VERSIONS, bucket.as_bytes(), &version_key(key, suffix))
            .await
    }

    /// The suffix of `key`'s version `id` (`null` included), if stored.
    pub(crate) async fn suffix_of(
        &self,
        bucket: &str,
        key: &str,
        id: &str,
    ) -> s3s::S3Result<Option<String>> {
        if id != "null" {
            return Ok(parse_suffix(id).map(|_| id.to_string()));
        }
        Ok(self
            .version_suffixes(bucket, key)
            .await?
            .into_iter()
            .find(|s| parse_suffix(s).is_some_and(|(v, _)| v == "null")))
    }

    /// Before a versioned write or delete of `key`: move an implicit null
    /// version (written before versioning) into the versions, so it is
    /// kept, and drop a stored null version if `replacing_null`.
    pub(crate) async fn settle_null(
        &self,
        bucket: &str,
        key: &str,
        since_ms: u64,
        replacing_null: bool,
    ) -> s3s::S3Result<()> {
        if let Some(current) = self.object(bucket, key).await? {
            if current.extra.version_id.is_none()
                && current.modified_ms < since_ms
                && !replacing_null
            {
                let mut moved = current;
                moved.extra.version_id = Some("null".into());
                self.put_version(bucket, key, &implicit_suffix(moved.modified_ms), &moved)
                    .await?;
            }
        }
        if replacing_null {
            if let Some(old) = self.suffix_of(bucket, key, "null").await? {
                self.catalog
                    .delete(TYPE_VERSIONS, bucket.as_bytes(), &version_key(key, &old))
                    .await?;
            }
        }
        Ok(())
    }

    /// After a version of `key` was removed: make its newest remaining
    /// version current (or none, if that is a delete marker or there is
    /// none). An implicit null version stays current untouched.
    pub(crate) async fn restore_current(
        &self,
        bucket: &str,
        key: &str,
        since_ms: u64,
    ) -> s3s::S3Result<()> {
        let newest = self.version_suffixes(bucket, key).await?.into_iter().next();
        let record = match &newest {
            Some(s) => self.get_version(bucket, key, s).await?,
            None => None,
        };
        match record {
            Some(r) if !r.extra.delete_marker => {
                self.catalog
                    .put_referencing(TYPE_OBJECTS, bucket.as_bytes(), key.as_bytes(), &r, &r.data)
                    .await
            }
            _ => {
                let implicit = self
                    .object(bucket, key)
                    .await?
                    .is_some_and(|c| c.extra.version_id.is_none() && c.modified_ms < since_ms);
                if implicit && newest.is_none() {
                    return Ok(());
                }
                self.catalog
                    .delete(TYPE_OBJECTS, bucket.as_bytes(), key.as_bytes())
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_sort_newest_first_and_say_what_they_are() {
        let a = new_suffix(false, false);
        let b = new_suffix(true, false);
        let c = new_suffix(false, true);
        assert!(c < b && b < a, "newer sorts first: {a} {b} {c}");
        assert_eq!(parse_suffix(&a), Some((a.clone(), false)));
        assert_eq!(parse_suffix(&b), Some(("null".into(), false)));
        assert_eq!(parse_suffix(&c).map(|(_, d)| d), Some(true));
        assert_eq!(parse_suffix("short"), None);
        let k = version_key("a/b\u{e9}", &a);
        assert_eq!(split_version_key(&k), Some(("a/b\u{e9}".into(), a)));
        assert!(implicit_suffix(5) > implicit_suffix(6));
    }
}
