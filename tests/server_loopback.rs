//! The standalone server over real HTTP on 127.0.0.1: routes, gzip, and requests it must
//! refuse while staying up for the next scrape.
mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{header, http_get, http_raw, server_telemetry, Server};

#[test]
fn serves_metrics_health_ready_and_gzip() {
    let t = server_telemetry();
    let server = Server::start(&t);
    let (status, headers, body) = http_get(server.addr, "/metrics", "");
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(String::from_utf8_lossy(&body).contains("dchat_telemetry_ready"));
    let (status, headers, body) = http_get(server.addr, "/metrics", "Accept-Encoding: gzip\r\n");
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-encoding"), Some("gzip"));
    assert_eq!(&body[..2], &[0x1f, 0x8b], "gzip magic");
    assert_eq!(http_get(server.addr, "/health", "").0, 200);
    assert_eq!(http_get(server.addr, "/ready", "").0, 200);
    assert_eq!(http_get(server.addr, "/missing", "").0, 404);
    let (status, _, _) = http_raw(
        server.addr,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(status, 405);
    server.stop().unwrap();
}

#[test]
fn refuses_abuse_and_stays_up() {
    let t = server_telemetry();
    let server = Server::start(&t);
    // Malformed request line.
    let r = http_raw(server.addr, b"NOT A REQUEST\r\n\r\n");
    assert!(matches!(r, Ok((400, _, _))) || r.is_err(), "{r:?}");
    // A header section over the 16 KiB limit.
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let r = http_raw(server.addr, huge.as_bytes());
    assert!(matches!(r, Ok((431, _, _))) || r.is_err(), "{r:?}");
    // A body on GET larger than 4 KiB.
    let body = "b".repeat(64 * 1024);
    let req = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = http_raw(server.addr, req.as_bytes());
    assert!(matches!(r, Ok((413, _, _))), "{r:?}");
    // A client that sends half a request and stalls is cut off by the header timeout (5 s).
    let mut slow = std::net::TcpStream::connect(server.addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 256];
    let n = slow.read(&mut buf).unwrap_or(0);
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "slow client not cut off"
    );
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || answer.starts_with("HTTP/1.1 408"), "{answer}");
    // Still serving.
    assert_eq!(http_get(server.addr, "/metrics", "").0, 200);
    server.stop().unwrap();
}

#[test]
fn head_over_http_has_headers_and_no_body() {
    let t = server_telemetry();
    let server = Server::start(&t);
    let (status, headers, body) = http_raw(
        server.addr,
        b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(body.is_empty());
    server.stop().unwrap();
}

#[test]
fn panicking_and_hanging_checks_fail_alone_over_http() {
    // Printing the check's panic with a backtrace (RUST_BACKTRACE=1) can take longer than the
    // check timeout here; the panic itself is what is under test.
    std::panic::set_hook(Box::new(|_| {}));
    let t = dchat_telemetry::Telemetry::builder()
        .with_drain_period(Duration::ZERO)
        .with_check_timeout(Duration::from_millis(300))
        .without_env()
        .build()
        .unwrap();
    t.health()
        .add_liveness_check("panics", || panic!("a broken check"));
    t.health().add_liveness_check("hangs", || {
        std::thread::sleep(Duration::from_secs(3));
        Ok(())
    });
    t.health().add_liveness_check("fine", || Ok(()));
    let server = Server::start(&t);
    let started = Instant::now();
    let (status, headers, body) = http_get(server.addr, "/health", "");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the timeout bounds /health"
    );
    assert_eq!(status, 503);
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/health+json")
    );
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        json["checks"]["panics:liveness"][0]["output"],
        "check panicked"
    );
    assert!(json["checks"]["hangs:liveness"][0]["output"]
        .as_str()
        .unwrap_or("")
        .contains("timed out"));
    assert_eq!(json["checks"]["fine:liveness"][0]["status"], "pass");
    // The server is unharmed and the failures are counted.
    let text = String::from_utf8(http_get(server.addr, "/metrics", "").2).unwrap();
    for check in ["panics", "hangs"] {
        assert_eq!(
            common::sample(
                &text,
                "dchat_telemetry_health_check_failures_total",
                &[("check", check)]
            ),
            Some(1.0)
        );
    }
    assert_eq!(http_get(server.addr, "/ready", "").0, 200);
    server.stop().unwrap();
}

#[test]
fn serve_with_shutdown_binds_the_configured_address() {
    let addr = common::free_addr();
    let t = dchat_telemetry::Telemetry::builder()
        .with_drain_period(Duration::ZERO)
        .apply_env(|k| (k == "DCHAT_TELEMETRY_ADDR").then(|| addr.to_string()))
        .unwrap()
        .without_env()
        .build()
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let task = rt.spawn(t.clone().serve_with_shutdown(async move {
        let _ = rx.await;
    }));
    assert_eq!(common::first_status(addr, "/ready"), Some(200));
    let _ = tx.send(());
    let result = rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), task).await });
    assert!(matches!(result, Ok(Ok(Ok(())))), "{result:?}");
    // The port is free again.
    assert!(std::net::TcpListener::bind(addr).is_ok());
}
