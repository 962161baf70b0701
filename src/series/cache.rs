//! Each thread's cache of the series it records into: found with one hash probe in memory no
//! other thread writes, so threads recording into different series share no cache line (a
//! shared table's read lock alone would bounce between cores on every event).
//!
//! The cache holds series of every metric of the process, keyed like the metrics' own tables
//! (metric id, label set, values). A series that expiry removed is seen dead on its next record
//! and replaced from the metric's table, so the cache never keeps a count from its metric. It is
//! bounded ([`THREAD_SERIES_CACHE`]): when full it is emptied and refills on use.

use std::cell::RefCell;
use std::sync::Arc;

use hashbrown::HashTable;

use super::cell::Missed;
use super::{Metric, Series};
use crate::limits::THREAD_SERIES_CACHE;
use crate::value::DropReason;

thread_local! {
    static CACHE: RefCell<HashTable<Arc<Series>>> = const { RefCell::new(HashTable::new()) };
}

/// Runs `f` on the series of `values` (label set `set` of `metric`, whose hash is `hash`) until
/// it lands: from this thread's cache, else from the metric's table (then cached). A series
/// found dead (expired) is dropped from the cache and looked up again.
///
/// # Errors
/// The [`DropReason`] `f` reported.
#[inline]
pub(crate) fn with_series<R>(
    metric: &Metric,
    hash: u64,
    set: u32,
    values: &[&str],
    mut f: impl FnMut(&Arc<Series>) -> Result<R, Missed>,
) -> Result<R, DropReason> {
    let cached = CACHE.try_with(|cache| {
        // Re-entrant use (something inside `f` or the lookup logs a metric event) or use during
        // thread teardown take the table path below.
        let mut cache = cache.try_borrow_mut().ok()?;
        let is = |s: &Arc<Series>| s.is(metric.id, set, values);
        if let Some(s) = cache.find(hash, is) {
            match f(s) {
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
            match f(&s) {
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
            match f(&s) {
                Ok(r) => return Ok(r),
                Err(Missed::Dropped(reason)) => return Err(reason),
                Err(Missed::Dead) => continue,
            }
        },
    }
}
