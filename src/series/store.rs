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

use super::budget::SampleBudget;
use super::remembered::{Entry, Gone};
use super::{nanos, Series};
use crate::limits::REMEMBERED_FOR;

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Swept {
    /// Series removed (the overflow series included).
    pub(crate) expired: usize,
    /// Remembered values of expired series forgotten (past the bound or the horizon).
    pub(crate) forgotten: usize,
}

/// The live series, and the remembered values of expired ones (under one lock, so that a
/// series is remembered and its successor takes the value without a gap between the two).
#[derive(Debug)]
struct Tables {
    live: HashTable<Arc<Series>>,
    gone: Gone,
}

/// The overflow series, and what it held when it last expired.
#[derive(Debug, Default)]
struct Overflow {
    live: Option<Arc<Series>>,
    gone: Option<Entry>,
}

/// How a [`Store`] bounds its series.
#[derive(Debug, Clone)]
pub(crate) struct Bounds {
    /// Series in the table at most (the cardinality limit).
    pub(crate) limit: usize,
    /// `None`: series never expire.
    pub(crate) ttl: Option<Duration>,
    /// The node's sample budget, which every series of the metric draws from (`None` for the
    /// self-metrics, bounded by the program).
    pub(crate) budget: Option<Arc<SampleBudget>>,
    /// Samples one series of the metric carries in a scrape.
    pub(crate) cost: usize,
}

#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) limit: usize,
    /// `None`: series never expire.
    pub(crate) ttl: Option<Duration>,
    budget: Option<Arc<SampleBudget>>,
    cost: usize,
    map: RwLock<Tables>,
    overflow: Mutex<Overflow>,
    /// Bumped whenever a series is added or removed (the render keeps its sorted order while
    /// this stays the same).
    changes: AtomicU64,
    /// Clock reading (nanos) of the last sweep started at the limit.
    last_limit_sweep: AtomicU64,
    /// Series in the table (kept beside the map so the hot path's check needs no lock).
    len: AtomicUsize,
}

impl Store {
    pub(crate) fn new(bounds: Bounds) -> Self {
        if let Some(b) = &bounds.budget {
            b.reserve(bounds.cost); // the overflow series
        }
        Store {
            limit: bounds.limit,
            ttl: bounds.ttl,
            map: RwLock::new(Tables {
                live: HashTable::new(),
                // As many remembered as live: memory stays within twice the limit's.
                gone: Gone::new(bounds.limit),
            }),
            budget: bounds.budget,
            cost: bounds.cost,
            overflow: Mutex::new(Overflow::default()),
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
            .live
            .find(hash, |s| matches(s))
            .cloned()
    }

    /// Series in the table (the overflow series not counted).
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Remembered values of expired series.
    #[cfg(test)]
    pub(crate) fn remembered(&self) -> usize {
        self.map.read().recover().gone.len()
    }

    /// Whether a new series would not fit: the table is at its limit, or the node's sample
    /// budget has no room for it.
    pub(crate) fn is_full(&self) -> bool {
        self.len() >= self.limit || self.budget.as_ref().is_some_and(|b| !b.has_room(self.cost))
    }

    /// Adds `series` unless the same key was added meanwhile (then that one is returned) or
    /// it does not fit (then `None`). A series whose label set expired before continues from
    /// the remembered value.
    pub(crate) fn insert(
        &self,
        series: Arc<Series>,
        matches: impl Fn(&Series) -> bool,
    ) -> Option<Arc<Series>> {
        let mut tables = self.map.write().recover();
        if let Some(s) = tables.live.find(series.hash, |s| matches(s)) {
            return Some(Arc::clone(s));
        }
        if tables.live.len() >= self.limit {
            return None;
        }
        if let Some(b) = &self.budget {
            if !b.try_take(self.cost) {
                return None;
            }
        }
        let remembered = tables
            .gone
            .take(series.hash, |e| e.set == series.set && e.key == series.key);
        if let Some(e) = remembered {
            series.continue_from(&e);
        }
        tables
            .live
            .insert_unique(series.hash, Arc::clone(&series), |s| s.hash);
        self.len.store(tables.live.len(), Ordering::Release);
        self.changes.fetch_add(1, Ordering::AcqRel);
        Some(series)
    }

    /// The overflow series, made by `make` on first use (and again after it expired, then
    /// continuing from where it was).
    pub(crate) fn overflow(&self, make: impl FnOnce() -> Arc<Series>) -> Arc<Series> {
        let mut o = self.overflow.lock().recover();
        match &o.live {
            Some(s) if !s.cell.is_dead() => Arc::clone(s),
            _ => {
                let s = make();
                if let Some(e) = o.gone.take() {
                    s.continue_from(&e);
                }
                o.live = Some(Arc::clone(&s));
                self.changes.fetch_add(1, Ordering::AcqRel);
                s
            }
        }
    }

    /// The overflow series if it is live.
    pub(crate) fn overflow_series(&self) -> Option<Arc<Series>> {
        self.overflow
            .lock()
            .recover()
            .live
            .as_ref()
            .filter(|s| !s.cell.is_dead())
            .cloned()
    }

    /// Whether a sweep at the limit is due (at most one per
    /// [`SWEEP_AT_LIMIT_EVERY`](crate::limits::SWEEP_AT_LIMIT_EVERY)); claims it when it is.
    pub(crate) fn claim_limit_sweep(&self, now: Duration) -> bool {
        if self.ttl.is_none() {
            return false;
        }
        let now = nanos(now);
        let every = nanos(crate::limits::SWEEP_AT_LIMIT_EVERY);
        let last = self.last_limit_sweep.load(Ordering::Acquire);
        (last == 0 || now.saturating_sub(last) >= every)
            && self
                .last_limit_sweep
                .compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Removes the series idle for the TTL at time `now` (unpinned ones whose version has not
    /// moved since the sweep that last saw it move, at least the TTL ago), remembering what
    /// the counters and histograms among them held; forgets remembered values past the bound
    /// and the horizon.
    pub(crate) fn sweep(&self, now: Duration) -> Swept {
        let Some(ttl) = self.ttl else {
            return Swept::default();
        };
        let at = nanos(now);
        let mut swept = Swept::default();
        {
            let mut tables = self.map.write().recover();
            let mut gone = Vec::new();
            tables.live.retain(|s| match s.expire_if_idle(now, ttl) {
                Some(killed_at) => {
                    gone.extend(s.remembered(killed_at, at));
                    swept.expired += 1;
                    false
                }
                None => true,
            });
            self.len.store(tables.live.len(), Ordering::Release);
            swept.forgotten += tables.gone.remember(gone);
            swept.forgotten += tables.gone.forget_older(at, REMEMBERED_FOR);
        }
        if let Some(b) = &self.budget {
            b.give(swept.expired * self.cost);
        }
        {
            let mut o = self.overflow.lock().recover();
            if let Some(killed_at) = o.live.as_ref().and_then(|s| s.expire_if_idle(now, ttl)) {
                o.gone = o.live.take().and_then(|s| s.remembered(killed_at, at));
                swept.expired += 1;
            }
            if o.gone
                .as_ref()
                .is_some_and(|e| at.saturating_sub(e.gone_at) >= nanos(REMEMBERED_FOR))
            {
                o.gone = None;
                swept.forgotten += 1;
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
        let mut out: Vec<Arc<Series>> = self.map.read().recover().live.iter().cloned().collect();
        if let Some(o) = self.overflow.lock().recover().live.as_ref() {
            out.push(Arc::clone(o));
        }
        out
    }

    /// Calls `f` with every live series, under the table's read lock (no clones).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Arc<Series>)) {
        for s in self.map.read().recover().live.iter() {
            f(s);
        }
        if let Some(o) = self.overflow.lock().recover().live.as_ref() {
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
