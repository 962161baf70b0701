//! Cardinality attack: one million distinct values on an allow-listed field. The series stay at
//! the limit, the overflow series holds the rest, the sum over all series equals the events
//! sent, and the process' memory grows by a bounded amount (measured and asserted).
mod common;

use common::{sample, sum, with_layer};
use dchat_telemetry::Telemetry;

/// Resident set size in bytes (Linux `/proc/self/statm`).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[test]
fn a_million_channels_stay_bounded() {
    const EVENTS: u64 = 1_000_000;
    const LIMIT: usize = 2000;
    let t = Telemetry::builder()
        .with_cardinality_limit(LIMIT)
        .without_env()
        .build()
        .unwrap();
    // Fill to the limit first, so that what is measured afterwards is the attack itself.
    with_layer(&t, || {
        for i in 0..LIMIT as u64 {
            tracing::info!(name: "message.sent", channel = i, "sent");
        }
    });
    let before = rss();
    with_layer(&t, || {
        for i in LIMIT as u64..EVENTS {
            // Long, distinct, attacker-chosen values.
            tracing::info!(name: "message.sent", channel = format_args!("attacker-{i:0>100}"), "sent");
        }
    });
    let after = rss();
    let text = t.render().unwrap();
    assert_eq!(t.series_count("dchat_messages_sent_total"), Some(LIMIT));
    assert_eq!(
        sum(&text, "dchat_messages_sent_total"),
        EVENTS as f64,
        "no count lost"
    );
    let overflow = sample(
        &text,
        "dchat_messages_sent_total",
        &[("otel_metric_overflow", "true")],
    );
    assert_eq!(overflow, Some((EVENTS - LIMIT as u64) as f64));
    let dropped = sample(
        &text,
        "dchat_telemetry_label_sets_dropped_total",
        &[("metric", "dchat_messages_sent_total")],
    );
    assert_eq!(dropped, Some((EVENTS - LIMIT as u64) as f64));
    let grown = after.saturating_sub(before);
    eprintln!(
        "RSS before {before} B, after {after} B, growth {grown} B for {} attack events",
        EVENTS - LIMIT as u64
    );
    // A million 110-byte values would be >100 MB if kept; the bound is 4 MiB of noise.
    assert!(grown < 4 << 20, "memory grew by {grown} bytes");
}
