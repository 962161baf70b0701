//! Other registries in the same `/metrics`: a `prometheus-client` registry (libp2p's kind) and a
//! `prometheus` registry render into the one exposition, in the text format and in OpenMetrics,
//! with the constant labels (a registry's label of the same name, such as libp2p's `role`,
//! becomes `exported_role`), correctly escaped, and pass `promtool check metrics` and Python
//! `prometheus_client`'s text and OpenMetrics parsers.
#![cfg(all(feature = "prometheus-client", feature = "prometheus"))]

mod common;

use std::sync::{Arc, Mutex};

use dchat_telemetry::{Format, Telemetry};
use prometheus_client::metrics::{
    counter::Counter, family::Family, gauge::Gauge, histogram::Histogram, info::Info,
};
use prometheus_client::registry::{Registry, Unit};

fn libp2p_like() -> Registry {
    let mut registry = Registry::default();
    let connections: Family<Vec<(String, String)>, Counter> = Family::default();
    registry.register(
        "libp2p_swarm_connections_established",
        "Connections established",
        connections.clone(),
    );
    connections
        .get_or_create(&vec![("role".into(), "dialer".into())])
        .inc_by(2);
    connections
        .get_or_create(&vec![("role".into(), "listener".into())])
        .inc();
    let peers: Gauge = Gauge::default();
    registry.register("libp2p_gossipsub_mesh_peers", "Mesh peers", peers.clone());
    peers.set(6);
    let rtt = Histogram::new([0.01, 0.1, 1.0].into_iter());
    registry.register_with_unit(
        "libp2p_ping_rtt",
        "Ping round trips",
        Unit::Seconds,
        rtt.clone(),
    );
    rtt.observe(0.05);
    rtt.observe(0.5);
    let build = Info::new(vec![("version".to_owned(), "0.54.1".to_owned())]);
    registry.register("libp2p_build", "libp2p's version", build);
    registry
}

fn app_registry() -> prometheus::Registry {
    let registry = prometheus::Registry::new();
    let requests = prometheus::IntCounterVec::new(
        prometheus::Opts::new("app_requests_total", "Requests \\ by \"path\"."),
        &["path"],
    )
    .unwrap();
    registry.register(Box::new(requests.clone())).unwrap();
    requests.with_label_values(&["/a\"b\\c\nd"]).inc_by(3);
    let queue = prometheus::Histogram::with_opts(
        prometheus::HistogramOpts::new("app_queue_seconds", "Queue time.").buckets(vec![0.5, 1.0]),
    )
    .unwrap();
    registry.register(Box::new(queue.clone())).unwrap();
    queue.observe(0.7);
    registry
}

fn telemetry() -> Telemetry {
    Telemetry::builder()
        .with_node_id("node-1")
        .with_role("relay")
        .with_prometheus_client_registry("libp2p", Arc::new(Mutex::new(libp2p_like())))
        .with_prometheus_registry("app", app_registry())
        .without_env()
        .build()
        .unwrap()
}

#[test]
fn both_registries_render_in_the_text_format() {
    let t = telemetry();
    let text = t.render().unwrap();
    let s = |name: &str, labels: &[(&str, &str)]| common::sample(&text, name, labels);
    assert_eq!(
        s(
            "libp2p_swarm_connections_established_total",
            &[
                ("exported_role", "dialer"),
                ("role", "relay"),
                ("node_id", "node-1")
            ]
        ),
        Some(2.0)
    );
    assert!(
        text.contains("# TYPE libp2p_swarm_connections_established_total counter\n"),
        "{text}"
    );
    assert_eq!(
        s("libp2p_gossipsub_mesh_peers", &[("service", "dchat")]),
        Some(6.0)
    );
    assert_eq!(
        s("libp2p_ping_rtt_seconds_bucket", &[("le", "0.1")]),
        Some(1.0)
    );
    assert_eq!(s("libp2p_ping_rtt_seconds_count", &[]), Some(2.0));
    assert!(text.contains("# TYPE libp2p_build_info gauge\n"), "{text}");
    assert_eq!(s("libp2p_build_info", &[("version", "0.54.1")]), Some(1.0));
    assert_eq!(
        s("app_requests_total", &[("path", "/a\"b\\c\nd")]),
        Some(3.0)
    );
    assert!(
        text.contains("# HELP app_requests_total Requests \\\\ by \"path\".\n"),
        "{text}"
    );
    assert_eq!(s("app_queue_seconds_bucket", &[("le", "1")]), Some(1.0));
    assert_eq!(common::promtool_findings(&text), None, "{text}");
    let n = common::python_parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(n > 50, "{n}");
    // Their samples are in the sample budget.
    assert!(s("dchat_telemetry_samples", &[]).unwrap() >= 14.0);
}

#[test]
fn both_registries_render_in_openmetrics() {
    let t = telemetry();
    let text = t.render_format(Format::OpenMetrics).unwrap();
    assert!(
        text.contains("# TYPE libp2p_swarm_connections_established counter\n"),
        "{text}"
    );
    assert!(text.contains("# TYPE libp2p_build info\n"), "{text}");
    assert!(
        text.contains("# UNIT libp2p_ping_rtt_seconds seconds\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "libp2p_ping_rtt_seconds_bucket{node_id=\"node-1\",role=\"relay\",service=\"dchat\",le=\"0.1\"} 1\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("# HELP app_requests Requests \\\\ by \\\"path\\\".\n"),
        "{text}"
    );
    assert!(text.contains("app_requests_total{node_id=\"node-1\",path=\"/a\\\"b\\\\c\\nd\",role=\"relay\",service=\"dchat\"} 3\n"), "{text}");
    assert!(text.ends_with("# EOF\n"));
    let n = common::python_parse_openmetrics(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(n > 50, "{n}");
}
