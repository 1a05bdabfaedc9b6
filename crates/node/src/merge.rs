//! The k-way merge of partition scans into one listing page (pure).
//!
//! Keys are spread over partitions by hash, so a bucket's listing in key
//! order is a merge of one ordered scan per partition. [`Merge`] holds a
//! small buffer per partition and emits the smallest head only when every
//! partition that may still hold keys has one: a partition whose buffer ran
//! dry is *wanted* and must be fetched first. It asks each partition for
//! about its share of the page (twice the page over the partitions, as keys
//! hash evenly) and doubles the ask each time a partition runs dry again,
//! so a page costs a few rounds of small reads, not a read of the bucket.
//!
//! Equal common prefixes from several partitions ("folders" spread over
//! every partition) come out as one.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use store::{ListStart, Listed, ListedPage};

/// Entries asked of one partition at once, at most.
const ASK_MAX: usize = 1024;
/// Entries asked of one partition at once, at least (when the page wants
/// that many).
const ASK_MIN: usize = 16;

/// One partition's state in the merge.
struct Part {
    /// Fetched entries not yet emitted, smallest first.
    buffer: VecDeque<Listed>,
    /// Where the next fetch starts; `None` once the partition has no more.
    resume: Option<ListStart>,
    /// Fetches so far (the ask doubles with each).
    fetches: u32,
}

/// One listing page being merged.
pub(crate) struct Merge {
    parts: Vec<(u16, Part)>,
    /// The buffered head of every part that has one: (name, part index).
    heads: BinaryHeap<Reverse<(bytes::Bytes, usize)>>,
    emitted: Vec<Listed>,
    /// Entries wanted: the page plus one, to learn whether it is the last.
    limit: usize,
}

/// A fetch the merge needs: partition, where to start, entries to ask.
pub(crate) type Want = (u16, ListStart, u32);

impl Merge {
    /// A page of `page_max` entries over `partitions`, each starting at
    /// `start`.
    pub(crate) fn new(partitions: &[u16], start: &ListStart, page_max: usize) -> Self {
        let parts = partitions
            .iter()
            .map(|p| {
                let part = Part {
                    buffer: VecDeque::new(),
                    resume: Some(start.clone()),
                    fetches: 0,
                };
                (*p, part)
            })
            .collect();
        Merge {
            parts,
            heads: BinaryHeap::new(),
            emitted: Vec::new(),
            limit: page_max.saturating_add(1),
        }
    }

    /// Whether the page is complete.
    pub(crate) fn done(&self) -> bool {
        self.emitted.len() >= self.limit || self.parts.iter().all(|(_, p)| p.is_exhausted())
    }

    /// The fetches needed before the next entry can be emitted.
    pub(crate) fn wanted(&self) -> Vec<Want> {
        if self.done() {
            return Vec::new();
        }
        // At least ASK_MIN: a round costs a seek per partition whatever it
        // reads, and a small page over many partitions would otherwise
        // take several rounds of one or two entries each.
        let share = (2 * self.limit / self.parts.len().max(1) + 2).max(ASK_MIN);
        let remaining = self.limit - self.emitted.len();
        self.parts
            .iter()
            .filter(|(_, p)| p.buffer.is_empty())
            .filter_map(|(id, p)| {
                let resume = p.resume.clone()?;
                let ask = (share << p.fetches.min(16))
                    .min(remaining)
                    .clamp(1, ASK_MAX);
                Some((*id, resume, ask as u32))
            })
            .collect()
    }

    /// Take a partition's fetched page.
    ///
    /// # Panics
    ///
    /// If the partition is not in the merge, was not wanted, or its page is
    /// out of order: the caller broke the protocol.
    pub(crate) fn feed(&mut self, partition: u16, page: ListedPage) {
        let index = self
            .parts
            .iter()
            .position(|(p, _)| *p == partition)
            .expect("fed a partition that is not in the listing");
        let part = &mut self.parts[index].1;
        assert!(
            part.buffer.is_empty(),
            "fed a partition that was not wanted"
        );
        assert!(
            page.entries.windows(2).all(|w| w[0].name() < w[1].name()),
            "a partition page is out of order"
        );
        part.fetches += 1;
        part.resume = page.resume;
        part.buffer = page.entries.into();
        if let Some(head) = part.buffer.front() {
            self.heads.push(Reverse((head.name().clone(), index)));
        }
        self.advance();
    }

    /// Emit entries while the smallest is known.
    fn advance(&mut self) {
        while self.emitted.len() < self.limit
            && !self
                .parts
                .iter()
                .any(|(_, p)| p.buffer.is_empty() && p.resume.is_some())
        {
            let Some(Reverse((_, index))) = self.heads.pop() else {
                return;
            };
            let part = &mut self.parts[index].1;
            let Some(entry) = part.buffer.pop_front() else {
                unreachable!("a head without a buffered entry");
            };
            if let Some(next) = part.buffer.front() {
                self.heads.push(Reverse((next.name().clone(), index)));
            }
            let repeat = matches!(
                (&entry, self.emitted.last()),
                (Listed::Prefix(p), Some(Listed::Prefix(last))) if p == last
            );
            if !repeat {
                self.emitted.push(entry);
            }
        }
    }

    /// The page and whether more entries follow it.
    pub(crate) fn finish(mut self) -> (Vec<Listed>, bool) {
        self.advance();
        let truncated = self.emitted.len() >= self.limit;
        self.emitted.truncate(self.limit - 1);
        (self.emitted, truncated)
    }
}

impl Part {
    fn is_exhausted(&self) -> bool {
        self.buffer.is_empty() && self.resume.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// A partition's keys served as a store would: from `start`, at most
    /// `ask` entries, rolled up at `/` when `folders`.
    fn serve(keys: &[String], start: &ListStart, ask: u32, folders: bool) -> ListedPage {
        let after = |k: &str| match start {
            ListStart::First => true,
            ListStart::After(a) => k.as_bytes() > &a[..],
            ListStart::At(a) => k.as_bytes() >= &a[..],
        };
        let mut entries: Vec<Listed> = Vec::new();
        let mut resume = None;
        for k in keys.iter().filter(|k| after(k)) {
            let entry = match k.find('/').filter(|_| folders) {
                Some(i) => Listed::Prefix(Bytes::copy_from_slice(&k.as_bytes()[..=i])),
                None => Listed::Key {
                    key: Bytes::copy_from_slice(k.as_bytes()),
                    versions: Vec::new(),
                },
            };
            if entries.last().map(Listed::name) == Some(entry.name()) {
                continue;
            }
            if entries.len() == ask as usize {
                break;
            }
            resume = Some(match &entry {
                Listed::Prefix(p) => ListStart::past_prefix(p).unwrap(),
                Listed::Key { key, .. } => ListStart::After(key.clone()),
            });
            entries.push(entry);
        }
        let more = keys.iter().any(|k| match &resume {
            Some(ListStart::After(a)) => k.as_bytes() > &a[..],
            Some(ListStart::At(a)) => k.as_bytes() >= &a[..],
            _ => false,
        });
        ListedPage {
            entries,
            resume: if more { resume } else { None },
        }
    }

    /// Page through everything; returns the names in order and the fetches.
    fn list(
        parts: &BTreeMap<u16, Vec<String>>,
        page_max: usize,
        folders: bool,
    ) -> (Vec<String>, usize) {
        let ids: Vec<u16> = parts.keys().copied().collect();
        let mut start = ListStart::First;
        let (mut out, mut fetches) = (Vec::new(), 0);
        loop {
            let mut merge = Merge::new(&ids, &start, page_max);
            while !merge.done() {
                let wanted = merge.wanted();
                assert!(!wanted.is_empty(), "a merge that is not done wants nothing");
                for (p, from, ask) in wanted {
                    fetches += 1;
                    merge.feed(p, serve(&parts[&p], &from, ask, folders));
                }
            }
            let (page, truncated) = merge.finish();
            assert!(page.len() <= page_max);
            let Some(last) = page.last() else {
                return (out, fetches);
            };
            start = match last {
                Listed::Prefix(p) => ListStart::past_prefix(p).unwrap(),
                Listed::Key { key, .. } => ListStart::After(key.clone()),
            };
            out.extend(
                page.iter()
                    .map(|e| String::from_utf8(e.name().to_vec()).unwrap()),
            );
            if !truncated {
                return (out, fetches);
            }
        }
    }

    proptest! {
        #[test]
        fn pages_merge_to_the_sorted_listing(
            keys in prop::collection::btree_set("[a-c]{1,2}(/[a-c]{1,2})?", 0..80),
            partitions in 1u16..9,
            page_max in 1usize..20,
            folders in any::<bool>(),
        ) {
            let mut parts: BTreeMap<u16, Vec<String>> = (0..partitions).map(|p| (p, Vec::new())).collect();
            for k in &keys {
                let p = (xxhash_rust::xxh3::xxh3_64(k.as_bytes()) % u64::from(partitions)) as u16;
                parts.get_mut(&p).unwrap().push(k.clone());
            }
            let mut expected: Vec<String> = keys
                .iter()
                .map(|k| match k.find('/').filter(|_| folders) {
                    Some(i) => k[..=i].to_string(),
                    None => k.clone(),
                })
                .collect();
            expected.dedup();
            let (listed, _) = list(&parts, page_max, folders);
            prop_assert_eq!(listed, expected);
        }
    }

    #[test]
    fn a_page_reads_about_its_share_of_each_partition() {
        let parts: BTreeMap<u16, Vec<String>> = (0..64u16)
            .map(|p| (p, (0..2000).map(|i| format!("{i:06}-{p:02}")).collect()))
            .collect();
        let ids: Vec<u16> = parts.keys().copied().collect();
        let mut merge = Merge::new(&ids, &ListStart::First, 1000);
        let mut asked = 0;
        while !merge.done() {
            for (p, from, ask) in merge.wanted() {
                asked += ask as usize;
                merge.feed(p, serve(&parts[&p], &from, ask, false));
            }
        }
        let (page, truncated) = merge.finish();
        assert_eq!(page.len(), 1000);
        assert!(truncated);
        assert!(asked < 4 * 1000, "asked {asked} entries for a page of 1000");
    }
}
