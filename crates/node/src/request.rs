//! Client requests as the coordinator sees them: parsed, typed, bounded.

use bytes::Bytes;
use causal::{Meta, VersionVector};
use cluster::{BucketProps, QuorumValue};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A bucket type, bucket and key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BKey {
    /// Bucket type; `default` unless the client named one.
    pub bucket_type: Bytes,
    /// Bucket.
    pub bucket: Bytes,
    /// Key.
    pub key: Bytes,
}

impl BKey {
    /// A key in the `default` bucket type.
    pub fn new(bucket: impl Into<Bytes>, key: impl Into<Bytes>) -> Self {
        BKey {
            bucket_type: Bytes::from_static(b"default"),
            bucket: bucket.into(),
            key: key.into(),
        }
    }

    /// A key in a named bucket type.
    pub fn typed(
        bucket_type: impl Into<Bytes>,
        bucket: impl Into<Bytes>,
        key: impl Into<Bytes>,
    ) -> Self {
        BKey {
            bucket_type: bucket_type.into(),
            bucket: bucket.into(),
            key: key.into(),
        }
    }
}

/// Per-request overrides of bucket properties (`?r=`, `?w=`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestOptions {
    /// Read quorum.
    pub r: Option<QuorumValue>,
    /// Write quorum.
    pub w: Option<QuorumValue>,
    /// Durable write quorum.
    pub dw: Option<QuorumValue>,
    /// Primary read quorum.
    pub pr: Option<QuorumValue>,
    /// Primary write quorum.
    pub pw: Option<QuorumValue>,
    /// Delete quorum (Riak's `rw`): both the read and the write of a delete.
    pub rw: Option<QuorumValue>,
    /// Override `notfound_ok`.
    pub notfound_ok: Option<bool>,
    /// Override `basic_quorum`.
    pub basic_quorum: Option<bool>,
    /// Deadline for the whole request, in milliseconds.
    pub timeout_ms: Option<u64>,
}

impl RequestOptions {
    /// The request deadline, or `default`.
    pub fn timeout(&self, default: Duration) -> Duration {
        self.timeout_ms.map_or(default, Duration::from_millis)
    }
}

/// A write as the coordinating primary receives it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PutCommand {
    /// Where.
    pub key: BKey,
    /// The value (empty for a delete).
    pub value: Bytes,
    /// Content type and user metadata; the coordinator sets the timestamp.
    pub meta: Meta,
    /// What the client saw (`X-Riak-Vclock`); empty for a blind write.
    pub context: VersionVector,
    /// Quorum overrides.
    pub options: RequestOptions,
    /// The bucket's properties, as the receiving node resolved them.
    pub props: BucketProps,
}
