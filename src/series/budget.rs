//! The node-wide sample budget: how many samples the rules' series may carry in one scrape.
//!
//! Prometheus drops a target's whole scrape when it carries more samples than the scrape's
//! `sample_limit` (every metric of the node is then gone, `up` is 0). The per-metric cardinality
//! limit cannot prevent that on its own: a histogram series is many samples, and several metrics
//! fill at once. So every new series of a rule's metric takes its samples from one budget
//! shared by all of them (a histogram its buckets, `+Inf`, `_sum` and `_count`), and gives them
//! back when it expires; a new label set that does not fit folds into its metric's overflow
//! series, whose samples each metric reserves when it is made.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Samples the rules' series hold, against the budget.
#[derive(Debug)]
pub(crate) struct SampleBudget {
    limit: usize,
    used: AtomicUsize,
    /// Set when a series was refused for want of room; cleared when expiry gives room back.
    refused: AtomicBool,
}

impl SampleBudget {
    pub(crate) fn new(limit: usize) -> Self {
        SampleBudget {
            limit,
            used: AtomicUsize::new(0),
            refused: AtomicBool::new(false),
        }
    }

    /// The budget.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Samples held now (reservations included).
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// Takes `n` samples if they fit; `false` (and the budget is marked full) when they do not.
    pub(crate) fn try_take(&self, n: usize) -> bool {
        let took = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|&t| t <= self.limit)
            })
            .is_ok();
        if !took {
            self.refused.store(true, Ordering::Release);
        }
        took
    }

    /// Whether `n` more samples fit now; when they do not, the budget is marked full (a new
    /// series is about to be refused).
    pub(crate) fn has_room(&self, n: usize) -> bool {
        let room = self.used().saturating_add(n) <= self.limit;
        if !room {
            self.refused.store(true, Ordering::Release);
        }
        room
    }

    /// Takes `n` samples whether or not they fit: a metric's overflow series, which must exist
    /// for its folded label sets (bounded by the number of metrics, which the code fixes).
    pub(crate) fn reserve(&self, n: usize) {
        self.used.fetch_add(n, Ordering::AcqRel);
    }

    /// Gives back `n` samples of expired series.
    pub(crate) fn give(&self, n: usize) {
        if n == 0 {
            return;
        }
        let r = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| u.checked_sub(n));
        debug_assert!(r.is_ok(), "gave back more samples than were taken");
        self.refused.store(false, Ordering::Release);
    }

    /// Takes `n` samples if they fit, without marking the budget full: another registry's
    /// family that does not fit is reported on its own (`/health` names it).
    pub(crate) fn try_take_quietly(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|&t| t <= self.limit)
            })
            .is_ok()
    }

    /// Gives back `n` samples taken with [`SampleBudget::try_take_quietly`] (another registry's,
    /// taken again at each scrape): the mark of a refused series stays, since no series expired.
    pub(crate) fn give_quietly(&self, n: usize) {
        let r = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| u.checked_sub(n));
        debug_assert!(r.is_ok(), "gave back more samples than were taken");
    }

    /// Whether a series was refused since room was last given back: `/health` warns while so.
    pub(crate) fn is_full(&self) -> bool {
        self.refused.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_what_fits_and_reports_full_until_room_comes_back() {
        let b = SampleBudget::new(10);
        assert!(b.try_take(4));
        assert!(b.try_take(6));
        assert!(!b.is_full());
        assert!(!b.try_take(1));
        assert!(b.is_full());
        assert!(!b.has_room(1));
        b.give(4);
        assert!(!b.is_full());
        assert!(b.try_take(3));
        assert_eq!(b.used(), 9);
        b.reserve(5);
        assert_eq!(b.used(), 14, "a reservation is taken even past the budget");
        assert!(!b.try_take(1));
    }

    #[test]
    fn threads_never_take_more_than_the_budget() {
        let b = std::sync::Arc::new(SampleBudget::new(1000));
        let taken: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    let b = &b;
                    s.spawn(move || (0..1000).filter(|_| b.try_take(3)).count() * 3)
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(taken, 999);
        assert_eq!(b.used(), 999);
    }
}
