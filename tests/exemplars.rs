//! Exemplars: with tracing-opentelemetry's layer beside ours and a real `opentelemetry_sdk`
//! tracer provider, a histogram value or a counter recorded inside a span carries that span's
//! trace and span id on its OpenMetrics bucket (or counter) line — within OpenMetrics'
//! 128-character limit for an exemplar's labels — and the text format carries none; outside
//! any span there is no exemplar.
mod common;

use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::prelude::*;

fn exemplar_of<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.split_once(" # ").map(|(_, e)| e))
}

#[test]
fn samples_inside_a_traced_span_link_to_it() {
    let t = dchat_telemetry::Telemetry::builder()
        .with_node_id("test-node")
        .with_exemplars(true)
        .without_env()
        .build()
        .unwrap();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("exemplars")))
        .with(t.layer());
    let (trace_id, span_id) = tracing::subscriber::with_default(subscriber, || {
        // Outside any span first: no context, no exemplar.
        tracing::info!(name: "message.received", channel = "untraced", latency_seconds = 0.3);
        let span = tracing::info_span!("handle_message");
        let _entered = span.enter();
        tracing::info!(name: "message.received", channel = "general", latency_seconds = 0.02);
        tracing::info!(name: "message.sent", channel = "general");
        let cx = span.context();
        let sc = cx.span().span_context().clone();
        (sc.trace_id().to_string(), sc.span_id().to_string())
    });
    let om = t
        .render_format(dchat_telemetry::Format::OpenMetrics)
        .unwrap();
    let want = format!(r#"{{trace_id="{trace_id}",span_id="{span_id}"}}"#);
    let bucket = exemplar_of(
        &om,
        r#"dchat_message_latency_seconds_bucket{channel="general",node_id="test-node",service="dchat",le="0.025"}"#,
    )
    .unwrap_or_else(|| panic!("no exemplar on the 0.025 bucket:\n{om}"));
    assert!(bucket.starts_with(&format!("{want} 0.02 ")), "{bucket}");
    let labels_len = bucket.split_once('}').map_or(0, |(l, _)| l.len() - 1);
    assert!(
        labels_len <= 128,
        "{labels_len} characters of exemplar labels"
    );
    let counter = exemplar_of(&om, r#"dchat_messages_sent_total{channel="general""#).unwrap();
    assert!(counter.starts_with(&format!("{want} 1 ")), "{counter}");
    assert_eq!(
        exemplar_of(
            &om,
            r#"dchat_message_latency_seconds_bucket{channel="untraced""#
        ),
        None,
        "no context, no exemplar"
    );
    // Timestamps are seconds since the epoch, now-ish.
    let ts: f64 = counter.rsplit(' ').next().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - ts).abs() < 60.0, "{ts}");
    common::python_parse_openmetrics(&om).unwrap();
    let text = t.render().unwrap();
    assert!(!text.contains(" # {"), "exemplars are OpenMetrics only");
}
