//! The exposition has exactly the catalogue's names, types, HELP texts and labels (golden file
//! `tests/data/golden.prom`), carries the constant labels on every series and no `otel_scope_*`
//! label, and `promtool check metrics` reports nothing.
mod common;

use common::{promtool_findings, with_layer};
use dchat_telemetry::catalog::CATALOG;

/// Drives every catalogue metric once, deterministically but for timings.
fn exposition() -> String {
    let t = dchat_telemetry::Telemetry::builder()
        .with_service_name("dchat")
        .with_node_id("node-1")
        .with_cardinality_limit(1)
        .without_env()
        .build()
        .unwrap();
    t.health().readiness_gate("database").set_ready(true);
    t.health()
        .add_liveness_check("disk", || Err("disk full".into()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert!(!rt.block_on(t.health().liveness()).is_pass());
    with_layer(&t, || {
        tracing::info!(name: "message.sent", channel = "general", "sent");
        tracing::info!(name: "message.sent", channel = "random", "past the cardinality limit of 1");
        tracing::info!(name: "message.received", channel = "general", latency_ms = 42u64, "received");
        let _relay = tracing::info_span!("relay.connection", relay = "relay-1").entered();
        drop(tracing::info_span!("db.query", db.operation = "insert").entered());
        tracing::error!(error.type = "timeout", "relay timed out");
        tracing::info!(name: "message.sent", channel = "general", count = -1i64, "bad count");
    });
    let _ = t.render().unwrap(); // a first scrape, so the scrape self-metrics exist
    t.render().unwrap()
}

/// Replaces the values of series whose value depends on timing with `<t>`.
fn normalise(text: &str) -> String {
    let timed = [
        "dchat_database_query_duration_seconds",
        "dchat_error_rate",
        "dchat_telemetry_scrape_duration_seconds",
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

#[test]
fn matches_golden_file() {
    let got = normalise(&exposition());
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/golden.prom");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &got).unwrap();
    }
    let want = std::fs::read_to_string(path).unwrap();
    assert_eq!(
        got, want,
        "exposition differs from {path} (UPDATE_GOLDEN=1 rewrites it)"
    );
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
    assert!(!text.contains("target_info"));
}

#[test]
fn promtool_check_metrics_is_clean() {
    let text = exposition();
    assert_eq!(promtool_findings(&text), None);
}
