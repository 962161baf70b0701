//! A receiver that is down makes the node warn, never fail: the push is counted in
//! `dchat_telemetry_otlp_export_failures_total`, `/health` answers `warn` naming the endpoint,
//! the metrics keep being recorded and served, and once the receiver is up the next push
//! succeeds and the warning goes.
#![cfg(feature = "otlp")]

mod common;

use std::time::Duration;

use common::otlp::{free_port, metric, num, of_instance, point, Receiver};
use dchat_telemetry::{OtlpConfig, Status, Telemetry};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_makes_the_node_warn_not_fail() {
    let port = free_port(); // nothing listens there
    let t = Telemetry::builder()
        .with_node_id("lonely")
        .with_otlp(
            OtlpConfig::new()
                .with_endpoint(format!("http://127.0.0.1:{port}/v1/metrics"))
                .with_timeout(Duration::from_millis(300))
                .with_interval(Duration::from_secs(3600)),
        )
        .without_env()
        .build()
        .unwrap();
    let dispatch = common::dispatch(&t); // installed for the whole test, as dchat's is
    let send = |n: usize| {
        tracing::dispatcher::with_default(&dispatch, || {
            for _ in 0..n {
                tracing::info!(name: "message.sent", channel = "general");
            }
        })
    };
    send(2);
    let provider = t.meter_provider().clone();
    tokio::task::spawn_blocking(move || provider.force_flush())
        .await
        .unwrap()
        .expect("a failed push is not the application's error");

    let report = t.health().liveness().await;
    assert_eq!(report.status, Status::Warn, "{report:?}");
    assert!(report.is_pass(), "a warning, not a failure");
    let warning = report.checks["otlp:liveness"][0]
        .output
        .clone()
        .unwrap_or_default();
    assert!(warning.contains(&format!("127.0.0.1:{port}")), "{warning}");
    assert!(
        warning.contains("dchat_telemetry_otlp_export_failures_total"),
        "{warning}"
    );
    send(1);
    let text = t.render().unwrap();
    let failures =
        common::sample(&text, "dchat_telemetry_otlp_export_failures_total", &[]).unwrap();
    assert!(failures >= 1.0, "{failures}");
    assert_eq!(
        common::sample(
            &text,
            "dchat_messages_sent_total",
            &[("channel", "general")]
        ),
        Some(3.0),
        "recording and serving go on"
    );

    // The receiver comes up on that port: the next push succeeds, the warning goes.
    let receiver = tokio::task::spawn_blocking(move || Receiver::start_on(port))
        .await
        .unwrap();
    let provider = t.meter_provider().clone();
    tokio::task::spawn_blocking(move || provider.force_flush())
        .await
        .unwrap()
        .unwrap();
    let report = t.health().liveness().await;
    assert_eq!(
        report.checks["otlp:liveness"][0].status,
        Status::Pass,
        "{report:?}"
    );
    assert_eq!(report.status, Status::Pass, "{report:?}");
    let got = receiver.wait_for(Duration::from_secs(10), |r| !r.is_empty());
    let sent = metric(&of_instance(&got, "lonely"), "dchat_messages_sent").unwrap();
    assert_eq!(
        num(&point(sent, "channel", "general").unwrap()["asInt"]),
        Some(3.0)
    );
    let after = common::sample(
        &t.render().unwrap(),
        "dchat_telemetry_otlp_export_failures_total",
        &[],
    );
    assert_eq!(after, Some(failures), "no failure since");
    tokio::task::spawn_blocking(move || t.shutdown())
        .await
        .unwrap();
}

/// dchat's `main` is async: a telemetry with an OTLP push made and dropped on the runtime's own
/// threads (its last push failing) neither panics nor hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_and_dropped_inside_the_runtime() {
    let port = free_port();
    let t = Telemetry::builder()
        .with_otlp(
            OtlpConfig::new()
                .with_endpoint(format!("http://127.0.0.1:{port}/v1/metrics"))
                .with_timeout(Duration::from_millis(200)),
        )
        .without_env()
        .build()
        .unwrap();
    let _ = t.render().unwrap();
    drop(t); // the meter provider's drop stops it: one last push, failing
}
