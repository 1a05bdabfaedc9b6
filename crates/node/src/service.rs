//! Answers other nodes' calls.

use crate::proto::{Request, Response, WireError};
use crate::{gossip, Node, NodeError};
use futures::FutureExt;
use net::Handler;
use ring::NodeId;
use std::sync::Arc;

pub(crate) fn handler(node: Node) -> Handler<Request, Response> {
    Arc::new(move |peer, req| {
        let node = node.clone();
        async move {
            node.mark_seen(NodeId(peer));
            node.serve(req).await
        }
        .boxed()
    })
}

impl Node {
    async fn serve(&self, req: Request) -> Response {
        // Why check here: an object that breaks causal's invariants would
        // be merged into a replica and stored, where `encode_object`
        // asserts; a peer's bug (or a forged frame) must cost a refused
        // call, not the node.
        if let Request::Replicate { object, .. } | Request::StoreHint { object, .. } = &req {
            if let Err(e) = object.check() {
                return Response::Error(WireError::BadRequest(format!(
                    "refused a replica from a peer: {e}"
                )));
            }
        }
        let result = match req {
            Request::Gossip(theirs) => match self.merge_state(&theirs).await {
                Ok(changed) => {
                    if changed {
                        let node = self.clone();
                        tokio::spawn(async move { gossip::push_to_all(&node).await });
                    }
                    Ok(Response::Gossip(self.cluster_state()))
                }
                Err(e) => Err(e),
            },
            Request::CoordinatePut(cmd) => self.coordinate_put(*cmd).await.map(Response::Put),
            Request::Replicate {
                key,
                object,
                durable,
                collapse,
            } => self
                .apply_replica(&key, &object, durable, collapse)
                .await
                .map(|durable| Response::Replicated { durable }),
            Request::Read(key) => self.local_object(&key).map(Response::Read),
            Request::ListKeys {
                bucket_type,
                bucket,
                partitions,
            } => self
                .local_keys(&bucket_type, &bucket, &partitions)
                .map(Response::Keys),
            Request::PartitionSize { partition } => self.partition_size(partition),
            Request::PullPartition {
                partition,
                after,
                bytes_max,
            } => self.partition_page(partition, after, bytes_max),
            Request::AaeSegments { partition } => {
                if self.aae().trees.is_ready(partition) {
                    Ok(Response::Segments(self.aae().trees.segments(partition)))
                } else {
                    Err(NodeError::Unavailable(format!(
                        "the anti-entropy tree of partition {partition} is being rebuilt; try later"
                    )))
                }
            }
            Request::AaeKeys {
                partition,
                segments,
            } => self
                // Served for older peers, one bounded page (the first):
                // they see at most a page of differences per exchange.
                .key_digest_page(partition, &segments, None, u32::MAX)
                .map(|(digests, _)| Response::KeyDigests(digests)),
            Request::StoreHint {
                target,
                key,
                object,
                durable,
            } => self
                .store_hint(NodeId(target), &key, &object, durable)
                .await
                .map(|()| Response::Replicated { durable }),
            Request::ListBuckets { bucket_type } => {
                self.local_buckets(&bucket_type).map(Response::Buckets)
            }
            Request::ListPages {
                bucket_type,
                bucket,
                query,
                parts,
            } => self
                .local_list_pages(&bucket_type, &bucket, &query, &parts)
                .map(Response::ListPages),
            Request::IndexScan {
                bucket_type,
                bucket,
                query,
                partitions,
                start,
            } => self
                .local_index_scan(&bucket_type, &bucket, &query, &partitions, &start)
                .map(Response::IndexPage),
            Request::NodeStats => Ok(Response::NodeStats(Box::new(self.node_stats()))),
            Request::AaeKeyPage {
                partition,
                segments,
                after,
                keys_max,
            } => self
                .key_digest_page(partition, &segments, after.as_deref(), keys_max)
                .map(|(digests, resume)| Response::KeyDigestPage { digests, resume }),
            Request::DropReplica {
                key,
                partition,
                modified_ms_max,
            } => self
                .drop_local_replica(partition, &key, modified_ms_max)
                .await
                .map(Response::Dropped),
            Request::ReapProbe { partition, keys } => {
                self.probe_local(partition, &keys).map(Response::ReapProbe)
            }
            Request::Reap { partition, keys } => self
                .reap_local(partition, &keys)
                .await
                .map(Response::Reaped),
            Request::RefsHeld { terms } => self
                .refs_held_local(&terms)
                .map(|(held, hints)| Response::RefsHeld { held, hints }),
        };
        result.unwrap_or_else(|e: NodeError| Response::Error(e.to_wire()))
    }
}
