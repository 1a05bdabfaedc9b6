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
//! This thread follows the engine's table and blob files as they grow
//! and, every [`TICK`], asks the kernel to start writing out what was
//! appended since (`posix_fadvise(POSIX_FADV_DONTNEED)` on that range). A
//! flush then reaches the disk in pieces of a MiB or two while it is being
//! written, and its final fsync finds little left. The journal is left
//! alone: the writer thread syncs it anyway.
//!
//! Why `POSIX_FADV_DONTNEED` and not `fsync`: on Linux it starts writeback
//! of the range's dirty pages and returns at once (`WB_SYNC_NONE`), with no
//! cache flush of the disk, and drops only pages already clean; pages
//! written in the last few milliseconds are still dirty or being written,
//! so they stay cached for the reads that follow a flush. An `fsync` per
//! piece (this module's first version, every 20 ms) blocked the thread and
//! made the disk flush its cache each time, so pieces were coarser and
//! each cost the journal fsyncs queued behind it (docs/BENCHMARKS.md).
//! Linux's `sync_file_range` would say the same more directly, but no
//! safe wrapper offers it.
//!
//! Why a thread of our own and not a fjall option: fjall has none, and
//! the kernel's own writeback starts only past a share of all memory
//! (`vm.dirty_background_ratio`), far above one flush.

use std::collections::HashMap;
use std::fs::File;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often followed files are looked at. A flush writes ~50 MiB in
/// 150-250 ms here, so each kick covers one or two MiB.
const TICK: Duration = Duration::from_millis(5);
/// Directories are read every this many ticks to find files that started
/// growing: a flush's new blob file is followed within 20 ms.
const SCAN_EVERY_TICKS: u32 = 4;
/// A followed file that has not grown for this many ticks is let go (its
/// descriptor closed, so a file fjall deleted frees its space).
const IDLE_TICKS_MAX: u32 = 8;
/// Files followed at most; a flush or a compaction writes a few at a time.
const FOLLOWED_MAX: usize = 64;
/// Files tracked at most; a node has tens (fjall compacts tables and
/// collects blob files), so this is only a bound against a runaway.
const FILES_TRACKED_MAX: usize = 100_000;
/// Directory levels searched below `keyspaces/`: `<id>/{tables,blobs}/`.
const DEPTH_MAX: usize = 2;
/// Kicks end on a page boundary, so a page still being filled is not
/// written twice.
const PAGE_BYTES: u64 = 4096;

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
    // Files there at the start were fsynced by fjall: only growth counts.
    let mut lengths = look(root, &HashMap::new(), &mut |_, _| {});
    let mut followed = HashMap::new();
    let mut tick = 0u32;
    while !stop.load(Ordering::Relaxed) {
        if tick.is_multiple_of(SCAN_EVERY_TICKS) {
            lengths = look(root, &lengths, &mut |path, from| {
                follow(&mut followed, path, from);
            });
        }
        step(&mut followed, &mut kick);
        tick = tick.wrapping_add(1);
        std::thread::sleep(TICK);
    }
}

/// A file being written, and how far its writeback was started.
struct Followed {
    file: File,
    kicked: u64,
    idle_ticks: u32,
}

/// Follow `path` from byte `from` on, unless it is followed already.
fn follow(followed: &mut HashMap<PathBuf, Followed>, path: &Path, from: u64) {
    if followed.len() >= FOLLOWED_MAX || followed.contains_key(path) {
        return;
    }
    // A file fjall deleted meanwhile is simply not followed.
    if let Ok(file) = File::open(path) {
        let kicked = from / PAGE_BYTES * PAGE_BYTES;
        let idle_ticks = 0;
        followed.insert(
            path.to_path_buf(),
            Followed {
                file,
                kicked,
                idle_ticks,
            },
        );
    }
}

/// One tick: `kick` each followed file over the whole pages it grew by,
/// and let go of the ones idle too long.
fn step(followed: &mut HashMap<PathBuf, Followed>, kick: &mut dyn FnMut(&File, u64, u64)) {
    followed.retain(|_, f| {
        let len = f.file.metadata().map_or(f.kicked, |m| m.len());
        let end = len / PAGE_BYTES * PAGE_BYTES;
        if end > f.kicked {
            kick(&f.file, f.kicked, end);
            f.kicked = end;
            f.idle_ticks = 0;
        } else {
            f.kicked = f.kicked.min(end);
            f.idle_ticks += 1;
        }
        f.idle_ticks <= IDLE_TICKS_MAX
    });
}

/// Start writeback of bytes `from..to`. A failure is fjall's to meet at
/// its own fsync, which reports it.
fn kick(file: &File, from: u64, to: u64) {
    let len = NonZeroU64::new(to.saturating_sub(from));
    if len.is_some() {
        let _ = rustix::fs::fadvise(file, from, len, rustix::fs::Advice::DontNeed);
    }
}

/// One look: call `grew(path, from)` for each non-empty file under `root`
/// whose length is not the one in `before` (path → length at the last
/// look; `from` is that length, 0 for a new file); returns the lengths
/// now, so files deleted since are forgotten.
fn look(
    root: &Path,
    before: &HashMap<PathBuf, u64>,
    grew: &mut dyn FnMut(&Path, u64),
) -> HashMap<PathBuf, u64> {
    let mut now = HashMap::with_capacity(before.len());
    visit(root, DEPTH_MAX, &mut |path, len| {
        if now.len() >= FILES_TRACKED_MAX {
            return;
        }
        let was = before.get(path).copied();
        if len > 0 && was != Some(len) {
            grew(path, was.unwrap_or(0).min(len));
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn grown_at_look(
        root: &Path,
        before: &HashMap<PathBuf, u64>,
    ) -> (Vec<(PathBuf, u64)>, HashMap<PathBuf, u64>) {
        let mut grown = Vec::new();
        let now = look(root, before, &mut |p, from| {
            grown.push((p.to_path_buf(), from))
        });
        grown.sort();
        (grown, now)
    }

    fn append(path: &Path, bytes: usize) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(&vec![7u8; bytes]).unwrap();
    }

    #[test]
    fn a_look_finds_exactly_the_files_that_grew() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("1/blobs");
        std::fs::create_dir_all(&blobs).unwrap();
        let (a, b, empty) = (blobs.join("0"), blobs.join("1"), blobs.join("2"));
        append(&a, 7);
        append(&b, 13);
        append(&empty, 0);

        let (grown, lengths) = grown_at_look(dir.path(), &HashMap::new());
        assert_eq!(
            grown,
            vec![(a.clone(), 0), (b.clone(), 0)],
            "new non-empty files grew from 0"
        );
        let (grown, lengths) = grown_at_look(dir.path(), &lengths);
        assert!(grown.is_empty(), "unchanged files did not grow: {grown:?}");

        append(&b, 5);
        std::fs::remove_file(&a).unwrap();
        let (grown, lengths) = grown_at_look(dir.path(), &lengths);
        assert_eq!(
            grown,
            vec![(b.clone(), 13)],
            "only the file that grew, from its old length"
        );
        assert!(!lengths.contains_key(&a), "a deleted file is forgotten");
    }

    #[test]
    fn looks_no_deeper_than_the_engine_layout() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("1/blobs/x");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("0"), b"too deep").unwrap();
        let (grown, _) = grown_at_look(dir.path(), &HashMap::new());
        assert!(grown.is_empty(), "{grown:?}");
    }

    #[test]
    fn a_followed_file_is_kicked_in_whole_new_pages_then_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        append(&path, 10_000);
        let mut followed = HashMap::new();
        follow(&mut followed, &path, 5_000);
        follow(&mut followed, &path, 0);
        assert_eq!(followed.len(), 1, "a file is followed once");

        let mut kicks = Vec::new();
        step(&mut followed, &mut |_, from, to| kicks.push((from, to)));
        append(&path, 10_000);
        step(&mut followed, &mut |_, from, to| kicks.push((from, to)));
        assert_eq!(
            kicks,
            vec![(4096, 8192), (8192, 16_384)],
            "from the page holding `from`, up to the last whole page"
        );

        for _ in 0..IDLE_TICKS_MAX {
            step(&mut followed, &mut |_, _, _| panic!("nothing grew"));
        }
        assert_eq!(followed.len(), 1, "still followed while idle briefly");
        step(&mut followed, &mut |_, _, _| panic!("nothing grew"));
        assert!(
            followed.is_empty(),
            "let go after {IDLE_TICKS_MAX} idle ticks"
        );
    }

    #[test]
    fn a_kick_leaves_the_bytes_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        append(&path, 3 * PAGE_BYTES as usize);
        kick(&File::open(&path).unwrap(), 0, 3 * PAGE_BYTES);
        kick(&File::open(&path).unwrap(), PAGE_BYTES, PAGE_BYTES);
        let back = std::fs::read(&path).unwrap();
        assert_eq!(back, vec![7u8; 3 * PAGE_BYTES as usize]);
    }
}
