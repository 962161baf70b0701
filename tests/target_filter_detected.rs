//! A registry-wide filter that lets INFO through for some targets only
//! (`RUST_LOG=warn,registry::ok=info`) leaves the maximum level at INFO; the callsites it
//! disables still register, and the layer asks the dispatcher about each one it has a plan for:
//! `/health` warns naming them and `dchat_telemetry_filter_blocked{reason="callsites"}` counts
//! them, while the events the filter passes are counted.
mod common;

use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

mod passed {
    pub(crate) fn send() {
        tracing::info!(name: "message.sent", channel = "kept", "sent");
    }
}

mod dropped {
    pub(crate) fn send() {
        tracing::info!(name: "message.sent", channel = "lost", "sent");
    }
}

#[test]
fn callsites_disabled_by_another_filter_are_named() {
    let t = common::telemetry();
    tracing_subscriber::registry()
        .with(EnvFilter::new("warn,target_filter_detected::passed=info"))
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink))
        .with(t.layer())
        .init();
    for _ in 0..3 {
        passed::send();
        dropped::send();
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let report = rt.block_on(t.health().liveness());
    assert_eq!(report.status, dchat_telemetry::Status::Warn, "{report:?}");
    let output = report.checks["tracing-filter:liveness"][0]
        .output
        .clone()
        .unwrap_or_default();
    assert!(output.contains("1 callsite(s)"), "{output}");
    assert!(
        output.contains("target_filter_detected::dropped"),
        "{output}"
    );
    assert!(
        !output.contains("maximum level"),
        "INFO is enabled somewhere: {output}"
    );

    let text = t.render().unwrap();
    assert_eq!(
        common::sample(
            &text,
            "dchat_telemetry_filter_blocked",
            &[("reason", "callsites")]
        ),
        Some(1.0)
    );
    assert_eq!(
        common::sample(&text, "dchat_messages_sent_total", &[("channel", "kept")]),
        Some(3.0)
    );
    assert_eq!(
        common::sample(&text, "dchat_messages_sent_total", &[("channel", "lost")]),
        None
    );
}
