//! The telemetry the benchmarks and `examples/hot_path_profile` measure, in one place so that the
//! criterion medians and the instruction counts are of the same rules.

use dchat_telemetry::{catalog, LabelSource, MetricKind, Rule, Rules, Telemetry};

/// The dchat defaults plus a counter with one own label (`channel`) and one inherited from the
/// parent span (`node`), and a histogram alone (the shape of tracing-opentelemetry's
/// `histogram.` event; dchat's `message.received` feeds a counter too).
pub(crate) fn bench_telemetry(limit: usize) -> Telemetry {
    bench_telemetry_with(limit, false)
}

/// [`bench_telemetry`] with exemplars on or off (off is the default, as in `bench_telemetry`).
pub(crate) fn bench_telemetry_with(limit: usize, exemplars: bool) -> Telemetry {
    let rule = Rule::builder(MetricKind::Counter, "bench_events_total")
        .with_event_name("bench.event")
        .with_description("Bench events.")
        .with_label("channel")
        .with_label_from("node", [LabelSource::field("node")])
        .build()
        .expect("valid rule");
    let histogram = Rule::builder(MetricKind::Histogram, "bench_latency_seconds")
        .with_event_name("bench.latency")
        .with_description("Bench latencies.")
        .with_unit("seconds")
        .with_buckets(catalog::LATENCY_BUCKETS.to_vec())
        .with_value_field("latency_seconds")
        .with_label("channel")
        .build()
        .expect("valid rule");
    Telemetry::builder()
        .with_rules(Rules::dchat_defaults().with_rule(rule).with_rule(histogram))
        .with_cardinality_limit(limit)
        // Renders of up to 200k series: past the default budget's 15000 samples.
        .with_sample_budget(10_000_000)
        .with_exemplars(exemplars)
        .with_process_metrics(false)
        .without_env()
        .build()
        .expect("valid config")
}
