//! Labels come only from allow-listed fields, including those of enclosing spans (also when
//! recorded late), and are sanitised and capped.
mod common;

use common::{sample, telemetry, with_layer};
use dchat_telemetry::limits::MAX_LABEL_VALUE_LEN;

#[test]
fn channel_from_parent_span() {
    let t = telemetry();
    with_layer(&t, || {
        let _room = tracing::info_span!("room", channel = "general").entered();
        let _req = tracing::info_span!("handle_request", request_id = 7u64).entered();
        tracing::info!(name: "message.sent", "sent");
        // The event's own field wins over the span's.
        tracing::info!(name: "message.sent", channel = "own");
    });
    let text = t.render().unwrap();
    assert_eq!(
        sample(
            &text,
            "dchat_messages_sent_total",
            &[("channel", "general")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "dchat_messages_sent_total", &[("channel", "own")]),
        Some(1.0)
    );
    assert!(!text.contains("request_id"));
}

#[test]
fn channel_recorded_late_on_the_parent() {
    let t = telemetry();
    with_layer(&t, || {
        let room = tracing::info_span!("room", channel = tracing::field::Empty);
        let _g = room.enter();
        tracing::info!(name: "message.sent", "sent");
        room.record("channel", "late");
        tracing::info!(name: "message.sent", "sent");
        room.record("channel", "later");
        tracing::info!(name: "message.sent", "sent");
    });
    let text = t.render().unwrap();
    assert_eq!(
        sample(
            &text,
            "dchat_messages_sent_total",
            &[("channel", "unknown")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "dchat_messages_sent_total", &[("channel", "late")]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "dchat_messages_sent_total", &[("channel", "later")]),
        Some(1.0)
    );
}

#[test]
fn error_type_inherited_from_span_and_nearest_span_wins() {
    let t = telemetry();
    with_layer(&t, || {
        let _outer = tracing::info_span!("outer", error.type = "outer").entered();
        let _inner = tracing::info_span!("inner", error.type = "inner").entered();
        tracing::error!("boom");
    });
    let text = t.render().unwrap();
    assert_eq!(
        sample(&text, "dchat_errors_total", &[("type", "inner")]),
        Some(1.0)
    );
}

#[test]
fn values_are_sanitised_and_capped() {
    let t = telemetry();
    let huge = "x".repeat(1 << 20);
    let hostile = "a\"b\\c\nd\u{0}e";
    with_layer(&t, || {
        tracing::info!(name: "message.sent", channel = huge.as_str());
        tracing::info!(name: "message.sent", channel = hostile);
        tracing::info!(name: "message.sent", channel = ?huge);
    });
    let text = t.render().unwrap();
    let capped = "x".repeat(MAX_LABEL_VALUE_LEN);
    assert_eq!(
        sample(&text, "dchat_messages_sent_total", &[("channel", &capped)]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "dchat_messages_sent_total",
            &[("channel", "a\"b\\c\nd\u{FFFD}e")]
        ),
        Some(1.0)
    );
    assert!(
        text.contains(r#"channel="a\"b\\c\nd"#),
        "escaped by the encoder:\n{text}"
    );
    assert!(text.len() < 100_000, "no megabyte label made it through");
}

#[test]
fn the_nearest_span_with_any_source_wins_over_a_better_source_further_out() {
    let t = telemetry();
    with_layer(&t, || {
        let _outer = tracing::info_span!("outer", error.type = "outer-type").entered();
        let _inner = tracing::info_span!("inner", error_kind = "inner-kind").entered();
        tracing::error!("boom");
    });
    let text = t.render().unwrap();
    assert_eq!(
        sample(&text, "dchat_errors_total", &[("type", "inner-kind")]),
        Some(1.0),
        "{text}"
    );
}
