//! # Refusing replayed gossip datagrams
//!
//! Every sealed datagram carries its sender's id, a random id of the
//! sender's process (`boot`) and a stamp: the sender's wall clock in
//! microseconds, forced strictly upward. All three are authenticated, so
//! only a holder of the cluster secret can choose them; [`ReplayWindow`]
//! decides, in pure code, whether a datagram that passed authentication
//! is new. A datagram is refused when:
//!
//! - its stamp is more than [`FRESHNESS_MICROS`] from our clock (a recording
//!   replayed later; this also covers a receiver that restarted and
//!   remembers nothing);
//! - its sender's process is one we already saw replaced by a later one
//!   (a recording from before the sender restarted);
//! - its stamp is one of the last [`REMEMBERED_PER_SENDER`] we accepted
//!   from that process, or older than all of them.
//!
//! Why a window and not "newer than the last": UDP reorders, and netem's
//! jitter on an emulated WAN reorders a lot; refusing every late probe
//! would look like loss to the failure detector.
//!
//! Memory: at most [`SENDERS_MAX`] senders (only authenticated ones get an
//! entry), each with [`REMEMBERED_PER_SENDER`] stamps.

use std::collections::{BTreeSet, HashMap};

/// Largest distance between a datagram's stamp and our clock. Also the
/// clock skew the cluster tolerates between nodes (NTP keeps real clusters
/// within milliseconds).
pub const FRESHNESS_MICROS: u64 = 120_000_000;
/// Stamps remembered per sender.
pub const REMEMBERED_PER_SENDER: usize = 256;
/// Senders remembered; the one heard from longest ago is forgotten first.
pub const SENDERS_MAX: usize = 4096;

/// Why a datagram was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Its stamp is too far from our clock.
    Stale {
        /// Our clock minus the stamp, in microseconds (negative: ahead).
        skew_micros: i64,
    },
    /// It was seen before, or is older than everything remembered.
    Replayed,
}

struct Sender {
    boot: u64,
    /// The newest stamp of the sender's earlier processes: this process's
    /// stamps must be above it.
    floor: u64,
    /// Accepted stamps of this boot, at most `REMEMBERED_PER_SENDER`.
    stamps: BTreeSet<u64>,
}

/// What we remember of each sender's recent datagrams.
#[derive(Default)]
pub struct ReplayWindow {
    senders: HashMap<u64, Sender>,
}

impl ReplayWindow {
    /// Accept (and remember) or refuse a datagram from `from`.
    pub fn check(&mut self, from: u64, boot: u64, stamp: u64, now: u64) -> Result<(), Refusal> {
        let skew = now as i128 - stamp as i128;
        if skew.unsigned_abs() > u128::from(FRESHNESS_MICROS) {
            return Err(Refusal::Stale {
                skew_micros: skew.clamp(i64::MIN as i128, i64::MAX as i128) as i64,
            });
        }
        if !self.senders.contains_key(&from) && self.senders.len() >= SENDERS_MAX {
            self.forget_oldest();
        }
        let s = self.senders.entry(from).or_insert_with(|| Sender {
            boot,
            floor: 0,
            stamps: BTreeSet::new(),
        });
        if s.boot != boot {
            // A new process of the sender starts later than everything
            // the old one sent; a recording of an older one does not.
            let newest = s.stamps.last().copied().unwrap_or(s.floor);
            if stamp <= newest {
                return Err(Refusal::Replayed);
            }
            s.boot = boot;
            s.floor = newest;
            s.stamps.clear();
        }
        let full = s.stamps.len() >= REMEMBERED_PER_SENDER;
        if stamp <= s.floor
            || s.stamps.contains(&stamp)
            || (full && s.stamps.first().is_some_and(|&o| stamp < o))
        {
            return Err(Refusal::Replayed);
        }
        s.stamps.insert(stamp);
        if s.stamps.len() > REMEMBERED_PER_SENDER {
            s.stamps.pop_first();
        }
        debug_assert!(s.stamps.len() <= REMEMBERED_PER_SENDER);
        Ok(())
    }

    fn forget_oldest(&mut self) {
        let oldest = self
            .senders
            .iter()
            .min_by_key(|(_, s)| s.stamps.last().copied().unwrap_or(0))
            .map(|(id, _)| *id);
        if let Some(id) = oldest {
            self.senders.remove(&id);
        }
    }

    /// Senders remembered (for tests and assertions).
    pub fn senders(&self) -> usize {
        self.senders.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: u64 = 1_800_000_000_000_000;

    #[test]
    fn a_datagram_is_accepted_once() {
        let mut w = ReplayWindow::default();
        assert_eq!(w.check(1, 9, NOW, NOW), Ok(()));
        assert_eq!(w.check(1, 9, NOW, NOW + 5), Err(Refusal::Replayed));
        assert_eq!(w.check(2, 9, NOW, NOW), Ok(()), "another sender");
    }

    #[test]
    fn reordered_datagrams_within_the_window_are_accepted() {
        let mut w = ReplayWindow::default();
        for s in [5, 3, 4, 1, 2] {
            assert_eq!(w.check(1, 9, NOW + s, NOW), Ok(()));
        }
    }

    #[test]
    fn stale_and_future_stamps_are_refused() {
        let mut w = ReplayWindow::default();
        let late = NOW - FRESHNESS_MICROS - 1;
        assert!(matches!(
            w.check(1, 9, late, NOW),
            Err(Refusal::Stale { skew_micros }) if skew_micros > 0
        ));
        assert!(w.check(1, 9, NOW + FRESHNESS_MICROS + 1, NOW).is_err());
    }

    #[test]
    fn a_recording_from_before_the_sender_restarted_is_refused() {
        let mut w = ReplayWindow::default();
        assert_eq!(w.check(1, 9, NOW, NOW), Ok(()));
        assert_eq!(w.check(1, 10, NOW + 10, NOW), Ok(()), "restarted");
        assert_eq!(w.check(1, 9, NOW + 1, NOW), Err(Refusal::Replayed));
    }

    #[test]
    fn memory_stays_bounded() {
        let mut w = ReplayWindow::default();
        for from in 0..(SENDERS_MAX as u64 + 10) {
            w.check(from, 1, NOW + from, NOW).unwrap();
        }
        assert_eq!(w.senders(), SENDERS_MAX);
    }

    proptest! {
        /// Whatever the order of arrival, no (sender, boot, stamp) is
        /// accepted twice.
        #[test]
        fn nothing_is_accepted_twice(
            arrivals in proptest::collection::vec((0u64..3, 0u64..2, 0u64..600), 1..2000)
        ) {
            let mut w = ReplayWindow::default();
            let mut accepted = std::collections::HashSet::new();
            for (from, boot, stamp) in arrivals {
                if w.check(from, boot, NOW + stamp, NOW).is_ok() {
                    prop_assert!(accepted.insert((from, boot, stamp)), "accepted twice");
                }
            }
        }
    }
}
