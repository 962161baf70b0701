//! Exemplars: the trace and span of a recent measurement, kept per histogram bucket (or per
//! counter series) so that OpenMetrics can link a sample to the trace that landed in it.
//!
//! Each slot is a small seqlock of atomics: a writer claims the slot by moving its sequence
//! from even to odd (a writer that finds it odd skips this exemplar: exemplars are samples, and
//! the hot path never waits), stores the fields, and makes the sequence even again; a reader
//! takes the fields only when the sequence was even and unchanged around its reads.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::TraceContextExt as _;

use super::cell::CellKind;

/// The OpenTelemetry trace context of the current thread (tracing-opentelemetry's layer
/// activates a span's context when the span is entered), read at most once per event and only
/// when a metric that keeps exemplars is recorded.
#[derive(Debug, Default)]
pub(crate) struct TraceContext(Option<Option<(u128, u64)>>);

impl TraceContext {
    /// Not read yet.
    pub(crate) const fn new() -> Self {
        TraceContext(None)
    }

    /// The trace and span id of the current context, if it carries a valid one.
    pub(crate) fn get(&mut self) -> Option<(u128, u64)> {
        *self.0.get_or_insert_with(current)
    }
}

/// Reads the current context. The SDK's context is a thread-local `RefCell` that panics when
/// borrowed during a re-entrant attach or read during thread teardown: such a read gives no
/// exemplar instead of unwinding into dchat.
fn current() -> Option<(u128, u64)> {
    catch_unwind(AssertUnwindSafe(|| {
        opentelemetry::Context::map_current(|cx| {
            let span = cx.span();
            let sc = span.span_context();
            sc.is_valid().then(|| {
                (
                    u128::from_be_bytes(sc.trace_id().to_bytes()),
                    u64::from_be_bytes(sc.span_id().to_bytes()),
                )
            })
        })
    }))
    .ok()
    .flatten()
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Seconds since the Unix epoch, now.
pub(crate) fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One exemplar as read for rendering.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Exemplar {
    pub(crate) trace_id: u128,
    pub(crate) span_id: u64,
    pub(crate) value: f64,
    /// Seconds since the Unix epoch.
    pub(crate) timestamp: f64,
}

#[derive(Debug, Default)]
struct Slot {
    seq: AtomicU64,
    trace_hi: AtomicU64,
    trace_lo: AtomicU64,
    span: AtomicU64,
    value: AtomicU64,
    timestamp: AtomicU64,
}

/// The exemplar slots of one series.
#[derive(Debug)]
pub(crate) struct Exemplars {
    slots: Box<[Slot]>,
}

impl Exemplars {
    /// One slot per bucket (the `+Inf` bucket included) for histograms, one for other kinds.
    pub(crate) fn new(kind: &CellKind) -> Self {
        let n = match kind {
            CellKind::Histogram(bounds) => bounds.len() + 1,
            _ => 1,
        };
        Exemplars {
            slots: (0..n).map(|_| Slot::default()).collect(),
        }
    }

    /// Keeps `e` in slot `i` (out of range: ignored); skipped when another writer holds it.
    pub(crate) fn store(&self, i: usize, e: &Exemplar) {
        let Some(slot) = self.slots.get(i) else {
            return;
        };
        let seq = slot.seq.load(Ordering::Relaxed);
        if seq % 2 == 1
            || slot
                .seq
                .compare_exchange(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        // The odd sequence is visible before any field changes.
        std::sync::atomic::fence(Ordering::Release);
        slot.trace_hi
            .store((e.trace_id >> 64) as u64, Ordering::Relaxed);
        slot.trace_lo.store(e.trace_id as u64, Ordering::Relaxed);
        slot.span.store(e.span_id, Ordering::Relaxed);
        slot.value.store(e.value.to_bits(), Ordering::Relaxed);
        slot.timestamp
            .store(e.timestamp.to_bits(), Ordering::Relaxed);
        slot.seq.store(seq + 2, Ordering::Release);
    }

    /// The exemplar in slot `i`, if one was ever stored and no writer is storing one now.
    pub(crate) fn load(&self, i: usize) -> Option<Exemplar> {
        let slot = self.slots.get(i)?;
        for _ in 0..4 {
            let before = slot.seq.load(Ordering::Acquire);
            if before == 0 {
                return None;
            }
            if before % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let e = Exemplar {
                trace_id: (u128::from(slot.trace_hi.load(Ordering::Relaxed)) << 64)
                    | u128::from(slot.trace_lo.load(Ordering::Relaxed)),
                span_id: slot.span.load(Ordering::Relaxed),
                value: f64::from_bits(slot.value.load(Ordering::Relaxed)),
                timestamp: f64::from_bits(slot.timestamp.load(Ordering::Relaxed)),
            };
            std::sync::atomic::fence(Ordering::Acquire);
            if slot.seq.load(Ordering::Relaxed) == before {
                return Some(e);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn stores_and_loads_per_slot() {
        let x = Exemplars::new(&CellKind::Histogram([1.0, 2.0].into()));
        assert_eq!(x.load(0), None);
        let e = Exemplar {
            trace_id: u128::MAX - 7,
            span_id: 42,
            value: 0.5,
            timestamp: 1.7e9,
        };
        x.store(2, &e);
        x.store(9, &e);
        assert_eq!(x.load(2), Some(e));
        assert_eq!(x.load(1), None);
        assert_eq!(x.load(9), None);
    }

    #[test]
    fn readers_never_see_a_torn_exemplar() {
        let x = Arc::new(Exemplars::new(&CellKind::CounterU64));
        let writers: Vec<_> = (1..=2u64)
            .map(|w| {
                let x = Arc::clone(&x);
                std::thread::spawn(move || {
                    for i in 0..20_000u64 {
                        let n = w * 1_000_000 + i;
                        x.store(
                            0,
                            &Exemplar {
                                trace_id: u128::from(n) << 64 | u128::from(n),
                                span_id: n,
                                value: n as f64,
                                timestamp: n as f64,
                            },
                        );
                    }
                })
            })
            .collect();
        for _ in 0..20_000 {
            if let Some(e) = x.load(0) {
                let n = e.span_id;
                assert_eq!(e.trace_id, u128::from(n) << 64 | u128::from(n));
                assert_eq!((e.value, e.timestamp), (n as f64, n as f64));
            }
        }
        for w in writers {
            w.join().unwrap();
        }
    }
}
