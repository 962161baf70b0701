//! `examples/axum_app.rs`: an existing axum app with the telemetry routes merged in answers its
//! own route and the telemetry routes on one port.
mod common;

use std::process::{Command, Stdio};

use common::http_get;

#[test]
fn merged_router_serves_app_and_telemetry_routes() {
    let addr = common::free_addr();
    let child = Command::new(common::example_binary("axum_app"))
        .env("AXUM_APP_ADDR", addr.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _child = common::Kill(child);
    assert_eq!(
        common::first_status(addr, "/"),
        Some(200),
        "axum_app did not start"
    );
    let (status, _, body) = http_get(addr, "/", "");
    assert_eq!(
        (status, String::from_utf8_lossy(&body).as_ref()),
        (200, "dchat says hello")
    );
    assert_eq!(http_get(addr, "/send/general", "").0, 200);
    assert_eq!(http_get(addr, "/ready", "").0, 200);
    let text = String::from_utf8(http_get(addr, "/metrics", "").2).unwrap();
    assert_eq!(
        common::sample(
            &text,
            "dchat_messages_sent_total",
            &[("channel", "general")]
        ),
        Some(1.0)
    );
}
