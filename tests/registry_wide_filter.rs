//! dchat's own start-up filters the whole registry (`registry().with(EnvFilter)`), and with
//! `RUST_LOG=warn` tracing drops every INFO event before any layer sees it. The metrics must
//! not vanish silently: `/health` turns `warn` with a check naming the filter and the fix, one
//! WARN line says so, and `dchat_telemetry_filter_blocked{reason="max_level"}` is 1.
mod common;

use std::sync::{Arc, Mutex};

use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_registry_wide_filter_is_reported_loudly() {
    let t = common::telemetry();
    let logs = Captured::default();
    let writer = logs.clone();
    // dchat's init_logging, as it is at the pinned commit, with the metrics layer added.
    tracing_subscriber::registry()
        .with(EnvFilter::new("warn"))
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone()),
        )
        .with(t.layer())
        .init();
    for _ in 0..10 {
        tracing::info!(name: "message.sent", channel = "general", "sent");
    }
    let _relay = tracing::info_span!("relay.connection", relay = "relay-1").entered();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let report = rt.block_on(t.health().liveness());
    assert_eq!(report.status, dchat_telemetry::Status::Warn, "{report:?}");
    assert!(report.is_pass(), "a warning, not a restart");
    let check = &report.checks["tracing-filter:liveness"][0];
    let output = check.output.as_deref().unwrap_or_default();
    assert!(output.contains("maximum level is WARN"), "{output}");
    assert!(
        output.contains("fmt::layer().with_filter(EnvFilter::from_default_env())"),
        "names the fix: {output}"
    );

    let text = t.render().unwrap();
    assert_eq!(
        common::sample(
            &text,
            "dchat_telemetry_filter_blocked",
            &[("reason", "max_level")]
        ),
        Some(1.0)
    );
    assert_eq!(
        common::sample(&text, "dchat_messages_sent_total", &[]),
        None,
        "nothing counted"
    );
    let _ = rt.block_on(t.health().liveness());
    let _ = t.render().unwrap();

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let warned: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("metrics are being lost"))
        .collect();
    assert_eq!(warned.len(), 1, "one WARN line, once:\n{logs}");
}
