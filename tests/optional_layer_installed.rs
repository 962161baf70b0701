//! An optional metrics layer (`.with(Some(telemetry.layer()))`, as an application that makes
//! metrics switchable writes it) is seen as installed: tracing-subscriber's `Option<Layer>` does
//! not pass `on_register_dispatch` on, so the layer also looks for itself in the global default
//! dispatcher. `/health` passes and nothing is reported blocked.
mod common;

use tracing_subscriber::prelude::*;

#[test]
fn an_optional_layer_is_found_in_the_global_dispatcher() {
    let t = common::telemetry();
    tracing_subscriber::registry()
        .with(Some(t.layer()))
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink))
        .init();
    tracing::info!(name: "message.sent", channel = "general", "sent");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let report = rt.block_on(t.health().liveness());
    assert_eq!(report.status, dchat_telemetry::Status::Pass, "{report:?}");
    let text = t.render().unwrap();
    assert_eq!(
        common::sample(
            &text,
            "dchat_telemetry_filter_blocked",
            &[("reason", "not_installed")]
        ),
        Some(0.0)
    );
    assert_eq!(
        common::sample(
            &text,
            "dchat_messages_sent_total",
            &[("channel", "general")]
        ),
        Some(1.0)
    );
}
