//! What expired counters held is remembered within bounds: at most as many label sets per
//! metric as its cardinality limit (the oldest forgotten first) and for at most seven days. A
//! label set whose value was forgotten starts again from zero, and each forgetting is counted.
mod common;

use std::time::Duration;

use dchat_telemetry::{ManualClock, Telemetry};

const TTL: Duration = Duration::from_secs(10);

fn sent(t: &Telemetry, channel: &str) -> Option<f64> {
    common::sample(
        &t.render().unwrap(),
        "dchat_messages_sent_total",
        &[("channel", channel)],
    )
}

fn forgotten(t: &Telemetry) -> f64 {
    common::sample(
        &t.render().unwrap(),
        "dchat_telemetry_series_forgotten_total",
        &[("metric", "dchat_messages_sent_total")],
    )
    .unwrap_or(-1.0)
}

fn send(t: &Telemetry, channel: &str, n: usize) {
    common::with_layer(t, || {
        for _ in 0..n {
            tracing::info!(name: "message.sent", channel);
        }
    });
}

#[test]
fn past_the_bound_the_oldest_are_forgotten_and_counted() {
    let clock = ManualClock::new();
    let t = Telemetry::builder()
        .with_series_ttl(TTL)
        .with_clock(clock.clone())
        .with_cardinality_limit(3)
        .without_env()
        .build()
        .unwrap();
    // Five channels expire one after another, oldest first: three are remembered.
    for (i, c) in ["c0", "c1", "c2", "c3", "c4"].into_iter().enumerate() {
        send(&t, c, 5);
        t.render().unwrap();
        clock.advance(TTL + Duration::from_secs(1));
        t.render().unwrap();
        assert_eq!(sent(&t, c), None, "{c} expired");
        assert_eq!(forgotten(&t), i.saturating_sub(2) as f64);
    }
    send(&t, "c0", 1);
    assert_eq!(sent(&t, "c0"), Some(1.0), "forgotten: starts from zero");
    send(&t, "c4", 1);
    assert_eq!(sent(&t, "c4"), Some(6.0), "remembered: continues");
}

#[test]
fn past_the_horizon_values_are_forgotten() {
    let clock = ManualClock::new();
    let t = Telemetry::builder()
        .with_series_ttl(TTL)
        .with_clock(clock.clone())
        .without_env()
        .build()
        .unwrap();
    send(&t, "old", 2);
    send(&t, "recent", 2);
    t.render().unwrap();
    clock.advance(TTL + Duration::from_secs(1));
    t.render().unwrap();
    clock.advance(Duration::from_secs(7 * 24 * 3600 - 60));
    send(&t, "recent", 1);
    assert_eq!(sent(&t, "recent"), Some(3.0), "within 7 days: continues");
    clock.advance(Duration::from_secs(120));
    assert_eq!(forgotten(&t), 1.0, "the other one is 7 days old now");
    send(&t, "old", 1);
    assert_eq!(sent(&t, "old"), Some(1.0));
}
