//! A failing exporter (here: its meter provider shut down under it) shows as a 500 on
//! `/metrics` naming the cause and as a failing `exporter` check on `/health`; dchat's events
//! keep going through the layer without a panic.
mod common;

use common::{http_get, server_telemetry, with_layer, Server};

#[test]
fn exporter_failure_shows_in_metrics_and_health() {
    let t = server_telemetry();
    let server = Server::start(&t);
    with_layer(
        &t,
        || tracing::info!(name: "message.sent", channel = "general", "sent"),
    );
    assert_eq!(http_get(server.addr, "/metrics", "").0, 200);
    assert_eq!(http_get(server.addr, "/health", "").0, 200);

    t.shutdown();
    let (status, _, body) = http_get(server.addr, "/metrics", "");
    assert_eq!(status, 500);
    assert!(String::from_utf8_lossy(&body).contains("shut down"));
    let (status, _, body) = http_get(server.addr, "/health", "");
    assert_eq!(status, 503);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        json["checks"]["exporter:liveness"][0]["status"], "fail",
        "{json}"
    );
    // The layer keeps accepting events: no panic, no error surfaces to dchat.
    with_layer(&t, || {
        for _ in 0..1000 {
            tracing::info!(name: "message.sent", channel = "general", "sent");
        }
    });
    assert_eq!(
        http_get(server.addr, "/ready", "").0,
        200,
        "readiness is not the exporter's business"
    );
    server.stop().unwrap();
}
