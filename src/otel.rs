//! The OpenTelemetry side: the same series, seen by OpenTelemetry metric readers.
//!
//! The series live in this crate's own store (`series`), which is what makes expiry, exemplars
//! and a fast exposition possible; OpenTelemetry's SDK 0.33 keeps every attribute set of a
//! cumulative synchronous instrument for the provider's life. So that a reader added with
//! [`TelemetryBuilder::with_otel_reader`](crate::TelemetryBuilder::with_otel_reader) (an OTLP
//! exporter, say) sees the same metrics:
//!
//! - counters, up-down counters and gauges are **observable instruments** whose callbacks report
//!   every live series at collection; a series that expires stops being reported, and the SDK
//!   forgets it too;
//! - histograms (OpenTelemetry has no observable histogram) are the SDK's **synchronous
//!   histogram**, each series bound to its attribute set and fed every measurement; an expired
//!   series is fed no more, so a delta reader stops reporting it (and the SDK forgets it once
//!   the series and its bound handle are dropped), while a cumulative reader keeps it, as the
//!   SDK does for any cumulative instrument (up to its 2000 attribute sets per instrument).
//!
//! With no reader (the default) nothing is registered with the SDK and the hot path never calls
//! it. The resource is the node's ([`crate::resource`]: `service.name`, `service.instance.id`
//! from `node_id`, `service.version`, ...).
//!
//! A counter series that expires and later continues from its remembered value is reported as
//! that running value to cumulative readers; to readers that take counters as deltas, less the
//! value it continued from, so that its first delta is not everything it ever counted.

use std::sync::{Arc, Mutex};

use opentelemetry::metrics::{Histogram, Meter, MeterProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    InstrumentKind, MeterProviderBuilder, SdkMeterProvider, Stream, Temporality,
};
use opentelemetry_sdk::Resource;

use crate::catalog::MetricDef;
use crate::catalog::MetricKind;
use crate::series::cell::{CellKind, Reading};
use crate::series::{attributes, Metric, Observer, Series};
use crate::sync::Recover;
use crate::Error;

type AddReader = Box<dyn FnOnce(MeterProviderBuilder) -> MeterProviderBuilder + Send>;

/// A metric reader waiting for the builder to make the meter provider (readers are not
/// `Clone`; the first `Telemetry` built takes it), and whether it wants deltas of counters.
#[derive(Clone)]
pub(crate) struct PendingReader(Arc<Mutex<Option<AddReader>>>, bool);

impl std::fmt::Debug for PendingReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingReader")
    }
}

impl PendingReader {
    pub(crate) fn new<R: MetricReader>(reader: R) -> Self {
        let delta = reader.temporality(InstrumentKind::ObservableCounter) == Temporality::Delta;
        PendingReader(
            Arc::new(Mutex::new(Some(Box::new(
                move |b: MeterProviderBuilder| b.with_reader(reader),
            )))),
            delta,
        )
    }

    fn take(&self) -> Option<AddReader> {
        self.0.lock().recover().take()
    }
}

/// The meter provider, and whether anything reads it.
pub(crate) struct Otel {
    provider: SdkMeterProvider,
    meter: Meter,
    /// Whether a reader was given: only then are instruments registered and fed.
    enabled: bool,
    /// Whether every reader takes counters as deltas: then a counter series that continues an
    /// expired one reports only what it counted since (see [`since_continued`]).
    delta_counters: bool,
}

impl std::fmt::Debug for Otel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Otel")
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl Otel {
    /// A provider with `readers` and `resource` (the node's: see [`crate::resource`]).
    ///
    /// # Errors
    /// [`Error::Exporter`] when every given reader was already taken by another `Telemetry`.
    pub(crate) fn new(
        readers: &[PendingReader],
        resource: Resource,
        limit: usize,
    ) -> Result<Self, Error> {
        // Our limits are per metric; the SDK gets one above the largest of ours (the self-metrics').
        let sdk_limit = limit.max(crate::limits::SELF_METRIC_LIMIT) + 8;
        let mut builder = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_view(move |_: &opentelemetry_sdk::metrics::Instrument| {
                Stream::builder()
                    .with_cardinality_limit(sdk_limit)
                    .build()
                    .ok()
            });
        let mut enabled = false;
        for r in readers {
            match r.take() {
                Some(add) => {
                    builder = add(builder);
                    enabled = true;
                }
                None => {
                    return Err(Error::Exporter {
                        reason: "an OpenTelemetry reader given to this builder was already taken \
                                 by a Telemetry built from a clone of it"
                            .into(),
                        source: None,
                    })
                }
            }
        }
        let provider = builder.build();
        let meter = provider.meter("dchat-telemetry");
        Ok(Otel {
            provider,
            meter,
            enabled,
            delta_counters: enabled && readers.iter().all(|r| r.1),
        })
    }

    /// Whether any reader was given.
    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled
    }

    pub(crate) fn provider(&self) -> &SdkMeterProvider {
        &self.provider
    }

    /// Flushes the readers and stops the provider.
    pub(crate) fn shutdown(&self) {
        let _ = self.provider.shutdown();
    }
}

impl Observer for Otel {
    /// The SDK histogram a histogram metric's series bind to (with readers only).
    fn histogram(&self, def: &MetricDef) -> Option<Histogram<f64>> {
        (self.enabled && def.kind == MetricKind::Histogram).then(|| {
            self.meter
                .f64_histogram(def.name.clone())
                .with_description(def.help.clone())
                .with_unit(ucum(&def.unit))
                .with_boundaries(def.buckets.clone())
                .build()
        })
    }

    /// Registers the observable instrument that reports `metric`'s series (with readers only;
    /// histograms have their synchronous instrument instead). The callback holds the metric
    /// weakly.
    fn metric_made(&self, metric: &Arc<Metric>) {
        if !self.enabled {
            return;
        }
        let def = &metric.def;
        let base = match def.kind {
            MetricKind::Counter => crate::labels::counter_family(&def.name),
            _ => &def.name,
        }
        .to_owned();
        let (help, unit) = (def.help.clone(), ucum(&def.unit));
        let weak = Arc::downgrade(metric);
        let delta = self.delta_counters;
        // One observable instrument per cell kind: the SDK's builders differ only in their
        // number type, and the callback reports the reading of that kind.
        macro_rules! observe {
            ($builder:ident, $reading:ident) => {{
                let _ = self
                    .meter
                    .$builder(base)
                    .with_description(help)
                    .with_unit(unit)
                    .with_callback(move |o| {
                        report(&weak, |s, v, a| {
                            let v = if delta { since_continued(s, v) } else { v };
                            if let Reading::$reading(n) = v {
                                o.observe(n, a);
                            }
                        })
                    })
                    .build();
            }};
        }
        match &metric.cell_kind {
            CellKind::CounterU64 => observe!(u64_observable_counter, CounterInt),
            CellKind::CounterF64 => observe!(f64_observable_counter, Counter),
            CellKind::UpDown => observe!(i64_observable_up_down_counter, GaugeInt),
            CellKind::Gauge | CellKind::Rate { .. } => observe!(f64_observable_gauge, Gauge),
            CellKind::Histogram(_) => {}
        }
    }
}

/// Calls `observe` with every live series of the metric, its value and its attributes.
fn report(
    metric: &std::sync::Weak<Metric>,
    mut observe: impl FnMut(&Series, Reading, &[KeyValue]),
) {
    let Some(m) = metric.upgrade() else {
        return;
    };
    m.store.for_each(|s: &Arc<Series>| {
        let attrs = s
            .attrs
            .get_or_init(|| attributes(&m.label_names(s.set), s.set, &s.key).into_boxed_slice());
        observe(s, s.cell.read(), attrs);
    });
}

/// A counter's value less the value it continued from (0 for a series that continued nothing).
///
/// The SDK makes a delta of an observable counter from the value its callback reported at the
/// previous collection, and from 0 for a label set it did not report then: a counter that
/// expired and came back with its old value plus new increments would be pushed as one delta of
/// everything it ever counted. Reported less the value it continued from, its first delta is
/// what it counted since it came back (the pushes before its expiry carried the rest), and
/// later deltas are unchanged, the subtrahend being fixed.
fn since_continued(s: &Series, v: Reading) -> Reading {
    match v {
        Reading::CounterInt(n) => Reading::CounterInt(n.saturating_sub(s.continued_from())),
        Reading::Counter(x) => Reading::Counter(x - f64::from_bits(s.continued_from())),
        other => other,
    }
}

/// The unit in UCUM, as OpenTelemetry expects it: `seconds` is `s`, `1` none, words become
/// annotations (`messages` is `{messages}`), which OTLP receivers such as Prometheus 3's drop
/// from names, so that pushed metrics keep the names `/metrics` shows.
fn ucum(unit: &str) -> String {
    match unit {
        "" => String::new(),
        "seconds" => "s".into(),
        "bytes" => "By".into(),
        // Dimensionless: no unit. (Prometheus' OTLP receiver names a gauge of unit `1`
        // `<name>_ratio`, and `dchat_telemetry_ready` is a 0/1 state, not a ratio.)
        "1" => String::new(),
        u => format!("{{{}}}", u.replace(' ', "_")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_in_ucum() {
        assert_eq!(ucum("seconds"), "s");
        assert_eq!(ucum("messages"), "{messages}");
        assert_eq!(ucum("errors per second"), "{errors_per_second}");
        assert_eq!(ucum("1"), "");
    }

    #[test]
    fn a_reader_is_taken_once() {
        let r = PendingReader::new(opentelemetry_sdk::metrics::ManualReader::builder().build());
        let first = Otel::new(
            std::slice::from_ref(&r),
            Resource::builder_empty().build(),
            10,
        )
        .unwrap();
        assert!(first.enabled);
        assert!(matches!(
            Otel::new(&[r], Resource::builder_empty().build(), 10),
            Err(Error::Exporter { .. })
        ));
    }
}
