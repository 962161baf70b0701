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
pub(crate) mod rate;
pub(crate) mod store;

use crate::sync::Recover;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use opentelemetry::metrics::BoundHistogram;
use opentelemetry::KeyValue;

use crate::catalog::{self, MetricKind};
use crate::clock::Clock;
use crate::limits::SELF_METRIC_LIMIT;
use crate::otel::Otel;
use crate::rules::MetricDef;
use crate::value::{DropReason, Num};
use cell::{Cell, CellKind, Missed};
use exemplar::{Exemplar, Exemplars, TraceContext};
use key::LabelKey;
use store::Store;

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
    /// The value, away from the fields other threads read.
    pub(crate) cell: cell::Padded<Cell>,
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
    #[inline]
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
    #[inline]
    pub(crate) fn record_traced(&self, value: Num, trace: &mut TraceContext) -> Result<(), Missed> {
        self.record(value)?;
        if let Some(x) = &self.exemplars {
            if let Some((trace_id, span_id)) = trace.get() {
                let v = value.to_f64().unwrap_or(0.0);
                let slot = match &*self.cell {
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

/// A series' label pairs in name order (the overflow series: its marker).
fn label_pairs<'s>(
    names: &'s [String],
    order: &'s [usize],
    overflow: bool,
    s: &'s Series,
) -> impl Iterator<Item = (&'s str, &'s str)> + 's {
    let marker = overflow.then_some((OVERFLOW_LABEL, "true"));
    let own = order
        .iter()
        .filter(move |_| !overflow)
        .filter_map(move |&i| Some((names.get(i)?.as_str(), s.key.get(i))));
    marker.into_iter().chain(own)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

static NEXT_METRIC_ID: AtomicU32 = AtomicU32::new(1);

/// One metric: definition, label-name lists and series.
pub(crate) struct Metric {
    pub(crate) id: u32,
    pub(crate) def: MetricDef,
    pub(crate) cell_kind: CellKind,
    /// The label-name lists in use: rule metrics have one; a field-prefix metric has one per
    /// distinct set of allow-listed fields its callsites carry.
    label_sets: RwLock<Vec<Arc<[String]>>>,
    pub(crate) store: Store,
    hasher: hashbrown::DefaultHashBuilder,
    clock: Arc<dyn Clock>,
    /// Set for every metric but the self-metrics, which must not recurse into themselves.
    self_metrics: Option<Arc<SelfMetrics>>,
    /// The SDK histogram series bind to (histograms only, when OpenTelemetry readers exist).
    otel_histogram: Option<opentelemetry::metrics::Histogram<f64>>,
    /// Whether measurements keep exemplars.
    exemplars: bool,
    /// The series in exposition order, and the store's change count it was made at.
    render_order: Mutex<(u64, Vec<Arc<Series>>)>,
}

impl std::fmt::Debug for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metric")
            .field("name", &self.def.name)
            .finish_non_exhaustive()
    }
}

impl Metric {
    /// The id of a list of label names, registered once per callsite (not on the hot path).
    pub(crate) fn label_set_id(&self, names: &[String]) -> u32 {
        let mut sets = self.label_sets.write().recover();
        if let Some(i) = sets.iter().position(|s| &s[..] == names) {
            return i as u32;
        }
        sets.push(names.into());
        (sets.len() - 1) as u32
    }

    /// The label names of set `set` (none for the overflow series).
    pub(crate) fn label_names(&self, set: u32) -> Arc<[String]> {
        self.label_sets
            .read()
            .recover()
            .get(set as usize)
            .cloned()
            .unwrap_or_else(|| Arc::from(Vec::new()))
    }

    /// The hash under which `values` of label set `set` is (or would be) found.
    #[inline]
    pub(crate) fn hash_values<V: AsRef<[u8]>>(&self, set: u32, values: &[V]) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write_u64(u64::from(self.id) << 32 | u64::from(set));
        for v in values {
            h.write(v.as_ref());
            h.write_u8(0xff); // not valid UTF-8: separates ("ab","c") from ("a","bc")
        }
        h.finish()
    }

    /// The series for `values` (one per label name of `set`, in order) from the metric's table,
    /// created on first use; past the cardinality limit (after a sweep for idle series), the
    /// overflow series.
    pub(crate) fn lookup<V: AsRef<[u8]>>(&self, hash: u64, set: u32, values: &[V]) -> Arc<Series> {
        let matches = |s: &Series| s.set == set && s.key.eq_values(values);
        if let Some(s) = self.store.find(hash, matches) {
            return s;
        }
        if self.store.is_full() {
            if self.store.claim_limit_sweep(self.clock.now()) {
                self.sweep();
            }
            if self.store.is_full() {
                return self.overflow();
            }
        }
        // Made outside the table's lock (binding an SDK histogram may log, and that event may
        // come back into the layer); a racing thread's copy wins and ours is dropped.
        let series = Arc::new(self.make_series(hash, set, LabelKey::new(values)));
        match self.store.insert(series, matches) {
            Some(s) => s,
            None => self.overflow(),
        }
    }

    /// The overflow series, counting one folded measurement.
    #[cold]
    fn overflow(&self) -> Arc<Series> {
        if let Some(sm) = &self.self_metrics {
            sm.label_sets_dropped
                .record(0, &[&self.def.name], Num::U64(1));
        }
        self.store
            .overflow(|| Arc::new(self.make_series(0, OVERFLOW_SET, LabelKey::new::<&str>(&[]))))
    }

    fn make_series(&self, hash: u64, set: u32, key: LabelKey) -> Series {
        let otel = self.otel_histogram.as_ref().map(|h| {
            let attrs = crate::otel::attributes(&self.label_names(set), set, &key);
            h.bind(&attrs)
        });
        let now = nanos(self.clock.now());
        Series {
            metric: self.id,
            set,
            hash,
            key,
            cell: cell::Padded(Cell::new(&self.cell_kind)),
            pins: AtomicU32::new(0),
            seen: AtomicU64::new(0),
            changed_at: AtomicU64::new(now),
            otel,
            attrs: OnceLock::new(),
            exemplars: self.exemplars.then(|| Exemplars::new(&self.cell_kind)),
        }
    }

    /// Removes the series idle for the TTL; counts them in
    /// `dchat_telemetry_series_expired_total`.
    pub(crate) fn sweep(&self) -> store::Swept {
        let swept = self.store.sweep(self.clock.now());
        if swept.expired > 0 {
            if let Some(sm) = &self.self_metrics {
                sm.series_expired
                    .record(0, &[&self.def.name], Num::U64(swept.expired as u64));
            }
        }
        swept
    }

    /// Records `value` into the series for `values` of label set `set`, through this thread's
    /// series cache; counts what cannot be recorded.
    #[inline]
    pub(crate) fn record<V: AsRef<[u8]>>(&self, set: u32, values: &[V], value: Num) {
        let hash = self.hash_values(set, values);
        if let Err(reason) = cache::with_series(self, hash, set, values, |s| s.record(value)) {
            self.dropped(reason);
        }
    }

    /// Records `value` for a callsite: first through the callsite's own cache of the series it
    /// used (`l1`), then this thread's, then the metric's table; keeps the current trace context
    /// as an exemplar where the metric keeps them. Counts what cannot be recorded.
    #[inline]
    pub(crate) fn record_at(
        &self,
        l1: &cache::CallsiteCache,
        set: u32,
        values: &[&[u8]],
        value: Num,
        trace: &mut TraceContext,
    ) {
        let exemplars = self.exemplars;
        let record = |s: &Series, trace: &mut TraceContext| {
            if exemplars {
                s.record_traced(value, trace)
            } else {
                s.record(value)
            }
        };
        if let Some(s) = l1.get(set, values) {
            match record(s, trace) {
                Ok(()) => return,
                Err(Missed::Dropped(reason)) => return self.dropped(reason),
                Err(Missed::Dead) => {} // expired since it was cached: the tables have its successor
            }
        }
        let hash = self.hash_values(set, values);
        let r = cache::with_series(self, hash, set, values, |s| {
            let r = record(s, trace);
            if r.is_ok() {
                l1.put(s);
            }
            r
        });
        if let Err(reason) = r {
            self.dropped(reason);
        }
    }

    /// Adds 1 to the gauge series for `values` and pins it until the span closes; the series
    /// (to take back down with [`Metric::close_gauge`]), or `None` when the value was dropped.
    pub(crate) fn open_gauge<V: AsRef<[u8]>>(&self, set: u32, values: &[V]) -> Option<Arc<Series>> {
        let hash = self.hash_values(set, values);
        let r = cache::with_series(self, hash, set, values, |s| {
            s.pin();
            match s.record(Num::I64(1)) {
                Ok(()) => Ok(Arc::clone(s)),
                Err(e) => {
                    s.unpin();
                    Err(e)
                }
            }
        });
        match r {
            Ok(s) => Some(s),
            Err(reason) => {
                self.dropped(reason);
                None
            }
        }
    }

    /// Takes a gauge opened by [`Metric::open_gauge`] back down and lets go of it.
    pub(crate) fn close_gauge(&self, series: &Series) {
        if let Err(Missed::Dropped(reason)) = series.close_gauge() {
            self.dropped(reason);
        }
    }

    /// Counts one value of this metric that could not be recorded.
    pub(crate) fn dropped(&self, reason: DropReason) {
        if let Some(sm) = &self.self_metrics {
            sm.values_dropped
                .record(0, &[&self.def.name, reason.as_str()], Num::U64(1));
        }
    }

    /// Runs `f` with every live series (the overflow series included), sorted by their label
    /// pairs (names in order, then values). The order is kept until a series is added or
    /// removed.
    pub(crate) fn with_sorted_series<R>(&self, f: impl FnOnce(&[Arc<Series>]) -> R) -> R {
        let changes = self.store.changes();
        let mut cache = self.render_order.lock().recover();
        if cache.0 != changes {
            let mut series = self.store.snapshot();
            // Every series' label set is in `sets` (built from the series themselves), so the
            // position is always found.
            let mut sets: Vec<(u32, Arc<[String]>, Vec<usize>)> = Vec::new();
            for s in &series {
                if !sets.iter().any(|(id, _, _)| *id == s.set) {
                    let names = self.label_names(s.set);
                    let mut order: Vec<usize> = (0..names.len()).collect();
                    order.sort_by(|&a, &b| names[a].cmp(&names[b]));
                    sets.push((s.set, names, order));
                }
            }
            let mut keyed: Vec<(usize, Arc<Series>)> = series
                .drain(..)
                .map(|s| {
                    let i = sets.iter().position(|(id, _, _)| *id == s.set).unwrap_or(0);
                    (i, s)
                })
                .collect();
            keyed.sort_by(|(ia, a), (ib, b)| {
                let ka = label_pairs(&sets[*ia].1, &sets[*ia].2, a.is_overflow(), a);
                let kb = label_pairs(&sets[*ib].1, &sets[*ib].2, b.is_overflow(), b);
                ka.cmp(kb)
            });
            let series: Vec<Arc<Series>> = keyed.into_iter().map(|(_, s)| s).collect();
            *cache = (changes, series);
        }
        f(&cache.1)
    }

    /// The number of series (overflow excluded).
    pub(crate) fn series_count(&self) -> usize {
        self.store.len()
    }

    /// Whether this metric counts toward `dchat_telemetry_series` (it has the user's limit).
    pub(crate) fn is_self_metric(&self) -> bool {
        self.self_metrics.is_none() || is_self_metric(&self.def.name)
    }
}

/// The layer's own health: what it had to fold, drop or expire.
#[derive(Debug)]
pub(crate) struct SelfMetrics {
    label_sets_dropped: Arc<Metric>,
    values_dropped: Arc<Metric>,
    series_expired: Arc<Metric>,
}

/// The layer's and the server's own metrics: their series are bounded by the program (one per
/// metric, reason or check), not by what dchat logs, so the user's cardinality limit and the
/// series TTL do not apply to them.
const SELF_METRICS: &[&catalog::MetricInfo] = &[
    &catalog::LABEL_SETS_DROPPED,
    &catalog::VALUES_DROPPED,
    &catalog::SERIES_EXPIRED,
    &catalog::SERIES,
    &catalog::HEALTH_CHECK_FAILURES,
    &catalog::SCRAPES,
    &catalog::SCRAPE_DURATION,
    &catalog::READY,
    &catalog::FILTER_BLOCKED,
];

fn is_self_metric(name: &str) -> bool {
    SELF_METRICS.iter().any(|m| m.name == name)
}

/// Whether a counter fed by these measures only ever adds integers (then it is an exact `u64`).
pub(crate) fn integral_counter(def: &MetricDef, measures: &[&crate::rules::Measure]) -> bool {
    use crate::rules::Measure;
    def.kind == MetricKind::Counter
        && measures.iter().all(|m| match m {
            Measure::One => true,
            Measure::Fields { sources, default } => {
                sources.iter().all(|(_, s)| *s == 1.0)
                    && default.is_none_or(|d| d.fract() == 0.0 && d >= 0.0)
            }
            _ => false,
        })
}

/// How [`Metrics`] makes metrics.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) limit: usize,
    pub(crate) ttl: Option<Duration>,
    pub(crate) rate_window_secs: u32,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) exemplars: bool,
}

/// Every metric of one `Telemetry`, by name.
pub(crate) struct Metrics {
    settings: Settings,
    origin: Instant,
    self_metrics: Arc<SelfMetrics>,
    by_name: Mutex<BTreeMap<String, Arc<Metric>>>,
    otel: Arc<Otel>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("limit", &self.settings.limit)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    pub(crate) fn new(settings: Settings, otel: Arc<Otel>) -> Self {
        let origin = Instant::now();
        let make_self = |info: &catalog::MetricInfo| {
            Arc::new(build_metric(
                MetricDef::from_info(info),
                true,
                &settings,
                SELF_METRIC_LIMIT,
                None,
                origin,
                &otel,
            ))
        };
        let self_metrics = Arc::new(SelfMetrics {
            label_sets_dropped: make_self(&catalog::LABEL_SETS_DROPPED),
            values_dropped: make_self(&catalog::VALUES_DROPPED),
            series_expired: make_self(&catalog::SERIES_EXPIRED),
        });
        let mut by_name = BTreeMap::new();
        for m in [
            &self_metrics.label_sets_dropped,
            &self_metrics.values_dropped,
            &self_metrics.series_expired,
        ] {
            by_name.insert(m.def.name.clone(), Arc::clone(m));
            otel.observe(m);
        }
        Metrics {
            settings,
            origin,
            self_metrics,
            by_name: Mutex::new(by_name),
            otel,
        }
    }

    /// The metric named `def.name`, created on first use. `None` when a metric of that name
    /// exists with a different kind (a kind conflict).
    pub(crate) fn get_or_create(&self, def: &MetricDef, integral: bool) -> Option<Arc<Metric>> {
        let is_self = is_self_metric(&def.name);
        let limit = if is_self {
            SELF_METRIC_LIMIT
        } else {
            self.settings.limit
        };
        let mut by_name = self.by_name.lock().recover();
        if let Some(m) = by_name.get(&def.name) {
            return (m.def.kind == def.kind).then(|| Arc::clone(m));
        }
        let m = Arc::new(build_metric(
            def.clone(),
            integral,
            &self.settings,
            limit,
            Some(Arc::clone(&self.self_metrics)),
            self.origin,
            &self.otel,
        ));
        by_name.insert(def.name.clone(), Arc::clone(&m));
        drop(by_name);
        self.otel.observe(&m);
        if !is_self {
            // Self-metric series start at 0, so that `increase()` sees their first rise.
            let sm = &self.self_metrics;
            sm.label_sets_dropped.record(0, &[&def.name], Num::U64(0));
            sm.series_expired.record(0, &[&def.name], Num::U64(0));
            for reason in DropReason::ALL {
                sm.values_dropped
                    .record(0, &[&def.name, reason.as_str()], Num::U64(0));
            }
        }
        Some(m)
    }

    /// Looks a metric up by its scraped name.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<Metric>> {
        self.by_name.lock().recover().get(name).cloned()
    }

    /// Every metric, sorted by name.
    pub(crate) fn all(&self) -> Vec<Arc<Metric>> {
        self.by_name.lock().recover().values().cloned().collect()
    }
}

fn build_metric(
    def: MetricDef,
    integral: bool,
    settings: &Settings,
    limit: usize,
    self_metrics: Option<Arc<SelfMetrics>>,
    origin: Instant,
    otel: &Arc<Otel>,
) -> Metric {
    let cell_kind = match def.kind {
        MetricKind::Counter if integral => CellKind::CounterU64,
        MetricKind::Counter => CellKind::CounterF64,
        MetricKind::UpDownCounter => CellKind::UpDown,
        MetricKind::Gauge => CellKind::Gauge,
        MetricKind::Histogram => CellKind::Histogram(def.buckets.clone().into()),
        MetricKind::RateGauge => CellKind::Rate {
            window_secs: settings.rate_window_secs,
            origin,
        },
    };
    let is_self = self_metrics.is_none() || is_self_metric(&def.name);
    let ttl = if is_self { None } else { settings.ttl };
    let otel_histogram = otel.histogram(&def);
    let exemplars = settings.exemplars
        && !is_self
        && matches!(def.kind, MetricKind::Histogram | MetricKind::Counter);
    Metric {
        id: NEXT_METRIC_ID.fetch_add(1, Ordering::Relaxed),
        label_sets: RwLock::new(vec![def.label_names.clone().into()]),
        def,
        cell_kind,
        store: Store::new(limit, ttl),
        hasher: hashbrown::DefaultHashBuilder::default(),
        clock: Arc::clone(&settings.clock),
        self_metrics,
        otel_histogram,
        exemplars,
        render_order: Mutex::new((0, Vec::new())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use cell::Reading;

    fn metrics(limit: usize, ttl: Option<Duration>, clock: &ManualClock) -> Metrics {
        Metrics::new(
            Settings {
                limit,
                ttl,
                rate_window_secs: 60,
                clock: Arc::new(clock.clone()),
                exemplars: false,
            },
            Arc::new(Otel::disabled()),
        )
    }

    fn value(m: &Metric, v: &str) -> Option<u64> {
        m.store
            .snapshot()
            .iter()
            .find(|s| s.key.values().eq([v]))
            .map(|s| match s.cell.read() {
                Reading::CounterInt(n) => n,
                other => panic!("{other:?}"),
            })
    }

    #[test]
    fn idle_series_expire_and_free_their_place() {
        let clock = ManualClock::new();
        let ms = metrics(2, Some(Duration::from_secs(60)), &clock);
        let m = ms
            .get_or_create(&MetricDef::from_info(&catalog::ERRORS), true)
            .unwrap();
        m.record(0, &["a"], Num::U64(1));
        m.record(0, &["b"], Num::U64(1));
        m.record(0, &["c"], Num::U64(1)); // full: overflow
        assert_eq!(m.series_count(), 2);
        m.sweep(); // sees a, b (and overflow) change
        clock.advance(Duration::from_secs(30));
        m.record(0, &["a"], Num::U64(1));
        m.sweep();
        clock.advance(Duration::from_secs(31));
        assert_eq!(
            m.sweep().expired,
            2,
            "b and the overflow series: idle for 61 s"
        );
        assert_eq!(value(&m, "a"), Some(2));
        m.record(0, &["c"], Num::U64(5));
        assert_eq!(value(&m, "c"), Some(5), "the freed place is used");
        m.record(0, &["b"], Num::U64(1));
        assert_eq!(
            value(&m, "b"),
            None,
            "full again: b folds into the overflow series"
        );
    }

    #[test]
    fn a_full_table_sweeps_before_it_folds() {
        let clock = ManualClock::new();
        let ms = metrics(1, Some(Duration::from_secs(10)), &clock);
        let m = ms
            .get_or_create(&MetricDef::from_info(&catalog::ERRORS), true)
            .unwrap();
        m.record(0, &["old"], Num::U64(1));
        m.sweep();
        clock.advance(Duration::from_secs(11));
        m.record(0, &["new"], Num::U64(1));
        assert_eq!(value(&m, "new"), Some(1));
        assert_eq!(value(&m, "old"), None);
    }

    #[test]
    fn pinned_series_never_expire() {
        let clock = ManualClock::new();
        let ms = metrics(10, Some(Duration::from_secs(10)), &clock);
        let m = ms
            .get_or_create(&MetricDef::from_info(&catalog::RELAY_CONNECTIONS), true)
            .unwrap();
        let s = m.open_gauge(0, &["relay-1"]).unwrap();
        for _ in 0..5 {
            m.sweep();
            clock.advance(Duration::from_secs(100));
        }
        assert_eq!(m.series_count(), 1);
        m.close_gauge(&s);
        m.sweep();
        clock.advance(Duration::from_secs(11));
        m.sweep();
        assert_eq!(m.series_count(), 0);
    }

    #[test]
    fn a_poisoned_series_table_keeps_recording() {
        let clock = ManualClock::new();
        let ms = metrics(10, None, &clock);
        let m = ms
            .get_or_create(&MetricDef::from_info(&catalog::ERRORS), true)
            .unwrap();
        m.record(0, &["before"], Num::U64(1));
        m.store.poison_for_test();
        m.record(0, &["after"], Num::U64(1));
        assert_eq!(m.series_count(), 2);
    }

    #[test]
    fn a_poisoned_registry_keeps_creating_metrics() {
        let clock = ManualClock::new();
        let ms = Arc::new(metrics(10, None, &clock));
        let m2 = Arc::clone(&ms);
        let poisoner = std::thread::spawn(move || {
            let _guard = m2.by_name.lock().unwrap();
            panic!("poison the registry on purpose");
        });
        assert!(poisoner.join().is_err());
        assert!(ms
            .get_or_create(&MetricDef::from_info(&catalog::MESSAGES_SENT), true)
            .is_some());
        assert!(ms.get(catalog::MESSAGES_SENT.name).is_some());
    }
}
