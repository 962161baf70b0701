//! The shutdown sequence over real HTTP: on the signal `/ready` turns 503 at once, `/metrics`
//! keeps answering (with the final counts) through the drain period, then the listener closes
//! and `serve_on` returns.
mod common;

use std::time::{Duration, Instant};

use common::{http_get, sample, Server};
use dchat_telemetry::Telemetry;

#[test]
fn ready_fails_metrics_drain_then_stop() {
    let drain = Duration::from_millis(1500);
    let t = Telemetry::builder()
        .with_node_id("n")
        .with_drain_period(drain)
        .without_env()
        .build()
        .unwrap();
    t.health().readiness_gate("database").set_ready(true);
    let mut server = Server::start(&t);
    assert_eq!(http_get(server.addr, "/ready", "").0, 200);

    server.signal();
    let signalled = Instant::now();
    // /ready turns 503 at once (within a bounded number of polls).
    let mut ready = 200;
    for _ in 0..50 {
        ready = http_get(server.addr, "/ready", "").0;
        if ready == 503 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(ready, 503);
    assert!(signalled.elapsed() < drain, "503 came only after the drain");

    // The final counts, recorded after shutdown began, are scraped during the drain.
    common::with_layer(
        &t,
        || tracing::info!(name: "message.sent", channel = "last", "sent"),
    );
    let (status, _, body) = http_get(server.addr, "/metrics", "");
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    assert_eq!(
        sample(&text, "dchat_messages_sent_total", &[("channel", "last")]),
        Some(1.0)
    );
    assert_eq!(sample(&text, "dchat_telemetry_ready", &[]), Some(0.0));

    // Then the listener closes and serve returns.
    let thread = server.thread.take().unwrap();
    let result = thread.join().unwrap();
    assert!(result.is_ok());
    assert!(
        signalled.elapsed() >= drain,
        "stopped before the drain period ended"
    );
    assert!(
        std::net::TcpStream::connect_timeout(&server.addr, Duration::from_secs(1)).is_err(),
        "listener still open"
    );
}
