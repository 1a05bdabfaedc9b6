//! # Writeback pacing for the engine's table and blob files
//!
//! fjall writes a memtable flush (tens of MiB of values, in a blob file)
//! into the page cache and fsyncs it once, at the end. That fsync sends
//! the whole flush to the disk at once, and the journal fsyncs every
//! acknowledged write waits for queue behind it: on the dev cluster (three
//! nodes, one disk) journal fsyncs, mostly under 8 ms, took 20-47 ms in
//! the 0.1-0.2 s before each flush completed, on every node at once, and
//! 4 KiB PUTs had a p99 of 49-64 ms in the seconds with the slowest of
//! them against 22-29 ms in seconds without (docs/BENCHMARKS.md).
//!
//! This thread looks at the engine's table and blob files every
//! [`PERIOD`] and syncs the ones that grew since its last look, so a flush
//! reaches the disk in pieces of a few MiB while it is being written and
//! its final fsync finds little left. The journal is left alone: the
//! writer thread syncs it anyway.
//!
//! Why a thread of our own and not a fjall option: fjall has none, and
//! the kernel's own writeback starts only past a share of all memory
//! (`vm.dirty_background_ratio`), far above one flush.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often the thread looks. A flush writes ~50 MiB in 150-250 ms
/// here, so each sync covers a few MiB.
const PERIOD: Duration = Duration::from_millis(20);
/// Files tracked at most; a node has tens (fjall compacts tables and
/// collects blob files), so this is only a bound against a runaway.
const FILES_TRACKED_MAX: usize = 100_000;
/// Directory levels searched below `keyspaces/`: `<id>/{tables,blobs}/`.
const DEPTH_MAX: usize = 2;

/// Stops its thread when dropped.
pub(crate) struct WritebackPacer {
    stop: Arc<AtomicBool>,
}

impl WritebackPacer {
    /// Start pacing the files under `dir`. Failing to start the thread
    /// only loses the pacing, so it is logged, not returned.
    pub(crate) fn start(dir: &Path) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, root) = (stop.clone(), dir.join("keyspaces"));
        let spawned = std::thread::Builder::new()
            .name("ringstore-writeback".into())
            .spawn(move || run(&root, &flag));
        if let Err(err) = spawned {
            tracing::warn!(error = %err, "cannot start the writeback thread; flushes will stall journal fsyncs");
        }
        WritebackPacer { stop }
    }
}

impl Drop for WritebackPacer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn run(root: &Path, stop: &AtomicBool) {
    let mut lengths = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        lengths = look(root, &lengths, &mut sync);
        std::thread::sleep(PERIOD);
    }
}

/// One look: `sync` each non-empty file under `root` whose length is not
/// the one in `before` (path → length at the last look); returns the
/// lengths now, so files deleted since are forgotten.
fn look(
    root: &Path,
    before: &HashMap<PathBuf, u64>,
    sync: &mut dyn FnMut(&Path),
) -> HashMap<PathBuf, u64> {
    let mut now = HashMap::with_capacity(before.len());
    visit(root, DEPTH_MAX, &mut |path, len| {
        if now.len() >= FILES_TRACKED_MAX {
            return;
        }
        if len > 0 && before.get(path) != Some(&len) {
            sync(path);
        }
        now.insert(path.to_path_buf(), len);
    });
    now
}

/// Call `f` with each regular file under `dir` and its length.
fn visit(dir: &Path, depth: usize, f: &mut dyn FnMut(&Path, u64)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() && depth > 0 {
            visit(&path, depth - 1, f);
        } else if kind.is_file() {
            if let Ok(meta) = entry.metadata() {
                f(&path, meta.len());
            }
        }
    }
}

/// Write the file's dirty pages to disk. A file fjall deleted meanwhile
/// is simply skipped; any other failure is fjall's to meet at its own
/// fsync, which reports it.
fn sync(path: &Path) {
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file.sync_data();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn synced_by_look(
        root: &Path,
        before: &HashMap<PathBuf, u64>,
    ) -> (Vec<PathBuf>, HashMap<PathBuf, u64>) {
        let mut synced = Vec::new();
        let now = look(root, before, &mut |p| synced.push(p.to_path_buf()));
        synced.sort();
        (synced, now)
    }

    #[test]
    fn syncs_exactly_the_files_that_grew() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("1/blobs");
        std::fs::create_dir_all(&blobs).unwrap();
        let (a, b, empty) = (blobs.join("0"), blobs.join("1"), blobs.join("2"));
        std::fs::write(&a, b"flushed").unwrap();
        std::fs::write(&b, b"being written").unwrap();
        std::fs::write(&empty, b"").unwrap();

        let (synced, lengths) = synced_by_look(dir.path(), &HashMap::new());
        assert_eq!(
            synced,
            vec![a.clone(), b.clone()],
            "new non-empty files are synced"
        );
        let (synced, lengths) = synced_by_look(dir.path(), &lengths);
        assert!(
            synced.is_empty(),
            "unchanged files are not synced again: {synced:?}"
        );

        let mut f = std::fs::OpenOptions::new().append(true).open(&b).unwrap();
        f.write_all(b" more").unwrap();
        std::fs::remove_file(&a).unwrap();
        let (synced, lengths) = synced_by_look(dir.path(), &lengths);
        assert_eq!(synced, vec![b.clone()], "only the file that grew");
        assert!(!lengths.contains_key(&a), "a deleted file is forgotten");
    }

    #[test]
    fn looks_no_deeper_than_the_engine_layout() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("1/blobs/x");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("0"), b"too deep").unwrap();
        let (synced, _) = synced_by_look(dir.path(), &HashMap::new());
        assert!(synced.is_empty(), "{synced:?}");
    }
}
