//! Zero heap allocations per matched event and per span in steady state, counted by a counting
//! global allocator (string, integer and float label values; counters, histograms, spans).
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use tracing_subscriber::prelude::*;

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

type Item = (&'static str, fn(u64));

const ITEMS: &[Item] = &[
    (
        "string label",
        |_| tracing::info!(name: "message.sent", channel = "general", "x"),
    ),
    (
        "display label",
        |_| tracing::info!(name: "message.sent", channel = %"general", "x"),
    ),
    (
        "integer label",
        |_| tracing::info!(name: "message.sent", channel = 7u64, "x"),
    ),
    (
        "float label",
        |_| tracing::info!(name: "message.sent", channel = 2.5f64, "x"),
    ),
    (
        "inherited label",
        |_| tracing::info!(name: "message.sent", "x"),
    ),
    (
        "histogram",
        |r| tracing::info!(name: "message.received", channel = "general", latency_ms = r % 50, "x"),
    ),
    (
        "error counter and rate",
        |_| tracing::error!(error.type = "timeout", "x"),
    ),
    ("db.query span", |_| {
        drop(tracing::info_span!("db.query", db.operation = "insert").entered())
    }),
    ("relay.connection span", |_| {
        drop(tracing::info_span!("relay.connection", relay = "relay-1"))
    }),
];

#[test]
fn steady_state_allocates_nothing() {
    let t = dchat_telemetry::Telemetry::builder()
        .without_env()
        .build()
        .unwrap();
    let dispatch: tracing::Dispatch = tracing_subscriber::registry().with(t.layer()).into();
    let mut counts = Vec::new();
    tracing::dispatcher::with_default(&dispatch, || {
        let _room = tracing::info_span!("room", channel = "inherited").entered();
        for (name, item) in ITEMS {
            for round in 0..1000 {
                item(round); // warm-up: series, caches, pools, scratch buffers
            }
            // Counts every thread's allocations: the test harness' other threads are idle
            // while this file's one test runs.
            let region = Region::new(GLOBAL);
            for round in 0..10_000 {
                item(round);
            }
            let change = region.change();
            counts.push((*name, change.allocations + change.reallocations));
        }
    });
    assert!(
        counts.iter().all(|(_, n)| *n == 0),
        "allocations per 10,000 calls: {counts:?}"
    );
    let text = t.render().unwrap();
    assert!(
        text.contains(r#"dchat_messages_sent_total{channel="inherited""#),
        "{text}"
    );
}
