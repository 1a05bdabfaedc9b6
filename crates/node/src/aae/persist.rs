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
    /// Rebuilt by reading every object.
    Rebuilt,
}

/// Bytes of objects read at once while rebuilding the trees.
const REBUILD_PAGE_BYTES: usize = 4 << 20;

impl Node {
    #[cfg(test)]
    fn stats_trees_loaded(&self) -> bool {
        self.inner
            .stats
            .trees_loaded
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Load the trees a clean stop saved, or rebuild them from storage;
    /// either way, leave nothing saved behind.
    pub(crate) async fn load_or_rebuild_trees(&self) -> Result<TreesSource, NodeError> {
        let started = std::time::Instant::now();
        let saved = self.inner.store.get_meta(META_TREES)?;
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
                self.inner.trees.restore(s.trees);
                // Why durable before serving: a crash after the first write
                // must find no saved trees, or it would load stale ones.
                self.inner.store.delete_meta(META_TREES, true).await?;
                TreesSource::Loaded
            }
            None => {
                self.rebuild_trees()?;
                TreesSource::Rebuilt
            }
        };
        tracing::info!(
            ?source,
            ms = started.elapsed().as_millis() as u64,
            "anti-entropy trees ready"
        );
        Ok(source)
    }

    /// Build the trees from every stored object, a page at a time (memory
    /// stays at one page whatever a partition holds).
    fn rebuild_trees(&self) -> Result<(), NodeError> {
        for p in 0..(1u32 << self.config().partition_bits) {
            let p = p as u16;
            let mut after: Option<store::ObjectKey> = None;
            loop {
                let page =
                    self.inner
                        .store
                        .scan_partition_page(p, after.as_ref(), REBUILD_PAGE_BYTES)?;
                let Some((last, _, _)) = page.last() else {
                    break;
                };
                after = Some(last.clone());
                for (okey, obj, _) in &page {
                    self.inner
                        .trees
                        .update(p, &okey.encode(), &causal::Object::new(), obj);
                }
            }
        }
        Ok(())
    }

    /// Save the trees for the next start. Call only with writes quiesced
    /// and storage synced (see the module doc).
    pub(crate) async fn save_trees(&self) -> Result<(), NodeError> {
        let saved = Saved {
            format: FORMAT,
            partition_bits: self.config().partition_bits,
            segments: SEGMENTS as u32,
            trees: self.inner.trees.snapshot(),
        };
        let bytes = postcard::to_stdvec(&saved)
            .map_err(|e| NodeError::Storage(format!("encoding anti-entropy trees: {e}")))?;
        self.inner.store.put_meta(META_TREES, bytes, true).await?;
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

    #[tokio::test]
    async fn a_clean_stop_saves_trees_that_load_and_a_crash_rebuilds_them() {
        let engine = Arc::new(MemoryEngine::new());
        let node = start(&engine, &net::MemoryNetwork::new()).await;
        assert!(!node.stats_trees_loaded(), "nothing was saved yet");
        write(&node, 0..200).await;
        let before = node.inner.trees.snapshot();
        assert!(!before.is_empty());
        node.stop().await.expect("clean stop");

        // A clean restart loads exactly what the stop saved.
        let node = start(&engine, &net::MemoryNetwork::new()).await;
        assert!(node.stats_trees_loaded(), "clean stop, yet trees rebuilt");
        assert_eq!(node.inner.trees.snapshot(), before);
        // Writes after the load keep the trees in step with storage...
        write(&node, 200..300).await;
        let after = node.inner.trees.snapshot();
        node.shutdown();

        // ...and a crash (nothing saved: the load deleted it) rebuilds
        // them from storage, to the same hashes.
        engine.crash();
        let node = start(&engine, &net::MemoryNetwork::new()).await;
        assert!(
            !node.stats_trees_loaded(),
            "crashed, yet saved trees loaded"
        );
        assert_eq!(node.inner.trees.snapshot(), after);
        node.shutdown();
    }
}
