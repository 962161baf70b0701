//! Refuse fast, never starve the application: with renders held at a gate the test controls,
//! scrapes beyond the in-flight limit are answered 503 at once (before the held renders
//! finish), the runtime's only async worker stays free (renders and gzip run on blocking
//! threads), and once the gate opens every held scrape is answered 200.
mod common;

use std::time::Duration;

use common::gate::GateClock;
use common::{http_get, sample};
use dchat_telemetry::limits::{MAX_SCRAPES_IN_FLIGHT, RENDERS_AT_ONCE};
use dchat_telemetry::Telemetry;

#[test]
fn scrapes_beyond_the_limit_get_503_at_once() {
    let clock = GateClock::new();
    let t = Telemetry::builder()
        .with_clock(clock.clone())
        .with_drain_period(Duration::ZERO)
        .without_env()
        .build()
        .unwrap();
    // One async worker: if a render or its gzip ran on it, nothing else would be answered.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = {
        let t = t.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                t.serve_on(listener, async move {
                    let _ = rx.await;
                })
                .await
            })
        })
    };
    assert_eq!(common::first_status(addr, "/ready"), Some(200));

    clock.close();
    // More scrapes than may be in flight, all at once: whatever order they arrive in, exactly
    // MAX_SCRAPES_IN_FLIGHT are taken (RENDERS_AT_ONCE render and wait at the gate, the others
    // wait for a render), and the rest are answered 503 while the gate is still closed.
    let extra = 3;
    let (results, answers) = std::sync::mpsc::channel();
    let scrapes: Vec<_> = (0..MAX_SCRAPES_IN_FLIGHT + extra)
        .map(|_| {
            let results = results.clone();
            std::thread::spawn(move || {
                let _ = results.send(http_get(addr, "/metrics", "Accept-Encoding: gzip\r\n"));
            })
        })
        .collect();
    assert!(
        clock.wait_for_waiting(RENDERS_AT_ONCE),
        "renders never reached the gate"
    );
    for _ in 0..extra {
        let (status, headers, _) = answers
            .recv_timeout(Duration::from_secs(10))
            .expect("the refused scrapes are answered while renders are held");
        assert_eq!(status, 503);
        assert_eq!(common::header(&headers, "retry-after"), Some("1"));
    }
    // Answered while the held renders still wait: the gate is still closed.
    assert!(clock.waiting() >= 1);
    assert!(
        answers.try_recv().is_err(),
        "a held scrape was answered before the gate opened"
    );
    // The async worker is free: probes are answered meanwhile.
    assert_eq!(http_get(addr, "/ready", "").0, 200);
    assert_eq!(http_get(addr, "/health", "").0, 200);

    clock.open();
    for _ in 0..MAX_SCRAPES_IN_FLIGHT {
        let (status, headers, body) = answers.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(status, 200);
        assert_eq!(common::header(&headers, "content-encoding"), Some("gzip"));
        assert_eq!(&body[..2], &[0x1f, 0x8b]);
    }
    for s in scrapes {
        s.join().unwrap();
    }
    let text = String::from_utf8(http_get(addr, "/metrics", "").2).unwrap();
    assert!(
        sample(
            &text,
            "dchat_telemetry_http_rejected_total",
            &[("reason", "in_flight")]
        ) == Some(extra as f64),
        "{text}"
    );
    let _ = tx.send(());
    server.join().unwrap().unwrap();
}

/// A render that panics answers 500 without the panic's text, and `/health` fails the
/// `exporter` check until a render succeeds again.
#[test]
fn a_render_panic_answers_500_and_fails_liveness_until_a_render_succeeds() {
    let clock = GateClock::new();
    let t = Telemetry::builder()
        .with_clock(clock.clone())
        .with_drain_period(Duration::ZERO)
        .without_env()
        .build()
        .unwrap();
    let _dispatch = common::dispatch(&t);
    let server = common::Server::start(&t);
    assert_eq!(http_get(server.addr, "/health", "").0, 200);
    clock.panic();
    let (status, _, body) = http_get(server.addr, "/metrics", "");
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 500);
    assert!(
        !body.contains("secret-internal-detail") && !body.contains("panic"),
        "{body}"
    );
    assert_eq!(body.trim(), "internal error while rendering /metrics");
    let (status, _, body) = http_get(server.addr, "/health", "");
    assert_eq!(status, 503);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        json["checks"]["exporter:liveness"][0]["status"], "fail",
        "{json}"
    );

    clock.open();
    assert_eq!(http_get(server.addr, "/metrics", "").0, 200);
    // The check's result may be shared for a few milliseconds; poll briefly (bounded).
    let mut health = 0;
    for _ in 0..50 {
        health = http_get(server.addr, "/health", "").0;
        if health == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(health, 200, "liveness passes again after a good render");
    server.stop().unwrap();
}
