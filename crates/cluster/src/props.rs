//! Bucket properties and quorum values, as the Riak API names them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A quorum setting: how many replicas must answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuorumValue {
    /// One replica.
    One,
    /// A majority of `n_val`: `n_val / 2 + 1`.
    Quorum,
    /// All `n_val` replicas.
    All,
    /// The bucket's setting (in a request), or the built-in one.
    Default,
    /// A majority of the replicas in the coordinator's zone.
    LocalQuorum,
    /// A majority of the replicas in every zone that holds replicas.
    EachQuorum,
    /// Exactly this many.
    Number(u32),
}

impl std::str::FromStr for QuorumValue {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "one" => QuorumValue::One,
            "quorum" => QuorumValue::Quorum,
            "all" => QuorumValue::All,
            "default" => QuorumValue::Default,
            "local_quorum" => QuorumValue::LocalQuorum,
            "each_quorum" => QuorumValue::EachQuorum,
            n => QuorumValue::Number(n.parse().map_err(|_| {
                format!("{n:?} is not a quorum value (use one, quorum, all, default, local_quorum, each_quorum or a number)")
            })?),
        })
    }
}

impl fmt::Display for QuorumValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuorumValue::One => f.write_str("one"),
            QuorumValue::Quorum => f.write_str("quorum"),
            QuorumValue::All => f.write_str("all"),
            QuorumValue::Default => f.write_str("default"),
            QuorumValue::LocalQuorum => f.write_str("local_quorum"),
            QuorumValue::EachQuorum => f.write_str("each_quorum"),
            QuorumValue::Number(n) => write!(f, "{n}"),
        }
    }
}

/// The properties of one bucket. Every field has the Riak default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketProps {
    /// Replicas per key.
    pub n_val: u8,
    /// Replies a read waits for.
    pub r: QuorumValue,
    /// Acknowledgements a write waits for.
    pub w: QuorumValue,
    /// Of those, acknowledgements after fsync.
    pub dw: QuorumValue,
    /// Of the read replies, how many must come from primaries.
    pub pr: QuorumValue,
    /// Of the write acknowledgements, how many must come from primaries.
    pub pw: QuorumValue,
    /// Keep concurrent writes as siblings.
    pub allow_mult: bool,
    /// Keep only the newest write; can drop concurrent writes.
    pub last_write_wins: bool,
    /// A "not found" reply counts towards `r`.
    pub notfound_ok: bool,
    /// Give up on a read once a majority said "not found" or failed.
    pub basic_quorum: bool,
}

/// Bucket types whose names start with this hold the S3 API's records;
/// their default is last-writer-wins, as S3's semantics are.
pub const S3_TYPE_PREFIX: &[u8] = b"_s3";

impl BucketProps {
    /// The properties a bucket of `bucket_type` has until set otherwise.
    pub fn defaults_for(bucket_type: &[u8]) -> BucketProps {
        if bucket_type.starts_with(S3_TYPE_PREFIX) {
            BucketProps {
                allow_mult: false,
                last_write_wins: true,
                ..BucketProps::default()
            }
        } else {
            BucketProps::default()
        }
    }
}

impl Default for BucketProps {
    fn default() -> Self {
        BucketProps {
            n_val: 3,
            r: QuorumValue::Quorum,
            w: QuorumValue::Quorum,
            dw: QuorumValue::Quorum,
            pr: QuorumValue::Number(0),
            pw: QuorumValue::Number(0),
            allow_mult: true,
            last_write_wins: false,
            notfound_ok: true,
            basic_quorum: false,
        }
    }
}
