//! Inter-node messages.
//!
//! One enum each way, serialised with postcard. postcard encodes the
//! variant index, so new variants go at the end and old ones are never
//! reordered or changed: a node must understand its older peers during a
//! rolling upgrade (the handshake's protocol version covers larger breaks).
//!
//! Public so the fuzz targets (`fuzz/`) can decode frames exactly as a
//! node does: `postcard::from_bytes::<(u64, Request)>` of each frame after
//! the handshake, `(u64, Response)` on the dialer's side.

use crate::error::ErrorKind;
use crate::request::{BKey, PutCommand};
use bytes::Bytes;
use causal::Object;
use cluster::ClusterState;
use serde::{Deserialize, Serialize};
use store::{ListQuery, ListStart, ListedPage};

/// A call from one node to another.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// Exchange cluster state (push-pull gossip).
    Gossip(ClusterState),
    /// Coordinate a client write: the receiver is a primary of the key.
    CoordinatePut(Box<PutCommand>),
    /// Merge this version into your replica.
    Replicate {
        /// The key.
        key: BKey,
        /// The sender's merged object.
        object: Object,
        /// Fsync before answering.
        durable: bool,
        /// Keep only the newest sibling (last_write_wins or !allow_mult).
        collapse: bool,
    },
    /// Send your replica of this key.
    Read(BKey),
    /// Keys you hold in a bucket within these partitions (live objects only).
    ListKeys {
        /// Bucket type.
        bucket_type: Bytes,
        /// Bucket.
        bucket: Bytes,
        /// Partitions to scan.
        partitions: Vec<u16>,
    },
    /// Buckets you hold objects in, within a bucket type.
    ListBuckets {
        /// Bucket type.
        bucket_type: Bytes,
    },
    /// Hold this object for `target`, a primary that did not answer, and
    /// deliver it when the target is back (sloppy quorum).
    StoreHint {
        /// The primary the write is for.
        target: u64,
        /// The key.
        key: BKey,
        /// The coordinator's merged object.
        object: Object,
        /// Fsync before answering.
        durable: bool,
    },
    /// Anti-entropy: your segment hashes for a partition.
    AaeSegments {
        /// Partition.
        partition: u16,
    },
    /// Anti-entropy: your keys' digests in these segments of a partition.
    AaeKeys {
        /// Partition.
        partition: u16,
        /// Segments.
        segments: Vec<u16>,
    },
    /// How many objects and bytes you hold in a partition.
    PartitionSize {
        /// The partition.
        partition: u16,
    },
    /// A page of the objects you hold in a partition (ownership handoff).
    PullPartition {
        /// The partition.
        partition: u16,
        /// Resume after this encoded object key (`None`: from the start).
        after: Option<Vec<u8>>,
        /// About this many bytes per page.
        bytes_max: usize,
    },
    /// Drop your replica of a key unless it was written after
    /// `modified_ms_max` (a higher layer collecting its garbage).
    DropReplica {
        /// The key.
        key: BKey,
        /// Its partition.
        partition: u16,
        /// Keep the replica if any version is newer than this.
        modified_ms_max: u64,
    },
    /// Pages of a bucket's keys in some partitions (a listing's round):
    /// answer as many of `parts`, in order, as fit in one reply.
    ListPages {
        /// Bucket type.
        bucket_type: Bytes,
        /// Bucket.
        bucket: Bytes,
        /// Prefix, delimiter, budgets (`entries_max` is per part).
        query: ListQuery,
        /// (partition, where to start, entries wanted).
        parts: Vec<(u16, ListStart, u32)>,
    },
    /// A page of your keys' digests in these segments of a partition,
    /// after `after` (an encoded object key), at most `keys_max`.
    AaeKeyPage {
        /// Partition.
        partition: u16,
        /// Segments.
        segments: Vec<u16>,
        /// Resume after this encoded object key (`None`: from the start).
        after: Option<Bytes>,
        /// Digests wanted, at most.
        keys_max: u32,
    },
    /// Tombstone reaping: for each key (with its primaries), your
    /// replica's digest in the partition and whether you hold a hint for
    /// it.
    ReapProbe {
        /// Partition.
        partition: u16,
        /// At most `REAP_BATCH_MAX` keys, each with its primaries' ids
        /// and the tombstone's context.
        keys: Vec<crate::reap::ProbeKey>,
    },
    /// Tombstone reaping: drop your replicas of these keys whose digest is
    /// still the one given.
    Reap {
        /// Partition.
        partition: u16,
        /// At most `REAP_BATCH_MAX` (key, tombstone digest, context).
        keys: Vec<crate::reap::ReapKey>,
    },
    /// Collection: for each term, whether you hold a replica referencing
    /// it; and whether you hold any hint.
    RefsHeld {
        /// At most `COLLECT_BATCH_MAX` terms.
        terms: Vec<String>,
    },
    /// A page of a secondary index over the partitions you answer for
    /// (an index query's round): answered as [`Response::IndexPage`].
    IndexScan {
        /// Bucket type.
        bucket_type: Bytes,
        /// Bucket.
        bucket: Bytes,
        /// Index, term ranges, budgets.
        query: store::IndexQuery,
        /// The partitions whose entries to return (others are skipped).
        partitions: Vec<u16>,
        /// Where the page starts.
        start: ListStart,
    },
    /// Your own figures, for the dashboard (`dashboard`).
    NodeStats,
}

/// Anti-entropy: one key's encoded object key and digest.
pub type KeyDigest = (Bytes, u64);

/// The answer to a [`Request`].
#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    /// The receiver's state after merging the sender's.
    Gossip(ClusterState),
    /// The object after a coordinated write.
    Put(Object),
    /// The replica merged the object; `durable` if it was fsynced.
    Replicated {
        /// Whether it fsynced.
        durable: bool,
    },
    /// The receiver's replica, if any.
    Read(Option<Object>),
    /// Keys.
    Keys(Vec<Bytes>),
    /// Bucket names.
    Buckets(Vec<Bytes>),
    /// The request failed at the receiver.
    Error(WireError),
    /// Segment hashes of a partition.
    Segments(Vec<u64>),
    /// Key digests.
    KeyDigests(Vec<KeyDigest>),
    /// Objects and bytes held in a partition.
    PartitionSize {
        /// Objects.
        objects: u64,
        /// Bytes, keys and stored values.
        bytes: u64,
    },
    /// A page of a partition: encoded object keys with their objects and
    /// stored sizes. Empty when the partition has no more.
    PartitionPage(Vec<(Vec<u8>, Object, u64)>),
    /// Whether the replica was dropped.
    Dropped(bool),
    /// Answers to a reap probe, one per key asked, in order.
    ReapProbe(Vec<crate::ProbeAnswer>),
    /// Replicas dropped by a reap.
    Reaped(u32),
    /// Pages of some of the parts asked, in the order asked.
    ListPages(Vec<(u16, ListedPage)>),
    /// A page of an index scan.
    IndexPage(ListedPage),
    /// A node's own figures.
    NodeStats(Box<crate::dashboard::NodeStats>),
    /// A page of key digests and where the scan stopped (`None`: the
    /// partition has no more).
    KeyDigestPage {
        /// Digests in key order.
        digests: Vec<KeyDigest>,
        /// The last encoded object key read.
        resume: Option<Bytes>,
    },
    /// Answers to [`Request::RefsHeld`].
    RefsHeld {
        /// One per term asked, in order.
        held: Vec<bool>,
        /// Whether the node holds any hint.
        hints: bool,
    },
}

/// An error as it crosses the wire, frozen like every message: this is
/// the shape `NodeError` had up to protocol 3, when it was sent itself.
/// The node's own error types ([`crate::NodeError`], [`crate::QuorumError`])
/// are free to change; only [`crate::NodeError::to_wire`] must keep
/// producing these. New variants go at the end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum WireError {
    /// The request is wrong.
    #[error("{0}")]
    BadRequest(String),
    /// A quorum was not met.
    #[error("{0}")]
    Quorum(WireQuorum),
    /// `If-None-Match: *` and the key exists.
    #[error("the key already exists and the request asked If-None-Match: *")]
    PreconditionFailed,
    /// The cluster cannot serve the request now.
    #[error("{0}")]
    Unavailable(String),
    /// The peer's storage failed.
    #[error("{0}")]
    Storage(String),
}

impl WireError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            WireError::BadRequest(_) => ErrorKind::BadRequest,
            WireError::PreconditionFailed => ErrorKind::PreconditionFailed,
            WireError::Quorum(_) | WireError::Unavailable(_) => ErrorKind::Unavailable,
            WireError::Storage(_) => ErrorKind::Internal,
        }
    }
}

/// A quorum failure as text, for the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireQuorum {
    /// `put`, `get` or `delete`.
    pub op: String,
    /// What was required, e.g. `w=3 (dw=2, pw=0) of n=3`.
    pub required: String,
    /// Replicas that answered in a way that counted.
    pub acked: Vec<String>,
    /// Replicas asked.
    pub asked: usize,
    /// Replicas that failed, with why.
    pub failures: Vec<(String, String)>,
}

impl std::fmt::Display for WireQuorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} needed {}; {} of {} replicas answered",
            self.op,
            self.required,
            self.acked.len(),
            self.asked
        )?;
        if !self.acked.is_empty() {
            write!(f, " ({})", self.acked.join(", "))?;
        }
        for (node, why) in &self.failures {
            write!(f, "; {node}: {why}")?;
        }
        write!(
            f,
            ". Retry when the replicas are back, or lower the quorum for this request."
        )
    }
}

impl Response {
    /// The variant's name, for "unexpected answer" errors.
    pub fn name(&self) -> &'static str {
        match self {
            Response::Gossip(_) => "Gossip",
            Response::Put(_) => "Put",
            Response::Replicated { .. } => "Replicated",
            Response::Read(_) => "Read",
            Response::Keys(_) => "Keys",
            Response::Buckets(_) => "Buckets",
            Response::Error(_) => "Error",
            Response::Segments(_) => "Segments",
            Response::KeyDigests(_) => "KeyDigests",
            Response::PartitionSize { .. } => "PartitionSize",
            Response::PartitionPage(_) => "PartitionPage",
            Response::Dropped(_) => "Dropped",
            Response::ReapProbe(_) => "ReapProbe",
            Response::Reaped(_) => "Reaped",
            Response::ListPages(_) => "ListPages",
            Response::IndexPage(_) => "IndexPage",
            Response::NodeStats(_) => "NodeStats",
            Response::KeyDigestPage { .. } => "KeyDigestPage",
            Response::RefsHeld { .. } => "RefsHeld",
        }
    }

    /// The first object in the answer that breaks causal's invariants:
    /// objects from a peer are checked before they are merged or stored.
    pub fn malformed(&self) -> Option<causal::CausalError> {
        match self {
            Response::Put(o) | Response::Read(Some(o)) => o.check().err(),
            Response::PartitionPage(page) => page.iter().find_map(|(_, o, _)| o.check().err()),
            _ => None,
        }
    }
}

/// The inter-node decoder under hostile input: a peer (or anyone who
/// learned the cluster secret) controls every byte of a frame after the
/// handshake, so decoding must answer a value or an error, never panic or
/// allocate what the frame merely claims.
#[cfg(test)]
mod tests {
    use super::*;
    use causal::{Actor, Meta, VersionVector};
    use proptest::prelude::*;

    /// Valid frames of several shapes, for the mutation test to start from.
    fn frames() -> Vec<Vec<u8>> {
        let key = BKey::typed(&b"_s3b"[..], &b"blocks"[..], &b"k"[..]);
        let mut object = Object::new();
        object
            .update(
                &VersionVector::new(),
                Actor { node: 7, epoch: 1 },
                Bytes::from_static(b"value"),
                Meta::default(),
            )
            .unwrap();
        let requests = [
            Request::Read(key.clone()),
            Request::Replicate {
                key: key.clone(),
                object: object.clone(),
                durable: true,
                collapse: false,
            },
            Request::ListKeys {
                bucket_type: Bytes::new(),
                bucket: Bytes::from_static(b"b"),
                partitions: vec![1, 2, 3],
            },
            Request::DropReplica {
                key,
                partition: 9,
                modified_ms_max: 1 << 40,
            },
            Request::ListPages {
                bucket_type: Bytes::from_static(b"_s3o"),
                bucket: Bytes::from_static(b"b"),
                query: ListQuery {
                    prefix: Bytes::from_static(b"p/"),
                    delimiter: Some(Bytes::from_static(b"/")),
                    entries_max: 0,
                    bytes_max: 65536,
                    value_head_bytes: 96,
                },
                parts: vec![(1, ListStart::At(Bytes::from_static(b"p/a0")), 9)],
            },
            Request::IndexScan {
                bucket_type: Bytes::from_static(b"default"),
                bucket: Bytes::from_static(b"b"),
                query: store::IndexQuery {
                    index: "n_bin".into(),
                    ranges: vec![(Bytes::from_static(b"a\0\x01"), None)],
                    entries_max: 16,
                    bytes_max: 65536,
                },
                partitions: vec![0, 7, 255],
                start: ListStart::After(Bytes::from_static(b"a\0\x01k")),
            },
        ];
        let mut out: Vec<Vec<u8>> = requests
            .iter()
            .map(|r| postcard::to_stdvec(&(5u64, r)).unwrap())
            .collect();
        out.push(postcard::to_stdvec(&(5u64, Response::Read(Some(object)))).unwrap());
        out
    }

    /// Errors are frozen on the wire: these bytes are what protocol 3
    /// nodes sent when `NodeError` itself was serialized.
    #[test]
    fn wire_errors_keep_their_bytes() {
        let frame = |e: WireError| postcard::to_stdvec(&(5u64, Response::Error(e))).unwrap();
        assert_eq!(
            frame(WireError::Unavailable("x".into())),
            [5, 6, 3, 1, b'x']
        );
        assert_eq!(frame(WireError::PreconditionFailed), [5, 6, 2]);
        let quorum = WireError::Quorum(WireQuorum {
            op: "get".into(),
            required: "r".into(),
            acked: vec!["a".into()],
            asked: 3,
            failures: vec![("b".into(), "c".into())],
        });
        assert_eq!(
            frame(quorum),
            [5, 6, 1, 3, b'g', b'e', b't', 1, b'r', 1, 1, b'a', 3, 1, 1, b'b', 1, b'c']
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn arbitrary_frames_decode_or_fail(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = postcard::from_bytes::<(u64, Request)>(&bytes);
            let _ = postcard::from_bytes::<(u64, Response)>(&bytes);
        }

        #[test]
        fn mutated_frames_decode_or_fail(
            which in 0usize..7,
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut frame = frames().swap_remove(which);
            for (at, byte) in edits {
                let i = at.index(frame.len());
                frame[i] = byte;
            }
            let _ = postcard::from_bytes::<(u64, Request)>(&frame);
            let _ = postcard::from_bytes::<(u64, Response)>(&frame);
            frame.truncate(cut.index(frame.len() + 1));
            let _ = postcard::from_bytes::<(u64, Request)>(&frame);
        }
    }
}
