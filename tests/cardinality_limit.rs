//! Past the cardinality limit, new label sets fold into one overflow series, a self-metric
//! counts them, and no count is lost.
mod common;

use common::{sample, sum, with_layer};
use dchat_telemetry::Telemetry;

#[test]
fn overflow_series_and_dropped_label_sets() {
    let t = Telemetry::builder()
        .with_cardinality_limit(50)
        .without_env()
        .build()
        .unwrap();
    with_layer(&t, || {
        for i in 0..200 {
            tracing::info!(name: "message.sent", channel = i);
            tracing::info!(name: "message.sent", channel = i);
        }
    });
    let text = t.render().unwrap();
    assert_eq!(t.series_count("dchat_messages_sent_total"), Some(50));
    assert_eq!(
        sum(&text, "dchat_messages_sent_total"),
        400.0,
        "no count lost"
    );
    assert_eq!(
        sample(
            &text,
            "dchat_messages_sent_total",
            &[("otel_metric_overflow", "true")]
        ),
        Some(300.0)
    );
    let dropped = sample(
        &text,
        "dchat_telemetry_label_sets_dropped_total",
        &[("metric", "dchat_messages_sent_total")],
    );
    assert_eq!(
        dropped,
        Some(300.0),
        "every event that went to overflow counts once"
    );
    let series = text
        .lines()
        .filter(|l| l.starts_with("dchat_messages_sent_total{"))
        .count();
    assert_eq!(series, 51);
}

#[test]
fn threads_racing_at_the_limit_never_export_more_series() {
    use tracing_subscriber::prelude::*;
    const THREADS: usize = 8;
    let t = Telemetry::builder()
        .with_cardinality_limit(50)
        .without_env()
        .build()
        .unwrap();
    let dispatch: tracing::Dispatch = tracing_subscriber::registry().with(t.layer()).into();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|k| {
            let (dispatch, barrier) = (dispatch.clone(), std::sync::Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                tracing::dispatcher::with_default(&dispatch, || {
                    for i in 0..100 {
                        tracing::info!(name: "message.sent", channel = i * THREADS + k, "sent");
                    }
                })
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let text = t.render().unwrap();
    let series = text
        .lines()
        .filter(|l| l.starts_with("dchat_messages_sent_total{"))
        .count();
    assert_eq!(series, 51, "50 label sets and the overflow series:\n{text}");
    assert_eq!(
        sum(&text, "dchat_messages_sent_total"),
        (THREADS * 100) as f64
    );
}
