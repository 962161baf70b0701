//! OTLP push through a real collector: two nodes push to `rotel-agent` on 127.0.0.1, which
//! forwards to a receiver that decodes the requests with the official protobuf definitions. The
//! seed's metrics arrive with the names, units, kinds, attributes and values `/metrics` shows,
//! each node under its own `service.instance.id` (one configured in code, one by the standard
//! `OTEL_*` variables).
#![cfg(feature = "otlp")]

mod common;

use std::ffi::OsString;
use std::time::Duration;

use common::otlp::{attribute, metric, num, of_instance, point, Receiver, Rotel};
use dchat_telemetry::{catalog, BuildInfo, OtlpConfig, Telemetry};
use serde_json::Value;

/// Drives the seed: sends, receptions with latencies, an open relay, a query, errors.
fn seed(t: &Telemetry, sent_general: usize) -> tracing::span::EnteredSpan {
    let dispatch = common::dispatch(t);
    tracing::dispatcher::with_default(&dispatch, || {
        for _ in 0..sent_general {
            tracing::info!(name: "message.sent", channel = "general");
        }
        for ms in [5u64, 40] {
            tracing::info!(name: "message.received", channel = "general", latency_ms = ms);
        }
        drop(tracing::info_span!("db.query", db.operation = "insert").entered());
        for _ in 0..2 {
            tracing::error!(error.type = "timeout", "relay timed out");
        }
        tracing::info_span!("relay.connection", relay = "relay-1").entered()
    })
}

#[test]
fn two_nodes_push_through_a_collector_and_stay_apart() {
    let receiver = Receiver::start();
    let rotel = Rotel::start(receiver.port);
    let endpoint = format!("http://127.0.0.1:{}/v1/metrics", rotel.port);

    // node-a: configured in code.
    let a = Telemetry::builder()
        .with_node_id("node-a")
        .with_role("relay")
        .with_build_info(BuildInfo::new("1.2.3", "abc123"))
        .with_otlp(
            OtlpConfig::new()
                .with_endpoint(&endpoint)
                .with_interval(Duration::from_secs(3600)),
        )
        .without_env()
        .build()
        .unwrap();
    // node-b: by the standard variables (a map standing for the environment).
    let env = [
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{}", rotel.port),
        ),
        ("OTEL_METRIC_EXPORT_INTERVAL", "3600000".to_owned()),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.instance.id=node-b,deployment.environment=test".to_owned(),
        ),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".to_owned()),
    ];
    let b = Telemetry::builder()
        .apply_env_os(|k| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| OsString::from(v))
        })
        .unwrap()
        .without_env()
        .build()
        .unwrap();

    let relay_a = seed(&a, 3);
    let relay_b = seed(&b, 5);
    a.meter_provider().force_flush().unwrap();
    b.meter_provider().force_flush().unwrap();
    let got = receiver.wait_for(Duration::from_secs(20), |r| {
        ["node-a", "node-b"]
            .iter()
            .all(|id| metric(&of_instance(r, id), "dchat_messages_sent").is_some())
    });

    // Each node under its own instance, with its own values.
    let ra = of_instance(&got, "node-a");
    let rb = of_instance(&got, "node-b");
    let resource = &ra[0]["resource"];
    assert_eq!(
        attribute(resource, "service.name").as_deref(),
        Some("dchat")
    );
    assert_eq!(attribute(resource, "node_id").as_deref(), Some("node-a"));
    assert_eq!(attribute(resource, "role").as_deref(), Some("relay"));
    assert_eq!(
        attribute(resource, "service.version").as_deref(),
        Some("1.2.3")
    );
    let resource_b = &rb[0]["resource"];
    assert_eq!(attribute(resource_b, "node_id").as_deref(), Some("node-b"));
    assert_eq!(
        attribute(resource_b, "deployment.environment").as_deref(),
        Some("test")
    );
    assert_eq!(
        attribute(resource_b, "service.version"),
        None,
        "unknown: left out"
    );
    let sent_of = |rms: &[&Value]| {
        let m = metric(rms, "dchat_messages_sent").unwrap();
        num(&point(m, "channel", "general").unwrap()["asInt"])
    };
    assert_eq!(sent_of(&ra), Some(3.0));
    assert_eq!(sent_of(&rb), Some(5.0));
    assert_eq!(
        common::sample(
            &a.render().unwrap(),
            "dchat_messages_sent_total",
            &[("channel", "general")]
        ),
        Some(3.0),
        "pushed and scraped agree"
    );

    // Names, units, kinds, attributes and values of the seed (node-a).
    let sent = metric(&ra, "dchat_messages_sent").unwrap();
    assert_eq!(sent["unit"], "{messages}");
    assert_eq!(sent["sum"]["isMonotonic"], true);
    assert_eq!(
        sent["sum"]["aggregationTemporality"],
        "AGGREGATION_TEMPORALITY_CUMULATIVE"
    );
    assert!(
        metric(&ra, "dchat_messages_sent_total").is_none(),
        "no _total in OTLP names"
    );

    let received = metric(&ra, "dchat_messages_received").unwrap();
    assert_eq!(received["unit"], "{messages}");
    assert_eq!(
        num(&point(received, "channel", "general").unwrap()["asInt"]),
        Some(2.0)
    );

    let latency = metric(&ra, "dchat_message_latency_seconds").unwrap();
    assert_eq!(latency["unit"], "s");
    let p = point(latency, "channel", "general").unwrap();
    assert_eq!(num(&p["count"]), Some(2.0));
    assert!((num(&p["sum"]).unwrap() - 0.045).abs() < 1e-9, "{p}");
    let bounds: Vec<f64> = p["explicitBounds"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(num)
        .collect();
    assert_eq!(bounds, catalog::LATENCY_BUCKETS);

    let relays = metric(&ra, "dchat_relay_connections_active").unwrap();
    assert_ne!(relays["sum"]["isMonotonic"], true, "an up-down counter");
    assert_eq!(
        num(&point(relays, "relay", "relay-1").unwrap()["asInt"]),
        Some(1.0)
    );

    let db = metric(&ra, "dchat_database_query_duration_seconds").unwrap();
    assert_eq!(db["unit"], "s");
    assert_eq!(
        num(&point(db, "operation", "insert").unwrap()["count"]),
        Some(1.0)
    );

    let errors = metric(&ra, "dchat_errors").unwrap();
    assert_eq!(errors["sum"]["isMonotonic"], true);
    assert_eq!(
        num(&point(errors, "type", "timeout").unwrap()["asInt"]),
        Some(2.0)
    );
    let rate = metric(&ra, "dchat_error_rate").unwrap();
    assert!(
        point(rate, "type", "timeout").unwrap()["asDouble"]
            .as_f64()
            .unwrap()
            > 0.0
    );

    let build = metric(&ra, "dchat_build_info").unwrap();
    let p = point(build, "version", "1.2.3").unwrap();
    assert_eq!(attribute(p, "revision").as_deref(), Some("abc123"));
    assert_eq!(p["asDouble"].as_f64(), Some(1.0));

    // What the receiver decoded came through the collector (rotel's re-encoding of the push).
    assert!(got.iter().all(|r| r["_headers"]["user-agent"]
        .as_str()
        .is_some_and(|u| u.contains("Rotel"))));
    assert_eq!(
        common::sample(
            &a.render().unwrap(),
            "dchat_telemetry_otlp_export_failures_total",
            &[]
        ),
        Some(0.0)
    );
    drop((relay_a, relay_b));
    a.shutdown();
    b.shutdown();
}
