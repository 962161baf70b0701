//! Every row of the conventions table, with the default rules, read from the exposition.
mod common;

use common::{sample, telemetry, with_layer};

#[test]
fn messages_sent_and_received_count_with_and_without_count_field() {
    let t = telemetry();
    with_layer(&t, || {
        tracing::info!(name: "message.sent", channel = "general");
        tracing::info!(name: "message.sent", channel = "general", count = 4u64);
        tracing::info!(name: "message.sent", channel = %String::from("random"));
        tracing::info!(name: "message.received", channel = "general");
        tracing::info!(name: "message.received", channel = "general", count = 2i64);
    });
    let text = t.render().unwrap();
    assert_eq!(
        sample(
            &text,
            "dchat_messages_sent_total",
            &[("channel", "general")]
        ),
        Some(5.0)
    );
    assert_eq!(
        sample(&text, "dchat_messages_sent_total", &[("channel", "random")]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "dchat_messages_received_total",
            &[("channel", "general")]
        ),
        Some(3.0)
    );
}

#[test]
fn latency_from_seconds_or_milliseconds() {
    let t = telemetry();
    with_layer(&t, || {
        tracing::info!(name: "message.received", channel = "c", latency_seconds = 0.02);
        tracing::info!(name: "message.received", channel = "c", latency_ms = 300u64);
        tracing::info!(name: "message.received", channel = "c", latency_ms = 7.5);
        // No latency field: counted, not measured.
        tracing::info!(name: "message.received", channel = "c");
    });
    let text = t.render().unwrap();
    let h = "dchat_message_latency_seconds";
    assert_eq!(
        sample(&text, &format!("{h}_count"), &[("channel", "c")]),
        Some(3.0)
    );
    let sum = sample(&text, &format!("{h}_sum"), &[("channel", "c")]).unwrap();
    assert!((sum - 0.3275).abs() < 1e-9, "{sum}");
    assert_eq!(
        sample(
            &text,
            &format!("{h}_bucket"),
            &[("channel", "c"), ("le", "0.01")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!("{h}_bucket"),
            &[("channel", "c"), ("le", "0.025")]
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!("{h}_bucket"),
            &[("channel", "c"), ("le", "0.25")]
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!("{h}_bucket"),
            &[("channel", "c"), ("le", "0.5")]
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(&text, "dchat_messages_received_total", &[("channel", "c")]),
        Some(4.0)
    );
}

#[test]
fn db_query_span_durations_by_operation() {
    let t = telemetry();
    with_layer(&t, || {
        for _ in 0..3 {
            let _q = tracing::info_span!("db.query", db.operation = "insert").entered();
        }
        {
            let _q = tracing::info_span!("db.query", operation = "select").entered();
            std::thread::sleep(std::time::Duration::from_millis(30));
        }
    });
    let text = t.render().unwrap();
    let h = "dchat_database_query_duration_seconds";
    assert_eq!(
        sample(&text, &format!("{h}_count"), &[("operation", "insert")]),
        Some(3.0)
    );
    assert_eq!(
        sample(&text, &format!("{h}_count"), &[("operation", "select")]),
        Some(1.0)
    );
    let sel = sample(&text, &format!("{h}_sum"), &[("operation", "select")]).unwrap();
    assert!((0.03..5.0).contains(&sel), "{sel}");
    assert_eq!(
        sample(
            &text,
            &format!("{h}_bucket"),
            &[("operation", "select"), ("le", "0.025")]
        ),
        Some(0.0)
    );
}

#[test]
fn errors_by_type_with_fallbacks() {
    let t = telemetry();
    with_layer(&t, || {
        tracing::error!(error.type = "timeout", "relay timed out");
        tracing::error!(error_kind = "storage", "disk full");
        tracing::error!(target: "dchat::storage", "Failed to store message: {}", "disk full");
        tracing::error!(target: "dchat::storage", "Failed to store message: {}", "again");
        tracing::warn!(error.type = "ignored", "warnings are not errors");
    });
    let text = t.render().unwrap();
    assert_eq!(
        sample(&text, "dchat_errors_total", &[("type", "timeout")]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "dchat_errors_total", &[("type", "storage")]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "dchat_errors_total", &[("type", "dchat::storage")]),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "dchat_errors_total", &[("type", "ignored")]),
        None
    );
    // Two errors in a 60 s window: 2/60 per second.
    let rate = sample(&text, "dchat_error_rate", &[("type", "dchat::storage")]).unwrap();
    assert!((rate - 2.0 / 60.0).abs() < 1e-9, "{rate}");
}

#[test]
fn tracing_opentelemetry_field_prefixes() {
    let t = telemetry();
    with_layer(&t, || {
        tracing::info!(
            monotonic_counter.bytes_relayed = 100u64,
            channel = "g",
            message_id = 42u64
        );
        tracing::info!(monotonic_counter.bytes_relayed = 50u64, channel = "g");
        tracing::info!(counter.queue_depth = 5i64);
        tracing::info!(counter.queue_depth = -2i64);
        tracing::info!(histogram.payload_bytes = 300.0);
        tracing::info!(gauge.peers = 7u64);
        tracing::info!(gauge.peers = 9u64);
    });
    let text = t.render().unwrap();
    assert_eq!(
        sample(&text, "bytes_relayed_total", &[("channel", "g")]),
        Some(150.0)
    );
    assert!(
        !text.contains("message_id"),
        "only allow-listed fields become labels"
    );
    assert_eq!(sample(&text, "queue_depth", &[]), Some(3.0));
    assert!(text.contains("# TYPE queue_depth gauge"));
    assert_eq!(sample(&text, "payload_bytes_count", &[]), Some(1.0));
    assert_eq!(
        sample(&text, "payload_bytes_bucket", &[("le", "500")]),
        Some(1.0)
    );
    assert_eq!(sample(&text, "peers", &[]), Some(9.0));
}
