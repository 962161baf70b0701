//! A label bounded to known values keeps those values and records any other as one fixed
//! value, on every path an event takes (the settled fast path included), so that values
//! arriving from the network cannot choose the node's series; counters and histograms whose
//! labels are all bounded exist at 0 from the start and never expire.
mod common;

use std::time::Duration;

use dchat_telemetry::{Error, KnownValues, ManualClock, MetricKind, Rule, Rules, Telemetry};
use proptest::prelude::*;

fn bounded() -> Telemetry {
    Telemetry::builder()
        .with_known_values("channel", KnownValues::new(["general", "random"], "other"))
        .without_env()
        .build()
        .unwrap()
}

#[test]
fn unknown_values_are_recorded_as_other_on_every_path() {
    let t = bounded();
    common::with_layer(&t, || {
        // The settled path (one clean string field), the copying path (Display, a count) and a
        // label inherited from a span.
        tracing::info!(name: "message.sent", channel = "general");
        tracing::info!(name: "message.sent", channel = "attacker-1");
        tracing::info!(name: "message.sent", channel = %"attacker-2");
        tracing::info!(name: "message.sent", channel = "attacker-3", count = 2);
        let span = tracing::info_span!("session", channel = "attacker-4");
        let _g = span.enter();
        tracing::info!(name: "message.received", latency_seconds = 0.01);
    });
    let text = t.render().unwrap();
    let sent = |c: &str| common::sample(&text, "dchat_messages_sent_total", &[("channel", c)]);
    assert_eq!(sent("general"), Some(1.0));
    assert_eq!(sent("other"), Some(4.0), "{text}");
    assert_eq!(sent("random"), Some(0.0), "declared at 0");
    assert!(!text.contains("attacker"), "{text}");
    assert_eq!(
        common::sample(
            &text,
            "dchat_messages_received_total",
            &[("channel", "other")]
        ),
        Some(1.0)
    );
}

#[test]
fn bounded_counters_and_histograms_start_at_zero_and_never_expire() {
    let clock = ManualClock::new();
    let t = Telemetry::builder()
        .with_known_values("channel", KnownValues::new(["general"], "other"))
        .with_series_ttl(Duration::from_secs(1))
        .with_clock(clock.clone())
        .without_env()
        .build()
        .unwrap();
    for _ in 0..3 {
        let text = t.render().unwrap();
        for c in ["general", "other"] {
            for m in [
                "dchat_messages_sent_total",
                "dchat_messages_received_total",
                "dchat_messages_send_failed_total",
                "dchat_message_latency_seconds_count",
            ] {
                assert_eq!(
                    common::sample(&text, m, &[("channel", c)]),
                    Some(0.0),
                    "{m}"
                );
            }
        }
        clock.advance(Duration::from_secs(60));
    }
    assert_eq!(t.series_count("dchat_messages_sent_total"), Some(2));
}

#[test]
fn a_rule_can_bound_its_own_label() {
    let rule = Rule::builder(MetricKind::Counter, "logins_total")
        .with_description("Logins.")
        .with_event_name("login")
        .with_label("method")
        .with_known_values(
            "method",
            KnownValues::new(["password", "key"], "unsupported"),
        )
        .build()
        .unwrap();
    let t = common::telemetry_with(Rules::empty().with_rule(rule));
    common::with_layer(&t, || {
        tracing::info!(name: "login", method = "key");
        tracing::info!(name: "login", method = "anything");
    });
    let text = t.render().unwrap();
    assert_eq!(
        common::sample(&text, "logins_total", &[("method", "unsupported")]),
        Some(1.0)
    );
    assert_eq!(
        common::sample(&text, "logins_total", &[("method", "key")]),
        Some(1.0)
    );
    assert_eq!(
        common::sample(&text, "logins_total", &[("method", "password")]),
        Some(0.0)
    );
}

#[test]
fn the_environment_bounds_channels_and_bad_bounds_are_refused() {
    let t = Telemetry::builder()
        .apply_env(|k| (k == "DCHAT_TELEMETRY_CHANNELS").then(|| "general, ops".to_owned()))
        .unwrap()
        .without_env()
        .build()
        .unwrap();
    common::with_layer(&t, || tracing::info!(name: "message.sent", channel = "x"));
    let text = t.render().unwrap();
    assert_eq!(
        common::sample(&text, "dchat_messages_sent_total", &[("channel", "other")]),
        Some(1.0)
    );
    assert_eq!(
        common::sample(&text, "dchat_messages_sent_total", &[("channel", "ops")]),
        Some(0.0)
    );
    let bad = Telemetry::builder()
        .apply_env(|k| (k == "DCHAT_TELEMETRY_CHANNELS").then(|| "a,b\u{7}c".to_owned()));
    assert!(matches!(
        bad,
        Err(Error::InvalidEnv {
            variable: "DCHAT_TELEMETRY_CHANNELS",
            ..
        })
    ));
    let r = Telemetry::builder()
        .with_known_values("no_such_label", KnownValues::new(["a"], "other"))
        .without_env()
        .build();
    assert!(r.is_err(), "a label no rule has");
    let r = Telemetry::builder()
        .with_cardinality_limit(2)
        .with_known_values("channel", KnownValues::new(["a", "b"], "other"))
        .without_env()
        .build();
    let Err(Error::InvalidConfig { reason, .. }) = r else {
        panic!("three label sets past a limit of two must be refused: {r:?}")
    };
    assert!(reason.contains("cardinality limit"), "{reason}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn any_value_lands_in_a_known_series(values in proptest::collection::vec(any::<String>(), 1..8)) {
        let t = bounded();
        common::with_layer(&t, || {
            for v in &values {
                tracing::info!(name: "message.sent", channel = v.as_str());
            }
        });
        let text = t.render().unwrap();
        let total: f64 = ["general", "random", "other"]
            .iter()
            .map(|c| common::sample(&text, "dchat_messages_sent_total", &[("channel", c)]).unwrap())
            .sum();
        prop_assert_eq!(total, values.len() as f64);
        prop_assert_eq!(t.series_count("dchat_messages_sent_total"), Some(3));
    }
}
