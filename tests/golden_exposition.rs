//! The exposition has exactly the catalogue's names, types, HELP texts and labels (golden files
//! `tests/data/golden.prom` for the text format and `tests/data/golden.openmetrics` for
//! OpenMetrics), carries the constant labels on every series and no `otel_scope_*` label,
//! `promtool check metrics` reports nothing on the text, and Python `prometheus_client`'s
//! OpenMetrics parser accepts the OpenMetrics.
mod common;

use common::{promtool_findings, python_parse_openmetrics};
use dchat_telemetry::catalog::CATALOG;
use dchat_telemetry::Format;
use tracing_subscriber::prelude::*;

/// Drives every catalogue metric once, deterministically but for timings, and renders it.
fn exposition_as(format: Format) -> String {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let t = dchat_telemetry::Telemetry::builder()
        .with_service_name("dchat")
        .with_node_id("node-1")
        .with_cardinality_limit(1)
        .with_tokio_runtime(rt.handle().clone())
        .without_env()
        .build()
        .unwrap();
    t.health().readiness_gate("database").set_ready(true);
    t.health()
        .add_liveness_check("disk", || Err("disk full".into()));
    assert!(!rt.block_on(t.health().liveness()).is_pass());
    // The dispatcher lives until after the render, as dchat's does.
    let dispatch: tracing::Dispatch = tracing_subscriber::registry().with(t.layer()).into();
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::info!(name: "message.sent", channel = "general", "sent");
        tracing::info!(name: "message.sent", channel = "random", "past the cardinality limit of 1");
        tracing::info!(name: "message.received", channel = "general", latency_ms = 42u64, "received");
        tracing::warn!(name: "message.send_failed", channel = "general", "no peers");
        tracing::info!(name: "message.dropped", reason = "undecodable", "not a dchat message");
        tracing::info!(name: "peer.dial_failed", "connection refused");
        let _relay = tracing::info_span!("relay.connection", relay = "relay-1").entered();
        drop(tracing::info_span!("db.query", db.operation = "insert").entered());
        tracing::error!(error.type = "timeout", "relay timed out");
        tracing::info!(name: "message.sent", channel = "general", count = -1i64, "bad count");
    });
    let _ = t.render_format(format).unwrap(); // a first scrape, so the scrape self-metrics exist
    let text = t.render_format(format).unwrap();
    drop(dispatch);
    text
}

fn exposition() -> String {
    exposition_as(Format::Text)
}

/// Replaces the values of series whose value depends on timing or on the process with `<t>`.
fn normalise(text: &str) -> String {
    let timed = [
        "dchat_database_query_duration_seconds",
        "dchat_error_rate",
        "dchat_telemetry_scrape_duration_seconds",
        "process_",
        "tokio_runtime_alive_tasks",
        "tokio_runtime_busy_seconds",
    ];
    text.lines()
        .map(|l| {
            if !l.starts_with('#')
                && timed.iter().any(|m| l.starts_with(m))
                && !l.contains("_count{")
                && !l.contains("_count ")
            {
                match l.rsplit_once(' ') {
                    Some((head, _)) => format!("{head} <t>"),
                    None => l.to_owned(),
                }
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn check_golden(got: &str, file: &str) {
    let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        got, want,
        "exposition differs from {path} (UPDATE_GOLDEN=1 rewrites it)"
    );
}

#[test]
fn matches_golden_file() {
    check_golden(&normalise(&exposition()), "golden.prom");
}

#[test]
fn openmetrics_matches_golden_file_and_parses() {
    let text = exposition_as(Format::OpenMetrics);
    check_golden(&normalise(&text), "golden.openmetrics");
    assert!(text.ends_with("# EOF\n"));
    assert!(text.contains("# TYPE dchat_messages_sent counter\n"));
    assert!(text.contains("# UNIT dchat_message_latency_seconds seconds\n"));
    assert!(text.contains(r#"le="1.0""#), "canonical bounds");
    let samples = python_parse_openmetrics(&text)
        .unwrap_or_else(|e| panic!("prometheus_client's OpenMetrics parser: {e}\n{text}"));
    assert!(samples > 100, "{samples}");
}

#[test]
fn names_types_and_help_are_the_catalogues() {
    let text = exposition();
    for m in CATALOG {
        assert!(
            text.contains(&format!("# HELP {} {}\n", m.name, m.help)),
            "HELP of {}",
            m.name
        );
        assert!(
            text.contains(&format!("# TYPE {} {}\n", m.name, m.kind.prometheus_type())),
            "TYPE of {}",
            m.name
        );
    }
    let families = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
    assert_eq!(
        families,
        CATALOG.len(),
        "no family outside the catalogue:\n{text}"
    );
}

#[test]
fn constant_labels_everywhere_and_no_scope_labels() {
    let text = exposition();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            line.contains(r#"node_id="node-1""#) && line.contains(r#"service="dchat""#),
            "{line}"
        );
        assert!(!line.contains("otel_scope"), "{line}");
    }
    // One target_info (the resource, as OpenTelemetry's Prometheus conventions have it), and
    // none of opentelemetry-prometheus' own.
    assert_eq!(text.matches("\ntarget_info{").count(), 1, "{text}");
}

#[test]
fn promtool_check_metrics_is_clean() {
    let text = exposition();
    assert_eq!(promtool_findings(&text), None);
}
