//! Every metric name the layer accepts reaches the exposition. Prometheus allows names the
//! OpenTelemetry SDK's own name check refuses (a colon, a leading underscore); the SDK would
//! then hand back an instrument that records nothing, and the counts would be lost without a
//! word. Names from tracing-opentelemetry prefixes that are only `_total` keep a name.
mod common;

use common::{sample, telemetry_with};
use dchat_telemetry::{MetricKind, Rule, Rules};

#[test]
fn names_prometheus_allows_are_exported() {
    let rule = Rule::builder(MetricKind::Counter, "job:requests_total")
        .with_event_name("request")
        .with_description("Requests, named like a recording rule.")
        .build()
        .expect("a valid Prometheus name");
    let t = telemetry_with(Rules::dchat_defaults().with_rule(rule));
    common::with_layer(&t, || {
        tracing::info!(name: "request", "served");
        tracing::info!(
            monotonic_counter._hidden = 2,
            gauge._total = 1.5,
            "odd names"
        );
    });
    let text = t.render().expect("render");
    assert_eq!(
        sample(&text, "job:requests_total", &[]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "_hidden_total", &[]), Some(2.0), "{text}");
    assert_eq!(sample(&text, "_total", &[]), Some(1.5), "{text}");
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(!line.starts_with('{'), "a sample without a name: {line}");
    }
}
