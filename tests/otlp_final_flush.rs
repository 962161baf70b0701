//! The final values are pushed at the end of `serve`'s drain and again by `shutdown`, even with
//! an export interval that never came round (here an hour); the configured headers go along.
#![cfg(feature = "otlp")]

mod common;

use std::time::Duration;

use common::otlp::{metric, num, of_instance, point, Receiver};
use dchat_telemetry::{OtlpConfig, Telemetry};
use serde_json::Value;

fn sent(requests: &[Value]) -> Option<f64> {
    let m = metric(&of_instance(requests, "final"), "dchat_messages_sent")?;
    num(&point(m, "channel", "general")?["asInt"])
}

#[test]
fn the_drain_and_shutdown_push_the_final_values() {
    let receiver = Receiver::start();
    let t = Telemetry::builder()
        .with_node_id("final")
        .with_drain_period(Duration::ZERO)
        .with_otlp(
            OtlpConfig::new()
                .with_endpoint(format!("http://127.0.0.1:{}/v1/metrics", receiver.port))
                .with_header("x-tenant", "chat")
                .with_gzip(true)
                .with_interval(Duration::from_secs(3600)),
        )
        .without_env()
        .build()
        .unwrap();
    let server = common::Server::start(&t);
    let send = |n: usize| {
        common::with_layer(&t, || {
            for _ in 0..n {
                tracing::info!(name: "message.sent", channel = "general");
            }
        })
    };
    send(4);
    assert!(
        receiver.requests().is_empty(),
        "no push before the interval"
    );
    server.stop().unwrap(); // SIGTERM's path: drain, close, push
    let got = receiver.wait_for(Duration::from_secs(10), |r| sent(r) == Some(4.0));
    assert_eq!(got[0]["_headers"]["x-tenant"], "chat");
    assert_eq!(got[0]["_headers"]["content-encoding"], "gzip");

    send(1);
    t.shutdown();
    receiver.wait_for(Duration::from_secs(10), |r| sent(r) == Some(5.0));
}
