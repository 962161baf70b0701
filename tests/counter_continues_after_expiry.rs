//! A counter or histogram series that expires and comes back continues from the value it had:
//! Prometheus, which keeps one series per label set across its disappearance, sees it rise by
//! every event, never repeat or go back. Injected time: no sleeps.
mod common;

use std::time::Duration;

use dchat_telemetry::{Format, ManualClock, Telemetry};

const TTL: Duration = Duration::from_secs(2);

fn telemetry(clock: &ManualClock) -> Telemetry {
    Telemetry::builder()
        .with_node_id("n")
        .with_series_ttl(TTL)
        .with_clock(clock.clone())
        .with_created_timestamps(true)
        .without_env()
        .build()
        .unwrap()
}

/// Renders twice past the TTL: the first sweep notes the last change, the second removes the
/// series idle since.
fn expire(t: &Telemetry, clock: &ManualClock) {
    t.render().unwrap();
    clock.advance(TTL + Duration::from_secs(1));
    t.render().unwrap();
}

#[test]
fn a_rare_counter_rises_by_every_event_across_expiry() {
    let clock = ManualClock::new();
    let t = telemetry(&clock);
    let failed = |text: &str| {
        common::sample(
            text,
            "dchat_messages_send_failed_total",
            &[("channel", "quiet")],
        )
    };
    let errors = |text: &str| common::sample(text, "dchat_errors_total", &[("type", "rare")]);
    let mut seen = Vec::new();
    for n in 1..=5 {
        common::with_layer(&t, || {
            tracing::warn!(name: "message.send_failed", channel = "quiet");
            tracing::error!(error.type = "rare", "rare failure");
        });
        let text = t.render().unwrap();
        assert_eq!(failed(&text), Some(f64::from(n)), "{text}");
        assert_eq!(errors(&text), Some(f64::from(n)));
        seen.push(failed(&text));
        expire(&t, &clock);
        let text = t.render().unwrap();
        assert_eq!(failed(&text), None, "expired between events: {text}");
    }
    assert_eq!(
        seen,
        [1.0, 2.0, 3.0, 4.0, 5.0].map(Some),
        "what Prometheus stores: one rise per event"
    );
    let text = t.render().unwrap();
    assert_eq!(
        common::sample(
            &text,
            "dchat_telemetry_series_expired_total",
            &[("metric", "dchat_messages_send_failed_total")]
        ),
        Some(5.0)
    );
}

#[test]
fn a_histogram_continues_bucket_by_bucket() {
    let clock = ManualClock::new();
    let t = telemetry(&clock);
    let bucket = |text: &str, le: &str| {
        common::sample(
            text,
            "dchat_message_latency_seconds_bucket",
            &[("channel", "quiet"), ("le", le)],
        )
    };
    common::with_layer(&t, || {
        tracing::info!(name: "message.received", channel = "quiet", latency_seconds = 0.02);
    });
    expire(&t, &clock);
    assert_eq!(bucket(&t.render().unwrap(), "+Inf"), None, "expired");
    common::with_layer(&t, || {
        tracing::info!(name: "message.received", channel = "quiet", latency_seconds = 3.0);
    });
    let text = t.render().unwrap();
    assert_eq!(bucket(&text, "0.025"), Some(1.0), "{text}");
    assert_eq!(bucket(&text, "5"), Some(2.0));
    assert_eq!(bucket(&text, "+Inf"), Some(2.0));
    let sum = common::sample(
        &text,
        "dchat_message_latency_seconds_sum",
        &[("channel", "quiet")],
    );
    assert_eq!(sum, Some(3.02));
    assert_eq!(
        common::sample(
            &text,
            "dchat_messages_received_total",
            &[("channel", "quiet")]
        ),
        Some(2.0)
    );
}

#[test]
fn the_created_timestamp_is_kept_across_expiry() {
    let clock = ManualClock::new();
    let t = telemetry(&clock);
    let created = |t: &Telemetry| {
        let text = t.render_format(Format::OpenMetrics).unwrap();
        common::python_parse_openmetrics(&text).unwrap();
        text.lines()
            .find(|l| l.starts_with("dchat_messages_sent_created{channel=\"c\""))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
    };
    common::with_layer(&t, || tracing::info!(name: "message.sent", channel = "c"));
    let first = created(&t).expect("a _created line in OpenMetrics");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - first).abs() < 60.0,
        "a Unix time in seconds: {first}"
    );
    expire(&t, &clock);
    assert_eq!(created(&t), None);
    std::thread::sleep(Duration::from_millis(5)); // a later wall-clock millisecond
    common::with_layer(&t, || tracing::info!(name: "message.sent", channel = "c"));
    assert_eq!(
        created(&t),
        Some(first),
        "the label set's start, not its return: Prometheus 3 must not see a reset"
    );
    let text = t.render().unwrap();
    assert!(
        !text.contains("_created"),
        "the text format has no _created lines"
    );
}

#[test]
fn the_overflow_series_continues_too() {
    let clock = ManualClock::new();
    let t = Telemetry::builder()
        .with_series_ttl(TTL)
        .with_clock(clock.clone())
        .with_cardinality_limit(1)
        .without_env()
        .build()
        .unwrap();
    let overflow = |text: &str| {
        common::sample(
            text,
            "dchat_messages_sent_total",
            &[("otel_metric_overflow", "true")],
        )
    };
    for round in 1..=3 {
        common::with_layer(&t, || {
            tracing::info!(name: "message.sent", channel = "a");
            tracing::info!(name: "message.sent", channel = "b");
        });
        let text = t.render().unwrap();
        assert_eq!(overflow(&text), Some(f64::from(round)), "{text}");
        expire(&t, &clock);
    }
}
