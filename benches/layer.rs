//! The layer's hot paths against what a Rust team would otherwise use, in one criterion run.
//! `cargo bench --bench layer`; results and ratios are kept in benches/README.md.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use dchat_telemetry::catalog;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::{ManualReader, SdkMeterProvider};
use tracing::Dispatch;
use tracing_subscriber::prelude::*;

#[path = "shared/telemetry.rs"]
mod shared;
use shared::bench_telemetry as ours;
#[path = "shared/span_peers.rs"]
mod span_peers;
use span_peers::{NoopLayer, SpanTimer};

fn otel_provider() -> SdkMeterProvider {
    SdkMeterProvider::builder()
        .with_reader(ManualReader::builder().build())
        .build()
}

fn event_paths(c: &mut Criterion) {
    let mut g = c.benchmark_group("event");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));

    // Each subscriber is dropped before the next is built: tracing combines the interest of
    // every live dispatcher, so a leftover one would make other callsites look enabled.
    {
        let bare: Dispatch = tracing_subscriber::registry().into();
        tracing::dispatcher::with_default(&bare, || {
            g.bench_function("registry_only/info", |b| {
                b.iter(|| tracing::info!(channel = "general", "unmatched"))
            });
        });
    }

    // With another layer beside ours (as dchat has its fmt layer), an unmatched callsite stays
    // enabled and our per-layer filter is asked per event: the honest unmatched cost.
    {
        let other: Dispatch = tracing_subscriber::registry().with(NoopLayer).into();
        tracing::dispatcher::with_default(&other, || {
            g.bench_function("registry_plus_noop_layer/info", |b| {
                b.iter(|| tracing::info!(channel = "general", "unmatched beside"))
            });
        });
    }
    {
        let t = ours(2000);
        let d: Dispatch = tracing_subscriber::registry()
            .with(NoopLayer)
            .with(t.layer())
            .into();
        tracing::dispatcher::with_default(&d, || {
            g.bench_function("ours_beside_noop_layer/unmatched_event", |b| {
                b.iter(|| tracing::info!(channel = "general", "unmatched beside"))
            });
        });
    }

    // A span no rule matches, beside another layer that wants it (as dchat's fmt layer does):
    // what our per-layer filter costs every other span in the process.
    for (name, with_ours) in [
        ("registry_plus_noop_layer/unmatched_span", false),
        ("ours_beside_noop_layer/unmatched_span", true),
    ] {
        let t = ours(2000);
        let d: Dispatch = tracing_subscriber::registry()
            .with(NoopLayer)
            .with(with_ours.then(|| t.layer()))
            .into();
        tracing::dispatcher::with_default(&d, || {
            g.bench_function(name, |b| {
                b.iter(|| drop(tracing::info_span!("app.work", item = "x").entered()))
            });
        });
    }

    let t = ours(2000);
    {
        let d: Dispatch = tracing_subscriber::registry().with(t.layer()).into();
        tracing::dispatcher::with_default(&d, || {
            let _node = tracing::info_span!("node", node = "node-1").entered();
            g.bench_function("ours/counter_event", |b| {
                b.iter(|| tracing::info!(name: "bench.event", channel = "general", "x"))
            });
            g.bench_function("ours/histogram_event", |b| {
                b.iter(|| tracing::info!(name: "bench.latency", latency_seconds = 0.012, channel = "general"))
            });
            g.bench_function("ours/message_received_event", |b| {
            b.iter(|| tracing::info!(name: "message.received", channel = "general", latency_seconds = 0.012, "x"))
        });
            g.bench_function("ours/unmatched_event", |b| {
                b.iter(|| tracing::info!(channel = "general", "unmatched"))
            });
            g.bench_function("ours/db_query_span", |b| {
                b.iter(|| drop(tracing::info_span!("db.query", db.operation = "insert").entered()))
            });
            g.bench_function("ours/relay_span_open_close", |b| {
                b.iter(|| {
                    drop(tracing::info_span!(
                        "relay.connection",
                        relay = "relay-eu-1"
                    ))
                })
            });
        });
    }

    // The same span with no parent, as the span timer's first rows run.
    {
        let d: Dispatch = tracing_subscriber::registry().with(t.layer()).into();
        tracing::dispatcher::with_default(&d, || {
            g.bench_function("ours/db_query_span_root", |b| {
                b.iter(|| drop(tracing::info_span!("db.query", db.operation = "insert").entered()))
            });
        });
    }

    let provider = otel_provider();
    {
        let d: Dispatch = tracing_subscriber::registry()
            .with(tracing_opentelemetry::MetricsLayer::new(provider.clone()))
            .into();
        tracing::dispatcher::with_default(&d, || {
            let _node = tracing::info_span!("node", node = "node-1").entered();
            g.bench_function("tracing_otel/counter_event", |b| {
                b.iter(|| {
                    tracing::info!(
                        monotonic_counter.bench_events = 1u64,
                        channel = "general",
                        node = "node-1"
                    )
                })
            });
            g.bench_function("tracing_otel/histogram_event", |b| {
                b.iter(|| tracing::info!(histogram.message_latency = 0.012, channel = "general"))
            });
            g.bench_function("tracing_otel/unmatched_event", |b| {
                b.iter(|| tracing::info!(channel = "general", "unmatched"))
            });
        });
    }

    let meter = provider.meter("bench");
    let counter = meter.u64_counter("direct_counter").build();
    let histogram = meter
        .f64_histogram("direct_histogram")
        .with_boundaries(catalog::LATENCY_BUCKETS.to_vec())
        .build();
    let attrs2 = [
        KeyValue::new("channel", "general"),
        KeyValue::new("node", "node-1"),
    ];
    let attrs1 = [KeyValue::new("channel", "general")];
    g.bench_function("otel_sdk/counter_add", |b| {
        b.iter(|| counter.add(1, black_box(&attrs2)))
    });
    g.bench_function("otel_sdk/histogram_record", |b| {
        b.iter(|| histogram.record(0.012, black_box(&attrs1)))
    });

    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    metrics::with_local_recorder(&recorder, || {
        g.bench_function("metrics_rs/counter", |b| {
            b.iter(|| {
                metrics::counter!("bench_events_total", "channel" => "general", "node" => "node-1")
                    .increment(1)
            })
        });
    });

    let registry = prometheus::Registry::new();
    let vec = prometheus::IntCounterVec::new(
        prometheus::Opts::new("bench_events_total", "h"),
        &["channel", "node"],
    )
    .unwrap();
    registry.register(Box::new(vec.clone())).unwrap();
    g.bench_function("prometheus/with_label_values_inc", |b| {
        b.iter(|| vec.with_label_values(&["general", "node-1"]).inc())
    });
    let bound = vec.with_label_values(&["general", "node-1"]);
    g.bench_function("prometheus/prebound_inc", |b| b.iter(|| bound.inc()));

    // A hand-written span timer feeding a prometheus HistogramVec: the simplest db.query peer.
    let hist = prometheus::HistogramVec::new(
        prometheus::HistogramOpts::new("db_seconds", "h").buckets(catalog::DB_BUCKETS.to_vec()),
        &["operation"],
    )
    .unwrap();
    let d: Dispatch = tracing_subscriber::registry()
        .with(SpanTimer { hist: hist.clone() })
        .into();
    tracing::dispatcher::with_default(&d, || {
        g.bench_function("span_timer_prometheus/db_query_span", |b| {
            b.iter(|| drop(tracing::info_span!("db.query", db.operation = "insert").entered()))
        });
    });
    // The same peer behind the same kind of per-layer filter as ours: both on one floor.
    let d: Dispatch =
        tracing_subscriber::registry()
            .with(SpanTimer { hist: hist.clone() }.with_filter(
                tracing_subscriber::filter::filter_fn(|m| m.name() == "db.query"),
            ))
            .into();
    tracing::dispatcher::with_default(&d, || {
        g.bench_function("span_timer_prometheus_filtered/db_query_span", |b| {
            b.iter(|| drop(tracing::info_span!("db.query", db.operation = "insert").entered()))
        });
    });
    // The same two peers with the span inside an entered `node` span, as `ours/db_query_span`
    // runs (its `node` span keeps a label for its children): the registry then tracks a parent
    // for every `db.query` span, which the rows above never pay. The filtered peer lets `node`
    // through, so the parent exists for it too.
    let under_node: [(&str, Dispatch); 2] = [
        (
            "span_timer_prometheus/db_query_span_under_node",
            tracing_subscriber::registry()
                .with(SpanTimer { hist: hist.clone() })
                .into(),
        ),
        (
            "span_timer_prometheus_filtered/db_query_span_under_node",
            tracing_subscriber::registry()
                .with(SpanTimer { hist: hist.clone() }.with_filter(
                    tracing_subscriber::filter::filter_fn(|m| {
                        m.name() == "db.query" || m.name() == "node"
                    }),
                ))
                .into(),
        ),
    ];
    for (name, d) in under_node {
        tracing::dispatcher::with_default(&d, || {
            let _node = tracing::info_span!("node", node = "node-1").entered();
            g.bench_function(name, |b| {
                b.iter(|| drop(tracing::info_span!("db.query", db.operation = "insert").entered()))
            });
        });
    }

    // Floors: what a span costs with a layer that does nothing, plain (as the peer is) and behind
    // a per-layer filter (as ours is, so that the callsites it ignores stay free for others).
    for (name, d) in [
        (
            "floor_plain_noop_layer/db_query_span",
            Dispatch::from(tracing_subscriber::registry().with(NoopLayer)),
        ),
        (
            "floor_filtered_noop_layer/db_query_span",
            Dispatch::from(tracing_subscriber::registry().with(NoopLayer.with_filter(
                tracing_subscriber::filter::filter_fn(|m| m.name() == "db.query"),
            ))),
        ),
    ] {
        tracing::dispatcher::with_default(&d, || {
            g.bench_function(name, |b| {
                b.iter(|| drop(tracing::info_span!("db.query", db.operation = "insert").entered()))
            });
        });
    }
    g.finish();
}

/// Per-thread work of the two-thread benchmarks: `ops(thread, iters)`. Each sets up what its
/// library needs per thread (the default dispatcher, the local recorder) once, then loops:
/// per-op set-up would measure contention on the shared `Dispatch` handle rather than on the
/// series.
type Ops = Arc<dyn Fn(usize, u64) + Send + Sync>;

/// Runs `ops` on `threads` threads at once; the slowest thread's time (per op, per thread).
fn run_threads(threads: usize, iters: u64, ops: &Ops) -> Duration {
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (ops, barrier) = (Arc::clone(ops), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                ops(t, iters);
                start.elapsed()
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .max()
        .unwrap()
}

fn two_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("two_threads_one_series");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    let t = ours(2000);
    let d: Dispatch = tracing_subscriber::registry().with(t.layer()).into();
    let ops: Ops = Arc::new(move |_, iters| {
        tracing::dispatcher::with_default(&d, || {
            for _ in 0..iters {
                tracing::info!(name: "message.sent", channel = "general", "x")
            }
        })
    });
    g.bench_function("ours", |b| b.iter_custom(|n| run_threads(2, n, &ops)));
    let provider = otel_provider();
    let counter = provider.meter("bench").u64_counter("c").build();
    let attrs = [KeyValue::new("channel", "general")];
    let ops: Ops = Arc::new(move |_, iters| {
        for _ in 0..iters {
            counter.add(1, &attrs)
        }
    });
    g.bench_function("otel_sdk", |b| b.iter_custom(|n| run_threads(2, n, &ops)));
    let d: Dispatch = tracing_subscriber::registry()
        .with(tracing_opentelemetry::MetricsLayer::new(otel_provider()))
        .into();
    let ops: Ops = Arc::new(move |_, iters| {
        tracing::dispatcher::with_default(&d, || {
            for _ in 0..iters {
                tracing::info!(monotonic_counter.c = 1u64, channel = "general")
            }
        })
    });
    g.bench_function("tracing_otel", |b| {
        b.iter_custom(|n| run_threads(2, n, &ops))
    });
    let recorder = Arc::new(metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder());
    let ops: Ops = Arc::new(move |_, iters| {
        metrics::with_local_recorder(&*recorder, || {
            for _ in 0..iters {
                metrics::counter!("c", "channel" => "general").increment(1)
            }
        })
    });
    g.bench_function("metrics_rs", |b| b.iter_custom(|n| run_threads(2, n, &ops)));
    g.finish();
}

fn render(c: &mut Criterion) {
    let mut g = c.benchmark_group("render");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for series in [1_000usize, 10_000, 50_000, 200_000] {
        let t = ours(series + 1000);
        let d: Dispatch = tracing_subscriber::registry().with(t.layer()).into();
        tracing::dispatcher::with_default(&d, || {
            for i in 0..series {
                tracing::info!(name: "message.sent", channel = i, "x");
            }
            for i in 0..200 {
                tracing::info!(name: "message.received", channel = i, latency_seconds = 0.01, "x");
            }
        });
        let ours_len = t.render().unwrap().len();
        g.bench_with_input(BenchmarkId::new("ours", series), &series, |b, _| {
            b.iter(|| t.render().unwrap())
        });

        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets(catalog::LATENCY_BUCKETS)
            .unwrap()
            .build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            for i in 0..series {
                metrics::counter!("dchat_messages_sent_total", "channel" => i.to_string(), "node_id" => "n", "service" => "dchat").increment(1);
            }
            for i in 0..200 {
                metrics::histogram!("dchat_message_latency_seconds", "channel" => i.to_string(), "node_id" => "n", "service" => "dchat").record(0.01);
            }
        });
        let theirs_len = handle.render().len();
        eprintln!("render {series}: ours {ours_len} bytes, metrics-exporter-prometheus {theirs_len} bytes");
        g.bench_with_input(
            BenchmarkId::new("metrics_exporter_prometheus", series),
            &series,
            |b, _| b.iter(|| handle.render()),
        );

        if series == 50_000 {
            // The OpenTelemetry SDK's own Prometheus path: opentelemetry-prometheus into a
            // prometheus registry, encoded by the prometheus crate.
            let registry = prometheus::Registry::new();
            let exporter = opentelemetry_prometheus::exporter()
                .with_registry(registry.clone())
                .without_units()
                .without_target_info()
                .scope_info_enabled(false)
                .build()
                .unwrap();
            let provider = SdkMeterProvider::builder()
                .with_reader(exporter)
                .with_view(|_: &opentelemetry_sdk::metrics::Instrument| {
                    opentelemetry_sdk::metrics::Stream::builder()
                        .with_cardinality_limit(300_000)
                        .build()
                        .ok()
                })
                .build();
            let meter = provider.meter("bench");
            let counter = meter.u64_counter("dchat_messages_sent").build();
            let hist = meter
                .f64_histogram("dchat_message_latency_seconds")
                .with_boundaries(catalog::LATENCY_BUCKETS.to_vec())
                .build();
            for i in 0..series {
                counter.add(
                    1,
                    &[
                        KeyValue::new("channel", i.to_string()),
                        KeyValue::new("node_id", "n"),
                        KeyValue::new("service", "dchat"),
                    ],
                );
            }
            for i in 0..200 {
                hist.record(
                    0.01,
                    &[
                        KeyValue::new("channel", i.to_string()),
                        KeyValue::new("node_id", "n"),
                        KeyValue::new("service", "dchat"),
                    ],
                );
            }
            let encode = || {
                let mut out = Vec::new();
                prometheus::Encoder::encode(
                    &prometheus::TextEncoder::new(),
                    &registry.gather(),
                    &mut out,
                )
                .unwrap();
                out
            };
            eprintln!(
                "render {series}: opentelemetry-prometheus {} bytes",
                encode().len()
            );
            g.bench_with_input(
                BenchmarkId::new("opentelemetry_prometheus", series),
                &series,
                |b, _| b.iter(encode),
            );
        }
    }
    g.finish();
}

/// `n` distinct channel names, `'static` (as dchat's channel ids are long-lived strings).
fn channels(n: usize) -> Vec<&'static str> {
    (0..n)
        .map(|i| &*Box::leak(format!("channel-{i:04}").into_boxed_str()))
        .collect()
}

/// A counter event whose `channel` cycles through 100 and 1000 live values, against the same
/// update done by each peer with the same attribute, in one run.
fn many_series(c: &mut Criterion) {
    let mut g = c.benchmark_group("many_series");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for n in [100usize, 1000] {
        let chans = channels(n);
        let t = ours(4000);
        let d: Dispatch = tracing_subscriber::registry().with(t.layer()).into();
        tracing::dispatcher::with_default(&d, || {
            let mut i = 0usize;
            g.bench_function(BenchmarkId::new("ours/counter_event", n), |b| {
                b.iter(|| {
                    i = (i + 1) % n;
                    tracing::info!(name: "message.sent", channel = chans[i], "x")
                })
            });
        });
        let provider = otel_provider();
        let d: Dispatch = tracing_subscriber::registry()
            .with(tracing_opentelemetry::MetricsLayer::new(provider.clone()))
            .into();
        tracing::dispatcher::with_default(&d, || {
            let mut i = 0usize;
            g.bench_function(BenchmarkId::new("tracing_otel/counter_event", n), |b| {
                b.iter(|| {
                    i = (i + 1) % n;
                    tracing::info!(monotonic_counter.messages_sent = 1u64, channel = chans[i])
                })
            });
        });
        let counter = provider.meter("bench").u64_counter("direct_sent").build();
        let mut i = 0usize;
        g.bench_function(BenchmarkId::new("otel_sdk/counter_add", n), |b| {
            b.iter(|| {
                i = (i + 1) % n;
                counter.add(1, &[KeyValue::new("channel", chans[i])])
            })
        });
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        metrics::with_local_recorder(&recorder, || {
            let mut i = 0usize;
            g.bench_function(BenchmarkId::new("metrics_rs/counter", n), |b| {
                b.iter(|| {
                    i = (i + 1) % n;
                    metrics::counter!("messages_sent_total", "channel" => chans[i]).increment(1)
                })
            });
        });
        let vec = prometheus::IntCounterVec::new(
            prometheus::Opts::new("messages_sent_total", "h"),
            &["channel"],
        )
        .unwrap();
        let mut i = 0usize;
        g.bench_function(
            BenchmarkId::new("prometheus/with_label_values_inc", n),
            |b| {
                b.iter(|| {
                    i = (i + 1) % n;
                    vec.with_label_values(&[chans[i]]).inc()
                })
            },
        );
    }

    // A db.query span whose operation cycles through 4 values.
    const OPS: [&str; 4] = ["select", "insert", "update", "delete"];
    let t = ours(4000);
    let d: Dispatch = tracing_subscriber::registry().with(t.layer()).into();
    tracing::dispatcher::with_default(&d, || {
        let mut i = 0usize;
        g.bench_function("ours/db_query_span_4_operations", |b| {
            b.iter(|| {
                i = (i + 1) % 4;
                drop(tracing::info_span!("db.query", db.operation = OPS[i]).entered())
            })
        });
    });
    let hist = prometheus::HistogramVec::new(
        prometheus::HistogramOpts::new("db_seconds", "h").buckets(catalog::DB_BUCKETS.to_vec()),
        &["operation"],
    )
    .unwrap();
    let d: Dispatch = tracing_subscriber::registry()
        .with(SpanTimer { hist: hist.clone() })
        .into();
    tracing::dispatcher::with_default(&d, || {
        let mut i = 0usize;
        g.bench_function("span_timer_prometheus/db_query_span_4_operations", |b| {
            b.iter(|| {
                i = (i + 1) % 4;
                drop(tracing::info_span!("db.query", db.operation = OPS[i]).entered())
            })
        });
    });
    // The same histogram: the two 4-operation timers run one after the other.
    let d: Dispatch = tracing_subscriber::registry()
        .with(
            SpanTimer { hist }.with_filter(tracing_subscriber::filter::filter_fn(|m| {
                m.name() == "db.query"
            })),
        )
        .into();
    tracing::dispatcher::with_default(&d, || {
        let mut i = 0usize;
        g.bench_function(
            "span_timer_prometheus_filtered/db_query_span_4_operations",
            |b| {
                b.iter(|| {
                    i = (i + 1) % 4;
                    drop(tracing::info_span!("db.query", db.operation = OPS[i]).entered())
                })
            },
        );
    });
    g.finish();
}

/// Two threads, each writing its own series: no cache line may be written by both.
fn two_threads_own_series(c: &mut Criterion) {
    let mut g = c.benchmark_group("two_threads_own_series");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    const OWN: [&str; 2] = ["thread-0", "thread-1"];
    // dchat's `message.sent` on the thread's own channel, through dispatcher `d`.
    fn sent(d: &Dispatch, thread: usize, iters: u64) {
        tracing::dispatcher::with_default(d, || {
            for _ in 0..iters {
                tracing::info!(name: "message.sent", channel = OWN[thread], "x")
            }
        })
    }
    let mut rows = |name: &str, ops: Ops| {
        for threads in [1usize, 2] {
            g.bench_function(BenchmarkId::new(name, threads), |b| {
                b.iter_custom(|n| run_threads(threads, n, &ops))
            });
        }
    };
    let t = ours(2000);
    let d: Dispatch = tracing_subscriber::registry().with(t.layer()).into();
    rows(
        "ours",
        Arc::new(move |thread, iters| sent(&d, thread, iters)),
    );
    // The same, with nothing of ours shared: each thread has its own `Telemetry` and dispatch
    // (own plans, callsite caches, metrics and series). Scaling worse than the baselines below
    // while matching `ours` would put the cost outside our shared structures.
    let ds: Arc<[(_, Dispatch); 2]> = Arc::new([0, 1].map(|_| {
        let t = ours(2000);
        let d = tracing_subscriber::registry().with(t.layer()).into();
        (t, d)
    }));
    rows(
        "ours_nothing_shared",
        Arc::new(move |thread, iters| sent(&ds[thread].1, thread, iters)),
    );
    // Baselines of the machine: what two threads cost when nothing is shared at all (each
    // increments an atomic on cache lines of its own), and tracing's own dispatch of the same
    // event to a layer that does nothing.
    #[repr(align(128))]
    struct Line(std::sync::atomic::AtomicU64);
    let lines: Arc<[Line; 2]> = Arc::new([Line(0.into()), Line(0.into())]);
    rows(
        "baseline_own_atomic",
        Arc::new(move |thread, iters| {
            for _ in 0..iters {
                lines[thread]
                    .0
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                black_box(&lines[thread]);
            }
        }),
    );
    let d: Dispatch = tracing_subscriber::registry().with(NoopLayer).into();
    rows(
        "baseline_tracing_noop_layer",
        Arc::new(move |thread, iters| sent(&d, thread, iters)),
    );
    let recorder = Arc::new(metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder());
    rows(
        "metrics_rs",
        Arc::new(move |thread, iters| {
            metrics::with_local_recorder(&*recorder, || {
                for _ in 0..iters {
                    metrics::counter!("messages_sent_total", "channel" => OWN[thread]).increment(1)
                }
            })
        }),
    );
    g.finish();
}

/// What an exemplar costs: a histogram event with exemplars off, on without a trace context,
/// and on inside a span that carries one (tracing-opentelemetry's layer beside ours).
fn exemplars(c: &mut Criterion) {
    use opentelemetry::trace::TracerProvider as _;
    let mut g = c.benchmark_group("exemplars");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    let off = shared::bench_telemetry_with(2000, false);
    let d: Dispatch = tracing_subscriber::registry().with(off.layer()).into();
    tracing::dispatcher::with_default(&d, || {
        g.bench_function("ours/histogram_event_exemplars_off", |b| {
            b.iter(|| tracing::info!(name: "bench.latency", latency_seconds = 0.012, channel = "general"))
        });
    });
    let on = shared::bench_telemetry_with(2000, true);
    let d: Dispatch = tracing_subscriber::registry().with(on.layer()).into();
    tracing::dispatcher::with_default(&d, || {
        g.bench_function("ours/histogram_event_no_trace_context", |b| {
            b.iter(|| tracing::info!(name: "bench.latency", latency_seconds = 0.012, channel = "general"))
        });
    });
    // Inside a span that tracing-opentelemetry traces: its layer's own work per event (it adds
    // each event to the span) is in both rows; the difference is the exemplar.
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    for (name, keep) in [
        ("ours/histogram_event_in_traced_span_exemplars_off", false),
        ("ours/histogram_event_in_traced_span", true),
    ] {
        let traced = shared::bench_telemetry_with(2000, keep);
        let d: Dispatch = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")))
            .with(traced.layer())
            .into();
        tracing::dispatcher::with_default(&d, || {
            let span = tracing::info_span!("request");
            let _entered = span.enter();
            g.bench_function(name, |b| {
                b.iter(|| tracing::info!(name: "bench.latency", latency_seconds = 0.012, channel = "general"))
            });
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    event_paths,
    many_series,
    two_threads,
    two_threads_own_series,
    exemplars,
    render
);
criterion_main!(benches);
