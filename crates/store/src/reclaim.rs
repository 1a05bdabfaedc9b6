//! # Deleted engine files freed a few MiB at a time
//!
//! fjall deletes whole files: an old journal (64-100 MiB) after each
//! flush, blob and table files after compactions. On a filesystem that
//! discards freed blocks at once (ext4 mounted with `discard`, as the
//! machine these figures come from is) the delete sends every block's discard to the disk
//! together, and every journal fsync on that disk waits behind them: alone
//! on the disk, deleting 64 MiB took 22-34 ms and the journal fdatasyncs
//! beside it went from 1-13 ms to 17-31 ms (`scripts/delete-vs-fsync.py`);
//! under load seven of fjall's deletes took 44-171 ms (docs/BENCHMARKS.md).
//!
//! [`Reclaimer`] keeps a second name for each journal, table and blob
//! file fjall creates: a hard link in `<db>/reclaim/`. fjall's delete then
//! only removes a name and frees nothing. A sweep finds the links that are
//! the last name of their file, and each tick shrinks one of them by
//! [`STEP_BYTES`] (`ftruncate`) and removes it once empty, so the discards
//! reach the disk in small pieces between journal fsyncs.
//!
//! It is driven by the writeback thread ([`crate::writeback`]), which
//! already learns of new files from inotify. A file deleted before it was
//! linked is freed by fjall's delete, as before, and so are the files that
//! were there when the thread started (it learns only of new ones). Links
//! left by a crash are found by the first sweep after the restart.

use std::collections::VecDeque;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Bytes freed per tick: about a millisecond of discards here.
const STEP_BYTES: u64 = 2 << 20;
/// Ticks between sweeps for links that are their file's last name.
const SWEEP_TICKS: u32 = 50;
/// Links kept at most; past it new files are left to fjall's delete.
const LINKS_MAX: usize = 4096;
/// The directory of links, inside the engine's directory (fjall ignores
/// entries it does not know there).
const DIR_NAME: &str = "reclaim";

/// The links to engine files, and the ones being freed.
pub(crate) struct Reclaimer {
    dir: PathBuf,
    /// Links to files fjall still names.
    linked: Vec<PathBuf>,
    /// Links that are their file's last name, shrunk in order.
    freeing: VecDeque<PathBuf>,
    ticks: u32,
}

impl Reclaimer {
    /// Reclaim under `db`; links already in its directory (from before a
    /// restart) are picked up.
    pub(crate) fn new(db: &Path) -> std::io::Result<Self> {
        let dir = db.join(DIR_NAME);
        std::fs::create_dir_all(&dir)?;
        let mut reclaimer = Reclaimer {
            dir,
            linked: Vec::new(),
            freeing: VecDeque::new(),
            ticks: 0,
        };
        for entry in std::fs::read_dir(&reclaimer.dir)?.flatten() {
            reclaimer.linked.push(entry.path());
        }
        reclaimer.sweep();
        Ok(reclaimer)
    }

    /// Link `path`, a new file under the engine directory `db`, if it is
    /// a journal, table or blob file.
    pub(crate) fn adopt(&mut self, db: &Path, path: &Path) {
        let Ok(rel) = path.strip_prefix(db) else {
            return;
        };
        if !reclaimable(rel) || self.linked.len() >= LINKS_MAX {
            return;
        }
        let name = rel.to_string_lossy().replace('/', "%");
        let link = self.dir.join(&name);
        // Fails if fjall deleted the file already (it freed it itself) or
        // the name is taken (the file stays fjall's to free).
        if std::fs::hard_link(path, &link).is_ok() {
            self.linked.push(link);
        }
    }

    /// Whether links are waiting to be freed (the thread then ticks fast).
    pub(crate) fn is_freeing(&self) -> bool {
        !self.freeing.is_empty()
    }

    /// One tick: free a step of the oldest link that is its file's last
    /// name; every [`SWEEP_TICKS`], look for new ones.
    pub(crate) fn tick(&mut self) {
        self.ticks += 1;
        if self.ticks >= SWEEP_TICKS {
            self.ticks = 0;
            self.sweep();
        }
        let Some(link) = self.freeing.front() else {
            return;
        };
        if shrink(link).unwrap_or(true) {
            let _ = std::fs::remove_file(link);
            self.freeing.pop_front();
        }
    }

    /// Move the links whose file fjall no longer names to `freeing`.
    fn sweep(&mut self) {
        self.linked.retain(|link| match std::fs::metadata(link) {
            Ok(meta) if meta.nlink() > 1 => true,
            Ok(_) => {
                self.freeing.push_back(link.clone());
                false
            }
            Err(_) => false,
        });
    }
}

/// Whether fjall's file at `rel` (under its directory) is one it deletes
/// whole once done with it: `<n>.jnl`, `keyspaces/<id>/{tables,blobs}/<n>`.
fn reclaimable(rel: &Path) -> bool {
    let parts: Vec<_> = rel.iter().filter_map(|p| p.to_str()).collect();
    match parts.as_slice() {
        [journal] => journal.ends_with(".jnl"),
        ["keyspaces", _, "tables" | "blobs", _] => true,
        _ => false,
    }
}

/// Cut up to [`STEP_BYTES`] off the end of the file at `link`; `true`
/// once it is empty.
fn shrink(link: &Path) -> std::io::Result<bool> {
    let file = std::fs::OpenOptions::new().write(true).open(link)?;
    let len = file.metadata()?.len();
    let new_len = len.saturating_sub(STEP_BYTES);
    file.set_len(new_len)?;
    Ok(new_len == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An engine directory with a journal and a blob file of `mib` MiB.
    fn engine_dir(mib: u64) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let db = tempfile::tempdir().unwrap();
        let blobs = db.path().join("keyspaces/1/blobs");
        std::fs::create_dir_all(&blobs).unwrap();
        let (journal, blob) = (db.path().join("3.jnl"), blobs.join("7"));
        for path in [&journal, &blob] {
            std::fs::write(path, vec![5u8; (mib << 20) as usize]).unwrap();
        }
        (db, journal, blob)
    }

    /// [`engine_dir`], with both files linked.
    fn both_adopted(mib: u64) -> (tempfile::TempDir, PathBuf, PathBuf, Reclaimer) {
        let (db, journal, blob) = engine_dir(mib);
        let mut r = Reclaimer::new(db.path()).unwrap();
        r.adopt(db.path(), &journal);
        r.adopt(db.path(), &blob);
        (db, journal, blob, r)
    }

    fn ticks(r: &mut Reclaimer, n: u32) {
        for _ in 0..n {
            r.tick();
        }
    }

    #[test]
    fn journals_tables_and_blobs_are_reclaimable_and_nothing_else() {
        for rel in ["12.jnl", "keyspaces/1/tables/40", "keyspaces/0/blobs/3"] {
            assert!(reclaimable(Path::new(rel)), "{rel}");
        }
        for rel in [
            "version",
            "lock",
            "keyspaces/1/v3",
            "keyspaces/1/tables",
            "reclaim/12.jnl",
        ] {
            assert!(!reclaimable(Path::new(rel)), "{rel}");
        }
    }

    #[test]
    fn a_file_fjall_deleted_is_freed_in_steps_and_its_link_removed() {
        let (db, journal, blob, mut r) = both_adopted(5);
        std::fs::remove_file(&journal).unwrap();
        let link = db.path().join("reclaim/3.jnl");
        assert_eq!(std::fs::metadata(&link).unwrap().len(), 5 << 20, "kept");

        ticks(&mut r, SWEEP_TICKS);
        assert!(r.is_freeing(), "the sweep found it");
        assert_eq!(std::fs::metadata(&link).unwrap().len(), 3 << 20, "one step");
        ticks(&mut r, 1);
        assert_eq!(std::fs::metadata(&link).unwrap().len(), 1 << 20);
        ticks(&mut r, 1);
        assert!(!link.exists(), "emptied, then removed");
        assert!(!r.is_freeing());

        ticks(&mut r, 3 * SWEEP_TICKS);
        assert_eq!(
            std::fs::read(&blob).unwrap().len(),
            5 << 20,
            "a named file is left alone"
        );
    }

    #[test]
    fn links_left_before_a_restart_are_freed() {
        let (db, _journal, blob, r) = both_adopted(1);
        drop(r);
        std::fs::remove_file(&blob).unwrap();

        let mut r = Reclaimer::new(db.path()).unwrap();
        assert!(r.is_freeing(), "the deleted one, at once");
        ticks(&mut r, 1);
        assert!(!db.path().join("reclaim/keyspaces%1%blobs%7").exists());
        assert!(
            db.path().join("reclaim/3.jnl").exists(),
            "still named by fjall"
        );
    }

    #[test]
    fn a_file_deleted_before_it_was_linked_is_not_adopted() {
        let (db, journal, _blob) = engine_dir(1);
        let mut r = Reclaimer::new(db.path()).unwrap();
        std::fs::remove_file(&journal).unwrap();
        r.adopt(db.path(), &journal);
        assert!(r.linked.is_empty());
        assert_eq!(
            std::fs::read_dir(db.path().join(DIR_NAME)).unwrap().count(),
            0
        );
    }
}
