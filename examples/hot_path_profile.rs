//! A fixed workload for instruction-level profiling of the layer's hot paths, free of criterion's
//! and the other benchmarks' set-up:
//!
//! ```text
//! cargo build --release --example hot_path_profile
//! for n in 100000 300000; do valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!   '--toggle-collect=tracing_core::dispatcher::with_default*' \
//!   target/release/examples/hot_path_profile counter $n 2>&1 | grep refs; done
//! ```
//! Instructions per operation: the second total minus the first, divided by 200,000. Counting
//! only inside the dispatcher scope leaves out set-up, and the clock's calibration with its
//! noise (`render` runs outside that scope: toggle on `dchat_telemetry::telemetry::Telemetry::render`
//! instead, as `scripts/instructions` does). For a profile by
//! function, write the output to a file and run `callgrind_annotate`.
//! Shapes: `counter` (own + inherited label), `counter_100` and `counter_1000` (dchat's
//! `message.sent` whose channel cycles through 100 or 1000 values; `sdk_add_100` and
//! `sdk_add_1000` are the OpenTelemetry SDK's `add` with the same attribute, and
//! `counter_100_floor` the same event reaching a do-nothing layer behind a per-layer filter), `histogram` (a histogram alone), `message_received`
//! (dchat's counter + histogram event), `db_span`, `relay_span`, `unmatched` (an event no rule
//! matches); `render` renders 10k counter
//! series and 100 histograms N times. The `db.query` span's peer and floors, without this layer:
//! `db_span_peer` (a hand-written span timer feeding a prometheus `HistogramVec`),
//! `db_span_floor_plain` and `db_span_floor_filtered` (a do-nothing layer, plain and behind a
//! per-layer filter).

#[path = "../benches/shared/telemetry.rs"]
mod shared;
#[path = "../benches/shared/span_peers.rs"]
mod span_peers;

use tracing_subscriber::prelude::*;

fn main() {
    let mut args = std::env::args().skip(1);
    let shape = args.next().unwrap_or_else(|| "counter".into());
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let t = shared::bench_telemetry(20_000);
    let d: tracing::Dispatch = match shape.as_str() {
        "db_span_peer" => {
            let hist = prometheus::HistogramVec::new(
                prometheus::HistogramOpts::new("db_seconds", "h")
                    .buckets(dchat_telemetry::catalog::DB_BUCKETS.to_vec()),
                &["operation"],
            )
            .expect("valid histogram");
            tracing_subscriber::registry()
                .with(span_peers::SpanTimer { hist })
                .into()
        }
        "db_span_floor_plain" => tracing_subscriber::registry()
            .with(span_peers::NoopLayer)
            .into(),
        "counter_100_floor" => tracing_subscriber::registry()
            .with(
                span_peers::NoopLayer.with_filter(tracing_subscriber::filter::filter_fn(|m| {
                    m.name() == "message.sent"
                })),
            )
            .into(),
        "db_span_floor_filtered" => tracing_subscriber::registry()
            .with(
                span_peers::NoopLayer.with_filter(tracing_subscriber::filter::filter_fn(|m| {
                    m.name() == "db.query"
                })),
            )
            .into(),
        _ => tracing_subscriber::registry().with(t.layer()).into(),
    };
    if shape == "render" {
        tracing::dispatcher::with_default(&d, || {
            for i in 0..10_000 {
                tracing::info!(name: "message.sent", channel = i, "x");
            }
            for i in 0..100 {
                tracing::info!(name: "message.received", channel = i, latency_seconds = 0.01, "x");
            }
        });
        for _ in 0..n {
            std::hint::black_box(t.render().map(|s| s.len()).unwrap_or(0));
        }
        return;
    }
    let channels: Vec<&'static str> = (0..1000)
        .map(|i| &*Box::leak(format!("channel-{i:04}").into_boxed_str()))
        .collect();
    // The OpenTelemetry SDK's own counter, for the same update without tracing (the
    // `sdk_add_*` shapes): what the many-series benchmark compares against.
    let sdk = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_reader(opentelemetry_sdk::metrics::ManualReader::builder().build())
        .build();
    let sdk_counter = opentelemetry::metrics::MeterProvider::meter(&sdk, "profile")
        .u64_counter("direct_sent")
        .build();
    // The shape is resolved once: a string match per operation would be counted with it.
    let op = match shape.as_str() {
        "counter_100" | "counter_100_floor" => Op::Sent(100),
        "counter_1000" => Op::Sent(1000),
        "sdk_add_100" => Op::SdkAdd(100),
        "sdk_add_1000" => Op::SdkAdd(1000),
        "counter" => Op::Counter,
        "histogram" => Op::Histogram,
        "message_received" => Op::Received,
        "db_span" | "db_span_peer" | "db_span_floor_plain" | "db_span_floor_filtered" => Op::DbSpan,
        "relay_span" => Op::RelaySpan,
        "unmatched" => Op::Unmatched,
        other => {
            eprintln!("unknown shape {other}");
            std::process::exit(2);
        }
    };
    tracing::dispatcher::with_default(&d, || {
        let _node = tracing::info_span!("node", node = "node-1").entered();
        for i in 0..n {
            match op {
                Op::Sent(k) => {
                    tracing::info!(name: "message.sent", channel = channels[i as usize % k], "x")
                }
                Op::SdkAdd(k) => sdk_counter.add(
                    1,
                    &[opentelemetry::KeyValue::new(
                        "channel",
                        channels[i as usize % k],
                    )],
                ),
                Op::Counter => tracing::info!(name: "bench.event", channel = "general", "x"),
                Op::Histogram => {
                    tracing::info!(name: "bench.latency", latency_seconds = 0.012, channel = "general")
                }
                Op::Received => {
                    tracing::info!(name: "message.received", channel = "general", latency_seconds = 0.012, "x")
                }
                Op::DbSpan => {
                    drop(tracing::info_span!("db.query", db.operation = "insert").entered())
                }
                Op::RelaySpan => drop(tracing::info_span!(
                    "relay.connection",
                    relay = "relay-eu-1"
                )),
                Op::Unmatched => tracing::info!(name: "unrelated.event", id = i, "x"),
            }
            std::hint::black_box(i);
        }
    });
    std::hint::black_box(t.render().map(|s| s.len()).unwrap_or(0));
}

/// One operation of the profiled loop.
#[derive(Clone, Copy)]
enum Op {
    /// dchat's `message.sent` over this many channels.
    Sent(usize),
    /// The SDK's `add` with a `channel` attribute over this many values.
    SdkAdd(usize),
    Counter,
    Histogram,
    Received,
    DbSpan,
    RelaySpan,
    /// An event no rule matches.
    Unmatched,
}
