//! Secondary indexes (Riak's 2i), kept beside the replicas they index.
//!
//! An object's versions carry index terms in their metadata
//! (`Meta::indexes`, from `X-Riak-Index-NAME_bin|_int|_geo` headers). For
//! every term of a replica's live versions (siblings contribute the union
//! of theirs) the store keeps one entry in [`Space::Index`], written in
//! the same batch as the replica, so the index always agrees with the
//! replica it sits beside: replication, read repair, handoff and
//! anti-entropy move objects, and the entries follow with no machinery
//! of their own. An overwrite or a delete removes the entries of the
//! versions it replaced (the write's `was`, see `refs::IndexTerms`).
//!
//! An entry's key sorts by bucket, index, term, object key, and its value
//! is the object's partition:
//!
//! ```text
//! type (len-prefixed) | bucket | index name | term | key  →  partition u16
//! ```
//!
//! so a node's entries for a term range, in every partition it holds, are
//! one seek and a scan, already in the order a query answers in; a query
//! that this node answers for only some partitions skips the others'
//! entries by their value. (A first layout put the partition first, as the
//! objects' keys do: a query then cost a seek per partition and term
//! range, 256 × 64 seeks for a radius query; see docs/ARCHITECTURE.md.)
//! Dropping a replica removes its entries by key (`refs::removals`), so
//! nothing needs a partition's entries to be contiguous.
//! Terms are encoded to sort as their values do and so that no encoding is
//! a prefix of another ([`encode_term`]): `_bin` bytes escaped (`00` →
//! `00 FF`) and ended by `00 01`; `_int` as the big-endian bits of the
//! integer with the sign flipped; `_geo` as the 12-character geohash of
//! the point (`geo::point_cell`) followed by its latitude and longitude (so a query can test
//! a point exactly without reading the object, and a range of entries
//! sharing a geohash prefix is the points in one cell).

use crate::engine::{BatchItem, Space, Start};
use crate::keys::{push_field, ObjectKey};
use crate::listing::{ListStart, Listed, ListedPage};
use crate::{Store, StoreError};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Longest index name (with its `_bin`/`_int`/`_geo` suffix), in bytes.
pub const INDEX_NAME_BYTES_MAX: usize = 255;
/// Longest `_bin` term, in bytes.
pub const INDEX_TERM_BYTES_MAX: usize = 1024;
/// Geohash characters of a `_geo` entry (cells of about 3.7 × 1.9 cm).
pub const GEOHASH_CHARS: usize = 12;

/// What an index's name says its terms are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TermKind {
    /// Bytes (`_bin`), ordered bytewise.
    Bin,
    /// Integers (`_int`), ordered numerically.
    Int,
    /// Points (`_geo`: `LAT,LON` in decimal degrees).
    Geo,
}

impl TermKind {
    /// The kind `name` ends in, if any.
    pub fn of(name: &str) -> Option<TermKind> {
        if name.ends_with("_bin") {
            Some(TermKind::Bin)
        } else if name.ends_with("_int") {
            Some(TermKind::Int)
        } else if name.ends_with("_geo") {
            Some(TermKind::Geo)
        } else {
            None
        }
    }
}

/// A term that cannot be indexed, with what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TermError {
    /// The index name has no `_bin`, `_int` or `_geo` suffix.
    #[error("index {0:?} must end in _bin, _int or _geo")]
    Kind(String),
    /// The name or the term is too long.
    #[error("index name or term too long (names up to {INDEX_NAME_BYTES_MAX} bytes, terms up to {INDEX_TERM_BYTES_MAX})")]
    TooLong,
    /// An `_int` term that is not a 64-bit integer.
    #[error(
        "{0:?} is not an integer (an _int index takes -9223372036854775808..9223372036854775807)"
    )]
    Int(String),
    /// A `_geo` term that is not `LAT,LON` within range.
    #[error("{0:?} is not a point: a _geo index takes LAT,LON in decimal degrees, latitude in [-90, 90], longitude in [-180, 180]")]
    Geo(String),
}

/// A parsed `_geo` term.
pub fn parse_point(term: &str) -> Option<(f64, f64)> {
    let (lat, lon) = term.split_once(',')?;
    let (lat, lon): (f64, f64) = (lat.trim().parse().ok()?, lon.trim().parse().ok()?);
    ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)).then_some((lat, lon))
}

/// The sortable encoding of `term` in index `name`.
///
/// # Errors
///
/// [`TermError`] says what is wrong with the name or the term.
pub fn encode_term(name: &str, term: &str) -> Result<Vec<u8>, TermError> {
    if name.len() > INDEX_NAME_BYTES_MAX || term.len() > INDEX_TERM_BYTES_MAX {
        return Err(TermError::TooLong);
    }
    match TermKind::of(name).ok_or_else(|| TermError::Kind(name.to_string()))? {
        TermKind::Bin => Ok(escape(term.as_bytes())),
        TermKind::Int => {
            let v: i64 = term
                .trim()
                .parse()
                .map_err(|_| TermError::Int(term.to_string()))?;
            Ok(int_bytes(v).to_vec())
        }
        TermKind::Geo => {
            let (lat, lon) = parse_point(term).ok_or_else(|| TermError::Geo(term.to_string()))?;
            Ok(geo_bytes(lat, lon))
        }
    }
}

/// An integer's 8 sortable bytes.
pub fn int_bytes(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

/// A point's entry term: its geohash, then its coordinates.
pub fn geo_bytes(lat: f64, lon: f64) -> Vec<u8> {
    let mut out = crate::geo::point_cell((lat, lon), GEOHASH_CHARS).into_bytes();
    out.extend_from_slice(&lat.to_be_bytes());
    out.extend_from_slice(&lon.to_be_bytes());
    out
}

/// Bytes escaped so that order is kept and no encoding prefixes another.
pub fn escape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 2);
    for b in raw {
        out.push(*b);
        if *b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 1]);
    out
}

/// Split an entry's name (term encoding, then object key) for an index
/// of `kind`: (the term as clients see it, the object key).
pub fn split_entry(kind: TermKind, name: &[u8]) -> Option<(String, Bytes)> {
    match kind {
        TermKind::Bin => {
            let mut raw = Vec::new();
            let mut i = 0;
            while i + 1 < name.len() {
                match (name[i], name[i + 1]) {
                    (0, 1) => {
                        let term = String::from_utf8(raw).ok()?;
                        return Some((term, Bytes::copy_from_slice(&name[i + 2..])));
                    }
                    (0, 0xFF) => {
                        raw.push(0);
                        i += 2;
                    }
                    (b, _) => {
                        raw.push(b);
                        i += 1;
                    }
                }
            }
            None
        }
        TermKind::Int => {
            let bits = u64::from_be_bytes(name.get(..8)?.try_into().ok()?) ^ (1 << 63);
            Some((
                (bits as i64).to_string(),
                Bytes::copy_from_slice(&name[8..]),
            ))
        }
        TermKind::Geo => {
            let (lat, lon) = entry_point(name)?;
            let key = Bytes::copy_from_slice(name.get(GEOHASH_CHARS + 16..)?);
            Some((format!("{lat},{lon}"), key))
        }
    }
}

/// The point a `_geo` entry's name holds.
pub fn entry_point(name: &[u8]) -> Option<(f64, f64)> {
    let at = GEOHASH_CHARS;
    let lat = f64::from_be_bytes(name.get(at..at + 8)?.try_into().ok()?);
    let lon = f64::from_be_bytes(name.get(at + 8..at + 16)?.try_into().ok()?);
    Some((lat, lon))
}

/// The index terms (name and encoded term) of a replica's live versions:
/// `(field(name) ++ term)`, the part of an entry's key between the bucket
/// and the object key. Terms that do not encode (names without a kind)
/// are not indexed; clients' headers are checked before they get here.
pub(crate) fn entries_of<'a>(
    indexes: impl Iterator<Item = &'a (String, String)> + 'a,
) -> impl Iterator<Item = Vec<u8>> + 'a {
    indexes.filter_map(|(name, term)| {
        let encoded = encode_term(name, term).ok()?;
        let mut out = Vec::with_capacity(2 + name.len() + encoded.len());
        push_field(&mut out, name.as_bytes());
        out.extend_from_slice(&encoded);
        Some(out)
    })
}

/// An entry's key: the bucket's prefix, the indexed part, the object
/// key. (Its value is the key's partition.)
pub(crate) fn entry_key(key: &ObjectKey, indexed: &[u8]) -> Vec<u8> {
    let mut out = crate::keys::bucket_index_key(&key.bucket_type, &key.bucket);
    out.extend_from_slice(indexed);
    out.extend_from_slice(&key.key);
    out
}

/// A node's part of an index query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexQuery {
    /// The index (`$key` is answered by listings, not here).
    pub index: String,
    /// Term ranges, ascending and disjoint: (lowest encoded term, highest;
    /// entries whose term begins with the highest count as in it; `None`:
    /// no upper bound). A `_geo` query asks one range per covering cell.
    pub ranges: Vec<(Bytes, Option<Bytes>)>,
    /// Stop after this many entries.
    pub entries_max: u32,
    /// Stop after reading about this many bytes (entries of partitions
    /// not asked for count too: they are read to be skipped).
    pub bytes_max: u32,
}

/// Bytes one engine read of an index scan takes at most.
const SCAN_CHUNK_BYTES: usize = 32 * 1024;
/// About how many bytes an index entry takes, to size the first read.
const ENTRY_BYTES_GUESS: usize = 48;

/// The longest prefix `a` and `b` share.
fn common_prefix<'a>(a: &'a [u8], b: &[u8]) -> &'a [u8] {
    let n = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    &a[..n]
}

/// Whether an entry named `name` (term, then key) lies past `hi`.
fn past_end(hi: Option<&Bytes>, name: &[u8]) -> bool {
    hi.is_some_and(|hi| name > &hi[..] && !name.starts_with(hi))
}

/// The partition an entry's value names.
fn entry_partition(value: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(value.try_into().ok()?))
}

/// An index scan in progress: the page so far and where reading got to.
struct Scan<'a> {
    covers: &'a dyn Fn(u16) -> bool,
    entries: Vec<Listed>,
    entries_max: usize,
    /// Bytes left to read.
    budget: usize,
    /// The last entry read, kept or skipped: where a next page resumes.
    last_read: Option<Bytes>,
}

impl Scan<'_> {
    fn resume(&self, start: &ListStart) -> Option<ListStart> {
        match &self.last_read {
            Some(name) => Some(ListStart::After(name.clone())),
            None => Some(start.clone()),
        }
    }

    fn full(&self) -> bool {
        self.entries.len() >= self.entries_max || self.budget == 0
    }
}

impl Store {
    /// One page of an index's entries in the partitions `covers` accepts,
    /// from `start` (a name: encoded term, then key), in name order, over
    /// the query's ranges. Entries are `Listed::Key` named by term and
    /// key.
    ///
    /// Entries sort by bucket, index, term and key across partitions, so
    /// a node answers for every partition it covers with one seek per
    /// range; entries of partitions it does not cover (another replica
    /// answers for those) are read and skipped, at most as many as the
    /// replication factor times the page.
    ///
    /// # Errors
    ///
    /// Engine failures and entries without a partition.
    pub fn index_scan(
        &self,
        bucket_type: &[u8],
        bucket: &[u8],
        q: &IndexQuery,
        covers: &dyn Fn(u16) -> bool,
        start: &ListStart,
    ) -> Result<ListedPage, StoreError> {
        let mut prefix = crate::keys::bucket_index_key(bucket_type, bucket);
        push_field(&mut prefix, q.index.as_bytes());
        let mut scan = Scan {
            covers,
            entries: Vec::new(),
            entries_max: q.entries_max.max(1) as usize,
            budget: q.bytes_max.max(1) as usize,
            last_read: None,
        };
        for (lo, hi) in &q.ranges {
            let from = match (&scan.last_read, start) {
                (Some(last), _) => ListStart::After(last.clone()),
                (None, s) => s.clone(),
            };
            self.scan_range(&prefix, lo, hi.as_ref(), &from, &mut scan)?;
            if scan.full() {
                let resume = scan.resume(start);
                return Ok(ListedPage {
                    entries: scan.entries,
                    resume,
                });
            }
        }
        Ok(ListedPage {
            entries: scan.entries,
            resume: None,
        })
    }

    /// Read one term range from `from` into `scan` until it ends or the
    /// scan is full.
    fn scan_range(
        &self,
        prefix: &[u8],
        lo: &Bytes,
        hi: Option<&Bytes>,
        from: &ListStart,
        scan: &mut Scan<'_>,
    ) -> Result<(), StoreError> {
        let (from, after) = match from {
            ListStart::After(k) => (k.clone(), true),
            ListStart::At(k) => (k.clone(), false),
            ListStart::First => (lo.clone(), false),
        };
        if past_end(hi, &from) {
            return Ok(());
        }
        let lo_key = [prefix, lo].concat();
        let from_key = [prefix, &from].concat();
        let first = if from_key < lo_key {
            Start::At(&lo_key)
        } else if after {
            Start::After(&from_key)
        } else {
            Start::At(&from_key)
        };
        // Every entry of the range begins with the common prefix of its
        // ends, so the scan stops where that prefix does; within it, chunks
        // start at about what was asked and grow, so the end of a range
        // costs a small read past it, not a budget.
        let common = hi.map_or(&[][..], |hi| common_prefix(lo, hi));
        let range_prefix = [prefix, common].concat();
        let mut chunk = (scan.entries_max * ENTRY_BYTES_GUESS).clamp(256, SCAN_CHUNK_BYTES);
        let mut cursor: Option<Vec<u8>> = None;
        loop {
            let at = cursor.as_deref().map_or(first, Start::After);
            let rows = self.engine.scan_page(
                Space::Index,
                &range_prefix,
                at,
                chunk.min(scan.budget).max(1),
            )?;
            chunk = (chunk * 4).min(SCAN_CHUNK_BYTES);
            let Some(last) = rows.last().map(|(k, _)| k.clone()) else {
                return Ok(());
            };
            for (k, v) in rows {
                let name = Bytes::copy_from_slice(&k[prefix.len()..]);
                if past_end(hi, &name) {
                    return Ok(());
                }
                scan.budget = scan.budget.saturating_sub(k.len() + v.len());
                let partition = entry_partition(&v).ok_or_else(|| StoreError::Corrupt {
                    what: "index entry",
                    detail: format!("a {}-byte value, not a partition", v.len()),
                })?;
                scan.last_read = Some(name.clone());
                if (scan.covers)(partition) {
                    scan.entries.push(Listed::Key {
                        key: name,
                        versions: Vec::new(),
                    });
                }
                if scan.full() {
                    return Ok(());
                }
            }
            cursor = Some(last);
        }
    }
}

impl Store {
    /// Whether the secondary-index entries this node holds for `key` are
    /// exactly those its replica's live versions call for (a checker's
    /// question: it scans the bucket's entries).
    ///
    /// # Errors
    ///
    /// Engine failures and undecodable replicas.
    pub fn index_agrees(&self, key: &ObjectKey) -> Result<bool, StoreError> {
        let want = match self.get_object(key)? {
            Some(obj) => crate::IndexTerms::of(&obj).secondary().clone(),
            None => Default::default(),
        };
        let prefix = crate::keys::bucket_index_key(&key.bucket_type, &key.bucket);
        let mut held = std::collections::BTreeSet::new();
        for (k, v) in self.engine.scan_prefix(Space::Index, &prefix)? {
            if entry_partition(&v) != Some(key.partition) {
                continue;
            }
            let rest = &k[prefix.len()..];
            let Some((name, after)) = crate::keys::take_field(rest) else {
                continue;
            };
            let kind = std::str::from_utf8(name).ok().and_then(TermKind::of);
            let Some((_, obj_key)) = kind.and_then(|kind| split_entry(kind, after)) else {
                continue;
            };
            if obj_key == key.key {
                held.insert(rest[..rest.len() - obj_key.len()].to_vec());
            }
        }
        Ok(held == want)
    }
}

/// The batch items that take a replica's index entries from `was` to
/// `now` (both from `entries_of`).
pub(crate) fn changes(
    key: &ObjectKey,
    was: &std::collections::BTreeSet<Vec<u8>>,
    now: &std::collections::BTreeSet<Vec<u8>>,
) -> Vec<BatchItem> {
    let added = now.difference(was).map(|e| {
        let partition = key.partition.to_be_bytes().to_vec();
        (Space::Index, entry_key(key, e), Some(partition))
    });
    let removed = was
        .difference(now)
        .map(|e| (Space::Index, entry_key(key, e), None));
    added.chain(removed).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_sort_as_their_values() {
        let ints = [-5_000_000_000i64, -3, 0, 7, 42, i64::MAX];
        let enc: Vec<_> = ints.iter().map(|v| int_bytes(*v)).collect();
        assert!(enc.windows(2).all(|w| w[0] < w[1]));
        let bins = [&b""[..], b"\0", b"\0\0", b"\0a", b"a", b"a\0", b"ab", b"b"];
        let enc: Vec<_> = bins.iter().map(|b| escape(b)).collect();
        assert!(enc.windows(2).all(|w| w[0] < w[1]), "{enc:?}");
        assert!(enc
            .iter()
            .all(|a| enc.iter().all(|b| a == b || !b.starts_with(a))));
    }

    #[test]
    fn entries_split_back_into_term_and_key() {
        for (name, term) in [("n_bin", "a\0b"), ("n_int", "-42"), ("n_geo", "52.5,13.4")] {
            let mut entry = encode_term(name, term).unwrap();
            entry.extend_from_slice(b"the/key");
            let kind = TermKind::of(name).unwrap();
            let (t, k) = split_entry(kind, &entry).unwrap();
            assert_eq!((t.as_str(), &k[..]), (term, &b"the/key"[..]));
        }
    }

    #[test]
    fn bad_terms_say_why() {
        assert!(matches!(encode_term("n", "x"), Err(TermError::Kind(_))));
        assert!(matches!(encode_term("n_int", "4x"), Err(TermError::Int(_))));
        assert!(matches!(
            encode_term("n_geo", "91,0"),
            Err(TermError::Geo(_))
        ));
        assert!(matches!(
            encode_term("n_geo", "0,180.5"),
            Err(TermError::Geo(_))
        ));
        assert!(matches!(encode_term("n_geo", "0"), Err(TermError::Geo(_))));
        assert!(encode_term("n_geo", "-90,-180").is_ok());
    }
}
