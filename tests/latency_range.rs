//! A delivery latency outside the plausible range (negative, or above 300 s: a peer's clock far
//! off, a message stored for later) is dropped and counted, never recorded, so one peer with a
//! wrong clock cannot move the latency SLO; the message itself still counts as received.
mod common;

use dchat_telemetry::{MetricKind, Rule, Rules};

#[test]
fn implausible_latencies_are_counted_not_recorded() {
    let t = common::telemetry();
    common::with_layer(&t, || {
        for latency in [0.0, 0.2, 300.0, -0.5, 300.5, 86_400.0] {
            tracing::info!(name: "message.received", channel = "general", latency_seconds = latency);
        }
        tracing::info!(name: "message.received", channel = "general", latency_ms = -3i64);
    });
    let text = t.render().unwrap();
    let count = common::sample(
        &text,
        "dchat_message_latency_seconds_count",
        &[("channel", "general")],
    );
    assert_eq!(count, Some(3.0), "0, 0.2 and 300 s: {text}");
    assert_eq!(
        common::sample(
            &text,
            "dchat_messages_received_total",
            &[("channel", "general")]
        ),
        Some(7.0),
        "every message counts as received"
    );
    assert_eq!(
        common::sample(
            &text,
            "dchat_telemetry_values_dropped_total",
            &[
                ("metric", "dchat_message_latency_seconds"),
                ("reason", "out_of_range")
            ]
        ),
        Some(4.0)
    );
}

#[test]
fn a_range_needs_field_values_and_ordered_finite_bounds() {
    let base = || {
        Rule::builder(MetricKind::Histogram, "x_seconds")
            .with_description("d")
            .with_buckets([1.0])
    };
    assert!(base()
        .with_value_field("v")
        .with_value_range(0.0..=10.0)
        .build()
        .is_ok());
    for bad in [
        base().with_value_field("v").with_value_range(10.0..=0.0),
        base()
            .with_value_field("v")
            .with_value_range(0.0..=f64::INFINITY),
        base().with_value_range(0.0..=1.0),
    ] {
        assert!(bad.build().is_err());
    }
    let _ = Rules::dchat_defaults();
}
