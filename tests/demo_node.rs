//! The demo node, run for a few seconds on a free port: every catalogue metric appears with
//! plausible values, `/ready` goes from 503 to 200, and `--duration` ends it with exit code 0.
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{http_get, sample, samples, Kill};
use dchat_telemetry::catalog::{MetricKind, CATALOG};

fn demo_binary() -> std::path::PathBuf {
    common::example_binary("dchat_node")
}

fn scrape(addr: std::net::SocketAddr) -> String {
    String::from_utf8(http_get(addr, "/metrics", "").2).unwrap()
}

#[test]
fn demo_serves_the_catalogue_and_exits_cleanly() {
    let addr = common::free_addr();
    let child = Command::new(demo_binary())
        .args([
            "--listen",
            &addr.to_string(),
            "--node-id",
            "it-node",
            "--rate",
            "200",
            "--duration",
            "6",
        ])
        .env("DCHAT_TELEMETRY_DRAIN", "1s")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("demo binary built by cargo test");
    // Wait (bounded) for the listener, and see /ready answer 503 during start-up.
    let start = Instant::now();
    let mut first_ready = None;
    while start.elapsed() < Duration::from_secs(10) {
        if let Ok((status, _, _)) = common::http_raw(
            addr,
            b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ) {
            first_ready = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(first_ready, Some(503), "not ready during start-up");
    let mut ready = 0;
    for _ in 0..100 {
        ready = http_get(addr, "/ready", "").0;
        if ready == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ready, 200, "ready after start-up");

    std::thread::sleep(Duration::from_secs(2));
    let first = scrape(addr);
    std::thread::sleep(Duration::from_millis(1500));
    let text = scrape(addr);

    for m in CATALOG {
        let present = samples(&text)
            .iter()
            .any(|s| s.name == m.name || s.name.starts_with(&format!("{}_", m.name)));
        assert!(present, "{} missing from the demo's exposition", m.name);
    }
    let sent = |t: &str| common::sum(t, "dchat_messages_sent_total");
    assert!(
        sent(&text) > sent(&first) && sent(&first) > 0.0,
        "counts rise"
    );
    for s in samples(&text)
        .iter()
        .filter(|s| s.name == "dchat_relay_connections_active")
    {
        assert!((0.0..=8.0).contains(&s.value), "gauge within bounds: {s:?}");
    }
    // Histogram buckets are cumulative, ending at _count.
    for m in CATALOG.iter().filter(|m| m.kind == MetricKind::Histogram) {
        let all = samples(&text);
        let buckets: Vec<_> = all
            .iter()
            .filter(|s| s.name == format!("{}_bucket", m.name))
            .collect();
        let mut last: std::collections::HashMap<Vec<(String, String)>, f64> = Default::default();
        for b in &buckets {
            let key: Vec<_> = b
                .labels
                .iter()
                .filter(|(k, _)| k != "le")
                .cloned()
                .collect();
            let prev = last.insert(key, b.value).unwrap_or(0.0);
            assert!(b.value >= prev, "{} buckets not cumulative", m.name);
        }
        for (key, inf) in last {
            let labels: Vec<(&str, &str)> =
                key.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            assert_eq!(
                sample(&text, &format!("{}_count", m.name), &labels),
                Some(inf)
            );
        }
    }
    assert_eq!(sample(&text, "dchat_telemetry_ready", &[]), Some(1.0));

    let mut child = Kill(child);
    let status = child.wait_exit(Duration::from_secs(20), "--duration did not end the demo");
    assert_eq!(status.code(), Some(0));
    let mut out = String::new();
    std::io::Read::read_to_string(child.0.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(
        out.contains(&format!("http://{addr}/metrics")),
        "prints the URLs: {out}"
    );
}

#[test]
fn bad_flags_exit_2_with_usage() {
    for args in [
        &["--rate", "0"][..],
        &["--fault", "meteor"],
        &["--listen", "nowhere"],
        &["--wat"],
        &["--duration"],
    ] {
        let out = Command::new(demo_binary()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("usage: dchat_node"),
            "{args:?}"
        );
    }
}

#[test]
fn sigterm_turns_ready_off_drains_and_exits_zero() {
    let addr = common::free_addr();
    let child = Command::new(demo_binary())
        .args(["--listen", &addr.to_string(), "--node-id", "term-node"])
        .env("DCHAT_TELEMETRY_DRAIN", "2s")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Kill(child);
    let mut ready = 0;
    for _ in 0..200 {
        if let Ok((status, _, _)) = common::http_raw(
            addr,
            b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ) {
            ready = status;
            if status == 200 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ready, 200);
    let term = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    // During the drain: not ready, still scraped.
    let mut saw_503 = false;
    for _ in 0..40 {
        if http_get(addr, "/ready", "").0 == 503 {
            saw_503 = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(saw_503, "/ready did not turn 503 after SIGTERM");
    assert_eq!(
        http_get(addr, "/metrics", "").0,
        200,
        "/metrics answers during the drain"
    );
    let status = child.wait_exit(Duration::from_secs(15), "did not exit after the drain");
    assert_eq!(status.code(), Some(0));
}
