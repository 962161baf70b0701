//! Still OpenTelemetry: an OpenTelemetry metric reader (here the SDK's in-memory exporter behind
//! a periodic reader, as an OTLP exporter would sit) added with `with_otel_reader` sees the same
//! counters, gauges and histograms as `/metrics`, and an expired series leaves it too.
mod common;

use std::time::Duration;

use dchat_telemetry::{ManualClock, Telemetry};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader};

fn metric<'a>(rm: &'a [ResourceMetrics], name: &str) -> Option<&'a AggregatedMetrics> {
    rm.iter()
        .flat_map(|r| r.scope_metrics())
        .flat_map(|s| s.metrics())
        .find(|m| m.name() == name)
        .map(|m| m.data())
}

#[test]
fn an_opentelemetry_reader_sees_what_prometheus_sees() {
    let exporter = InMemoryMetricExporter::default();
    let clock = ManualClock::new();
    let t = Telemetry::builder()
        .with_node_id("n1")
        .with_otel_reader(PeriodicReader::builder(exporter.clone()).build())
        .with_series_ttl(Duration::from_secs(60))
        .with_clock(clock.clone())
        .without_env()
        .build()
        .unwrap();
    let dispatch = common::dispatch(&t);
    let relay = tracing::dispatcher::with_default(&dispatch, || {
        for _ in 0..7 {
            tracing::info!(name: "message.sent", channel = "general");
        }
        tracing::info!(name: "message.sent", channel = "random");
        for ms in [5u64, 40, 40, 2000] {
            tracing::info!(name: "message.received", channel = "general", latency_ms = ms);
        }
        tracing::info_span!("relay.connection", relay = "relay-1")
    });
    let text = t.render().unwrap();
    t.meter_provider().force_flush().unwrap();
    let rm = exporter.get_finished_metrics().unwrap();

    // Counters: observable counters reporting the same series, without `_total`.
    let Some(AggregatedMetrics::U64(MetricData::Sum(sent))) = metric(&rm, "dchat_messages_sent")
    else {
        panic!("no dchat_messages_sent in {rm:#?}")
    };
    let value_of = |channel: &str| {
        sent.data_points()
            .find(|p| {
                p.attributes()
                    .any(|kv| kv.key.as_str() == "channel" && kv.value.as_str() == channel)
            })
            .map(|p| p.value())
    };
    assert_eq!(value_of("general"), Some(7));
    assert_eq!(value_of("random"), Some(1));
    assert_eq!(
        common::sample(
            &text,
            "dchat_messages_sent_total",
            &[("channel", "general")]
        ),
        Some(7.0)
    );

    // Histograms: the SDK's own histogram, every measurement.
    let Some(AggregatedMetrics::F64(MetricData::Histogram(h))) =
        metric(&rm, "dchat_message_latency_seconds")
    else {
        panic!("no dchat_message_latency_seconds")
    };
    let p = h.data_points().next().unwrap();
    assert_eq!(p.count(), 4);
    assert!((p.sum() - 2.085).abs() < 1e-9, "{}", p.sum());
    assert_eq!(
        common::sample(
            &text,
            "dchat_message_latency_seconds_count",
            &[("channel", "general")]
        ),
        Some(4.0)
    );
    let otel_buckets: Vec<u64> = p.bucket_counts().collect();
    assert_eq!(otel_buckets.iter().sum::<u64>(), 4);

    // Gauges: the open relay's up-down counter.
    let Some(AggregatedMetrics::I64(MetricData::Sum(relays))) =
        metric(&rm, "dchat_relay_connections_active")
    else {
        panic!("no dchat_relay_connections_active")
    };
    assert_eq!(relays.data_points().next().map(|p| p.value()), Some(1));

    // The constant labels are the resource's attributes.
    let resource = rm[0].resource();
    assert_eq!(
        resource
            .get(&opentelemetry::Key::new("service.name"))
            .map(|v| v.to_string()),
        Some("dchat".to_owned())
    );

    // An expired series leaves the OpenTelemetry side as it leaves the exposition.
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::info!(name: "message.sent", channel = "general");
    });
    clock.advance(Duration::from_secs(30));
    let _ = t.render().unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::info!(name: "message.sent", channel = "general");
    });
    clock.advance(Duration::from_secs(61));
    let text = t.render().unwrap();
    assert_eq!(
        common::sample(&text, "dchat_messages_sent_total", &[("channel", "random")]),
        None
    );
    exporter.reset();
    t.meter_provider().force_flush().unwrap();
    let rm = exporter.get_finished_metrics().unwrap();
    let Some(AggregatedMetrics::U64(MetricData::Sum(sent))) = metric(&rm, "dchat_messages_sent")
    else {
        panic!("no dchat_messages_sent after expiry")
    };
    let channels: Vec<String> = sent
        .data_points()
        .flat_map(|p| {
            p.attributes()
                .map(|kv| kv.value.to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!channels.contains(&"random".to_owned()), "{channels:?}");
    drop(relay);
}
