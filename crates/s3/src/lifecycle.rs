//! # Lifecycle rules: what expires when
//!
//! A bucket's lifecycle configuration, kept as one settings record
//! (`Sub::Lifecycle`), and the pure decisions over it: which rules an
//! object matches and when it falls due. The sweep that acts on them
//! (`lifecycle_run`) keeps an index of *due times*, so its work is what
//! expires, not what the bucket holds; every decision it takes goes
//! through [`Lifecycle::due`], re-evaluated against the rules of the
//! moment, so a rule changed after an object was written is honoured.
//!
//! Days count as S3 counts them: an object written at T with a rule of N
//! days is due at the first midnight UTC after T + N days. The length of
//! a day is a parameter (`day_ms`) only so that tests can shorten it
//! (`lab_lifecycle_day_ms`, as Ceph's `rgw_lc_debug_interval`).

use serde::{Deserialize, Serialize};

/// Most rules in one configuration (S3's own limit).
pub const RULES_MAX: usize = 1000;
/// Longest rule id.
const ID_CHARS_MAX: usize = 255;
/// A day, in production.
pub const DAY_MS: u64 = 86_400_000;

/// What a rule's filter looks at.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Filter {
    /// Keys starting with this.
    pub prefix: String,
    /// Objects carrying every one of these tags.
    pub tags: Vec<(String, String)>,
    /// Objects larger than this many bytes.
    pub size_gt: Option<u64>,
    /// Objects smaller than this many bytes.
    pub size_lt: Option<u64>,
}

/// One lifecycle rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rule {
    /// The rule's id (unique in the configuration).
    pub id: String,
    /// `Status: Enabled`; a disabled rule is kept but does nothing.
    pub enabled: bool,
    /// Which objects it covers.
    pub filter: Filter,
    /// The filter came as the old top-level `Prefix` (and goes back so).
    pub legacy_prefix: bool,
    /// Current versions expire this many days after their write.
    pub expire_days: Option<u32>,
    /// Current versions expire at this instant (midnight UTC).
    pub expire_at_ms: Option<u64>,
    /// Remove a delete marker that no version stands behind.
    pub expired_marker: bool,
    /// Noncurrent versions expire this many days after they stopped
    /// being current.
    pub noncurrent_days: Option<u32>,
    /// Incomplete multipart uploads are aborted this many days after
    /// they were started.
    pub abort_upload_days: Option<u32>,
}

/// What is about to expire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A current version, written at the given time.
    Current,
    /// A noncurrent version, current until the given time.
    Noncurrent,
    /// A multipart upload, started at the given time.
    Upload,
}

/// The object a decision is about.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// Its key.
    pub key: &'a str,
    /// Its tags (empty for uploads).
    pub tags: &'a [(String, String)],
    /// Its size in bytes (0 for uploads).
    pub size: u64,
    /// When its clock started (see [`Kind`]), ms since the epoch.
    pub since_ms: u64,
}

/// A bucket's lifecycle configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Lifecycle {
    /// In the order given.
    pub rules: Vec<Rule>,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RuleError {
    /// More rules than [`RULES_MAX`].
    #[error("a lifecycle configuration holds at most {RULES_MAX} rules")]
    TooMany,
    /// Two rules share an id, or an id is too long.
    #[error("rule ids are unique and at most {ID_CHARS_MAX} characters: {0}")]
    BadId(String),
    /// A day count that is not positive.
    #[error("rule {0}: day counts must be positive")]
    BadDays(String),
    /// A rule with no action.
    #[error("rule {0} has no action (Expiration, NoncurrentVersionExpiration or AbortIncompleteMultipartUpload)")]
    NoAction(String),
    /// Both Days and Date.
    #[error("rule {0}: an Expiration has Days or Date, not both")]
    DaysAndDate(String),
    /// A date not at midnight UTC.
    #[error("rule {0}: an expiration Date must be at midnight UTC")]
    BadDate(String),
}

/// `ms` rounded up to the next midnight UTC (itself if it is one).
fn next_midnight(ms: u64, day_ms: u64) -> u64 {
    ms.div_ceil(day_ms) * day_ms
}

impl Filter {
    /// Whether the filter covers `s`.
    pub fn covers(&self, s: &Subject<'_>) -> bool {
        s.key.starts_with(&self.prefix)
            && self.tags.iter().all(|t| s.tags.contains(t))
            && self.size_gt.is_none_or(|n| s.size > n)
            && self.size_lt.is_none_or(|n| s.size < n)
    }
}

impl Rule {
    /// When this rule makes `s` due, if it covers it.
    fn due(&self, kind: Kind, s: &Subject<'_>, day_ms: u64) -> Option<u64> {
        if !self.enabled || !self.filter.covers(s) {
            return None;
        }
        let after = |days: Option<u32>| {
            days.map(|d| next_midnight(s.since_ms.saturating_add(u64::from(d) * day_ms), day_ms))
        };
        match kind {
            Kind::Current => match (after(self.expire_days), self.expire_at_ms) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            Kind::Noncurrent => after(self.noncurrent_days),
            Kind::Upload => after(self.abort_upload_days),
        }
    }
}

impl Lifecycle {
    /// The earliest time a rule makes `s` due (`None`: no rule covers it).
    pub fn due(&self, kind: Kind, s: &Subject<'_>, day_ms: u64) -> Option<u64> {
        self.rules
            .iter()
            .filter_map(|r| r.due(kind, s, day_ms))
            .min()
    }

    /// A bound no later than [`Lifecycle::due`] for any object of `key`
    /// whose clock started at `since_ms`, whatever its tags and size
    /// (which a write does not always know for the version it
    /// supersedes): when the sweep looks first.
    pub fn earliest(&self, kind: Kind, key: &str, since_ms: u64, day_ms: u64) -> Option<u64> {
        let any = |f: &Filter| Filter {
            prefix: f.prefix.clone(),
            ..Filter::default()
        };
        let s = Subject {
            key,
            tags: &[],
            size: 0,
            since_ms,
        };
        let marker = kind == Kind::Noncurrent && self.removes_lone_marker(key);
        let due = self
            .rules
            .iter()
            .filter_map(|r| {
                Rule {
                    filter: any(&r.filter),
                    ..r.clone()
                }
                .due(kind, &s, day_ms)
            })
            .min();
        if marker {
            Some(due.map_or(since_ms, |d| d.min(since_ms)))
        } else {
            due
        }
    }

    /// Whether any enabled rule acts on `kind` at all (so writes need
    /// no index entry when none does).
    pub fn acts_on(&self, kind: Kind) -> bool {
        self.rules.iter().any(|r| {
            r.enabled
                && match kind {
                    Kind::Current => r.expire_days.is_some() || r.expire_at_ms.is_some(),
                    Kind::Noncurrent => r.noncurrent_days.is_some() || r.expired_marker,
                    Kind::Upload => r.abort_upload_days.is_some(),
                }
        })
    }

    /// Whether a lone delete marker of `key` goes.
    pub fn removes_lone_marker(&self, key: &str) -> bool {
        self.rules
            .iter()
            .any(|r| r.enabled && r.expired_marker && key.starts_with(&r.filter.prefix))
    }

    /// S3's rules for a configuration.
    ///
    /// # Errors
    ///
    /// The first rule that breaks one.
    pub fn check(&self) -> Result<(), RuleError> {
        if self.rules.len() > RULES_MAX {
            return Err(RuleError::TooMany);
        }
        for (i, r) in self.rules.iter().enumerate() {
            let id = r.id.clone();
            if r.id.chars().count() > ID_CHARS_MAX || self.rules[..i].iter().any(|o| o.id == r.id) {
                return Err(RuleError::BadId(id));
            }
            let days = [r.expire_days, r.noncurrent_days, r.abort_upload_days];
            if days.iter().flatten().any(|d| *d == 0) {
                return Err(RuleError::BadDays(id));
            }
            if r.expire_days.is_some() && r.expire_at_ms.is_some() {
                return Err(RuleError::DaysAndDate(id));
            }
            if r.expire_at_ms.is_some_and(|t| t % DAY_MS != 0) {
                return Err(RuleError::BadDate(id));
            }
            if !days.iter().any(Option::is_some) && r.expire_at_ms.is_none() && !r.expired_marker {
                return Err(RuleError::NoAction(id));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(prefix: &str, days: u32) -> Rule {
        Rule {
            id: prefix.into(),
            enabled: true,
            filter: Filter {
                prefix: prefix.into(),
                ..Filter::default()
            },
            expire_days: Some(days),
            ..Rule::default()
        }
    }

    fn subject(key: &str, since_ms: u64) -> Subject<'_> {
        Subject {
            key,
            tags: &[],
            size: 10,
            since_ms,
        }
    }

    #[test]
    fn days_end_at_the_next_midnight_utc() {
        let l = Lifecycle {
            rules: vec![rule("logs/", 1)],
        };
        let written = 10 * DAY_MS + 5;
        let due = |k, s: &Subject<'_>| l.due(k, s, DAY_MS);
        assert_eq!(
            due(Kind::Current, &subject("logs/a", written)),
            Some(12 * DAY_MS)
        );
        assert_eq!(due(Kind::Current, &subject("img/a", written)), None);
        assert_eq!(due(Kind::Noncurrent, &subject("logs/a", written)), None);
    }

    #[test]
    fn disabled_rules_and_bad_configurations() {
        let mut r = rule("", 3);
        r.enabled = false;
        let l = Lifecycle { rules: vec![r] };
        assert_eq!(l.due(Kind::Current, &subject("k", 0), DAY_MS), None);
        assert!(!l.acts_on(Kind::Current));
        let twice = Lifecycle {
            rules: vec![rule("a", 1), rule("a", 2)],
        };
        assert_eq!(twice.check(), Err(RuleError::BadId("a".into())));
        let zero = Lifecycle {
            rules: vec![rule("a", 0)],
        };
        assert_eq!(zero.check(), Err(RuleError::BadDays("a".into())));
        let mut none = rule("a", 1);
        none.expire_days = None;
        assert_eq!(
            Lifecycle { rules: vec![none] }.check(),
            Err(RuleError::NoAction("a".into()))
        );
    }

    proptest! {
        /// The earliest covering rule decides, never before its days
        /// have passed, and always on a midnight.
        #[test]
        fn due_is_the_earliest_covering_rule(
            days in proptest::collection::vec((0u8..3, 1u32..400), 1..6),
            key_kind in 0u8..3,
            since in 0u64..4_000_000_000_000,
        ) {
            let prefixes = ["a/", "b/", ""];
            let rules: Vec<Rule> = days.iter().enumerate().map(|(i, (p, d))| Rule {
                id: i.to_string(),
                ..rule(prefixes[usize::from(*p)], *d)
            }).collect();
            let key = ["a/x", "b/x", "c/x"][usize::from(key_kind)];
            let l = Lifecycle { rules: rules.clone() };
            let got = l.due(Kind::Current, &subject(key, since), DAY_MS);
            let first = l.earliest(Kind::Current, key, since, DAY_MS);
            prop_assert!(first <= got || got.is_none());
            let want = rules.iter()
                .filter(|r| key.starts_with(&r.filter.prefix))
                .map(|r| since + u64::from(r.expire_days.unwrap_or(0)) * DAY_MS)
                .min();
            match (got, want) {
                (None, None) => {}
                (Some(g), Some(w)) => {
                    prop_assert!(g >= w && g - w < DAY_MS);
                    prop_assert_eq!(g % DAY_MS, 0);
                }
                other => prop_assert!(false, "{other:?}"),
            }
        }
    }
}
