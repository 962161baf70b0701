//! Every metric of one `Telemetry`, by name, and the self-metrics that count what the others
//! had to fold, drop or expire.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::metric::{build_metric, SelfMetrics};
use super::observer::Observer;
use super::settings::{is_self_metric, Settings};
use super::Metric;
use crate::catalog;
use crate::catalog::MetricDef;
use crate::limits::SELF_METRIC_LIMIT;
use crate::sync::Recover;
use crate::value::{DropReason, Num};

/// Every metric of one `Telemetry`, by name.
pub(crate) struct Metrics {
    settings: Settings,
    origin: Instant,
    self_metrics: Arc<SelfMetrics>,
    by_name: Mutex<BTreeMap<String, Arc<Metric>>>,
    observer: Arc<dyn Observer>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("limit", &self.settings.limit)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// The metrics made with `settings`; `observer` (the OpenTelemetry side) learns of each.
    pub(crate) fn new(settings: Settings, observer: Arc<dyn Observer>) -> Self {
        let origin = Instant::now();
        let make_self = |info: &catalog::MetricInfo| {
            let def = MetricDef::from_info(info);
            let histogram = observer.histogram(&def);
            Arc::new(build_metric(
                def,
                true,
                &settings,
                SELF_METRIC_LIMIT,
                None,
                origin,
                histogram,
            ))
        };
        let self_metrics = Arc::new(SelfMetrics {
            label_sets_dropped: make_self(&catalog::LABEL_SETS_DROPPED),
            values_dropped: make_self(&catalog::VALUES_DROPPED),
            series_expired: make_self(&catalog::SERIES_EXPIRED),
            series_forgotten: make_self(&catalog::SERIES_FORGOTTEN),
        });
        let mut by_name = BTreeMap::new();
        for m in [
            &self_metrics.label_sets_dropped,
            &self_metrics.values_dropped,
            &self_metrics.series_expired,
            &self_metrics.series_forgotten,
        ] {
            by_name.insert(m.def.name.clone(), Arc::clone(m));
            observer.metric_made(m);
        }
        Metrics {
            settings,
            origin,
            self_metrics,
            by_name: Mutex::new(by_name),
            observer,
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
            self.observer.histogram(def),
        ));
        by_name.insert(def.name.clone(), Arc::clone(&m));
        drop(by_name);
        self.observer.metric_made(&m);
        if !is_self {
            // Self-metric series start at 0, so that `increase()` sees their first rise.
            let sm = &self.self_metrics;
            sm.label_sets_dropped.record(&[&def.name], Num::U64(0));
            sm.series_expired.record(&[&def.name], Num::U64(0));
            sm.series_forgotten.record(&[&def.name], Num::U64(0));
            for reason in DropReason::ALL {
                sm.values_dropped
                    .record(&[&def.name, reason.as_str()], Num::U64(0));
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

#[cfg(test)]
mod tests {
    use crate::series::LabelSetId;
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;
    use crate::series::cell::Reading;

    fn metrics(limit: usize, ttl: Option<Duration>, clock: &ManualClock) -> Metrics {
        Metrics::new(
            Settings {
                limit,
                ttl,
                rate_window_secs: 60,
                clock: Arc::new(clock.clone()),
                exemplars: false,
                budget: None,
                created: false,
            },
            Arc::new(crate::series::NoObserver),
        )
    }

    /// Counts 1 for `v` through callsite cache `l1`, as a callsite's action does.
    fn record_at(m: &Metric, l1: &crate::series::cache::CallsiteCache, v: &str) {
        let mut trace = crate::series::exemplar::TraceContext::new();
        m.record_at(
            l1,
            LabelSetId::FIRST,
            &[v.as_bytes()],
            Num::U64(1),
            &mut trace,
        );
    }

    /// The `errors` counter of a fresh registry (the metric holds, through `Arc`s, all of the
    /// registry it uses).
    fn errors(limit: usize, ttl: Option<Duration>, clock: &ManualClock) -> Arc<Metric> {
        metrics(limit, ttl, clock)
            .get_or_create(&MetricDef::from_info(&catalog::ERRORS), true)
            .unwrap()
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
        let m = errors(2, Some(Duration::from_secs(60)), &clock);
        m.record(&["a"], Num::U64(1));
        m.record(&["b"], Num::U64(1));
        m.record(&["c"], Num::U64(1)); // full: overflow
        assert_eq!(m.series_count(), 2);
        m.sweep(); // sees a, b (and overflow) change
        clock.advance(Duration::from_secs(30));
        m.record(&["a"], Num::U64(1));
        m.sweep();
        clock.advance(Duration::from_secs(31));
        assert_eq!(
            m.sweep().expired,
            2,
            "b and the overflow series: idle for 61 s"
        );
        assert_eq!(value(&m, "a"), Some(2));
        m.record(&["c"], Num::U64(5));
        assert_eq!(value(&m, "c"), Some(5), "the freed place is used");
        m.record(&["b"], Num::U64(1));
        assert_eq!(
            value(&m, "b"),
            None,
            "full again: b folds into the overflow series"
        );
    }

    #[test]
    fn a_callsite_keeps_a_few_series_then_goes_wide() {
        use crate::limits::CALLSITE_SERIES;
        use crate::series::cache::CallsiteCache;
        let clock = ManualClock::new();
        let m = errors(100, Some(Duration::from_secs(10)), &clock);
        let l1 = CallsiteCache::default();
        let rec = |v: &str| record_at(&m, &l1, v);
        for v in ["a", "b", "a", "b"] {
            rec(v);
        }
        assert!(
            l1.get(LabelSetId::FIRST, &[b"a"]).is_some()
                && l1.get(LabelSetId::FIRST, &[b"b"]).is_some()
        );
        assert!(!l1.is_wide(), "two values fit");
        // a expires while b stays live; a's slot is passed over and its successor takes a
        // free slot, starting from zero.
        m.sweep();
        clock.advance(Duration::from_secs(5));
        rec("b");
        m.sweep();
        clock.advance(Duration::from_secs(6));
        assert_eq!(m.sweep().expired, 1);
        assert!(
            l1.get(LabelSetId::FIRST, &[b"a"]).is_none(),
            "an expired slot is passed over"
        );
        rec("a");
        assert!(
            l1.get(LabelSetId::FIRST, &[b"a"]).is_some(),
            "the successor took a free slot"
        );
        assert_eq!(
            value(&m, "a"),
            Some(3),
            "it continued from where it expired"
        );
        // More values than slots: the callsite goes wide, and every count still lands.
        for i in 0..CALLSITE_SERIES {
            rec(&format!("v{i}"));
        }
        assert!(l1.is_wide());
        assert!(
            l1.get(LabelSetId::FIRST, &[b"b"]).is_none(),
            "a wide callsite skips its slots"
        );
        rec("b");
        assert_eq!(value(&m, "b"), Some(4));
        for i in 0..CALLSITE_SERIES {
            assert_eq!(value(&m, &format!("v{i}")), Some(1));
        }
    }

    #[test]
    fn a_value_whose_slot_expired_does_not_make_the_callsite_wide() {
        use crate::limits::CALLSITE_SERIES;
        use crate::series::cache::CallsiteCache;
        let clock = ManualClock::new();
        let m = errors(100, Some(Duration::from_secs(10)), &clock);
        let l1 = CallsiteCache::default();
        let rec = |v: &str| record_at(&m, &l1, v);
        let values: Vec<String> = (0..CALLSITE_SERIES).map(|i| format!("v{i}")).collect();
        for v in &values {
            rec(v);
        }
        // Every slot is full; v0 idles past the TTL while the others stay live.
        m.sweep();
        clock.advance(Duration::from_secs(5));
        for v in &values[1..] {
            rec(v);
        }
        m.sweep();
        clock.advance(Duration::from_secs(6));
        assert_eq!(m.sweep().expired, 1);
        rec("v0");
        assert!(
            !l1.is_wide(),
            "v0 came back: no new value, so the others keep their slots"
        );
        assert_eq!(
            value(&m, "v0"),
            Some(2),
            "it continued from where it expired"
        );
        assert!(l1.get(LabelSetId::FIRST, &[b"v1"]).is_some());
        rec("new");
        assert!(l1.is_wide(), "a ninth value makes it wide");
    }

    #[test]
    fn at_most_the_limit_is_remembered() {
        let clock = ManualClock::new();
        let m = errors(10, Some(Duration::from_secs(10)), &clock);
        for round in 0..5 {
            for i in 0..10 {
                m.record(&[format!("r{round}-{i}")], Num::U64(1));
            }
            m.sweep();
            clock.advance(Duration::from_secs(11));
            assert_eq!(m.sweep().expired, 10);
            assert_eq!(m.store.remembered(), 10, "bounded by the cardinality limit");
        }
    }

    #[test]
    fn a_full_table_sweeps_before_it_folds() {
        let clock = ManualClock::new();
        let m = errors(1, Some(Duration::from_secs(10)), &clock);
        m.record(&["old"], Num::U64(1));
        m.sweep();
        clock.advance(Duration::from_secs(11));
        m.record(&["new"], Num::U64(1));
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
        let at = || crate::series::parked::GaugeKey {
            layer: 1,
            span: 1,
            gauge: 0,
        };
        let s = m.open_gauge(LabelSetId::FIRST, &["relay-1"], at).unwrap();
        for _ in 0..5 {
            m.sweep();
            clock.advance(Duration::from_secs(100));
        }
        assert_eq!(m.series_count(), 1);
        m.close_gauge(&s, at);
        m.sweep();
        clock.advance(Duration::from_secs(11));
        m.sweep();
        assert_eq!(m.series_count(), 0);
    }

    #[test]
    fn a_poisoned_series_table_keeps_recording() {
        let clock = ManualClock::new();
        let m = errors(10, None, &clock);
        m.record(&["before"], Num::U64(1));
        m.store.poison_for_test();
        m.record(&["after"], Num::U64(1));
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
