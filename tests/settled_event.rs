//! An event settled by its one label field (dchat's `message.sent` with a `channel`: one
//! counter, one label, no value field) is recorded the moment that field is visited, from the
//! caller's string. It lands in exactly the series the copying path gives the same value:
//! sanitised, cut at the length cap, counted once.
mod common;

use common::{sample, samples, telemetry, telemetry_with, with_layer};
use dchat_telemetry::{MetricKind, Rule, Rules};
use proptest::prelude::*;

const SENT: &str = "dchat_messages_sent_total";

/// The `channel` label values of `message.sent`'s series and their counts.
fn sent_series(text: &str) -> Vec<(String, f64)> {
    samples(text)
        .into_iter()
        .filter(|s| s.name == SENT)
        .map(|s| {
            let channel = s
                .labels
                .iter()
                .find(|(k, _)| k == "channel")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            (channel, s.value)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// `channel = s` may settle the event (a printable ASCII value within the cap); `channel =
    /// %s` never does (a `Display` value is formatted into the buffer). Both must land in one
    /// series, counted twice.
    #[test]
    fn a_settled_event_lands_where_the_copying_path_does(
        s in prop_oneof![
            "[ -~]{0,20}",
            "[ -~]{120,140}",
            any::<String>(),
            "[a-z]{0,5}[\u{0}-\u{1f}\u{7f}é€][a-z]{0,5}",
        ]
    ) {
        let t = telemetry();
        with_layer(&t, || {
            tracing::info!(name: "message.sent", channel = s.as_str(), "sent");
            tracing::info!(name: "message.sent", channel = %s, "sent");
        });
        let text = t.render().expect("renders");
        let series = sent_series(&text);
        prop_assert_eq!(series.len(), 1, "one series in:\n{}", text);
        prop_assert_eq!(series[0].1, 2.0);
    }
}

#[test]
fn a_settled_event_keeps_its_value_cut_at_the_cap_and_counts_every_event() {
    let t = telemetry();
    let long = "c".repeat(200);
    with_layer(&t, || {
        for _ in 0..3 {
            tracing::info!(name: "message.sent", channel = "general", "sent");
        }
        tracing::info!(name: "message.sent", channel = long.as_str(), "sent");
        tracing::info!(name: "message.sent", channel = "tab\there", "sent");
        // A control character: sanitised (U+FFFD), so never settled from the raw string.
        tracing::info!(name: "message.sent", channel = "bell\u{7}", "sent");
        // With a count field the value needs a field: the copying path, same series.
        tracing::info!(name: "message.sent", channel = "general", count = 2u64);
    });
    let text = t.render().expect("renders");
    assert_eq!(sample(&text, SENT, &[("channel", "general")]), Some(5.0));
    assert_eq!(
        sample(&text, SENT, &[("channel", &"c".repeat(128))]),
        Some(1.0),
        "cut at the 128-byte cap, like any label value"
    );
    assert_eq!(
        sample(&text, SENT, &[("channel", "tab\there")]),
        Some(1.0),
        "a tab is kept (it is not printable ASCII, so the copying path took it)"
    );
    assert_eq!(
        sample(&text, SENT, &[("channel", "bell\u{FFFD}")]),
        Some(1.0),
        "a control character replaced, like any label value"
    );
    assert_eq!(sent_series(&text).len(), 4, "no series of raw values");
}

#[test]
fn a_settled_event_records_its_rules_default() {
    let rule = Rule::builder(MetricKind::Counter, "dchat_jobs_total")
        .with_description("Jobs, counted three at a time.")
        .with_event_name("job.done")
        .with_value_default(3.0)
        .with_label("queue")
        .build()
        .expect("a valid rule");
    let t = telemetry_with(Rules::empty().with_rule(rule));
    with_layer(&t, || {
        tracing::info!(name: "job.done", queue = "mail", "done"); // settled
        tracing::info!(name: "job.done", queue = %"mail", "done"); // copied
    });
    let text = t.render().expect("renders");
    assert_eq!(
        sample(&text, "dchat_jobs_total", &[("queue", "mail")]),
        Some(6.0)
    );
}
