//! Memory per series and per open span, measured with a byte-counting global allocator (the
//! numbers quoted in benches/README.md come from this test's output).
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use tracing_subscriber::prelude::*;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only tracks live bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn bytes_per_series_and_per_open_span() {
    const N: usize = 10_000;
    let t = dchat_telemetry::Telemetry::builder()
        .with_cardinality_limit(N + 10)
        .without_env()
        .build()
        .unwrap();
    let dispatch: tracing::Dispatch = tracing_subscriber::registry().with(t.layer()).into();
    tracing::dispatcher::with_default(&dispatch, || {
        // Warm up paths and the first series.
        tracing::info!(name: "message.sent", channel = "warm", "x");
        drop(tracing::info_span!("relay.connection", relay = "warm"));

        let before = LIVE.load(Ordering::SeqCst);
        for i in 0..N {
            tracing::info!(name: "message.sent", channel = format_args!("channel-{i:06}"), "x");
        }
        let per_series = (LIVE.load(Ordering::SeqCst) - before) as f64 / N as f64;

        let before = LIVE.load(Ordering::SeqCst);
        let spans: Vec<tracing::Span> = (0..N)
            .map(|_| tracing::info_span!("relay.connection", relay = "relay-1"))
            .collect();
        let per_span = (LIVE.load(Ordering::SeqCst) - before) as f64 / N as f64
            - std::mem::size_of::<tracing::Span>() as f64;
        drop(spans);

        let before = LIVE.load(Ordering::SeqCst);
        for i in 0..1000 {
            tracing::info!(name: "message.received", channel = format_args!("h-{i:04}"), latency_ms = 5u64, "x");
        }
        let per_histogram = (LIVE.load(Ordering::SeqCst) - before) as f64 / 1000.0;

        println!("memory: {per_series:.0} B per counter series (14-char label), {per_histogram:.0} B per histogram series pair (counter + 13-bucket histogram), {per_span:.0} B per open span");
        assert!(per_series < 2048.0, "{per_series} B per series");
        assert!(per_span < 2048.0, "{per_span} B per open span");
    });
}

#[test]
fn bytes_per_series_at_50k_and_200k() {
    for n in [50_000usize, 200_000] {
        let t = dchat_telemetry::Telemetry::builder()
            .with_cardinality_limit(n + 10)
            .with_process_metrics(false)
            .without_env()
            .build()
            .unwrap();
        let dispatch: tracing::Dispatch = tracing_subscriber::registry().with(t.layer()).into();
        let per_series = tracing::dispatcher::with_default(&dispatch, || {
            tracing::info!(name: "message.sent", channel = "warm", "x");
            let before = LIVE.load(Ordering::SeqCst);
            for i in 0..n {
                tracing::info!(name: "message.sent", channel = format_args!("channel-{i:06}"), "x");
            }
            (LIVE.load(Ordering::SeqCst) - before) as f64 / n as f64
        });
        // Rendering keeps a sorted list of the series (8 B each) and a buffer the size of the
        // exposition: counted too, after one scrape.
        let before = LIVE.load(Ordering::SeqCst);
        let text = t.render().unwrap();
        let render = (LIVE.load(Ordering::SeqCst) - before) as f64 / n as f64;
        drop(text);
        println!("memory at {n} series: {per_series:.0} B per counter series, +{render:.0} B per series kept by the render (its sorted order and the exposition)");
        assert!(per_series < 1024.0, "{per_series} B per series at {n}");
    }
}
