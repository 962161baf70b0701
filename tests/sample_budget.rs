//! One node-wide sample budget: with default settings no flood of label values makes a scrape
//! carry more samples than the shipped ServiceMonitor's `sampleLimit` (20000) allows, so
//! Prometheus never drops the node's whole scrape; past the budget new label sets fold into
//! overflow and are counted, and `/health` warns while the budget is full.
mod common;

use std::time::Duration;

use dchat_telemetry::{ManualClock, Status, Telemetry};

/// The shipped ServiceMonitor's `sampleLimit` (`monitoring/check` holds the two together).
const SAMPLE_LIMIT: usize = 20_000;

fn samples_in(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count()
}

fn flood(t: &Telemetry) {
    let dispatch = common::dispatch(t);
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..5000 {
            let channel = format!("flood-{i}");
            tracing::info!(name: "message.received", channel, latency_seconds = 0.05);
            tracing::info!(name: "message.sent", channel);
            tracing::warn!(name: "message.send_failed", channel);
            tracing::error!(error.type = format!("type-{i}"), "failure");
        }
        for i in 0..3000 {
            drop(tracing::info_span!(
                "relay.connection",
                relay = format!("peer-{i}")
            ));
            drop(tracing::info_span!(
                "db.query",
                db.operation = format!("op-{i}")
            ));
        }
    });
}

#[tokio::test]
async fn a_flood_of_label_values_stays_under_the_sample_limit() {
    let clock = ManualClock::new();
    let t = Telemetry::builder()
        .with_node_id("n")
        .with_clock(clock.clone())
        .with_series_ttl(Duration::from_secs(600))
        .without_env()
        .build()
        .unwrap();
    // The seed's own series first, as a node has them before any flood.
    common::with_layer(&t, || {
        tracing::info!(name: "message.sent", channel = "general");
        tracing::info!(name: "message.received", channel = "general", latency_seconds = 0.04);
    });
    let budget_check = |r: &dchat_telemetry::Report| r.checks["sample-budget:liveness"][0].clone();
    assert_eq!(
        budget_check(&t.health().liveness().await).status,
        Status::Pass
    );
    flood(&t);
    let text = t.render().unwrap();
    let n = samples_in(&text);
    assert!(n <= SAMPLE_LIMIT, "{n} samples in one scrape");
    let held = common::sample(&text, "dchat_telemetry_samples", &[]).unwrap();
    let budget = common::sample(&text, "dchat_telemetry_sample_budget", &[]).unwrap();
    assert_eq!(budget, 15_000.0);
    assert!(
        held <= budget + 100.0,
        "{held} of {budget}: overflow reservations only"
    );
    let rules_samples = text
        .lines()
        .filter(|l| {
            l.starts_with("dchat_")
                && !l.starts_with("dchat_telemetry_")
                && !l.starts_with("dchat_build_info")
        })
        .count();
    // The gauge counts what is exposed, plus the overflow samples reserved by metrics whose
    // overflow series is not in use.
    let rules_samples = rules_samples as f64;
    assert!(
        rules_samples <= held && held <= rules_samples + 100.0,
        "{rules_samples} samples exposed, {held} held"
    );
    // Folded, and counted.
    let dropped: f64 = ["dchat_messages_sent_total", "dchat_errors_total"]
        .iter()
        .map(|m| {
            common::sample(
                &text,
                "dchat_telemetry_label_sets_dropped_total",
                &[("metric", m)],
            )
            .unwrap_or(0.0)
        })
        .sum();
    assert!(dropped > 0.0, "{text}");
    for m in [
        "dchat_messages_sent_total",
        "dchat_messages_received_total",
        "dchat_message_latency_seconds_bucket",
        "dchat_errors_total",
        "dchat_relay_connections_active",
        "dchat_database_query_duration_seconds_count",
    ] {
        assert!(text.contains(&format!("\n{m}{{")), "{m} present");
    }
    assert_eq!(
        common::sample(
            &text,
            "dchat_messages_sent_total",
            &[("channel", "general")]
        ),
        Some(1.0),
        "the seed's series stay"
    );
    let report = t.health().liveness().await;
    assert_eq!(report.status, Status::Warn, "{report:?}");
    let warning = budget_check(&report);
    assert_eq!(warning.status, Status::Warn);
    assert!(warning
        .output
        .unwrap_or_default()
        .contains("sample budget is full"));
    // Idle series expire and give their samples back: the warning clears.
    clock.advance(Duration::from_secs(601));
    t.render().unwrap();
    assert_eq!(
        budget_check(&t.health().liveness().await).status,
        Status::Pass
    );
}

#[test]
fn the_budget_is_configurable_and_checked() {
    let t = Telemetry::builder()
        .with_sample_budget(200)
        .without_env()
        .build()
        .unwrap();
    flood(&t);
    let text = t.render().unwrap();
    let held = common::sample(&text, "dchat_telemetry_samples", &[]).unwrap();
    // Every metric reserves its overflow series (the latency and database histograms 16
    // samples each); new series take what is left of the 200.
    assert!(held <= 200.0 + 16.0, "{held}");
    assert!(Telemetry::builder()
        .with_sample_budget(10)
        .without_env()
        .build()
        .is_err());
    let from_env = Telemetry::builder()
        .apply_env(|k| (k == "DCHAT_TELEMETRY_SAMPLE_BUDGET").then(|| "5000".to_owned()))
        .unwrap()
        .without_env()
        .build()
        .unwrap();
    let text = from_env.render().unwrap();
    assert_eq!(
        common::sample(&text, "dchat_telemetry_sample_budget", &[]),
        Some(5000.0)
    );
}
