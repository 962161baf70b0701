//! A million distinct channel values churned over 21 simulated hours (400 new values per 30 s
//! scrape, none reused; the injected clock moves, nothing sleeps) with a one-minute TTL: the
//! series count never passes what lives within a TTL and a scrape (4 x 400 = 1600, under the
//! default limit of 2000), nothing folds into overflow, and the resident set stops growing once
//! the first TTL has passed. The bound asserted: the RSS after the millionth value is within
//! 16 MiB of the RSS after the first 100 000 (live series are about 300 bytes each; this
//! thread's series cache holds at most 4096 more, expired or not).
mod common;

use std::time::Duration;

use dchat_telemetry::{ManualClock, Telemetry};

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
fn a_million_churned_values_keep_memory_bounded() {
    const VALUES: u64 = 1_000_000;
    const PER_STEP: u64 = 400;
    let clock = ManualClock::new();
    let t = Telemetry::builder()
        .with_series_ttl(Duration::from_secs(60))
        .with_clock(clock.clone())
        .without_env()
        .build()
        .unwrap();
    let dispatch = common::dispatch(&t);
    let mut warm = 0;
    tracing::dispatcher::with_default(&dispatch, || {
        for step in 0..VALUES / PER_STEP {
            for i in 0..PER_STEP {
                let v = step * PER_STEP + i;
                tracing::info!(name: "message.sent", channel = format_args!("dm-{v:012}"), "sent");
            }
            clock.advance(Duration::from_secs(30));
            // A scrape every 30 simulated seconds, as Prometheus scrapes.
            let text = t.render().unwrap();
            let n = t.series_count("dchat_messages_sent_total").unwrap();
            assert!(n <= 1600, "{n} live series at step {step}");
            {
                assert_eq!(
                    common::sample(
                        &text,
                        "dchat_telemetry_label_sets_dropped_total",
                        &[("metric", "dchat_messages_sent_total")]
                    ),
                    Some(0.0),
                    "nothing folded"
                );
            }
            if (step + 1) * PER_STEP == 100_000 {
                warm = rss();
            }
        }
    });
    let end = rss();
    let grown = end.saturating_sub(warm);
    eprintln!("RSS after 100k values {warm} B, after 1M {end} B: +{grown} B");
    assert!(grown < 16 << 20, "memory grew by {grown} bytes");
}
