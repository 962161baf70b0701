//! One metric: its definition, label-name lists and store of series, and the way a measurement
//! finds its series (callsite cache, thread cache, table).

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Instant;

use arrayvec::ArrayVec;
use opentelemetry::metrics::Histogram;

use super::cell::{Cell, CellKind, Missed};
use super::exemplar::{self, Exemplars, TraceContext};
use super::key::LabelKey;
use super::label_set::{attributes, LabelSetId, OVERFLOW_SET};
use super::parked::{GaugeKey, ParkedGauges};
use super::settings::{is_self_metric, Settings};
use super::store::{self, Bounds, Store};
use super::{cache, nanos, Series, OVERFLOW_LABEL};
use crate::catalog::MetricDef;
use crate::catalog::MetricKind;
use crate::clock::Clock;
use crate::limits::MAX_LABELS;
use crate::sync::Recover;
use crate::value::{DropReason, Num};

static NEXT_METRIC_ID: AtomicU32 = AtomicU32::new(1);

/// [`Metric::record_at`]'s record into a series found past the callsite's cache (then kept
/// there, if it has room).
struct Recording<'a> {
    value: Num,
    exemplars: bool,
    trace: &'a mut TraceContext,
    l1: &'a cache::CallsiteCache,
}

impl cache::OnSeries<()> for Recording<'_> {
    #[inline(always)]
    fn on(&mut self, s: &Arc<Series>) -> Result<(), Missed> {
        // The same choice as `record_at`'s closure for the callsite's cache, written twice on
        // purpose: one helper for both changed the compiler's inlining of the other shapes.
        let r = if self.exemplars {
            s.record_traced(self.value, self.trace)
        } else {
            s.record(self.value)
        };
        if r.is_ok() {
            self.l1.put(s);
        }
        r
    }
}

/// The layer's own health: what it had to fold, drop or expire.
#[derive(Debug)]
pub(crate) struct SelfMetrics {
    pub(super) label_sets_dropped: Arc<Metric>,
    pub(super) values_dropped: Arc<Metric>,
    pub(super) series_expired: Arc<Metric>,
    pub(super) series_forgotten: Arc<Metric>,
}

impl cache::SeriesTable for Metric {
    #[inline(always)]
    fn id(&self) -> u32 {
        self.id
    }

    #[inline]
    fn lookup<V: AsRef<[u8]>>(&self, hash: u64, set: LabelSetId, values: &[V]) -> Arc<Series> {
        Metric::lookup(self, hash, set, values)
    }
}

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
    otel_histogram: Option<Histogram<f64>>,
    /// Whether measurements keep exemplars.
    exemplars: bool,
    /// The series in exposition order, and the store's change count it was made at.
    render_order: Mutex<(u64, Vec<Arc<Series>>)>,
    /// Open spans' gauges in the overflow series.
    parked: ParkedGauges,
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
    pub(crate) fn label_set_id(&self, names: &[String]) -> LabelSetId {
        let mut sets = self.label_sets.write().recover();
        let i = match sets.iter().position(|s| &s[..] == names) {
            Some(i) => i,
            None => {
                sets.push(names.into());
                sets.len() - 1
            }
        };
        // One list per distinct set of allow-listed fields a callsite carries: far fewer than
        // 2^32; past that, the first list's id (its series take the metric's labels).
        LabelSetId::new(i).unwrap_or_else(|| {
            debug_assert!(false, "more label-name lists than ids");
            LabelSetId::FIRST
        })
    }

    /// The label names of set `set` (none for the overflow series).
    pub(crate) fn label_names(&self, set: LabelSetId) -> Arc<[String]> {
        self.label_sets
            .read()
            .recover()
            .get(set.index())
            .cloned()
            .unwrap_or_else(|| {
                debug_assert!(set == OVERFLOW_SET, "a label set this metric did not give");
                Arc::from(Vec::new())
            })
    }

    /// The hash under which `values` of label set `set` is (or would be) found.
    #[inline]
    pub(crate) fn hash_values<V: AsRef<[u8]>>(&self, set: LabelSetId, values: &[V]) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write_u64(u64::from(self.id) << 32 | u64::from(set.bits()));
        for v in values {
            h.write(v.as_ref());
            h.write_u8(0xff); // not valid UTF-8: separates ("ab","c") from ("a","bc")
        }
        h.finish()
    }

    /// The series for `values` (one per label name of `set`, in order) from the metric's table,
    /// created on first use; past the cardinality limit or the sample budget (after a sweep
    /// for idle series), the overflow series.
    pub(crate) fn lookup<V: AsRef<[u8]>>(
        &self,
        hash: u64,
        set: LabelSetId,
        values: &[V],
    ) -> Arc<Series> {
        if let Some(s) = self.find_or_add(hash, set, values, true) {
            return s;
        }
        self.overflow()
    }

    /// The series for `values` from the table, created on first use if it fits (after a sweep
    /// at the limit when `sweep_if_full`); `None` when it does not fit.
    fn find_or_add<V: AsRef<[u8]>>(
        &self,
        hash: u64,
        set: LabelSetId,
        values: &[V],
        sweep_if_full: bool,
    ) -> Option<Arc<Series>> {
        let matches = |s: &Series| s.set == set && s.key.eq_values(values);
        if let Some(s) = self.store.find(hash, matches) {
            return Some(s);
        }
        if self.store.is_full() {
            if sweep_if_full && self.store.claim_limit_sweep(self.clock.now()) {
                self.sweep();
            }
            if self.store.is_full() {
                return None;
            }
        }
        // Made outside the table's lock (binding an SDK histogram may log, and that event may
        // come back into the layer); a racing thread's copy wins and ours is dropped.
        let series = Arc::new(self.make_series(hash, set, LabelKey::new(values)));
        self.store.insert(series, matches)
    }

    /// The overflow series, counting one folded measurement.
    #[cold]
    fn overflow(&self) -> Arc<Series> {
        if let Some(sm) = &self.self_metrics {
            sm.label_sets_dropped.record(&[&self.def.name], Num::U64(1));
        }
        self.store
            .overflow(|| Arc::new(self.make_series(0, OVERFLOW_SET, LabelKey::new::<&str>(&[]))))
    }

    fn make_series(&self, hash: u64, set: LabelSetId, key: LabelKey) -> Series {
        let otel = self.otel_histogram.as_ref().map(|h| {
            let attrs = attributes(&self.label_names(set), set, &key);
            h.bind(&attrs)
        });
        let now = nanos(self.clock.now());
        Series {
            metric: self.id,
            set,
            hash,
            key,
            cell: Cell::new(&self.cell_kind),
            pins: AtomicU32::new(0),
            seen: AtomicU64::new(0),
            changed_at: AtomicU64::new(now),
            created_ms: AtomicU64::new(exemplar::now_unix_ms()),
            continued_from: AtomicU64::new(0),
            otel,
            attrs: OnceLock::new(),
            exemplars: self.exemplars.then(|| Exemplars::new(&self.cell_kind)),
        }
    }

    /// Removes the series idle for the TTL; counts them in
    /// `dchat_telemetry_series_expired_total`.
    pub(crate) fn sweep(&self) -> store::Swept {
        let swept = self.store.sweep(self.clock.now());
        if let Some(sm) = &self.self_metrics {
            if swept.expired > 0 {
                sm.series_expired
                    .record(&[&self.def.name], Num::U64(swept.expired as u64));
            }
            if swept.forgotten > 0 {
                sm.series_forgotten
                    .record(&[&self.def.name], Num::U64(swept.forgotten as u64));
            }
        }
        swept
    }

    /// Records `value` into the series for `values` (one per label name of the metric's
    /// definition), through this thread's series cache; counts what cannot be recorded.
    #[inline]
    pub(crate) fn record<V: AsRef<[u8]>>(&self, values: &[V], value: Num) {
        let set = LabelSetId::FIRST;
        let hash = self.hash_values(set, values);
        if let Err(reason) =
            cache::with_series(self, hash, set, values, |s: &Arc<Series>| s.record(value))
        {
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
        set: LabelSetId,
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
        let recording = Recording {
            value,
            exemplars,
            trace,
            l1,
        };
        if let Err(reason) = cache::with_series(self, hash, set, values, recording) {
            self.dropped(reason);
        }
    }

    /// Adds 1 to the gauge series for `values` and pins it until the span closes; the series
    /// (to take back down with [`Metric::close_gauge`]), or `None` when the value was dropped.
    /// A gauge that lands in the overflow series is parked there under `at`, to move to its
    /// own series once there is room ([`Metric::move_parked`]).
    pub(crate) fn open_gauge<V: AsRef<[u8]>>(
        &self,
        set: LabelSetId,
        values: &[V],
        at: impl FnOnce() -> GaugeKey,
    ) -> Option<Arc<Series>> {
        let hash = self.hash_values(set, values);
        let r = cache::with_series(self, hash, set, values, |s: &Arc<Series>| {
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
            Ok(s) => {
                if s.is_overflow() {
                    self.park(at(), hash, set, values, &s);
                }
                Some(s)
            }
            Err(reason) => {
                self.dropped(reason);
                None
            }
        }
    }

    #[cold]
    fn park<V: AsRef<[u8]>>(
        &self,
        at: GaugeKey,
        hash: u64,
        set: LabelSetId,
        values: &[V],
        overflow: &Arc<Series>,
    ) {
        let key = LabelKey::new(values);
        self.parked.park(at, hash, set, key, Arc::clone(overflow));
    }

    /// Takes gauge `at`, opened by [`Metric::open_gauge`] in `series`, back down wherever its
    /// +1 is now, and lets go of it.
    pub(crate) fn close_gauge(&self, series: &Series, at: impl FnOnce() -> GaugeKey) {
        let r = if series.is_overflow() {
            self.parked
                .close(at())
                .unwrap_or_else(|| series.close_gauge())
        } else {
            series.close_gauge()
        };
        if let Err(Missed::Dropped(reason)) = r {
            self.dropped(reason);
        }
    }

    /// Moves parked gauges (open spans' +1 in the overflow series) to their own series while
    /// there is room. Holds the render's lock of this metric meanwhile, so no exposition shows
    /// a gauge in both series or in neither. Returns how many moved.
    pub(crate) fn move_parked(&self) -> usize {
        if self.parked.none_waiting() {
            return 0;
        }
        let _render = self.render_order.lock().recover();
        let moved = self.parked.move_out(|hash, set, key| {
            let values: ArrayVec<&str, MAX_LABELS> = key.values().take(MAX_LABELS).collect();
            self.find_or_add(hash, set, &values, false)
        });
        if moved > 0 {
            if let Some(o) = self.store.overflow_series() {
                // Its idle time starts now, not at the next sweep that notices the change.
                o.note_changed(self.clock.now());
            }
        }
        moved
    }

    /// Creates the series of `values` (the first label set) now, at 0, and keeps it for good (pinned:
    /// it never expires); `false` when it does not fit the limit or the budget.
    pub(crate) fn predeclare(&self, values: &[&str]) -> bool {
        let hash = self.hash_values(LabelSetId::FIRST, values);
        match self.find_or_add(hash, LabelSetId::FIRST, values, false) {
            Some(s) => {
                s.pin();
                true
            }
            None => false,
        }
    }

    /// Counts one value of this metric that could not be recorded.
    pub(crate) fn dropped(&self, reason: DropReason) {
        if let Some(sm) = &self.self_metrics {
            sm.values_dropped
                .record(&[&self.def.name, reason.as_str()], Num::U64(1));
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
            let mut sets: Vec<(LabelSetId, Arc<[String]>, Vec<usize>)> = Vec::new();
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
                    let i = sets.iter().position(|(id, _, _)| *id == s.set);
                    debug_assert!(i.is_some(), "every series' label set was listed above");
                    (i.unwrap_or(0), s)
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

/// A metric of `def` made with `settings` (its series limited to `limit`; `self_metrics` is
/// `None` for the self-metrics themselves); a histogram's series also record into
/// `otel_histogram`, the instrument an OpenTelemetry reader collects, when there is one.
pub(super) fn build_metric(
    def: MetricDef,
    integral: bool,
    settings: &Settings,
    limit: usize,
    self_metrics: Option<Arc<SelfMetrics>>,
    origin: Instant,
    otel_histogram: Option<Histogram<f64>>,
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
    let bounds = Bounds {
        limit,
        ttl,
        budget: if is_self {
            None
        } else {
            settings.budget.clone()
        },
        cost: samples_per_series(&def.kind, def.buckets.len(), settings.created),
    };
    let exemplars = settings.exemplars
        && !is_self
        && matches!(def.kind, MetricKind::Histogram | MetricKind::Counter);
    Metric {
        id: NEXT_METRIC_ID.fetch_add(1, Ordering::Relaxed),
        label_sets: RwLock::new(vec![def.label_names.clone().into()]),
        def,
        cell_kind,
        store: Store::new(bounds),
        hasher: hashbrown::DefaultHashBuilder::default(),
        clock: Arc::clone(&settings.clock),
        self_metrics,
        otel_histogram,
        exemplars,
        render_order: Mutex::new((0, Vec::new())),
        parked: ParkedGauges::default(),
    }
}

/// Samples one series of a metric of `kind` carries in a scrape: a histogram its buckets,
/// `+Inf`, `_sum` and `_count`; counters and histograms one more for `_created` when exposed.
pub(crate) fn samples_per_series(kind: &MetricKind, buckets: usize, created: bool) -> usize {
    let created = usize::from(created);
    match kind {
        MetricKind::Counter => 1 + created,
        MetricKind::Histogram => buckets + 3 + created,
        MetricKind::UpDownCounter | MetricKind::Gauge | MetricKind::RateGauge => 1,
    }
}
