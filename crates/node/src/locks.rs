//! Locks that crash on poison instead of limping on.
//!
//! A std lock is poisoned when a thread panicked while holding it: the
//! state behind it may be half-updated. Reading it anyway once turned a
//! poisoned cluster view into an empty one that `persist_state` would
//! have written to disk, where a restart cannot undo it. A node that
//! aborts instead restarts from its durable state, which every
//! acknowledged write is part of (TigerBeetle's rule: crash on a broken
//! invariant rather than go on with wrong state).
//!
//! Every `std::sync` lock in this crate is taken through [`Held`].

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Take a lock, aborting the process if it is poisoned.
pub(crate) trait Held<T> {
    /// The exclusive guard (`Mutex::lock`, `RwLock::write`).
    type Exclusive<'a>
    where
        Self: 'a;
    /// Lock for writing (or the mutex).
    fn held(&self) -> Self::Exclusive<'_>;
}

impl<T> Held<T> for Mutex<T> {
    type Exclusive<'a>
        = MutexGuard<'a, T>
    where
        T: 'a;
    fn held(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|_| poisoned())
    }
}

impl<T> Held<T> for RwLock<T> {
    type Exclusive<'a>
        = RwLockWriteGuard<'a, T>
    where
        T: 'a;
    fn held(&self) -> RwLockWriteGuard<'_, T> {
        self.write().unwrap_or_else(|_| poisoned())
    }
}

/// Shared access to a read-write lock, aborting if it is poisoned.
pub(crate) trait Shared<T> {
    /// Lock for reading.
    fn shared(&self) -> RwLockReadGuard<'_, T>;
}

impl<T> Shared<T> for RwLock<T> {
    fn shared(&self) -> RwLockReadGuard<'_, T> {
        self.read().unwrap_or_else(|_| poisoned())
    }
}

#[cold]
fn poisoned() -> ! {
    let why = "a lock was poisoned: a thread panicked while changing the state \
               behind it; stopping the node so it restarts from its durable state";
    tracing::error!("{why}");
    eprintln!(
        "ringstore: {why}\n{}",
        std::backtrace::Backtrace::force_capture()
    );
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpoisoned_locks_are_taken() {
        let m = Mutex::new(1);
        *m.held() += 1;
        assert_eq!(*m.held(), 2);
        let l = RwLock::new(vec![1]);
        l.held().push(2);
        assert_eq!(l.shared().len(), 2);
    }
}
