//! Span state cells are pooled and reused (span ids are reused by the registry too): spans opened
//! on one thread and closed on another, thousands at a time, keep every count exact, and labels
//! never leak from a closed span into the span that reuses its cell.
mod common;

use common::{sample, sum, telemetry};
use tracing_subscriber::prelude::*;

#[test]
fn spans_closed_on_other_threads_keep_counts_exact_and_labels_apart() {
    let t = telemetry();
    let dispatch: tracing::Dispatch = tracing_subscriber::registry().with(t.layer()).into();
    const ROUNDS: usize = 20;
    const PER_ROUND: usize = 200;
    for round in 0..ROUNDS {
        // Opened here, each with its own channel...
        let spans: Vec<(tracing::Span, tracing::Span)> =
            tracing::dispatcher::with_default(&dispatch, || {
                (0..PER_ROUND)
                    .map(|i| {
                        let channel = if (round + i) % 2 == 0 { "even" } else { "odd" };
                        let room = tracing::info_span!("room", channel);
                        let conn =
                            tracing::info_span!(parent: &room, "relay.connection", relay = "r");
                        (room, conn)
                    })
                    .collect()
            });
        // ...used and closed on two other threads, which then hold (and reuse) the cells.
        let mut halves = spans;
        let second = halves.split_off(PER_ROUND / 2);
        let handles: Vec<_> = [halves, second]
            .into_iter()
            .map(|part| {
                let dispatch = dispatch.clone();
                std::thread::spawn(move || {
                    tracing::dispatcher::with_default(&dispatch, || {
                        for (room, conn) in part {
                            {
                                let _c = conn.enter();
                                tracing::info!(name: "message.sent", "sent");
                            }
                            drop(conn);
                            drop(room);
                            // A fresh span here reuses a cell just closed: it must not see the
                            // closed span's `channel`.
                            let _fresh =
                                tracing::info_span!("relay.connection", relay = "r").entered();
                            tracing::info!(name: "message.sent", "sent");
                        }
                    })
                })
            })
            .collect();
        for h in handles {
            h.join().expect("worker");
        }
    }
    let text = t.render().expect("render");
    let total = (ROUNDS * PER_ROUND) as f64;
    let sent = |channel| sample(&text, "dchat_messages_sent_total", &[("channel", channel)]);
    assert_eq!(sent("even"), Some(total / 2.0), "{text}");
    assert_eq!(sent("odd"), Some(total / 2.0), "{text}");
    assert_eq!(
        sent("unknown"),
        Some(total),
        "fresh spans inherit nothing: {text}"
    );
    assert_eq!(
        sum(&text, "dchat_relay_connections_active"),
        0.0,
        "every +1 met its -1: {text}"
    );
}

#[test]
fn a_forgotten_guard_neither_deadlocks_nor_loses_counts() {
    let t = telemetry();
    common::with_layer(&t, || {
        for _ in 0..10 {
            let room = tracing::info_span!("room", channel = "forgotten");
            let conn = tracing::info_span!(parent: &room, "relay.connection", relay = "f");
            // The guard is leaked: the layer never sees the exit, and its stack keeps the cell
            // (closed under its lock); the registry does not keep the span open for it.
            #[allow(clippy::mem_forget)] // the leak is what this test is about
            std::mem::forget(conn.enter());
            tracing::info!(name: "message.sent", "sent");
            drop(conn);
            drop(room);
        }
        tracing::info!(name: "message.sent", "after");
    });
    let text = t.render().expect("render");
    assert_eq!(
        sample(
            &text,
            "dchat_messages_sent_total",
            &[("channel", "forgotten")]
        ),
        Some(10.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "dchat_relay_connections_active", &[("relay", "f")]),
        Some(0.0),
        "{text}"
    );
}
