//! One series' value in atomics: what recording changes and what rendering reads.
//!
//! Every cell has a *version word*: it changes with every update that changes something, and
//! its top bit ([`DEAD`]) marks a series that expiry removed. Expiry kills a series by
//! compare-and-swapping the version word from the value it saw at its previous sweep to that
//! value with `DEAD` set, so an update that lands in between makes the kill fail; an update
//! after the kill sees `DEAD` and is recorded again into the series that replaces it. No count
//! is lost either way. For integer counters the value itself is the version word (one atomic
//! add per record), for float counters its bits (non-negative, so the sign bit is free); the
//! other kinds keep a separate update count on the same cache line.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::rate::RateWindow;
use super::remembered::Remembered;
use crate::value::{DropReason, Num};

/// The version word's "removed by expiry" bit.
pub(crate) const DEAD: u64 = 1 << 63;

/// Largest value an integer counter holds; an increment past it is dropped as out of range (so
/// that a counter can never reach [`DEAD`] by counting).
const MAX_COUNTER: u64 = 1 << 62;

/// Why a record did not land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missed {
    /// The series was removed by expiry: record into its replacement.
    Dead,
    /// The value cannot be recorded (counted in `dchat_telemetry_values_dropped_total`).
    Dropped(DropReason),
}

impl From<DropReason> for Missed {
    fn from(r: DropReason) -> Self {
        Missed::Dropped(r)
    }
}

/// What kind of value a metric's series hold.
#[derive(Debug, Clone)]
pub(crate) enum CellKind {
    CounterU64,
    CounterF64,
    UpDown,
    Gauge,
    Histogram(Arc<[f64]>),
    Rate { window_secs: u32, origin: Instant },
}

/// An explicit-bucket histogram.
#[derive(Debug)]
pub(crate) struct HistogramCell {
    pub(crate) bounds: Arc<[f64]>,
    /// Observations so far; the version word.
    count: AtomicU64,
    /// Sum of observations, as `f64` bits.
    sum: AtomicU64,
    /// Per-bucket (not cumulative) counts; the last is above every bound.
    buckets: Box<[AtomicU64]>,
}

/// A histogram as read for one render: cumulative bucket counts, then count and sum.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HistogramSnapshot {
    /// Cumulative count per finite bound.
    pub(crate) cumulative: Vec<u64>,
    /// Observations in all (the `+Inf` bucket); never below the last cumulative count.
    pub(crate) count: u64,
    pub(crate) sum: f64,
}

/// One series' value.
#[derive(Debug)]
pub(crate) enum Cell {
    CounterU64(AtomicU64),
    CounterF64(AtomicU64),
    UpDown {
        version: AtomicU64,
        value: AtomicI64,
    },
    Gauge {
        version: AtomicU64,
        bits: AtomicU64,
    },
    Histogram(HistogramCell),
    Rate {
        version: AtomicU64,
        window: RateWindow,
    },
}

/// A value read for rendering.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reading {
    Counter(f64),
    CounterInt(u64),
    Gauge(f64),
    GaugeInt(i64),
    Histogram(HistogramSnapshot),
}

impl Cell {
    pub(crate) fn new(kind: &CellKind) -> Self {
        match kind {
            CellKind::CounterU64 => Cell::CounterU64(AtomicU64::new(0)),
            CellKind::CounterF64 => Cell::CounterF64(AtomicU64::new(0f64.to_bits())),
            CellKind::UpDown => Cell::UpDown {
                version: AtomicU64::new(0),
                value: AtomicI64::new(0),
            },
            CellKind::Gauge => Cell::Gauge {
                version: AtomicU64::new(0),
                bits: AtomicU64::new(0f64.to_bits()),
            },
            CellKind::Histogram(bounds) => Cell::Histogram(HistogramCell {
                bounds: Arc::clone(bounds),
                count: AtomicU64::new(0),
                sum: AtomicU64::new(0f64.to_bits()),
                buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            }),
            CellKind::Rate {
                window_secs,
                origin,
            } => Cell::Rate {
                version: AtomicU64::new(0),
                window: RateWindow::new(*window_secs, *origin),
            },
        }
    }

    /// Records one measurement, converted to what the cell holds.
    ///
    /// # Errors
    /// [`Missed::Dead`] when expiry removed the series (nothing was recorded that matters: the
    /// caller records into the replacement); [`Missed::Dropped`] when the value does not fit.
    // Always inlined: every matched event calls it, and out of line the call and its register
    // saves are a measurable share of a counter event (`scripts/instructions` guards it).
    #[inline(always)]
    pub(crate) fn record(&self, value: Num) -> Result<(), Missed> {
        match self {
            Cell::CounterU64(v) => {
                let n = value.to_counter_u64()?;
                let prev = v.fetch_add(n, Ordering::AcqRel);
                if prev & DEAD != 0 {
                    return Err(Missed::Dead);
                }
                if prev + n > MAX_COUNTER {
                    v.fetch_sub(n, Ordering::AcqRel);
                    return Err(Missed::Dropped(DropReason::OutOfRange));
                }
                Ok(())
            }
            Cell::CounterF64(bits) => {
                let n = value.to_counter_f64()?;
                let mut cur = bits.load(Ordering::Acquire);
                loop {
                    if cur & DEAD != 0 {
                        return Err(Missed::Dead);
                    }
                    let next = f64::from_bits(cur) + n;
                    if !next.is_finite() {
                        return Err(Missed::Dropped(DropReason::OutOfRange));
                    }
                    match bits.compare_exchange_weak(
                        cur,
                        next.to_bits(),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => return Ok(()),
                        Err(now) => cur = now,
                    }
                }
            }
            Cell::UpDown { version, value: v } => {
                let d = value.to_i64()?;
                if version.fetch_add(1, Ordering::AcqRel) & DEAD != 0 {
                    return Err(Missed::Dead);
                }
                // An update that would wrap is dropped; the version moved anyway (harmless).
                v.fetch_update(Ordering::AcqRel, Ordering::Acquire, |x| x.checked_add(d))
                    .map(|_| ())
                    .map_err(|_| Missed::Dropped(DropReason::OutOfRange))
            }
            Cell::Gauge { version, bits } => {
                let x = value.to_f64()?;
                if version.fetch_add(1, Ordering::AcqRel) & DEAD != 0 {
                    return Err(Missed::Dead);
                }
                bits.store(x.to_bits(), Ordering::Release);
                Ok(())
            }
            Cell::Histogram(h) => h.record(value.to_f64()?),
            Cell::Rate { version, window } => {
                let n = value.to_counter_u64()?;
                if version.fetch_add(1, Ordering::AcqRel) & DEAD != 0 {
                    return Err(Missed::Dead);
                }
                window.record(n);
                Ok(())
            }
        }
    }

    /// The version word.
    fn version_word(&self) -> &AtomicU64 {
        match self {
            Cell::CounterU64(v) | Cell::CounterF64(v) => v,
            Cell::UpDown { version, .. }
            | Cell::Gauge { version, .. }
            | Cell::Rate { version, .. } => version,
            Cell::Histogram(h) => &h.count,
        }
    }

    /// The current version (what expiry compares between sweeps).
    pub(crate) fn version(&self) -> u64 {
        self.version_word().load(Ordering::Acquire) & !DEAD
    }

    /// Marks the series removed if its version is still `seen`; `false` when it changed (an
    /// update landed since) or it is dead already.
    pub(crate) fn try_kill(&self, seen: u64) -> bool {
        self.version_word()
            .compare_exchange(seen, seen | DEAD, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// What a monotonic cell (a counter or a histogram) held when expiry killed it at version
    /// `killed_at` (what [`Cell::try_kill`] swapped), for a returning series to continue from;
    /// `None` for the other kinds, whose value is a level rather than a running total.
    ///
    /// Records that raced the kill saw [`DEAD`] and went to the replacement, so the counts
    /// they moved on this cell are not part of it: the count is the killed version, and a
    /// histogram's buckets and sum are only touched by records that did not see `DEAD`.
    pub(crate) fn remember(&self, killed_at: u64) -> Option<Remembered> {
        match self {
            Cell::CounterU64(_) => Some(Remembered::Int(killed_at)),
            Cell::CounterF64(_) => Some(Remembered::Float(killed_at)),
            Cell::Histogram(h) => Some(Remembered::Histogram {
                buckets: h
                    .buckets
                    .iter()
                    .map(|b| b.load(Ordering::Acquire))
                    .collect(),
                count: killed_at,
                sum_bits: h.sum.load(Ordering::Acquire),
            }),
            Cell::UpDown { .. } | Cell::Gauge { .. } | Cell::Rate { .. } => None,
        }
    }

    /// Starts a new cell (nothing recorded into it yet) from what its label set's expired
    /// series held. A value of another shape (cannot happen: a metric's cells all have one
    /// kind) is ignored.
    pub(crate) fn restore(&self, r: &Remembered) {
        match (self, r) {
            (Cell::CounterU64(v), Remembered::Int(n)) => v.store(*n, Ordering::Release),
            (Cell::CounterF64(v), Remembered::Float(bits)) => v.store(*bits, Ordering::Release),
            (
                Cell::Histogram(h),
                Remembered::Histogram {
                    buckets,
                    count,
                    sum_bits,
                },
            ) if buckets.len() == h.buckets.len() => {
                for (b, n) in h.buckets.iter().zip(buckets.iter()) {
                    b.store(*n, Ordering::Release);
                }
                h.sum.store(*sum_bits, Ordering::Release);
                // The count last: it is the version word, never behind the buckets.
                h.count.store(*count, Ordering::Release);
            }
            _ => debug_assert!(false, "a remembered value of another kind: {r:?}"),
        }
    }

    /// Whether expiry removed the series.
    pub(crate) fn is_dead(&self) -> bool {
        self.version_word().load(Ordering::Acquire) & DEAD != 0
    }

    /// The value, as rendered.
    pub(crate) fn read(&self) -> Reading {
        match self {
            Cell::CounterU64(v) => Reading::CounterInt(v.load(Ordering::Acquire) & !DEAD),
            Cell::CounterF64(bits) => {
                Reading::Counter(f64::from_bits(bits.load(Ordering::Acquire) & !DEAD))
            }
            Cell::UpDown { value, .. } => Reading::GaugeInt(value.load(Ordering::Acquire)),
            Cell::Gauge { bits, .. } => {
                Reading::Gauge(f64::from_bits(bits.load(Ordering::Acquire)))
            }
            Cell::Histogram(h) => Reading::Histogram(h.snapshot()),
            Cell::Rate { window, .. } => Reading::Gauge(window.per_second()),
        }
    }
}

impl HistogramCell {
    /// The index of the bucket `v` falls in: the first bound `>= v` (Prometheus' `le`).
    #[inline]
    pub(crate) fn bucket_of(&self, v: f64) -> usize {
        let b = &self.bounds;
        if b.len() <= crate::limits::LINEAR_BUCKET_SEARCH {
            b.iter().position(|&x| v <= x).unwrap_or(b.len())
        } else {
            b.partition_point(|&x| x < v)
        }
    }

    #[inline]
    fn record(&self, v: f64) -> Result<(), Missed> {
        let i = self.bucket_of(v);
        // The count first: it is the version word, and a render that reads the buckets before
        // the count never sees a bucket ahead of the count.
        if self.count.fetch_add(1, Ordering::AcqRel) & DEAD != 0 {
            return Err(Missed::Dead);
        }
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Ordering::Release);
        }
        let mut cur = self.sum.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(cur) + v).to_bits();
            match self
                .sum
                .compare_exchange_weak(cur, next, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(now) => cur = now,
            }
        }
    }

    fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = Vec::with_capacity(self.bounds.len());
        let mut acc = 0u64;
        for b in self.buckets.iter().take(self.bounds.len()) {
            acc += b.load(Ordering::Acquire);
            cumulative.push(acc);
        }
        let sum = f64::from_bits(self.sum.load(Ordering::Acquire));
        let count = (self.count.load(Ordering::Acquire) & !DEAD).max(acc);
        HistogramSnapshot {
            cumulative,
            count,
            sum,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(bounds: &[f64]) -> Cell {
        Cell::new(&CellKind::Histogram(bounds.into()))
    }

    #[test]
    fn counters_count_and_refuse_what_does_not_fit() {
        let c = Cell::new(&CellKind::CounterU64);
        c.record(Num::U64(2)).unwrap();
        c.record(Num::U64(3)).unwrap();
        assert_eq!(c.read(), Reading::CounterInt(5));
        assert_eq!(
            c.record(Num::I64(-1)),
            Err(Missed::Dropped(DropReason::Negative))
        );
        for _ in 0..(MAX_COUNTER >> 53) {
            let _ = c.record(Num::U64(1 << 53));
        }
        assert_eq!(
            c.record(Num::U64(1 << 53)),
            Err(Missed::Dropped(DropReason::OutOfRange)),
            "a counter never counts into its dead bit"
        );
        assert!(!c.is_dead());
        let f = Cell::new(&CellKind::CounterF64);
        f.record(Num::F64(0.25)).unwrap();
        f.record(Num::U64(1)).unwrap();
        assert_eq!(f.read(), Reading::Counter(1.25));
        assert_eq!(f.record(Num::F64(f64::MAX)), Ok(()), "finite so far");
        assert_eq!(
            f.record(Num::F64(f64::MAX)),
            Err(Missed::Dropped(DropReason::OutOfRange))
        );
    }

    #[test]
    fn a_kill_fails_after_an_update_and_updates_after_a_kill_see_it() {
        for kind in [
            CellKind::CounterU64,
            CellKind::CounterF64,
            CellKind::UpDown,
            CellKind::Gauge,
            CellKind::Histogram([1.0].into()),
            CellKind::Rate {
                window_secs: 10,
                origin: Instant::now(),
            },
        ] {
            let c = Cell::new(&kind);
            let seen = c.version();
            c.record(Num::U64(1)).unwrap();
            assert!(!c.try_kill(seen), "{kind:?}: updated since the sweep");
            let seen = c.version();
            assert!(c.try_kill(seen), "{kind:?}");
            assert!(c.is_dead());
            assert_eq!(c.record(Num::U64(1)), Err(Missed::Dead), "{kind:?}");
            assert!(!c.try_kill(c.version()), "{kind:?}: dead already");
        }
    }

    #[test]
    fn up_down_counters_refuse_to_wrap() {
        let c = Cell::new(&CellKind::UpDown);
        c.record(Num::I64(i64::MAX)).unwrap();
        assert_eq!(
            c.record(Num::I64(1)),
            Err(Missed::Dropped(DropReason::OutOfRange))
        );
        c.record(Num::I64(-1)).unwrap();
        assert_eq!(c.read(), Reading::GaugeInt(i64::MAX - 1));
    }

    #[test]
    fn histogram_buckets_are_le_and_cumulative() {
        let h = hist(&[0.1, 1.0, 10.0]);
        for v in [0.05, 0.1, 0.5, 1.0, 5.0, 50.0] {
            h.record(Num::F64(v)).unwrap();
        }
        let Reading::Histogram(s) = h.read() else {
            panic!()
        };
        assert_eq!(s.cumulative, [2, 4, 5]);
        assert_eq!(s.count, 6);
        assert!((s.sum - 56.65).abs() < 1e-9);
        assert_eq!(
            h.record(Num::F64(f64::NAN)),
            Err(Missed::Dropped(DropReason::NotFinite))
        );
        let many: Vec<f64> = (1..40).map(f64::from).collect();
        let Cell::Histogram(big) = hist(&many) else {
            panic!()
        };
        assert_eq!(big.bucket_of(0.5), 0);
        assert_eq!(big.bucket_of(1.0), 0);
        assert_eq!(big.bucket_of(1.5), 1);
        assert_eq!(big.bucket_of(100.0), many.len());
    }

    #[test]
    fn concurrent_records_are_all_counted() {
        let c = Arc::new(hist(&[1.0]));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let c = Arc::clone(&c);
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        c.record(Num::F64(0.5)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let Reading::Histogram(s) = c.read() else {
            panic!()
        };
        assert_eq!(
            (s.count, s.cumulative[0], s.sum),
            (40_000, 40_000, 20_000.0)
        );
    }
}
