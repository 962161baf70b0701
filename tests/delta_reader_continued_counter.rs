//! A counter series that expires and comes back continues from its value; an OpenTelemetry
//! reader sees that right in either temporality: a cumulative one the running value (absent
//! while expired), a delta one only the increments since the last export (its first delta after
//! the return is what was counted since, not everything the series ever counted).
mod common;

use std::time::Duration;

use dchat_telemetry::{ManualClock, Telemetry};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{
    InMemoryMetricExporter, InMemoryMetricExporterBuilder, PeriodicReader, Temporality,
};

/// The `dchat_messages_sent` value of channel `general` in the latest export, if any.
fn exported(exporter: &InMemoryMetricExporter) -> Option<u64> {
    let rm = exporter.get_finished_metrics().unwrap();
    let last = rm.last()?;
    let metric = last
        .scope_metrics()
        .flat_map(|s| s.metrics())
        .find(|m| m.name() == "dchat_messages_sent")?;
    let AggregatedMetrics::U64(MetricData::Sum(sum)) = metric.data() else {
        panic!("not a u64 sum: {metric:?}")
    };
    let value = sum
        .data_points()
        .find(|p| p.attributes().any(|kv| kv.value.as_str() == "general"))
        .map(|p| p.value());
    value
}

/// Sends, expires, sends again; the exported value after each step.
fn steps(temporality: Temporality) -> Vec<Option<u64>> {
    let exporter = InMemoryMetricExporterBuilder::new()
        .with_temporality(temporality)
        .build();
    let clock = ManualClock::new();
    let t = Telemetry::builder()
        .with_otel_reader(PeriodicReader::builder(exporter.clone()).build())
        .with_series_ttl(Duration::from_secs(60))
        .with_clock(clock.clone())
        .without_env()
        .build()
        .unwrap();
    let dispatch = common::dispatch(&t);
    let send = |n: usize| {
        tracing::dispatcher::with_default(&dispatch, || {
            for _ in 0..n {
                tracing::info!(name: "message.sent", channel = "general");
            }
        })
    };
    let mut out = Vec::new();
    let mut export = || {
        exporter.reset();
        t.meter_provider().force_flush().unwrap();
        out.push(exported(&exporter));
    };
    send(3);
    let _ = t.render().unwrap(); // expiry counts idle time from the scrape that saw the change
    export();
    clock.advance(Duration::from_secs(61));
    let text = t.render().unwrap();
    assert_eq!(
        common::sample(
            &text,
            "dchat_messages_sent_total",
            &[("channel", "general")]
        ),
        None,
        "expired"
    );
    export();
    send(2);
    let text = t.render().unwrap();
    assert_eq!(
        common::sample(
            &text,
            "dchat_messages_sent_total",
            &[("channel", "general")]
        ),
        Some(5.0),
        "continued"
    );
    export();
    send(1);
    export();
    out
}

#[test]
fn a_cumulative_reader_sees_the_running_value() {
    assert_eq!(
        steps(Temporality::Cumulative),
        [Some(3), None, Some(5), Some(6)]
    );
}

#[test]
fn a_delta_reader_sees_only_new_increments_after_the_return() {
    assert_eq!(steps(Temporality::Delta), [Some(3), None, Some(2), Some(1)]);
}
