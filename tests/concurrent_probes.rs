//! Probes never fail each other: 20 clients polling `/health` at once for a few seconds all get
//! 200 on a healthy node, because concurrent requests share one run of each check; a check is
//! "hung" only once a run has lasted longer than the check timeout.
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{http_get, server_telemetry, Server};

#[test]
fn twenty_clients_polling_health_all_get_200() {
    let t = server_telemetry();
    // A check that takes a little time, so that runs overlap with requests.
    t.health().add_liveness_check("slow-ok", || {
        std::thread::sleep(Duration::from_millis(20));
        Ok(())
    });
    let _dispatch = common::dispatch(&t);
    let server = Server::start(&t);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..20)
        .map(|_| {
            let stop = Arc::clone(&stop);
            let addr = server.addr;
            std::thread::spawn(move || {
                let (mut ok, mut other) = (0u32, Vec::new());
                // Bounded by the stop flag and by a count.
                while !stop.load(Ordering::SeqCst) && ok + (other.len() as u32) < 50_000 {
                    let (status, _, body) = http_get(addr, "/health", "");
                    if status == 200 {
                        ok += 1;
                    } else {
                        other.push((status, String::from_utf8_lossy(&body).into_owned()));
                    }
                }
                (ok, other)
            })
        })
        .collect();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::SeqCst);
    let mut total = 0;
    for c in clients {
        let (ok, other) = c.join().unwrap();
        assert!(
            other.is_empty(),
            "non-200 answers: {:?}",
            &other[..other.len().min(3)]
        );
        total += ok;
    }
    eprintln!("{total} /health answers, all 200");
    assert!(total >= 20, "{total}");
    server.stop().unwrap();
}

/// A check slower than the timeout: concurrent requests share the run and all fail with
/// "timed out", and one failure is counted for the run, not one per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_run_is_shared_and_counted_once() {
    let t = dchat_telemetry::Telemetry::builder()
        .with_check_timeout(Duration::from_millis(100))
        .without_env()
        .build()
        .unwrap();
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let runs = Arc::clone(&runs);
        t.health().add_liveness_check("slow", move || {
            runs.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(600));
            Ok(())
        });
    }
    let reports = futures_join(&t, 10).await;
    for r in &reports {
        let out = r.checks["slow:liveness"][0]
            .output
            .clone()
            .unwrap_or_default();
        assert!(out.contains("timed out"), "{out}");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "one run for ten requests");
    // While it still runs, past its timeout: hung, not started again.
    let r = t.health().liveness().await;
    let out = r.checks["slow:liveness"][0]
        .output
        .clone()
        .unwrap_or_default();
    assert!(out.contains("hung"), "{out}");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let text = t.render().unwrap();
    assert_eq!(
        common::sample(
            &text,
            "dchat_telemetry_health_check_failures_total",
            &[("check", "slow")]
        ),
        Some(1.0)
    );
}

async fn futures_join(t: &dchat_telemetry::Telemetry, n: usize) -> Vec<dchat_telemetry::Report> {
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let t = t.clone();
            tokio::spawn(async move { t.health().liveness().await })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
