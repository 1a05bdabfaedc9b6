//! Trees survive a clean restart without a rescan.
//!
//! Rebuilding the trees reads every object the node holds; Riak's users
//! watched that take hours. A tree is only as good as its agreement with
//! storage, though, and the node updates it in memory on every write, so
//! a saved tree is valid only if no write happened after it was saved.
//!
//! The rule that guarantees it: a clean stop quiesces writes (it takes
//! every key lock and never gives them back), fsyncs storage, then saves
//! the trees durably. A start loads the saved trees and deletes them
//! durably *before* it serves anything, so a node that later crashes finds
//! nothing saved and rebuilds. Saved trees with another format or
//! partition count are ignored and rebuilt too.
//!
//! A rebuild does not hold the node back: at start, before it serves
//! anything, the node takes a storage snapshot and marks every partition
//! as rebuilding; then it serves while a background task scans the
//! snapshot a page at a time and XORs each partition's scan into its live
//! tree, which meanwhile collected the writes since the snapshot (see
//! `Trees::finish_rebuild` for why that is exact). Exchanges skip a
//! partition until its tree is finished, and peers asking for its
//! segments are told to come back later. A clean stop during a rebuild
//! saves nothing, so the next start rebuilds again.

use super::tree::SEGMENTS;
use crate::{Node, NodeError};
use serde::{Deserialize, Serialize};

const META_TREES: &str = "aae_trees";
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Saved {
    format: u32,
    partition_bits: u8,
    segments: u32,
    trees: Vec<(u16, Vec<u64>)>,
}

/// How the trees came to be at start, for the log and `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TreesSource {
    /// Loaded as a clean stop saved them.
    Loaded,
    /// Being rebuilt from a snapshot, beside service.
    Rebuilding,
}

/// Bytes of objects read at once while rebuilding the trees.
const REBUILD_PAGE_BYTES: usize = 4 << 20;

impl Node {
    #[cfg(test)]
    fn stats_trees_loaded(&self) -> bool {
        self.aae().loaded.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Load the trees a clean stop saved, or rebuild them from storage;
    /// either way, leave nothing saved behind.
    pub(crate) async fn load_or_rebuild_trees(&self) -> Result<TreesSource, NodeError> {
        let started = std::time::Instant::now();
        let saved = self.store().get_meta(META_TREES)?;
        let loaded = saved
            .and_then(|b| postcard::from_bytes::<Saved>(&b).ok())
            .filter(|s| {
                s.format == FORMAT
                    && s.partition_bits == self.config().partition_bits
                    && s.segments as usize == SEGMENTS
                    && s.trees.iter().all(|(_, t)| t.len() == SEGMENTS)
            });
        let source = match loaded {
            Some(s) => {
                self.aae().trees.restore(s.trees);
                // Why durable before serving: a crash after the first write
                // must find no saved trees, or it would load stale ones.
                self.store().delete_meta(META_TREES, true).await?;
                TreesSource::Loaded
            }
            None => {
                let snapshot = self.store().snapshot()?;
                let partitions = 0..(1u32 << self.config().partition_bits);
                self.aae().trees.begin_rebuild(partitions.map(|p| p as u16));
                let node = self.clone();
                self.spawn(async move { node.rebuild_trees(snapshot).await });
                TreesSource::Rebuilding
            }
        };
        tracing::info!(
            ?source,
            ms = started.elapsed().as_millis() as u64,
            "anti-entropy trees ready"
        );
        Ok(source)
    }

    /// Rebuild every partition's tree from `snapshot`, a page at a time
    /// (memory stays at one page whatever a partition holds), yielding to
    /// requests between pages.
    async fn rebuild_trees(&self, snapshot: store::StoreSnapshot) {
        let started = std::time::Instant::now();
        let (mut objects, mut bytes) = (0u64, 0u64);
        for p in 0..(1u32 << self.config().partition_bits) {
            let p = p as u16;
            let mut segments = super::tree::scanned_segments();
            let mut after: Option<store::ObjectKey> = None;
            loop {
                let page = match snapshot.scan_partition_page(p, after.as_ref(), REBUILD_PAGE_BYTES)
                {
                    Ok(page) => page,
                    Err(e) => {
                        // The tree stays incomplete (exchanges skip it)
                        // until the next start rebuilds it.
                        tracing::error!(partition = p, error = %e, "anti-entropy rebuild failed; restart the node to retry");
                        return;
                    }
                };
                let Some((last, _, _)) = page.last() else {
                    break;
                };
                after = Some(last.clone());
                for (okey, obj, size) in &page {
                    super::tree::add_scanned(&mut segments, &okey.encode(), obj);
                    objects += 1;
                    bytes += *size as u64;
                }
                tokio::task::yield_now().await;
            }
            self.aae().trees.finish_rebuild(p, &segments);
        }
        let ms = started.elapsed().as_millis() as u64;
        self.aae()
            .rebuild_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            objects,
            bytes,
            ms,
            "anti-entropy trees rebuilt beside service"
        );
    }

    /// Save the trees for the next start. Call only with writes quiesced
    /// and storage synced (see the module doc).
    pub(crate) async fn save_trees(&self) -> Result<(), NodeError> {
        if self.aae().trees.rebuilding() > 0 {
            tracing::info!(
                "anti-entropy trees still rebuilding; not saved, the next start rebuilds"
            );
            return Ok(());
        }
        let saved = Saved {
            format: FORMAT,
            partition_bits: self.config().partition_bits,
            segments: SEGMENTS as u32,
            trees: self.aae().trees.snapshot(),
        };
        let bytes = postcard::to_stdvec(&saved).map_err(|e| store::StoreError::Encode {
            what: "anti-entropy trees",
            detail: e.to_string(),
        })?;
        self.store().put_meta(META_TREES, bytes, true).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BKey, Env, NodeConfig, RequestOptions, SystemClock};
    use std::sync::Arc;
    use store::MemoryEngine;

    async fn start(engine: &Arc<MemoryEngine>, net: &net::MemoryNetwork) -> Node {
        let cfg = NodeConfig {
            rpc: "mem-0:7000".into(),
            ..NodeConfig::default()
        };
        let env = Env {
            clock: Arc::new(SystemClock),
            seed: 7,
            network: Arc::new(net.at("mem-0:7000")),
            engine: engine.clone(),
        };
        Node::start(cfg, env).await.expect("node starts")
    }

    async fn write(node: &Node, keys: std::ops::Range<u32>) {
        for i in keys {
            node.put(
                BKey::new("b", format!("k{i}")),
                bytes::Bytes::from(format!("v{i}")),
                causal::Meta::default(),
                causal::VersionVector::new(),
                RequestOptions::default(),
            )
            .await
            .expect("write");
        }
    }

    /// Wait for a rebuild beside service to finish (it yields per page).
    async fn rebuilt(node: &Node) {
        for _ in 0..100_000 {
            if node.aae().trees.rebuilding() == 0 {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the anti-entropy rebuild did not finish");
    }

    #[tokio::test]
    async fn a_clean_stop_saves_trees_that_load_and_a_crash_rebuilds_them() {
        let engine = Arc::new(MemoryEngine::new());
        let node = start(&engine, &net::MemoryNetwork::new()).await;
        assert!(!node.stats_trees_loaded(), "nothing was saved yet");
        rebuilt(&node).await;
        write(&node, 0..200).await;
        let before = node.aae().trees.snapshot();
        assert!(!before.is_empty());
        node.stop().await.expect("clean stop");

        // A clean restart loads exactly what the stop saved.
        let node = start(&engine, &net::MemoryNetwork::new()).await;
        assert!(node.stats_trees_loaded(), "clean stop, yet trees rebuilt");
        assert_eq!(node.aae().trees.snapshot(), before);
        // Writes after the load keep the trees in step with storage...
        write(&node, 200..300).await;
        let after = node.aae().trees.snapshot();
        node.shutdown();

        // ...and a crash (nothing saved: the load deleted it) rebuilds
        // them from storage, to the same hashes.
        engine.crash();
        let node = start(&engine, &net::MemoryNetwork::new()).await;
        assert!(
            !node.stats_trees_loaded(),
            "crashed, yet saved trees loaded"
        );
        // Writes during the rebuild, beside service, land in the trees too.
        write(&node, 300..320).await;
        rebuilt(&node).await;
        assert!(
            node.aae()
                .rebuild_ms
                .load(std::sync::atomic::Ordering::Relaxed)
                < 60_000
        );
        let rebuilt_trees = node.aae().trees.snapshot();
        node.shutdown();
        let node = start(&engine, &net::MemoryNetwork::new()).await;
        rebuilt(&node).await;
        assert_eq!(node.aae().trees.snapshot(), rebuilt_trees);
        assert_ne!(rebuilt_trees, after, "the writes during the rebuild count");
        node.shutdown();
    }
}
