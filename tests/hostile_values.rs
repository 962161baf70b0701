//! Nothing a caller logs panics the layer or silently loses a count: each odd value is either
//! recorded or dropped and counted in `dchat_telemetry_values_dropped_total{metric,reason}`.
mod common;

use common::{sample, telemetry, with_layer};

fn dropped(text: &str, metric: &str, reason: &str) -> Option<f64> {
    sample(
        text,
        "dchat_telemetry_values_dropped_total",
        &[("metric", metric), ("reason", reason)],
    )
}

#[test]
fn odd_numbers_are_recorded_or_counted() {
    let t = telemetry();
    let big = 1u64 << 53; // the largest increment an integer counter takes
    with_layer(&t, || {
        // Integer counters take increments up to 2^53 exactly; above (e.g. above i64::MAX) the
        // value is dropped and counted, so no sum can wrap and every count stays exact in
        // Prometheus' float64 samples.
        tracing::info!(name: "message.sent", channel = "big", count = big);
        tracing::info!(name: "message.sent", channel = "big", count = u64::MAX - 1);
        // Negative, NaN, infinite, fractional and non-numeric counts are dropped and counted.
        tracing::info!(name: "message.sent", channel = "bad", count = -1i64);
        tracing::info!(name: "message.sent", channel = "bad", count = f64::NAN);
        tracing::info!(name: "message.sent", channel = "bad", count = f64::INFINITY);
        tracing::info!(name: "message.sent", channel = "bad", count = 1.5);
        tracing::info!(name: "message.sent", channel = "bad", count = true);
        tracing::info!(name: "message.sent", channel = "bad", count = "lots");
        tracing::info!(name: "message.sent", channel = "bad", count = i128::MIN);
        // Numbers given as strings or Display values are parsed.
        tracing::info!(name: "message.sent", channel = "text", count = "2");
        tracing::info!(name: "message.sent", channel = "text", count = %3);
        // Histograms drop NaN/inf as `not_finite`; the latency rule's range (0 to 300 s) drops
        // a finite but implausible value as `out_of_range`.
        tracing::info!(name: "message.received", channel = "h", latency_seconds = f64::NAN);
        tracing::info!(name: "message.received", channel = "h", latency_seconds = f64::NEG_INFINITY);
        tracing::info!(name: "message.received", channel = "h", latency_ms = u64::MAX);
        // An up-down counter cannot take u64 above i64::MAX.
        tracing::info!(counter.depth = u64::MAX);
        // Numbers and bools as label values are fine.
        tracing::info!(name: "message.sent", channel = 42u64);
        tracing::info!(name: "message.sent", channel = false);
    });
    let text = t.render().unwrap();
    let sent = "dchat_messages_sent_total";
    assert_eq!(sample(&text, sent, &[("channel", "big")]), Some(big as f64));
    let bad = sample(&text, sent, &[("channel", "bad")]).unwrap_or(0.0);
    assert_eq!(bad, 0.0, "nothing recorded for bad counts");
    assert_eq!(dropped(&text, sent, "negative"), Some(2.0));
    assert_eq!(dropped(&text, sent, "not_finite"), Some(2.0));
    assert_eq!(dropped(&text, sent, "out_of_range"), Some(2.0));
    assert_eq!(dropped(&text, sent, "wrong_type"), Some(2.0));
    assert_eq!(sample(&text, sent, &[("channel", "text")]), Some(5.0));
    assert_eq!(sample(&text, sent, &[("channel", "42")]), Some(1.0));
    assert_eq!(sample(&text, sent, &[("channel", "false")]), Some(1.0));
    let lat = "dchat_message_latency_seconds";
    assert_eq!(dropped(&text, lat, "not_finite"), Some(2.0));
    assert_eq!(dropped(&text, lat, "out_of_range"), Some(1.0));
    assert_eq!(
        sample(&text, &format!("{lat}_count"), &[("channel", "h")]).unwrap_or(0.0),
        0.0,
        "no latency recorded for channel h"
    );
    assert_eq!(dropped(&text, "depth", "out_of_range"), Some(1.0));
}

#[test]
fn a_prefix_name_used_with_two_kinds_is_counted_not_mixed() {
    let t = telemetry();
    with_layer(&t, || {
        tracing::info!(counter.things = 1i64);
        tracing::info!(gauge.things = 5.0);
        tracing::info!(counter.things = 1i64);
    });
    let text = t.render().unwrap();
    assert_eq!(
        sample(&text, "things", &[]),
        Some(2.0),
        "the up-down counter keeps its sum"
    );
    assert_eq!(dropped(&text, "things", "kind_conflict"), Some(1.0));
}

#[test]
fn hostile_field_names_become_valid_metric_names() {
    let t = telemetry();
    with_layer(&t, || {
        tracing::info!(monotonic_counter.größe = 1u64);
        tracing::info!(monotonic_counter.already_total = 1u64);
    });
    let text = t.render().unwrap();
    assert_eq!(sample(&text, "gr__e_total", &[]), Some(1.0));
    assert_eq!(
        sample(&text, "already_total", &[]),
        Some(1.0),
        "no _total_total"
    );
    assert!(!text.contains("_total_total"));
}

#[test]
fn a_debug_impl_that_logs_does_not_deadlock_or_lose_the_outer_event() {
    struct Sneaky;
    impl std::fmt::Debug for Sneaky {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            tracing::info!(name: "message.sent", channel = "inner", "nested");
            f.write_str("sneaky")
        }
    }
    let t = telemetry();
    with_layer(&t, || {
        tracing::info!(name: "message.sent", channel = ?Sneaky);
    });
    let text = t.render().unwrap();
    assert_eq!(
        sample(&text, "dchat_messages_sent_total", &[("channel", "sneaky")]),
        Some(1.0)
    );
    // tracing itself does not dispatch an event raised while another is being dispatched on the
    // same thread; what matters is that the outer one is counted and nothing deadlocks.
    assert_eq!(
        sample(&text, "dchat_messages_sent_total", &[("channel", "inner")]),
        None
    );
}

#[test]
fn a_panicking_debug_impl_does_not_unwind_out_of_the_layer() {
    struct Bomb;
    impl std::fmt::Debug for Bomb {
        fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            panic!("a caller's Debug impl panics");
        }
    }
    impl std::fmt::Display for Bomb {
        fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            panic!("a caller's Display impl panics");
        }
    }
    let t = telemetry();
    with_layer(&t, || {
        tracing::info!(name: "message.sent", channel = ?Bomb, "sent");
        tracing::info!(name: "message.sent", channel = "ok", count = %Bomb, "sent");
        tracing::info!(name: "message.sent", channel = "ok", "sent");
    });
    let text = t.render().unwrap();
    // The label fell back, the unparseable count was counted as a wrong type, no count lost.
    assert_eq!(
        sample(
            &text,
            "dchat_messages_sent_total",
            &[("channel", "unknown")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "dchat_messages_sent_total", &[("channel", "ok")]),
        Some(1.0)
    );
    assert_eq!(
        dropped(&text, "dchat_messages_sent_total", "wrong_type"),
        Some(1.0)
    );
}
