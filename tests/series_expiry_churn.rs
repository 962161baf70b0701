//! A node that runs for days: 5000 distinct relays connect and disconnect while 3 stay
//! connected, and 5000 one-off direct-message channels come and go beside `general`. With the
//! series TTL (here the default 10 minutes, on an injected clock scraped every 30 s), idle
//! series leave the exposition: at every scrape the live relays and `general` are there with
//! exact values and each metric stays within its cardinality limit (2000), nothing folds into
//! the overflow series, and once the churn stops only the live series remain.
mod common;

use std::time::Duration;

use dchat_telemetry::{ManualClock, Telemetry};

const SCRAPE: Duration = Duration::from_secs(30);
const LIMIT: usize = 2000;

fn telemetry(clock: &ManualClock) -> Telemetry {
    Telemetry::builder()
        .with_node_id("test-node")
        .with_clock(clock.clone())
        .without_env()
        .build()
        .unwrap()
}

fn series(text: &str, name: &str) -> usize {
    common::samples(text)
        .iter()
        .filter(|s| s.name == name)
        .count()
}

#[test]
fn churning_relays_never_hide_the_live_ones() {
    let clock = ManualClock::new();
    let t = telemetry(&clock);
    let dispatch = common::dispatch(&t);
    tracing::dispatcher::with_default(&dispatch, || {
        let live: Vec<tracing::Span> = ["peer-live-a", "peer-live-b", "peer-live-c"]
            .into_iter()
            .map(|r| tracing::info_span!("relay.connection", relay = r))
            .collect();
        // 5000 relays, 25 per 30 s scrape: 100 minutes of churn.
        for batch in 0..200 {
            for i in 0..25 {
                let relay = format!("peer-{}", batch * 25 + i);
                drop(tracing::info_span!(
                    "relay.connection",
                    relay = relay.as_str()
                ));
            }
            clock.advance(SCRAPE);
            let text = t.render().unwrap();
            for r in ["peer-live-a", "peer-live-b", "peer-live-c"] {
                assert_eq!(
                    common::sample(&text, "dchat_relay_connections_active", &[("relay", r)]),
                    Some(1.0),
                    "{r} at scrape {batch}"
                );
            }
            let n = series(&text, "dchat_relay_connections_active");
            assert!(n <= LIMIT, "{n} series at scrape {batch}");
            assert_eq!(
                common::sample(
                    &text,
                    "dchat_relay_connections_active",
                    &[("otel_metric_overflow", "true")]
                ),
                None,
                "nothing folds into overflow (scrape {batch})"
            );
        }
        // Ten minutes and a scrape later, only the live relays remain.
        clock.advance(Duration::from_secs(600));
        let _ = t.render().unwrap();
        clock.advance(SCRAPE);
        let text = t.render().unwrap();
        assert_eq!(series(&text, "dchat_relay_connections_active"), 3, "{text}");
        assert_eq!(t.series_count("dchat_relay_connections_active"), Some(3));
        let expired = common::sample(
            &text,
            "dchat_telemetry_series_expired_total",
            &[("metric", "dchat_relay_connections_active")],
        );
        assert_eq!(expired, Some(5000.0), "every churned relay expired once");
        drop(live);
    });
}

#[test]
fn one_off_channels_never_hide_general() {
    let clock = ManualClock::new();
    let t = telemetry(&clock);
    let dispatch = common::dispatch(&t);
    tracing::dispatcher::with_default(&dispatch, || {
        let mut general = 0u64;
        for batch in 0..200 {
            for i in 0..25 {
                let dm = format!("dm-{}", batch * 25 + i);
                tracing::info!(name: "message.sent", channel = dm.as_str(), "sent");
                tracing::info!(name: "message.sent", channel = "general", "sent");
                general += 1;
            }
            clock.advance(SCRAPE);
            let text = t.render().unwrap();
            assert_eq!(
                common::sample(
                    &text,
                    "dchat_messages_sent_total",
                    &[("channel", "general")]
                ),
                Some(general as f64),
                "general exact at scrape {batch}"
            );
            let n = series(&text, "dchat_messages_sent_total");
            assert!(n <= LIMIT, "{n} series at scrape {batch}");
            assert_eq!(
                common::sample(
                    &text,
                    "dchat_telemetry_label_sets_dropped_total",
                    &[("metric", "dchat_messages_sent_total")]
                ),
                Some(0.0),
                "nothing folded (scrape {batch})"
            );
        }
        // Eleven minutes more of `general` alone: every one-off channel expires.
        for _ in 0..22 {
            tracing::info!(name: "message.sent", channel = "general", "sent");
            general += 1;
            clock.advance(SCRAPE);
            let _ = t.render().unwrap();
        }
        let text = t.render().unwrap();
        assert_eq!(series(&text, "dchat_messages_sent_total"), 1, "{text}");
        assert_eq!(
            common::sample(
                &text,
                "dchat_messages_sent_total",
                &[("channel", "general")]
            ),
            Some(general as f64),
            "a live series never loses a count"
        );
    });
}
