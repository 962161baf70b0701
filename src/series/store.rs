//! One metric's series table: found by label values, bounded by the cardinality limit, swept of
//! idle series.
//!
//! Recording threads normally never come here: they find series in their own cache
//! (`cache.rs`). The table is asked when a thread meets a label set for the first time, and by
//! the render. A series that has gone without an update for the TTL is removed by a sweep (at
//! each render, and when a new label set finds the table full), which frees its place under the
//! limit; an open span's gauge series is pinned and never removed.

use crate::sync::Recover;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hashbrown::HashTable;

use super::Series;

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Swept {
    /// Series removed (the overflow series included).
    pub(crate) expired: usize,
}

#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) limit: usize,
    /// `None`: series never expire.
    pub(crate) ttl: Option<Duration>,
    map: RwLock<HashTable<Arc<Series>>>,
    overflow: Mutex<Option<Arc<Series>>>,
    /// Bumped whenever a series is added or removed (the render keeps its sorted order while
    /// this stays the same).
    changes: AtomicU64,
    /// Clock reading (nanos) of the last sweep started at the limit.
    last_limit_sweep: AtomicU64,
    /// Series in the table (kept beside the map so the hot path's check needs no lock).
    len: AtomicUsize,
}

impl Store {
    pub(crate) fn new(limit: usize, ttl: Option<Duration>) -> Self {
        Store {
            limit,
            ttl,
            map: RwLock::new(HashTable::new()),
            overflow: Mutex::new(None),
            changes: AtomicU64::new(0),
            last_limit_sweep: AtomicU64::new(0),
            len: AtomicUsize::new(0),
        }
    }

    /// The series whose key matches, if any.
    pub(crate) fn find(&self, hash: u64, matches: impl Fn(&Series) -> bool) -> Option<Arc<Series>> {
        self.map
            .read()
            .recover()
            .find(hash, |s| matches(s))
            .cloned()
    }

    /// Series in the table (the overflow series not counted).
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Whether the table is at its limit.
    pub(crate) fn is_full(&self) -> bool {
        self.len() >= self.limit
    }

    /// Adds `series` unless the same key was added meanwhile (then that one is returned) or the
    /// table is full (then `None`).
    pub(crate) fn insert(
        &self,
        series: Arc<Series>,
        matches: impl Fn(&Series) -> bool,
    ) -> Option<Arc<Series>> {
        let mut map = self.map.write().recover();
        if let Some(s) = map.find(series.hash, |s| matches(s)) {
            return Some(Arc::clone(s));
        }
        if map.len() >= self.limit {
            return None;
        }
        map.insert_unique(series.hash, Arc::clone(&series), |s| s.hash);
        self.len.store(map.len(), Ordering::Release);
        self.changes.fetch_add(1, Ordering::AcqRel);
        Some(series)
    }

    /// The overflow series, made by `make` on first use (and again after it expired).
    pub(crate) fn overflow(&self, make: impl FnOnce() -> Arc<Series>) -> Arc<Series> {
        let mut o = self.overflow.lock().recover();
        match &*o {
            Some(s) if !s.cell.is_dead() => Arc::clone(s),
            _ => {
                let s = make();
                *o = Some(Arc::clone(&s));
                self.changes.fetch_add(1, Ordering::AcqRel);
                s
            }
        }
    }

    /// Whether a sweep at the limit is due (at most one per
    /// [`SWEEP_AT_LIMIT_EVERY`](crate::limits::SWEEP_AT_LIMIT_EVERY)); claims it when it is.
    pub(crate) fn claim_limit_sweep(&self, now: Duration) -> bool {
        if self.ttl.is_none() {
            return false;
        }
        let now = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
        let every = crate::limits::SWEEP_AT_LIMIT_EVERY.as_nanos() as u64;
        let last = self.last_limit_sweep.load(Ordering::Acquire);
        (last == 0 || now.saturating_sub(last) >= every)
            && self
                .last_limit_sweep
                .compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Removes the series idle for the TTL at time `now`: unpinned ones whose version has not
    /// moved since the sweep that last saw it move, at least the TTL ago.
    pub(crate) fn sweep(&self, now: Duration) -> Swept {
        let Some(ttl) = self.ttl else {
            return Swept::default();
        };
        let mut swept = Swept::default();
        {
            let mut map = self.map.write().recover();
            map.retain(|s| {
                let expired = s.expire_if_idle(now, ttl);
                swept.expired += usize::from(expired);
                !expired
            });
            self.len.store(map.len(), Ordering::Release);
        }
        {
            let mut o = self.overflow.lock().recover();
            if o.as_ref().is_some_and(|s| s.expire_if_idle(now, ttl)) {
                *o = None;
                swept.expired += 1;
            }
        }
        if swept.expired > 0 {
            self.changes.fetch_add(1, Ordering::AcqRel);
        }
        swept
    }

    /// The change count (see [`Store::changes`]).
    pub(crate) fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// Every live series, the overflow series last.
    pub(crate) fn snapshot(&self) -> Vec<Arc<Series>> {
        let mut out: Vec<Arc<Series>> = self.map.read().recover().iter().cloned().collect();
        if let Some(o) = self.overflow.lock().recover().as_ref() {
            out.push(Arc::clone(o));
        }
        out
    }

    /// Calls `f` with every live series, under the table's read lock (no clones).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Arc<Series>)) {
        for s in self.map.read().recover().iter() {
            f(s);
        }
        if let Some(o) = self.overflow.lock().recover().as_ref() {
            f(o);
        }
    }

    /// Poisons the table's lock with a panic (for tests of recovery).
    #[cfg(test)]
    pub(crate) fn poison_for_test(&self) {
        std::thread::scope(|scope| {
            let _ = scope
                .spawn(|| {
                    let _guard = self.map.write().unwrap();
                    panic!("poison the table on purpose");
                })
                .join();
        });
        assert!(self.map.is_poisoned());
    }
}
