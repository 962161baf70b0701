//! The instruments behind every metric, and their series.
//!
//! Each [`Metric`] owns an OpenTelemetry instrument and a [`SeriesTable`]: one [`Series`] per
//! distinct label set, holding an OpenTelemetry *bound* handle, so recording into a known series
//! is one call on pre-resolved attributes. The table enforces the metric's cardinality limit
//! itself: past it, new label sets go to one overflow series (`otel_metric_overflow="true"`,
//! the SDK's own convention) and `dchat_telemetry_label_sets_dropped_total{metric}` rises. The
//! SDK's limit is set above ours so it never folds series on its own.

use crate::sync::Recover;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Instant;

use hashbrown::HashTable;
use opentelemetry::metrics::{
    BoundCounter, BoundGauge, BoundHistogram, BoundUpDownCounter, Counter, Gauge, Histogram, Meter,
    UpDownCounter,
};
use opentelemetry::KeyValue;

use crate::catalog::{self, MetricKind};
use crate::label_key::LabelKey;
use crate::rate::RateWindow;
use crate::rules::MetricDef;
use crate::value::{DropReason, Num};

/// The unbound instrument of a metric.
enum Instrument {
    CounterU64(Counter<u64>),
    CounterF64(Counter<f64>),
    UpDown(UpDownCounter<i64>),
    Gauge(Gauge<f64>),
    Histogram(Histogram<f64>),
    /// Rates are observed at collection time from the series' windows.
    Rate,
}

/// A bound handle: the instrument with one label set resolved.
enum Handle {
    CounterU64(BoundCounter<u64>),
    CounterF64(BoundCounter<f64>),
    UpDown(BoundUpDownCounter<i64>),
    Gauge(BoundGauge<f64>),
    Histogram(BoundHistogram<f64>),
    Rate(RateWindow),
}

/// One label set of one metric.
pub(crate) struct Series {
    /// The label-name list (`Metric::label_set_id`); [`OVERFLOW_SET`] for the overflow series.
    set: u32,
    key: LabelKey,
    attrs: Vec<KeyValue>,
    handle: Handle,
}

impl std::fmt::Debug for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Series")
            .field("values", &self.key)
            .finish_non_exhaustive()
    }
}

impl Series {
    /// Records one measurement; the value is converted to what the instrument takes.
    pub(crate) fn record(&self, value: Num) -> Result<(), DropReason> {
        match &self.handle {
            Handle::CounterU64(h) => h.add(value.to_counter_u64()?),
            Handle::CounterF64(h) => h.add(value.to_counter_f64()?),
            Handle::UpDown(h) => h.add(value.to_i64()?),
            Handle::Gauge(h) => h.record(value.to_f64()?),
            Handle::Histogram(h) => h.record(value.to_f64()?),
            Handle::Rate(w) => w.record(value.to_counter_u64()?),
        }
        Ok(())
    }

    /// Whether this is the metric's overflow series (every use of it must be counted).
    pub(crate) fn is_overflow(&self) -> bool {
        self.set == OVERFLOW_SET
    }

    pub(crate) fn key_eq(&self, set: u32, values: &[&str]) -> bool {
        self.set == set && self.key.eq_values(values)
    }
}

/// The `set` of the overflow series: no label-name list has this id.
const OVERFLOW_SET: u32 = u32::MAX;

/// One metric: definition, instrument and series.
pub(crate) struct Metric {
    pub(crate) def: MetricDef,
    instrument: Instrument,
    table: SeriesTable,
    /// The label-name lists in use: rule metrics have one; a field-prefix metric has one per
    /// distinct set of allow-listed fields its callsites carry.
    label_sets: Mutex<Vec<Vec<String>>>,
    /// Set for every metric but the self-metrics, which must not recurse into themselves.
    self_metrics: Option<Arc<SelfMetrics>>,
}

impl std::fmt::Debug for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metric")
            .field("name", &self.def.name)
            .finish_non_exhaustive()
    }
}

struct SeriesTable {
    limit: usize,
    /// Series bound so far, counted *before* binding, so that threads racing at the limit can
    /// never leave more than `limit` label sets in the SDK.
    reserved: std::sync::atomic::AtomicUsize,
    hasher: hashbrown::DefaultHashBuilder,
    map: RwLock<HashTable<Arc<Series>>>,
    overflow: OnceLock<Arc<Series>>,
}

impl Metric {
    /// The id of a list of label names, registered once per callsite (not on the hot path).
    pub(crate) fn label_set_id(&self, names: &[String]) -> u32 {
        let mut sets = self.label_sets.lock().recover();
        if let Some(i) = sets.iter().position(|s| s == names) {
            return i as u32;
        }
        sets.push(names.to_vec());
        (sets.len() - 1) as u32
    }

    /// The hash under which `values` of label set `set` is (or would be) stored.
    pub(crate) fn hash_values(&self, set: u32, values: &[&str]) -> u64 {
        hash_key(&self.table.hasher, set, values.iter().copied())
    }

    /// The series for `values` (one per label name of `set`, in order), created on first use;
    /// past the cardinality limit, the overflow series.
    pub(crate) fn series(&self, hash: u64, set: u32, values: &[&str]) -> Arc<Series> {
        {
            let map = self.table.map.read().recover();
            if let Some(s) = map.find(hash, |s| s.key_eq(set, values)) {
                return Arc::clone(s);
            }
            if map.len() >= self.table.limit {
                drop(map);
                return self.overflow();
            }
        }
        // Reserve a place under the limit first, then bind outside the lock (the SDK may log
        // through tracing while binding, and that event may come back into this layer).
        use std::sync::atomic::Ordering;
        if self.table.reserved.fetch_add(1, Ordering::AcqRel) >= self.table.limit {
            self.table.reserved.fetch_sub(1, Ordering::AcqRel);
            return self.overflow();
        }
        let attrs = {
            let sets = self.label_sets.lock().recover();
            sets.get(set as usize)
                .map(|names| {
                    names
                        .iter()
                        .zip(values)
                        .map(|(k, v)| KeyValue::new(k.clone(), (*v).to_owned()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let owned = LabelKey::new(values);
        let series = Arc::new(self.make_series(set, owned, attrs));
        let mut map = self.table.map.write().recover();
        if let Some(s) = map.find(hash, |s| s.key_eq(set, values)) {
            // Another thread bound the same label set first (the SDK gave both of us the same
            // tracker); give the place back and use theirs.
            self.table.reserved.fetch_sub(1, Ordering::AcqRel);
            return Arc::clone(s);
        }
        let hasher = &self.table.hasher;
        map.insert_unique(hash, Arc::clone(&series), |s| {
            hash_key(hasher, s.set, s.key.values())
        });
        series
    }

    /// The overflow series, counting one folded measurement.
    #[cold]
    fn overflow(&self) -> Arc<Series> {
        if let Some(sm) = &self.self_metrics {
            sm.label_set_dropped(&self.def.name);
        }
        Arc::clone(self.table.overflow.get_or_init(|| {
            let attrs = vec![KeyValue::new("otel.metric.overflow", true)];
            Arc::new(self.make_series(OVERFLOW_SET, LabelKey::new(&[]), attrs))
        }))
    }

    fn make_series(&self, set: u32, key: LabelKey, attrs: Vec<KeyValue>) -> Series {
        let handle = match &self.instrument {
            Instrument::CounterU64(i) => Handle::CounterU64(i.bind(&attrs)),
            Instrument::CounterF64(i) => Handle::CounterF64(i.bind(&attrs)),
            Instrument::UpDown(i) => Handle::UpDown(i.bind(&attrs)),
            Instrument::Gauge(i) => Handle::Gauge(i.bind(&attrs)),
            Instrument::Histogram(i) => Handle::Histogram(i.bind(&attrs)),
            Instrument::Rate => {
                Handle::Rate(RateWindow::new(self.rate_window_secs(), self.origin()))
            }
        };
        Series {
            set,
            key,
            attrs,
            handle,
        }
    }

    fn rate_window_secs(&self) -> u32 {
        self.self_metrics
            .as_ref()
            .map_or(60, |s| s.rate_window_secs)
    }

    fn origin(&self) -> Instant {
        self.self_metrics
            .as_ref()
            .map_or_else(Instant::now, |s| s.origin)
    }

    /// Records `value` into the series for `values`, counting what cannot be recorded.
    pub(crate) fn record(&self, values: &[&str], value: Num) {
        let series = self.series(self.hash_values(0, values), 0, values);
        self.record_into(&series, value);
    }

    /// Records into a series already looked up, counting what cannot be recorded.
    pub(crate) fn record_into(&self, series: &Series, value: Num) {
        if let Err(reason) = series.record(value) {
            self.dropped(reason);
        }
    }

    /// Counts one value of this metric that could not be recorded.
    pub(crate) fn dropped(&self, reason: DropReason) {
        if let Some(sm) = &self.self_metrics {
            sm.values_dropped
                .record(&[&self.def.name, reason.as_str()], Num::U64(1));
        }
    }

    /// The number of series (overflow excluded).
    pub(crate) fn series_count(&self) -> usize {
        self.table.map.read().recover().len()
    }

    fn observe_rates(&self, observer: &dyn opentelemetry::metrics::AsyncInstrument<f64>) {
        // Observe outside the lock: the SDK may log through tracing, back into this layer.
        let series: Vec<Arc<Series>> = {
            let map = self.table.map.read().recover();
            map.iter()
                .chain(self.table.overflow.get())
                .cloned()
                .collect()
        };
        for s in &series {
            if let Handle::Rate(w) = &s.handle {
                observer.observe(w.per_second(), &s.attrs);
            }
        }
    }
}

/// The layer's own health: what it had to fold or drop.
#[derive(Debug)]
pub(crate) struct SelfMetrics {
    label_sets_dropped: Arc<Metric>,
    values_dropped: Arc<Metric>,
    rate_window_secs: u32,
    origin: Instant,
}

impl SelfMetrics {
    fn label_set_dropped(&self, metric: &str) {
        self.label_sets_dropped.record(&[metric], Num::U64(1));
    }
}

/// The layer's and the server's own metrics: their series are bounded by the program (one per
/// metric, reason or check), not by what dchat logs, so the user's cardinality limit does not
/// apply to them.
const SELF_METRICS: &[&catalog::MetricInfo] = &[
    &catalog::LABEL_SETS_DROPPED,
    &catalog::VALUES_DROPPED,
    &catalog::HEALTH_CHECK_FAILURES,
    &catalog::SCRAPES,
    &catalog::SCRAPE_DURATION,
];

fn is_self_metric(name: &str) -> bool {
    SELF_METRICS.iter().any(|m| m.name == name)
}

/// Series limit of the self-metrics (also their SDK limit, see `sdk_cardinality_limit`).
pub(crate) const SELF_LIMIT: usize = 10_000;

/// Every metric of one `Telemetry`, by name.
pub(crate) struct Meters {
    meter: Meter,
    limit: usize,
    self_metrics: Arc<SelfMetrics>,
    by_name: Mutex<HashMap<String, Arc<Metric>>>,
}

impl std::fmt::Debug for Meters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meters")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// The SDK's cardinality limit for an instrument: above ours, so the SDK never folds series on
/// its own (our overflow series is one more series, a few spare cover races).
pub(crate) fn sdk_cardinality_limit(instrument: &str, limit: usize) -> usize {
    let is_self = SELF_METRICS
        .iter()
        .any(|m| m.name.strip_suffix("_total").unwrap_or(m.name) == instrument);
    if is_self {
        SELF_LIMIT + 8
    } else {
        limit + 8
    }
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

impl Meters {
    /// `limit` is the per-metric cardinality limit; the SDK's own is set above it by the
    /// exporter's view.
    pub(crate) fn new(meter: Meter, limit: usize, rate_window_secs: u32) -> Self {
        let make_self = |info: &catalog::MetricInfo| {
            // Self-metrics have one series per metric (and reason): bounded by the callsites in
            // the program, so they get a limit of their own.
            Arc::new(build_metric(
                &meter,
                MetricDef::from_info(info),
                true,
                SELF_LIMIT,
                None,
            ))
        };
        let self_metrics = Arc::new(SelfMetrics {
            label_sets_dropped: make_self(&catalog::LABEL_SETS_DROPPED),
            values_dropped: make_self(&catalog::VALUES_DROPPED),
            rate_window_secs,
            origin: Instant::now(),
        });
        let mut by_name = HashMap::new();
        for m in [
            &self_metrics.label_sets_dropped,
            &self_metrics.values_dropped,
        ] {
            by_name.insert(m.def.name.clone(), Arc::clone(m));
        }
        Meters {
            meter,
            limit,
            self_metrics,
            by_name: Mutex::new(by_name),
        }
    }

    /// The metric named `def.name`, created on first use. `None` when a metric of that name
    /// exists with a different definition (a kind conflict).
    pub(crate) fn get_or_create(&self, def: &MetricDef, integral: bool) -> Option<Arc<Metric>> {
        let limit = if is_self_metric(&def.name) {
            SELF_LIMIT
        } else {
            self.limit
        };
        let mut by_name = self.by_name.lock().recover();
        if let Some(m) = by_name.get(&def.name) {
            return (m.def.kind == def.kind).then(|| Arc::clone(m));
        }
        let m = Arc::new(build_metric(
            &self.meter,
            def.clone(),
            integral,
            limit,
            Some(Arc::clone(&self.self_metrics)),
        ));
        by_name.insert(def.name.clone(), Arc::clone(&m));
        drop(by_name);
        register_rate_observer(&self.meter, &m);
        // Self-metric series start at 0, so that `increase()` sees their first rise.
        let sm = &self.self_metrics;
        sm.label_sets_dropped.record(&[&def.name], Num::U64(0));
        for reason in DropReason::ALL {
            sm.values_dropped
                .record(&[&def.name, reason.as_str()], Num::U64(0));
        }
        Some(m)
    }

    /// Looks a metric up by its scraped name.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<Metric>> {
        self.by_name.lock().recover().get(name).cloned()
    }
}

fn build_metric(
    meter: &Meter,
    def: MetricDef,
    integral: bool,
    limit: usize,
    self_metrics: Option<Arc<SelfMetrics>>,
) -> Metric {
    // The exporter appends `_total` to counters; counter instruments are named without it.
    let base = match def.kind {
        MetricKind::Counter => def.name.strip_suffix("_total").unwrap_or(&def.name),
        _ => &def.name,
    }
    .to_owned();
    let help = def.help.clone();
    let unit = def.unit.clone();
    let instrument = match def.kind {
        MetricKind::Counter if integral => Instrument::CounterU64(
            meter
                .u64_counter(base)
                .with_description(help)
                .with_unit(unit)
                .build(),
        ),
        MetricKind::Counter => Instrument::CounterF64(
            meter
                .f64_counter(base)
                .with_description(help)
                .with_unit(unit)
                .build(),
        ),
        MetricKind::UpDownCounter => Instrument::UpDown(
            meter
                .i64_up_down_counter(base)
                .with_description(help)
                .with_unit(unit)
                .build(),
        ),
        MetricKind::Gauge => Instrument::Gauge(
            meter
                .f64_gauge(base)
                .with_description(help)
                .with_unit(unit)
                .build(),
        ),
        MetricKind::Histogram => Instrument::Histogram(
            meter
                .f64_histogram(base)
                .with_description(help)
                .with_unit(unit)
                .with_boundaries(def.buckets.clone())
                .build(),
        ),
        MetricKind::RateGauge => Instrument::Rate,
    };
    let table = SeriesTable {
        limit,
        reserved: std::sync::atomic::AtomicUsize::new(0),
        hasher: hashbrown::DefaultHashBuilder::default(),
        map: RwLock::new(HashTable::new()),
        overflow: OnceLock::new(),
    };
    let label_sets = Mutex::new(vec![def.label_names.clone()]);
    Metric {
        def,
        instrument,
        table,
        label_sets,
        self_metrics,
    }
}

fn hash_key<'a>(
    hasher: &hashbrown::DefaultHashBuilder,
    set: u32,
    values: impl Iterator<Item = &'a str>,
) -> u64 {
    let mut h = hasher.build_hasher();
    h.write_u32(set);
    for v in values {
        h.write(v.as_bytes());
        h.write_u8(0xff); // not valid UTF-8: separates ("ab","c") from ("a","bc")
    }
    h.finish()
}

/// Registers the observable gauge of a rate metric; the callback holds the metric weakly.
fn register_rate_observer(meter: &Meter, metric: &Arc<Metric>) {
    if metric.def.kind != MetricKind::RateGauge {
        return;
    }
    let weak = Arc::downgrade(metric);
    let _gauge = meter
        .f64_observable_gauge(metric.def.name.clone())
        .with_description(metric.def.help.clone())
        .with_unit(metric.def.unit.clone())
        .with_callback(move |observer| {
            if let Some(m) = weak.upgrade() {
                m.observe_rates(observer);
            }
        })
        .build();
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::metrics::MeterProvider as _;

    fn meters() -> (opentelemetry_sdk::metrics::SdkMeterProvider, Meters) {
        let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
        let meters = Meters::new(provider.meter("t"), 10, 60);
        (provider, meters)
    }

    #[test]
    fn a_poisoned_series_table_keeps_recording() {
        let (_p, meters) = meters();
        let m = meters
            .get_or_create(&MetricDef::from_info(&catalog::ERRORS), true)
            .unwrap();
        m.record(&["before"], Num::U64(1));
        let m2 = Arc::clone(&m);
        let poisoner = std::thread::spawn(move || {
            let _guard = m2.table.map.write().unwrap();
            panic!("poison the table on purpose");
        });
        assert!(poisoner.join().is_err());
        assert!(m.table.map.is_poisoned());
        m.record(&["before"], Num::U64(1));
        m.record(&["after"], Num::U64(1));
        assert_eq!(m.series_count(), 2);
    }

    #[test]
    fn a_poisoned_registry_keeps_creating_metrics() {
        let (_p, meters) = meters();
        let meters = Arc::new(meters);
        let m2 = Arc::clone(&meters);
        let poisoner = std::thread::spawn(move || {
            let _guard = m2.by_name.lock().unwrap();
            panic!("poison the registry on purpose");
        });
        assert!(poisoner.join().is_err());
        assert!(meters
            .get_or_create(&MetricDef::from_info(&catalog::MESSAGES_SENT), true)
            .is_some());
        assert!(meters.get(catalog::MESSAGES_SENT.name).is_some());
    }
}
