//! Smoke test of dchat-telemetry inside an application whose graph has `prometheus` 0.14,
//! `tracing-subscriber` (env-filter, fmt, json), `axum` 0.8, `tokio` (full) and
//! `opentelemetry`/`opentelemetry_sdk` 0.33 with their default features, and dchat-telemetry's
//! optional features on: the crate builds, its layer counts beside a JSON fmt layer, its routes
//! merge into an axum app, the application's prometheus and prometheus-client registries show in
//! its /metrics, and a real scrape over loopback returns them all.

use std::io::{Read, Write};
use std::time::Duration;

use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() {
    // The application's own prometheus registry (the `protobuf` feature is on in this graph),
    // and a prometheus-client one (libp2p's kind), both shown in the telemetry's /metrics.
    let registry = prometheus::Registry::new();
    let own = prometheus::IntCounter::new("consumer_requests_total", "Requests.").unwrap();
    registry.register(Box::new(own.clone())).unwrap();
    own.inc();
    let families = registry.gather();
    assert_eq!(families.len(), 1, "the application's registry works too");
    let mut p2p = prometheus_client::registry::Registry::default();
    let dials: prometheus_client::metrics::counter::Counter = Default::default();
    p2p.register("consumer_dials", "Dials.", dials.clone());
    dials.inc_by(2);

    let telemetry = dchat_telemetry::Telemetry::builder()
        .with_node_id("consumer")
        .with_prometheus_registry("app", registry)
        .with_prometheus_client_registry("p2p", std::sync::Arc::new(std::sync::Mutex::new(p2p)))
        .without_env()
        .build()
        .expect("telemetry builds");
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::sink)
                .with_filter(EnvFilter::new("warn")),
        )
        .with(telemetry.layer())
        .init();

    // The application's own OpenTelemetry instruments on the telemetry's meter provider
    // (opentelemetry and opentelemetry_sdk with their default features).
    {
        use opentelemetry::metrics::MeterProvider as _;
        let meter = telemetry.meter_provider().meter("consumer");
        meter.u64_counter("consumer_jobs").build().add(1, &[]);
        let _: &opentelemetry_sdk::metrics::SdkMeterProvider = telemetry.meter_provider();
    }

    for _ in 0..3 {
        tracing::info!(name: "message.sent", channel = "general", "sent");
    }
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "consumer" }))
        .merge(telemetry.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let body = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    server.abort();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    let line = r#"dchat_messages_sent_total{channel="general",node_id="consumer",service="dchat"} 3"#;
    assert!(body.contains(line), "{body}");
    assert!(body.contains("process_resident_memory_bytes"), "{body}");
    let line = r#"consumer_requests_total{node_id="consumer",service="dchat"} 1"#;
    assert!(body.contains(line), "{body}");
    let line = r#"consumer_dials_total{node_id="consumer",service="dchat"} 2"#;
    assert!(body.contains(line), "{body}");
    println!("consumer: dchat-telemetry builds and serves in this dependency graph ({addr})");
}
