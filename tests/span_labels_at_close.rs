//! A span records into the series its labels name when it closes: a `Span::record` after it
//! opened still picks the series, a label that comes from an enclosing span follows that span's
//! late record, and a series that expires while a span is open hands the value to its
//! successor. These hold for any way of finding the series early (e.g. when the span opens);
//! the preferred source field is `db_operation_name.rs`'s.
mod common;

use std::time::Duration;

use dchat_telemetry::{ManualClock, Telemetry};

const COUNT: &str = "dchat_database_query_duration_seconds_count";

fn count(text: &str, op: &str) -> Option<f64> {
    common::sample(text, COUNT, &[("operation", op)])
}

#[test]
fn a_late_record_still_picks_the_series() {
    let t = common::telemetry();
    common::with_layer(&t, || {
        // The first span makes the series, which the next ones then meet.
        drop(tracing::info_span!("db.query", db.operation = "select").entered());
        let span = tracing::info_span!("db.query", db.operation = "select");
        span.record("db.operation", "insert");
        drop(span);
        // A record of a field that is no label leaves the span's series as it was.
        let span = tracing::info_span!("db.query", db.operation = "select", rows = 0u64);
        span.record("rows", 5u64);
        drop(span);
    });
    let text = t.render().unwrap();
    assert_eq!(count(&text, "select"), Some(2.0), "{text}");
    assert_eq!(count(&text, "insert"), Some(1.0), "{text}");
}

#[test]
fn an_inherited_label_is_read_when_the_span_closes() {
    let t = common::telemetry();
    common::with_layer(&t, || {
        for _ in 0..2 {
            let parent = tracing::info_span!("request", db.operation = tracing::field::Empty);
            parent.record("db.operation", "select");
            let _in = parent.enter();
            let child = tracing::info_span!("db.query");
            // Recorded on the parent while the child is open: the child's label follows.
            parent.record("db.operation", "update");
            drop(child);
        }
    });
    let text = t.render().unwrap();
    assert_eq!(count(&text, "update"), Some(2.0), "{text}");
    assert_eq!(count(&text, "select"), None, "{text}");
}

#[test]
fn a_series_that_expires_while_the_span_is_open_hands_on_its_value() {
    let clock = ManualClock::new();
    let t = Telemetry::builder()
        .with_node_id("test-node")
        .with_clock(clock.clone())
        .with_series_ttl(Duration::from_secs(600))
        .without_env()
        .build()
        .unwrap();
    let dispatch = common::dispatch(&t);
    tracing::dispatcher::with_default(&dispatch, || {
        drop(tracing::info_span!("db.query", db.operation = "select"));
        assert_eq!(count(&t.render().unwrap(), "select"), Some(1.0));
        // Idle past the TTL while this span is open: the scrape expires it under the span.
        let span = tracing::info_span!("db.query", db.operation = "select");
        clock.advance(Duration::from_secs(601));
        let text = t.render().unwrap();
        assert_eq!(count(&text, "select"), None, "expired: {text}");
        drop(span);
    });
    let text = t.render().unwrap();
    assert_eq!(
        count(&text, "select"),
        Some(2.0),
        "the successor continues from the expired series' count and takes the value: {text}"
    );
    assert_eq!(
        common::sample(
            &text,
            "dchat_telemetry_series_expired_total",
            &[("metric", "dchat_database_query_duration_seconds")]
        ),
        Some(1.0),
        "{text}"
    );
}
