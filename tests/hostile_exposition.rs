//! Property test: whatever values dchat logs — quotes, backslashes, newlines, control
//! characters, non-ASCII, huge strings, numbers at their limits — and whatever field names it
//! uses, the exposition passes `promtool check metrics` and Python `prometheus_client`'s strict
//! parser, and every event is counted.
mod common;

use common::{promtool_findings, python_parse, sum, telemetry, with_layer};
use proptest::prelude::*;

fn value_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\"\\\\\n\r\t\u{0}\u{7f}\u{85}\u{2028}é😀 a-z{}=,#]{0,40}",
        Just(String::new()),
        Just("x".repeat(1 << 20)),
        Just("\\".repeat(300)),
        Just("\"".repeat(300)),
    ]
}

fn number_strategy() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        Just(-0.0),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_values_give_a_valid_exposition(
        values in proptest::collection::vec(value_strategy(), 1..6),
        numbers in proptest::collection::vec(number_strategy(), 1..4),
        ints in proptest::collection::vec(any::<i64>(), 1..4),
        big in any::<u64>(),
    ) {
        let t = telemetry();
        with_layer(&t, || {
            for v in &values {
                tracing::info!(name: "message.sent", channel = v.as_str(), "sent");
                tracing::info!(name: "message.sent", channel = ?v, count = big, "sent");
                let _room = tracing::info_span!("room", channel = %v).entered();
                tracing::info!(name: "message.received", latency_seconds = numbers[0], "received");
                tracing::error!(error.type = v.as_str(), "failed");
                let _relay = tracing::info_span!("relay.connection", relay = v.as_str()).entered();
                drop(tracing::info_span!("db.query", operation = v.as_str()).entered());
            }
            for n in &numbers {
                tracing::info!(monotonic_counter.hostile_total = *n, channel = "c");
                tracing::info!(histogram.hostile_hist = *n);
                tracing::info!(gauge.hostile_level = *n);
                tracing::info!("monotonic_counter.weird name-ä😀" = *n);
                tracing::info!("histogram.9starts with digit" = *n);
            }
            for i in &ints {
                tracing::info!(counter.hostile_updown = *i);
                tracing::info!(name: "message.received", channel = "ints", latency_ms = *i, "received");
            }
        });
        let text = t.render().unwrap();
        prop_assert_eq!(promtool_findings(&text), None);
        if let Err(e) = python_parse(&text) {
            prop_assert!(false, "prometheus_client rejected the exposition: {}", e);
        }
        // No count lost: every message.sent was recorded (count = big for the second kind), or,
        // for increments above 2^53, dropped and counted.
        let n = values.len() as f64;
        let sent = sum(&text, "dchat_messages_sent_total");
        let taken = if big <= 1 << 53 { big as f64 } else { 0.0 };
        let expected = n * (1.0 + taken);
        // Exact below 2^53; above, the exposition's float64 rounds the (exact) u64 sum.
        prop_assert!((sent - expected).abs() <= expected * 1e-12, "{} sent, {} expected", sent, expected);
        if big > 1 << 53 {
            let dropped = common::sample(&text, "dchat_telemetry_values_dropped_total", &[("metric", "dchat_messages_sent_total"), ("reason", "out_of_range")]);
            prop_assert_eq!(dropped, Some(n));
        }
        prop_assert_eq!(sum(&text, "dchat_errors_total"), n);
        prop_assert!(text.len() < 1_000_000, "bounded exposition: {} bytes", text.len());
    }
}
