//! `examples/axum_app.rs`: an existing axum app with the telemetry routes merged in answers its
//! own route and the telemetry routes on one port.
mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::http_get;

#[test]
fn merged_router_serves_app_and_telemetry_routes() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = Command::new(common::example_binary("axum_app"))
        .env("AXUM_APP_ADDR", addr.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _child = common::Kill(child);
    let mut up = false;
    for _ in 0..200 {
        if common::http_raw(
            addr,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .is_ok()
        {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(up, "axum_app did not start");
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
