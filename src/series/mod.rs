//! Series: every metric's label sets and their values, kept by this crate.
//!
//! A [`Metric`] is a definition plus a [`Store`](store::Store) of [`Series`], one per distinct
//! label set; a series holds its value in atomics ([`cell`]). Recording finds the series in the
//! recording thread's own cache ([`cache`]) and updates it with one or two atomic operations,
//! so threads writing different series share no cache line. The cardinality limit is enforced
//! by the store (past it, one overflow series, `otel_metric_overflow="true"`, and
//! `dchat_telemetry_label_sets_dropped_total{metric}` rises), and idle series expire after the
//! series TTL. The OpenTelemetry SDK sees the same series through the instruments of
//! [`crate::otel`], which learns of each metric as an [`Observer`]; the exposition is rendered
//! from here. Nothing here imports the rule model, the layer, the exposition or `otel`.

pub(crate) mod budget;
pub(crate) mod cache;
pub(crate) mod cell;
pub(crate) mod exemplar;
pub(crate) mod key;
mod label_set;
mod metric;
mod observer;
pub(crate) mod parked;
pub(crate) mod rate;
mod registry;
pub(crate) mod remembered;
mod settings;
pub(crate) mod store;

pub(crate) use label_set::{attributes, LabelSetId, OVERFLOW_SET};
pub(crate) use metric::Metric;
#[cfg(test)]
pub(crate) use observer::NoObserver;
pub(crate) use observer::Observer;
pub(crate) use registry::Metrics;
pub(crate) use settings::Settings;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::metrics::BoundHistogram;
use opentelemetry::KeyValue;

use crate::value::Num;
use cell::{Cell, Missed};
use exemplar::{Exemplar, Exemplars, TraceContext};
use key::LabelKey;

pub(crate) use crate::labels::OVERFLOW_LABEL;

/// One label set of one metric.
pub(crate) struct Series {
    /// The metric's process-unique id (series of every metric share the threads' caches).
    pub(crate) metric: u32,
    /// The label-name list ([`Metric::label_set_id`]); [`OVERFLOW_SET`] for the overflow series.
    pub(crate) set: LabelSetId,
    pub(crate) hash: u64,
    pub(crate) key: LabelKey,
    /// The value.
    pub(crate) cell: Cell,
    /// Open spans holding this (gauge) series: a pinned series never expires.
    pins: AtomicU32,
    /// Expiry's view, touched only by sweeps: the version last seen and when it last moved
    /// (clock nanos).
    seen: AtomicU64,
    changed_at: AtomicU64,
    /// When the label set's first series was created (Unix milliseconds; OpenMetrics
    /// `_created`), kept across expiry and return.
    created_ms: AtomicU64,
    /// A counter's value (an `f64`'s bits for a float counter) when it continued an expired
    /// series of its label set; 0 otherwise. OpenTelemetry readers that take deltas are
    /// reported the value less this.
    continued_from: AtomicU64,
    /// The OpenTelemetry SDK's bound histogram, when a reader besides the exposition wants
    /// histograms (counters and gauges reach the SDK through observable instruments).
    otel: Option<BoundHistogram<f64>>,
    /// Attributes for OpenTelemetry, made on first collection.
    pub(crate) attrs: OnceLock<Box<[KeyValue]>>,
    /// Trace ids of recent measurements (OpenMetrics exemplars), when enabled.
    pub(crate) exemplars: Option<Exemplars>,
}

impl std::fmt::Debug for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Series")
            .field("values", &self.key)
            .finish_non_exhaustive()
    }
}

impl Series {
    /// Whether this is the series of `values` in label set `set` of metric `metric`.
    #[inline]
    pub(crate) fn is<V: AsRef<[u8]>>(&self, metric: u32, set: LabelSetId, values: &[V]) -> bool {
        self.metric == metric && self.set == set && self.key.eq_values(values)
    }

    /// Records one measurement.
    ///
    /// # Errors
    /// See [`Cell::record`].
    #[inline(always)]
    pub(crate) fn record(&self, value: Num) -> Result<(), Missed> {
        self.cell.record(value)?;
        if let Some(h) = &self.otel {
            if let Ok(v) = value.to_f64() {
                h.record(v);
            }
        }
        Ok(())
    }

    /// Records one measurement and, when the series keeps exemplars and the thread is inside a
    /// span with an OpenTelemetry trace context, that context as the exemplar of the bucket (or
    /// counter) the value landed in.
    ///
    /// # Errors
    /// See [`Cell::record`].
    // Out of line: only metrics that keep exemplars take it, and inlined it made the record
    // path of metrics without exemplars larger.
    #[inline(never)]
    pub(crate) fn record_traced(&self, value: Num, trace: &mut TraceContext) -> Result<(), Missed> {
        self.record(value)?;
        if let Some(x) = &self.exemplars {
            if let Some((trace_id, span_id)) = trace.get() {
                let v = value.to_f64();
                debug_assert!(v.is_ok(), "a value the series took is a number");
                let v = v.unwrap_or(0.0);
                let slot = match &self.cell {
                    Cell::Histogram(h) => h.bucket_of(v),
                    _ => 0,
                };
                x.store(
                    slot,
                    &Exemplar {
                        trace_id,
                        span_id,
                        value: v,
                        timestamp: exemplar::now_unix(),
                    },
                );
            }
        }
        Ok(())
    }

    /// Whether this is its metric's overflow series (every use of it is counted).
    pub(crate) fn is_overflow(&self) -> bool {
        self.set == OVERFLOW_SET
    }

    /// Holds the series for an open span (it will not expire until [`Series::unpin`]).
    pub(crate) fn pin(&self) {
        self.pins.fetch_add(1, Ordering::AcqRel);
    }

    /// Takes an open span's gauge back down (-1) and lets go of it. Pinned since it opened, so
    /// the series cannot have expired.
    ///
    /// # Errors
    /// See [`Cell::record`] (an up-down counter that took +1 takes -1).
    pub(crate) fn close_gauge(&self) -> Result<(), Missed> {
        let r = self.record(Num::I64(-1));
        self.unpin();
        r
    }

    /// Lets go of a [`Series::pin`].
    pub(crate) fn unpin(&self) {
        let _ = self
            .pins
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| p.checked_sub(1));
    }

    /// One sweep's look at this series: notes a change, or removes it when it has been idle
    /// for `ttl` and no open span holds it; the version it was removed at.
    fn expire_if_idle(&self, now: Duration, ttl: Duration) -> Option<u64> {
        let now = nanos(now);
        let v = self.cell.version();
        if v != self.seen.load(Ordering::Acquire) {
            self.seen.store(v, Ordering::Release);
            self.changed_at.store(now, Ordering::Release);
            return None;
        }
        if self.pins.load(Ordering::Acquire) > 0 {
            return None;
        }
        let idle = now.saturating_sub(self.changed_at.load(Ordering::Acquire));
        (idle >= nanos(ttl) && self.cell.try_kill(v)).then_some(v)
    }

    /// Marks the series changed at `now` (expiry counts its idle time from there): a change
    /// the next sweep would otherwise only notice then.
    pub(crate) fn note_changed(&self, now: Duration) {
        self.seen.store(self.cell.version(), Ordering::Release);
        self.changed_at.store(nanos(now), Ordering::Release);
    }

    /// What this series, removed by expiry at version `killed_at` and clock reading `gone_at`,
    /// leaves for its label set's next series (counters and histograms only).
    fn remembered(&self, killed_at: u64, gone_at: u64) -> Option<remembered::Entry> {
        Some(remembered::Entry {
            hash: self.hash,
            set: self.set,
            key: self.key.clone(),
            value: self.cell.remember(killed_at)?,
            created_ms: self.created_ms.load(Ordering::Acquire),
            gone_at,
        })
    }

    /// Starts this new series (nothing recorded into it yet) from what its label set's last
    /// series held.
    fn continue_from(&self, e: &remembered::Entry) {
        self.cell.restore(&e.value);
        self.created_ms.store(e.created_ms, Ordering::Release);
        if let remembered::Remembered::Int(n) | remembered::Remembered::Float(n) = e.value {
            self.continued_from.store(n, Ordering::Release);
        }
    }

    /// See [`Series::continued_from`]'s field.
    pub(crate) fn continued_from(&self) -> u64 {
        self.continued_from.load(Ordering::Acquire)
    }

    /// When the label set's first series was created, in Unix seconds.
    pub(crate) fn created_unix(&self) -> f64 {
        self.created_ms.load(Ordering::Acquire) as f64 / 1000.0
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
