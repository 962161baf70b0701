//! The caches in front of a metric's table: each callsite's cache of the few series it used
//! ([`CallsiteCache`]), then each thread's cache of the series it records into.
//!
//! Each thread's cache of the series it records into: found with one hash probe in memory no
//! other thread writes, so threads recording into different series share no cache line (a
//! shared table's read lock alone would bounce between cores on every event).
//!
//! The cache holds series of every metric of the process, keyed like the metrics' own tables
//! (metric id, label set, values). A series that expiry removed is seen dead on its next record
//! and replaced from the metric's table, so the cache never keeps a count from its metric. It is
//! bounded ([`THREAD_SERIES_CACHE`]): when full it is emptied and refills on use.

use super::label_set::LabelSetId;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use hashbrown::HashTable;

use super::cell::Missed;
use super::key::LabelKey;
use super::Series;
use crate::limits::{CALLSITE_SERIES, THREAD_SERIES_CACHE};
use crate::value::DropReason;

thread_local! {
    static CACHE: RefCell<HashTable<Arc<Series>>> = const { RefCell::new(HashTable::new()) };
}

/// What [`with_series`] does with the series it finds: a closure, or a named type that marks
/// its [`OnSeries::on`] `#[inline(always)]` for the hot path (the compiler keeps a closure that
/// is called in several places out of line, which costs a counter event a call and its
/// register saves).
pub(crate) trait OnSeries<R> {
    /// Does it: the result, or why the series missed it.
    ///
    /// # Errors
    /// [`Missed::Dead`] makes [`with_series`] look again; [`Missed::Dropped`] ends it.
    fn on(&mut self, s: &Arc<Series>) -> Result<R, Missed>;
}

impl<R, F: FnMut(&Arc<Series>) -> Result<R, Missed>> OnSeries<R> for F {
    #[inline]
    fn on(&mut self, s: &Arc<Series>) -> Result<R, Missed> {
        self(s)
    }
}

/// The table behind the caches: a metric's own series, by label set and values.
pub(crate) trait SeriesTable {
    /// The metric's process-unique id (the caches hold series of every metric).
    fn id(&self) -> u32;

    /// The series of `values` (label set `set`, whose hash is `hash`), created when missing
    /// (or the overflow series).
    fn lookup<V: AsRef<[u8]>>(&self, hash: u64, set: LabelSetId, values: &[V]) -> Arc<Series>;
}

/// Runs `f` on the series of `values` (label set `set` of `metric`, whose hash is `hash`) until
/// it lands: from this thread's cache, else from the metric's table (then cached). A series
/// found dead (expired) is dropped from the cache and looked up again.
///
/// # Errors
/// The [`DropReason`] `f` reported.
#[inline]
pub(crate) fn with_series<R, V: AsRef<[u8]>>(
    metric: &impl SeriesTable,
    hash: u64,
    set: LabelSetId,
    values: &[V],
    mut f: impl OnSeries<R>,
) -> Result<R, DropReason> {
    let cached = CACHE.try_with(|cache| {
        // Re-entrant use (something inside `f` or the lookup logs a metric event) or use during
        // thread teardown take the table path below.
        let mut cache = cache.try_borrow_mut().ok()?;
        let is = |s: &Arc<Series>| s.is(metric.id(), set, values);
        if let Some(s) = cache.find(hash, is) {
            match f.on(s) {
                Ok(r) => return Some(Ok(r)),
                Err(Missed::Dropped(reason)) => return Some(Err(reason)),
                Err(Missed::Dead) => {
                    if let Ok(entry) = cache.find_entry(hash, is) {
                        entry.remove();
                    }
                }
            }
        }
        loop {
            let s = metric.lookup(hash, set, values);
            match f.on(&s) {
                Ok(r) => {
                    if !s.is_overflow() {
                        if cache.len() >= THREAD_SERIES_CACHE {
                            cache.clear();
                        }
                        cache.insert_unique(hash, s, |s| s.hash);
                    }
                    return Some(Ok(r));
                }
                Err(Missed::Dropped(reason)) => return Some(Err(reason)),
                // Removed between the lookup and the record: the table has a new one by now.
                Err(Missed::Dead) => continue,
            }
        }
    });
    match cached {
        Ok(Some(r)) => r,
        _ => loop {
            let s = metric.lookup(hash, set, values);
            match f.on(&s) {
                Ok(r) => return Ok(r),
                Err(Missed::Dropped(reason)) => return Err(reason),
                Err(Missed::Dead) => continue,
            }
        },
    }
}

/// The first few series one callsite's action used ([`CALLSITE_SERIES`]), found by comparing
/// values (no hash, no thread-local, no shared write): most callsites keep hitting a few label
/// sets, e.g. one per thread of a pool, or a handful of operations. Slots fill in order, once
/// each, and are never replaced: a slot whose series has expired is passed over (its successor
/// is found in the thread's cache, and takes a free slot if one is left).
///
/// A callsite that meets a value none of its full slots holds is *wide* (many live values, e.g.
/// one per channel or relay): the flag is set once and from then on the callsite goes straight
/// to the thread's cache, without comparing against its slots. That one write is the only one
/// after the slots fill, so threads keep reading memory nobody writes.
///
/// Each slot keeps its own copy of the series' label values: a thread whose values differ
/// finds that out from memory nobody writes, never from the series, whose value another
/// thread may be writing on the same cache line.
#[derive(Debug, Default)]
pub(crate) struct CallsiteCache {
    wide: AtomicBool,
    slots: [OnceLock<Slot>; CALLSITE_SERIES],
}

#[derive(Debug)]
struct Slot {
    set: LabelSetId,
    key: LabelKey,
    series: Arc<Series>,
}

impl CallsiteCache {
    /// The live series of `values`, if one of this callsite's slots holds it. Marks the
    /// callsite wide when every slot holds another label set (one holding `values`' expired
    /// series does not count as another).
    #[inline]
    pub(crate) fn get(&self, set: LabelSetId, values: &[&[u8]]) -> Option<&Series> {
        if self.wide.load(Ordering::Relaxed) {
            return None;
        }
        let mut expired = false;
        for slot in &self.slots {
            // Slots fill in order: past the first empty one there is nothing.
            let s = slot.get()?;
            if s.set == set && s.key.eq_values(values) {
                if !s.series.cell.is_dead() {
                    return Some(&s.series);
                }
                // Expired: a later slot may hold its successor.
                expired = true;
            }
        }
        // A value whose slot expired is not a new value: only more values than slots make
        // the callsite wide (else a few values that idle and come back would, in time).
        if !expired {
            self.wide.store(true, Ordering::Relaxed);
        }
        None
    }

    /// Keeps `series` in the first free slot, if any and the callsite is not wide (never the
    /// overflow series: each of its uses must be counted).
    #[inline(always)]
    pub(crate) fn put(&self, series: &Arc<Series>) {
        // A wide callsite (the common case here: one that keeps missing its slots) returns
        // without a call.
        if self.wide.load(Ordering::Relaxed) || series.is_overflow() {
            return;
        }
        self.fill(series);
    }

    /// [`CallsiteCache::put`]'s rare part: a free slot takes `series`.
    #[inline(never)]
    fn fill(&self, series: &Arc<Series>) {
        if let Some(free) = self.slots.iter().find(|s| s.get().is_none()) {
            // A racing thread may have taken this slot: then this series waits for the next
            // miss (it is in the thread's cache meanwhile).
            let _ = free.set(Slot {
                set: series.set,
                key: series.key.clone(),
                series: Arc::clone(series),
            });
        }
    }

    /// Whether the callsite stopped using its slots (tests).
    #[cfg(test)]
    pub(crate) fn is_wide(&self) -> bool {
        self.wide.load(Ordering::Relaxed)
    }
}
