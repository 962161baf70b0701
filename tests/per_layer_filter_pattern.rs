//! The setup the README shows: the fmt layer behind its own `EnvFilter` (here `warn`, as
//! production runs), the metrics layer unfiltered. Every INFO event is counted, `/health` says
//! `pass`, and no callsite is reported blocked.
mod common;

use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

#[test]
fn a_per_layer_filter_keeps_the_metrics_and_health_passes() {
    let t = common::telemetry();
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::sink)
                .with_filter(EnvFilter::new("warn")),
        )
        .with(t.layer())
        .init();
    for _ in 0..10 {
        tracing::info!(name: "message.sent", channel = "general", "sent");
    }
    let relay = tracing::info_span!("relay.connection", relay = "relay-1");
    let text = t.render().unwrap();
    assert_eq!(
        common::sample(
            &text,
            "dchat_messages_sent_total",
            &[("channel", "general")]
        ),
        Some(10.0)
    );
    assert_eq!(
        common::sample(
            &text,
            "dchat_relay_connections_active",
            &[("relay", "relay-1")]
        ),
        Some(1.0)
    );
    for reason in ["max_level", "callsites", "not_installed"] {
        assert_eq!(
            common::sample(
                &text,
                "dchat_telemetry_filter_blocked",
                &[("reason", reason)]
            ),
            Some(0.0),
            "{reason}"
        );
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let report = rt.block_on(t.health().liveness());
    assert_eq!(report.status, dchat_telemetry::Status::Pass, "{report:?}");
    drop(relay);
}
