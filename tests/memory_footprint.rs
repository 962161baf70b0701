//! Memory per series and per open span, measured with a byte-counting global allocator
//! (`stats_alloc`); the numbers quoted in benches/README.md come from this test's output.
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use tracing_subscriber::prelude::*;

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated and not yet freed, process-wide.
fn live() -> isize {
    let s = GLOBAL.stats();
    s.bytes_allocated as isize - s.bytes_deallocated as isize + s.bytes_reallocated
}

/// The count is process-wide: this file's tests take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn bytes_per_series_and_per_open_span() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    const N: usize = 10_000;
    let t = dchat_telemetry::Telemetry::builder()
        .with_cardinality_limit(N + 10)
        .with_sample_budget(10_000_000)
        .without_env()
        .build()
        .unwrap();
    let dispatch: tracing::Dispatch = tracing_subscriber::registry().with(t.layer()).into();
    tracing::dispatcher::with_default(&dispatch, || {
        // Warm up paths and the first series.
        tracing::info!(name: "message.sent", channel = "warm", "x");
        drop(tracing::info_span!("relay.connection", relay = "warm"));

        let before = live();
        for i in 0..N {
            tracing::info!(name: "message.sent", channel = format_args!("channel-{i:06}"), "x");
        }
        let per_series = (live() - before) as f64 / N as f64;

        let before = live();
        let spans: Vec<tracing::Span> = (0..N)
            .map(|_| tracing::info_span!("relay.connection", relay = "relay-1"))
            .collect();
        let per_span = (live() - before) as f64 / N as f64 - size_of::<tracing::Span>() as f64;
        drop(spans);

        let before = live();
        for i in 0..1000 {
            tracing::info!(name: "message.received", channel = format_args!("h-{i:04}"), latency_ms = 5u64, "x");
        }
        let per_histogram = (live() - before) as f64 / 1000.0;

        println!("memory: {per_series:.0} B per counter series (14-char label), {per_histogram:.0} B per histogram series pair (counter + 13-bucket histogram), {per_span:.0} B per open span");
        assert!(per_series < 2048.0, "{per_series} B per series");
        assert!(per_span < 2048.0, "{per_span} B per open span");
    });
}

#[test]
fn bytes_per_series_at_50k_and_200k() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for n in [50_000usize, 200_000] {
        let t = dchat_telemetry::Telemetry::builder()
            .with_cardinality_limit(n + 10)
            .with_sample_budget(10_000_000)
            .with_process_metrics(false)
            .without_env()
            .build()
            .unwrap();
        let dispatch: tracing::Dispatch = tracing_subscriber::registry().with(t.layer()).into();
        let per_series = tracing::dispatcher::with_default(&dispatch, || {
            tracing::info!(name: "message.sent", channel = "warm", "x");
            let before = live();
            for i in 0..n {
                tracing::info!(name: "message.sent", channel = format_args!("channel-{i:06}"), "x");
            }
            (live() - before) as f64 / n as f64
        });
        // Rendering keeps a sorted list of the series (8 B each) and a buffer the size of the
        // exposition: counted too, after one scrape.
        let before = live();
        let text = t.render().unwrap();
        let render = (live() - before) as f64 / n as f64;
        drop(text);
        println!("memory at {n} series: {per_series:.0} B per counter series, +{render:.0} B per series kept by the render (its sorted order and the exposition)");
        assert!(per_series < 1024.0, "{per_series} B per series at {n}");
    }
}
