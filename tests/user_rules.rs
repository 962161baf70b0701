//! User rules through the public API: match by name, target prefix and level; choose the
//! instrument, the value field, labels (with sources and fallbacks), unit, description and
//! buckets — read back from the exposition.
mod common;

use common::{sample, telemetry_with, with_layer};
use dchat_telemetry::{LabelSource, Measure, MetricKind, Rule, Rules};
use tracing::Level;

#[test]
fn user_rules_feed_their_metrics() {
    let rules = Rules::dchat_defaults()
        .with_rule(
            Rule::builder(MetricKind::Histogram, "dchat_upload_size_bytes")
                .with_event_name("upload.done")
                .with_value_field("bytes")
                .with_scaled_value_field("kib", 1024.0)
                .with_label("channel")
                .with_unit("bytes")
                .with_description("Size of uploaded attachments.")
                .with_buckets([1024.0, 65536.0, 1048576.0])
                .build()
                .unwrap(),
        )
        .with_rule(
            Rule::builder(MetricKind::Counter, "dchat_relay_warnings_total")
                .with_target_prefix("dchat::relay")
                .with_level(Level::WARN)
                .with_label_from(
                    "relay",
                    [
                        LabelSource::field("relay"),
                        LabelSource::Fixed("any".into()),
                    ],
                )
                .with_description("Warnings and errors from the relay module.")
                .build()
                .unwrap(),
        )
        .with_rule(
            Rule::builder(MetricKind::UpDownCounter, "dchat_sessions_open")
                .with_span_name("session")
                .with_measure(Measure::SpanActive)
                .with_label("channel")
                .with_description("Open user sessions.")
                .build()
                .unwrap(),
        );
    let t = telemetry_with(rules);
    with_layer(&t, || {
        tracing::info!(name: "upload.done", channel = "general", bytes = 2000u64, "uploaded");
        tracing::info!(name: "upload.done", channel = "general", kib = 100u64, "uploaded");
        tracing::warn!(target: "dchat::relay::pool", relay = "r1", "slow relay");
        tracing::error!(target: "dchat::relay", "relay gone");
        tracing::warn!(target: "dchat::storage", relay = "r1", "other module: not counted");
        tracing::info!(target: "dchat::relay", relay = "r1", "info: not counted");
        let _s = tracing::info_span!("session", channel = "general").entered();
        let open = sample(
            &t.render().unwrap(),
            "dchat_sessions_open",
            &[("channel", "general")],
        );
        assert_eq!(open, Some(1.0));
    });
    let text = t.render().unwrap();
    assert!(text.contains("# HELP dchat_upload_size_bytes Size of uploaded attachments.\n"));
    assert!(text.contains("# TYPE dchat_upload_size_bytes histogram\n"));
    let bucket = |le: &str| {
        sample(
            &text,
            "dchat_upload_size_bytes_bucket",
            &[("channel", "general"), ("le", le)],
        )
    };
    assert_eq!(bucket("1024"), Some(0.0));
    assert_eq!(bucket("65536"), Some(1.0));
    assert_eq!(bucket("1048576"), Some(2.0));
    assert_eq!(
        sample(
            &text,
            "dchat_upload_size_bytes_sum",
            &[("channel", "general")]
        ),
        Some(2000.0 + 102400.0)
    );
    assert_eq!(
        sample(&text, "dchat_relay_warnings_total", &[("relay", "r1")]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "dchat_relay_warnings_total", &[("relay", "any")]),
        Some(1.0)
    );
    assert_eq!(common::sum(&text, "dchat_relay_warnings_total"), 2.0);
    assert_eq!(
        sample(&text, "dchat_sessions_open", &[("channel", "general")]),
        Some(0.0)
    );
    // The relay error also counts as a dchat error, as the default rules say.
    assert_eq!(
        sample(&text, "dchat_errors_total", &[("type", "dchat::relay")]),
        Some(1.0)
    );
}

#[test]
fn conflicting_or_invalid_user_rules_fail_at_build() {
    let clash = Rules::dchat_defaults().with_rule(
        Rule::builder(MetricKind::Gauge, "dchat_errors")
            .with_description("not a counter")
            .build()
            .unwrap(),
    );
    assert!(
        dchat_telemetry::Telemetry::builder()
            .with_rules(clash)
            .without_env()
            .build()
            .is_ok(),
        "another name is fine"
    );
    let same_name_other_kind = Rules::dchat_defaults().with_rule(
        Rule::builder(MetricKind::Counter, "dchat_errors_total")
            .with_description("a second definition")
            .build()
            .unwrap(),
    );
    let err = dchat_telemetry::Telemetry::builder()
        .with_rules(same_name_other_kind)
        .without_env()
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("dchat_errors_total"), "{err}");
}
