//! Another registry never breaks the page: a family whose name clashes with one of this crate's
//! is refused at `build` when it is there then, and left out (counted as `duplicate`, `/health`
//! warning) when it is registered later; a family whose samples do not fit the node-wide sample
//! budget is left out whole (counted as `sample_budget`) while smaller ones still show; a family
//! that cannot be read (prometheus-client does not escape label values) is left out (`invalid`).
//! The page stays valid for promtool and both Python parsers throughout.
#![cfg(all(feature = "prometheus-client", feature = "prometheus"))]

mod common;

use std::sync::{Arc, Mutex};

use dchat_telemetry::{Error, Format, Status, Telemetry};
use prometheus_client::metrics::{counter::Counter, family::Family, gauge::Gauge};
use prometheus_client::registry::Registry;

fn skipped(text: &str, reason: &str) -> f64 {
    common::sample(
        text,
        "dchat_telemetry_registry_families_skipped_total",
        &[("reason", reason)],
    )
    .unwrap()
}

fn assert_valid(t: &Telemetry) {
    let text = t.render().unwrap();
    common::promtool_parses(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    common::python_parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let om = t.render_format(Format::OpenMetrics).unwrap();
    common::python_parse_openmetrics(&om).unwrap_or_else(|e| panic!("{e}\n{om}"));
}

#[test]
fn a_clash_present_at_build_is_an_error() {
    let registry = prometheus::Registry::new();
    let mine = prometheus::IntCounter::new("dchat_messages_sent_total", "Mine.").unwrap();
    registry.register(Box::new(mine)).unwrap();
    let err = Telemetry::builder()
        .with_prometheus_registry("app", registry)
        .without_env()
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::DuplicateFamily { family, registry, clashes_with }
            if family == "dchat_messages_sent_total" && registry == "app"
                && clashes_with == "dchat_messages_sent_total"),
        "{err}"
    );
    // The process collector's names are this crate's own process_* metrics.
    let registry = prometheus::Registry::new();
    let cpu = prometheus::Gauge::new("process_open_fds", "Fds.").unwrap();
    registry.register(Box::new(cpu)).unwrap();
    assert!(matches!(
        Telemetry::builder()
            .with_prometheus_registry("app", registry)
            .without_env()
            .build(),
        Err(Error::DuplicateFamily { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_clashes_over_budget_and_unreadable_families_are_left_out_and_counted() {
    let registry = Arc::new(Mutex::new(Registry::default()));
    let small: Gauge = Gauge::default();
    registry
        .lock()
        .unwrap()
        .register("libp2p_small", "Small", small.clone());
    small.set(1);
    let t = Telemetry::builder()
        .with_sample_budget(100)
        .with_prometheus_client_registry("libp2p", Arc::clone(&registry))
        .without_env()
        .build()
        .unwrap();
    let _dispatch = common::dispatch(&t);
    let text = t.render().unwrap();
    assert_eq!(common::sample(&text, "libp2p_small", &[]), Some(1.0));
    let before = common::sample(&text, "dchat_telemetry_samples", &[]).unwrap();

    // Registered after build: a clash, a family too big for the budget, an unreadable one.
    {
        let mut r = registry.lock().unwrap();
        let clash: Counter = Counter::default();
        r.register("dchat_errors", "Not ours", clash.clone());
        clash.inc();
        let big: Family<Vec<(String, String)>, Counter> = Family::default();
        r.register("libp2p_peers_seen", "One per peer", big.clone());
        for i in 0..200 {
            big.get_or_create(&vec![("peer".into(), format!("p{i}"))])
                .inc();
        }
        let quoted: Family<Vec<(String, String)>, Gauge> = Family::default();
        r.register("libp2p_agents", "Agents", quoted.clone());
        quoted
            .get_or_create(&vec![("agent".into(), "rust-libp2p \"0.54\"".into())])
            .set(1);
    }
    let text = t.render().unwrap();
    assert_eq!(
        common::sample(&text, "libp2p_small", &[]),
        Some(1.0),
        "the rest stays"
    );
    assert!(!text.contains("libp2p_peers_seen"), "{text}");
    assert!(!text.contains("libp2p_agents"), "{text}");
    assert!(!text.contains("Not ours"), "ours is shown, not the clash");
    assert_eq!(skipped(&text, "duplicate"), 1.0);
    assert_eq!(skipped(&text, "sample_budget"), 1.0);
    assert_eq!(skipped(&text, "invalid"), 1.0);
    assert_eq!(
        common::sample(&text, "dchat_telemetry_samples", &[]),
        Some(before),
        "a left-out family holds no samples"
    );
    let report = t.health().liveness().await;
    assert_eq!(report.status, Status::Warn, "{report:?}");
    let warning = report.checks["metrics-registries:liveness"][0]
        .output
        .clone()
        .unwrap_or_default();
    for name in [
        "dchat_errors_total",
        "libp2p_peers_seen_total",
        "libp2p_agents",
        "sample budget",
    ] {
        assert!(warning.contains(name), "{name}: {warning}");
    }
    assert_valid(&t);
    // Each scrape counts what it leaves out.
    let text = t.render().unwrap();
    assert!(skipped(&text, "duplicate") >= 2.0);
}
