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
//! This thread follows the engine's table and blob files while they are
//! written and, every [`TICK`], asks the kernel to start writing out what
//! was appended since (`posix_fadvise(POSIX_FADV_DONTNEED)` on that range).
//! A flush then reaches the disk in pieces of a MiB or two while it is
//! being written, and its final fsync finds little left. The journal is
//! left alone: the writer thread syncs it anyway.
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
//! Which files: fjall never appends to a table or blob file it finished,
//! so only files created after the thread started can grow. It learns of
//! them from inotify (`IN_CREATE` in the engine's directories), not by
//! reading the directories: reading eleven directories per node every
//! 20 ms took 3.7-4.8% of the dev cluster's CPU (with inotify, 1.0%). A followed file is kicked only
//! once it is seen growing: one that fjall already finished and fsynced (a
//! small compaction's output) is clean, and kicking it would only drop it
//! from the page cache.
//!
//! Why a thread of our own and not a fjall option: fjall has none, and
//! the kernel's own writeback starts only past a share of all memory
//! (`vm.dirty_background_ratio`), far above one flush.
//!
//! The same thread drives [`crate::reclaim`], which links every journal,
//! table and blob file fjall creates so that fjall's deletes free them a
//! few MiB at a time: it watches the engine's directory down to the
//! keyspaces' `tables/` and `blobs/`, reports every new file to the
//! reclaimer and follows the ones under `keyspaces/`.

use crate::reclaim::Reclaimer;
use rustix::fs::inotify;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::mem::MaybeUninit;
use std::num::NonZeroU64;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often followed files are looked at. A flush writes ~50 MiB in
/// 150-250 ms here, so each kick covers one or two MiB.
const TICK: Duration = Duration::from_millis(5);
/// How long the thread sleeps with nothing followed: a flush's new blob
/// file is followed within this.
const IDLE_PAUSE: Duration = Duration::from_millis(20);
/// A followed file that has not grown for this many ticks is let go (its
/// descriptor closed, so a file fjall deleted frees its space).
const IDLE_TICKS_MAX: u32 = 8;
/// Files followed at most; a flush or a compaction writes a few at a time.
const FOLLOWED_MAX: usize = 64;
/// Directories watched at most; a node has about a dozen (two per
/// keyspace), so this is only a bound against a runaway.
const DIRS_WATCHED_MAX: usize = 1024;
/// Directory levels watched below the engine's directory (whose journals
/// the reclaimer links): `keyspaces/<id>/{tables,blobs}/`.
const DEPTH_MAX: usize = 3;
/// What a watch reports: files and directories created or moved in.
const WATCHED_EVENTS: inotify::WatchFlags =
    inotify::WatchFlags::CREATE.union(inotify::WatchFlags::MOVED_TO);
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
        let (flag, db) = (stop.clone(), dir.to_path_buf());
        let spawned = std::thread::Builder::new()
            .name("ringstore-pacer".into())
            .spawn(move || run(&db, &flag));
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

fn run(db: &Path, stop: &AtomicBool) {
    let mut new_files = match NewFiles::watch(db) {
        Ok(w) => w,
        Err(err) => {
            tracing::warn!(error = %err, dir = %db.display(), "cannot watch the engine's files; flushes will stall journal fsyncs");
            return;
        }
    };
    let mut reclaimer = Reclaimer::new(db)
        .inspect_err(|err| tracing::warn!(error = %err, dir = %db.display(), "cannot keep links to the engine's files; each delete will free a whole file at once"))
        .ok();
    let keyspaces = db.join("keyspaces");
    let mut followed = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        new_files.take(&mut |path| {
            if let Some(r) = reclaimer.as_mut() {
                r.adopt(db, path);
            }
            if path.starts_with(&keyspaces) {
                follow(&mut followed, path);
            }
        });
        step(&mut followed, &mut kick);
        let freeing = reclaimer.as_mut().is_some_and(|r| {
            r.tick();
            r.is_freeing()
        });
        std::thread::sleep(if followed.is_empty() && !freeing {
            IDLE_PAUSE
        } else {
            TICK
        });
    }
}

/// A file being written: its length at the last tick, and how far its
/// writeback was started (`None` until it is seen growing).
struct Followed {
    file: File,
    seen: u64,
    kicked: Option<u64>,
    idle_ticks: u32,
}

/// Follow the file at `path`, unless it is followed already.
fn follow(followed: &mut HashMap<PathBuf, Followed>, path: &Path) {
    if followed.len() >= FOLLOWED_MAX || followed.contains_key(path) {
        return;
    }
    // A file fjall deleted meanwhile is simply not followed.
    let Ok(file) = File::open(path) else {
        return;
    };
    let seen = file.metadata().map_or(0, |m| m.len());
    let entry = Followed {
        file,
        seen,
        kicked: None,
        idle_ticks: 0,
    };
    followed.insert(path.to_path_buf(), entry);
}

/// One tick: `kick` each followed file that grew over the whole pages not
/// kicked yet (from its start, the first time), and let go of the ones
/// idle too long.
fn step(followed: &mut HashMap<PathBuf, Followed>, kick: &mut dyn FnMut(&File, u64, u64)) {
    followed.retain(|_, f| {
        let len = f.file.metadata().map_or(f.seen, |m| m.len());
        if len <= f.seen {
            f.idle_ticks += 1;
            return f.idle_ticks <= IDLE_TICKS_MAX;
        }
        let (from, to) = (f.kicked.unwrap_or(0), len / PAGE_BYTES * PAGE_BYTES);
        if to > from {
            kick(&f.file, from, to);
            f.kicked = Some(to);
        }
        f.seen = len;
        f.idle_ticks = 0;
        true
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

/// Files created under a directory tree, learnt from inotify.
struct NewFiles {
    inotify: OwnedFd,
    /// Watch descriptor → directory, and the levels watched below it.
    dirs: HashMap<i32, (PathBuf, usize)>,
    buf: Vec<MaybeUninit<u8>>,
}

impl NewFiles {
    /// Watch `root` and the directories up to [`DEPTH_MAX`] levels below.
    /// The files already there are fjall's, finished: not reported.
    fn watch(root: &Path) -> std::io::Result<Self> {
        let flags = inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK;
        let mut new_files = NewFiles {
            inotify: inotify::init(flags)?,
            dirs: HashMap::new(),
            buf: vec![MaybeUninit::uninit(); 4096],
        };
        // Fails here if the root cannot be watched; `add_tree` then gets
        // the same descriptor from the kernel.
        inotify::add_watch(&new_files.inotify, root, WATCHED_EVENTS)?;
        new_files.add_tree(root, DEPTH_MAX, &mut |_| {});
        Ok(new_files)
    }

    /// Watch `dir` and the directories `depth` levels below it, calling
    /// `found` with the files in them (for a directory just created, its
    /// files may predate the watch).
    fn add_tree(&mut self, dir: &Path, depth: usize, found: &mut dyn FnMut(&Path)) {
        if self.dirs.len() >= DIRS_WATCHED_MAX {
            return;
        }
        let Ok(wd) = inotify::add_watch(&self.inotify, dir, WATCHED_EVENTS) else {
            return;
        };
        self.dirs.insert(wd, (dir.to_path_buf(), depth));
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_file() {
                found(&entry.path());
            } else if kind.is_dir() && depth > 0 {
                self.add_tree(&entry.path(), depth - 1, found);
            }
        }
    }

    /// Call `found` with each file created since the last call, and
    /// watch the directories created since.
    fn take(&mut self, found: &mut dyn FnMut(&Path)) {
        let (mut new_dirs, mut gone) = (Vec::new(), Vec::new());
        let mut events = inotify::Reader::new(&self.inotify, &mut self.buf);
        // Ends when no event is left (`EAGAIN`) or reading fails. Events
        // lost to a queue overflow only lose the pacing of those files:
        // fjall's own fsync still makes them durable.
        while let Ok(event) = events.next() {
            if event.events().contains(inotify::ReadFlags::IGNORED) {
                gone.push(event.wd());
            }
            let (Some(name), Some((dir, depth))) = (event.file_name(), self.dirs.get(&event.wd()))
            else {
                continue;
            };
            let path = dir.join(OsStr::from_bytes(name.to_bytes()));
            if !event.events().contains(inotify::ReadFlags::ISDIR) {
                found(&path);
            } else if *depth > 0 {
                new_dirs.push((path, depth - 1));
            }
        }
        for wd in gone {
            self.dirs.remove(&wd);
        }
        for (dir, depth) in new_dirs {
            self.add_tree(&dir, depth, found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn taken(new_files: &mut NewFiles) -> Vec<PathBuf> {
        let mut found = Vec::new();
        new_files.take(&mut |p| found.push(p.to_path_buf()));
        found.sort();
        found
    }

    fn append(path: &Path, bytes: usize) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(&vec![7u8; bytes]).unwrap();
    }

    fn kicks_at_step(followed: &mut HashMap<PathBuf, Followed>) -> Vec<(u64, u64)> {
        let mut kicks = Vec::new();
        step(followed, &mut |_, from, to| kicks.push((from, to)));
        kicks
    }

    #[test]
    fn new_files_are_the_ones_created_after_the_watch_started() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("1/blobs");
        std::fs::create_dir_all(&blobs).unwrap();
        append(&blobs.join("0"), 7);
        let mut new_files = NewFiles::watch(dir.path()).unwrap();
        assert!(taken(&mut new_files).is_empty(), "files already there");

        append(&blobs.join("1"), 0);
        append(&dir.path().join("1/v1"), 3);
        std::fs::rename(dir.path().join("1/v1"), dir.path().join("1/current")).unwrap();
        assert_eq!(
            taken(&mut new_files),
            vec![
                blobs.join("1"),
                dir.path().join("1/current"),
                dir.path().join("1/v1")
            ],
            "created or moved in"
        );
        assert!(taken(&mut new_files).is_empty(), "each is reported once");
    }

    #[test]
    fn new_directories_are_watched_down_to_the_engine_layout() {
        let dir = tempfile::tempdir().unwrap();
        let mut new_files = NewFiles::watch(dir.path()).unwrap();
        let tables = dir.path().join("keyspaces/2/tables");
        std::fs::create_dir_all(&tables).unwrap();
        append(&tables.join("0"), 1);
        assert_eq!(
            taken(&mut new_files),
            vec![tables.join("0")],
            "a file in a new directory, even one written before its watch"
        );
        append(&tables.join("1"), 1);
        std::fs::create_dir_all(tables.join("deep")).unwrap();
        append(&tables.join("deep/0"), 1);
        assert_eq!(taken(&mut new_files), vec![tables.join("1")], "no deeper");
    }

    /// A file of 10,000 bytes, followed.
    fn one_followed() -> (tempfile::TempDir, PathBuf, HashMap<PathBuf, Followed>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        append(&path, 10_000);
        let mut followed = HashMap::new();
        follow(&mut followed, &path);
        (dir, path, followed)
    }

    #[test]
    fn a_growing_file_is_kicked_from_its_start_in_whole_pages() {
        let (_dir, path, mut followed) = one_followed();
        follow(&mut followed, &path);
        assert_eq!(followed.len(), 1, "a file is followed once");

        assert!(
            kicks_at_step(&mut followed).is_empty(),
            "not seen growing yet"
        );
        append(&path, 10_000);
        assert_eq!(kicks_at_step(&mut followed), vec![(0, 16_384)]);
        append(&path, 3_000);
        assert_eq!(kicks_at_step(&mut followed), vec![(16_384, 20_480)]);
        append(&path, 100);
        assert!(
            kicks_at_step(&mut followed).is_empty(),
            "no whole page more"
        );
    }

    #[test]
    fn a_file_that_does_not_grow_is_never_kicked_and_let_go() {
        let (_dir, _path, mut followed) = one_followed();
        for _ in 0..IDLE_TICKS_MAX {
            assert!(kicks_at_step(&mut followed).is_empty());
        }
        assert_eq!(followed.len(), 1, "still followed while idle briefly");
        assert!(kicks_at_step(&mut followed).is_empty());
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
