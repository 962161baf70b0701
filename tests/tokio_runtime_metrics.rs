//! A tokio runtime handed over with `with_tokio_runtime` is reported at each scrape: workers,
//! alive tasks, global queue depth and each worker's busy time, from tokio's stable API.
mod common;

use std::time::Duration;

#[test]
fn the_runtime_is_reported() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(3)
        .enable_all()
        .build()
        .unwrap();
    let t = dchat_telemetry::Telemetry::builder()
        .with_tokio_runtime(rt.handle().clone())
        .without_env()
        .build()
        .unwrap();
    // Some work, and tasks that stay alive across the scrape.
    rt.block_on(async {
        let mut handles = Vec::new();
        for _ in 0..50 {
            handles.push(tokio::spawn(async {
                let mut x = 0u64;
                for i in 0..200_000u64 {
                    x = x.wrapping_add(i * i);
                }
                std::hint::black_box(x)
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
    });
    let (stop, wait) = tokio::sync::oneshot::channel::<()>();
    let parked = rt.spawn(async move {
        let _ = wait.await;
    });
    let text = t.render().unwrap();
    assert_eq!(
        common::sample(&text, "tokio_runtime_workers", &[]),
        Some(3.0)
    );
    assert!(common::sample(&text, "tokio_runtime_alive_tasks", &[]).unwrap() >= 1.0);
    assert!(common::sample(&text, "tokio_runtime_global_queue_depth", &[]).is_some());
    let busy = common::sum(&text, "tokio_runtime_busy_seconds_total");
    assert!(busy > 0.0, "the workers did work: {busy}");
    for w in 0..3 {
        assert!(
            common::sample(
                &text,
                "tokio_runtime_busy_seconds_total",
                &[("worker", &w.to_string())]
            )
            .is_some(),
            "worker {w}"
        );
    }
    assert_eq!(common::promtool_findings(&text), None);
    stop.send(()).unwrap();
    rt.block_on(parked).unwrap();
    rt.shutdown_timeout(Duration::from_secs(1));
}
