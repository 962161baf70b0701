//! Series: every metric's label sets and their values, kept by this crate.
//!
//! A [`Metric`] is a definition plus a [`Store`](store::Store) of [`Series`], one per distinct
//! label set; a series holds its value in atomics ([`cell`]). Recording finds the series in the
//! recording thread's own cache ([`cache`]) and updates it with one or two atomic operations,
//! so threads writing different series share no cache line. The cardinality limit is enforced
//! by the store (past it, one overflow series, `otel_metric_overflow="true"`, and
//! `dchat_telemetry_label_sets_dropped_total{metric}` rises), and idle series expire after the
//! series TTL. The OpenTelemetry SDK sees the same series through the instruments of
//! [`crate::otel`]; the exposition is rendered from here.

pub(crate) mod cache;
pub(crate) mod cell;
pub(crate) mod exemplar;
pub(crate) mod key;
mod metric;
pub(crate) mod rate;
mod registry;
pub(crate) mod store;

pub(crate) use metric::Metric;
pub(crate) use registry::{integral_counter, Metrics, Settings};

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::metrics::BoundHistogram;
use opentelemetry::KeyValue;

use crate::value::Num;
use cell::{Cell, Missed};
use exemplar::{Exemplar, Exemplars, TraceContext};
use key::LabelKey;

/// The `set` of the overflow series: no label-name list has this id.
pub(crate) const OVERFLOW_SET: u32 = u32::MAX;

/// The label an overflow series carries (the OpenTelemetry SDK's own convention, as Prometheus
/// shows it).
pub(crate) const OVERFLOW_LABEL: &str = "otel_metric_overflow";

/// One label set of one metric.
pub(crate) struct Series {
    /// The metric's process-unique id (series of every metric share the threads' caches).
    pub(crate) metric: u32,
    /// The label-name list ([`Metric::label_set_id`]); [`OVERFLOW_SET`] for the overflow series.
    pub(crate) set: u32,
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
    pub(crate) fn is<V: AsRef<[u8]>>(&self, metric: u32, set: u32, values: &[V]) -> bool {
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
                let v = value.to_f64().unwrap_or(0.0);
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

    /// One sweep's look at this series: notes a change, or removes it (returns `true`) when it
    /// has been idle for `ttl` and no open span holds it.
    fn expire_if_idle(&self, now: Duration, ttl: Duration) -> bool {
        let now = nanos(now);
        let v = self.cell.version();
        if v != self.seen.load(Ordering::Acquire) {
            self.seen.store(v, Ordering::Release);
            self.changed_at.store(now, Ordering::Release);
            return false;
        }
        if self.pins.load(Ordering::Acquire) > 0 {
            return false;
        }
        let idle = now.saturating_sub(self.changed_at.load(Ordering::Acquire));
        idle >= nanos(ttl) && self.cell.try_kill(v)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
