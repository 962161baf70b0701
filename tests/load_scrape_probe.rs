//! Load: threads emit events as fast as they can while clients scrape `/metrics` and probe
//! `/health` and `/ready` over loopback. No deadlock, every request answers within a bound,
//! and the final counts are exact.
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{http_get, sample, server_telemetry, Server};
use tracing_subscriber::prelude::*;

#[test]
fn emit_scrape_and_probe_at_once() {
    const EMITTERS: usize = 2;
    const EVENTS: u64 = 200_000;
    let t = server_telemetry();
    t.health().readiness_gate("database").set_ready(true);
    let server = Server::start(&t);
    let dispatch: tracing::Dispatch = tracing_subscriber::registry().with(t.layer()).into();
    let done = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = ["/metrics", "/health", "/ready"]
        .into_iter()
        .map(|path| {
            let done = Arc::clone(&done);
            let addr = server.addr;
            std::thread::spawn(move || {
                let (mut n, mut slowest) = (0u32, Duration::ZERO);
                // Bounded in count and by the emitters finishing.
                while !done.load(Ordering::SeqCst) && n < 20_000 {
                    let start = Instant::now();
                    let (status, _, _) = http_get(addr, path, "Accept-Encoding: gzip\r\n");
                    slowest = slowest.max(start.elapsed());
                    assert_eq!(status, 200, "{path}");
                    n += 1;
                }
                (path, n, slowest)
            })
        })
        .collect();
    let emitters: Vec<_> = (0..EMITTERS)
        .map(|_| {
            let dispatch = dispatch.clone();
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    for _ in 0..EVENTS {
                        tracing::info!(name: "message.sent", channel = "load", "sent");
                    }
                })
            })
        })
        .collect();
    for e in emitters {
        e.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    for c in clients {
        let (path, n, slowest) = c.join().unwrap();
        eprintln!("{path}: {n} requests, slowest {slowest:?}");
        assert!(n > 0, "{path} never answered");
        assert!(slowest < Duration::from_secs(2), "{path} took {slowest:?}");
    }
    let text = String::from_utf8(http_get(server.addr, "/metrics", "").2).unwrap();
    assert_eq!(
        sample(&text, "dchat_messages_sent_total", &[("channel", "load")]),
        Some((EMITTERS as u64 * EVENTS) as f64)
    );
    server.stop().unwrap();
}
