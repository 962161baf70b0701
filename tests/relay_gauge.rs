//! `relay.connection` spans drive `dchat_relay_connections_active`: +1 when opened, -1 when
//! closed — however often they are entered, whichever thread or task they move to, however
//! many clones exist.
mod common;

use std::sync::{Arc, Barrier};

use common::{sample, telemetry};
use tracing::instrument::WithSubscriber as _;
use tracing::Instrument as _;
use tracing_subscriber::prelude::*;

fn active(t: &dchat_telemetry::Telemetry, relay: &str) -> Option<f64> {
    sample(
        &t.render().unwrap(),
        "dchat_relay_connections_active",
        &[("relay", relay)],
    )
}

#[test]
fn entered_many_times_counts_once() {
    let t = telemetry();
    common::with_layer(&t, || {
        let span = tracing::info_span!("relay.connection", relay = "r1");
        for _ in 0..100 {
            let _g = span.enter();
        }
        assert_eq!(active(&t, "r1"), Some(1.0));
        let clone = span.clone();
        drop(span);
        assert_eq!(active(&t, "r1"), Some(1.0), "a clone keeps it open");
        drop(clone);
        assert_eq!(active(&t, "r1"), Some(0.0));
    });
}

#[test]
fn moved_across_threads() {
    let t = telemetry();
    let dispatch: tracing::Dispatch = tracing_subscriber::registry().with(t.layer()).into();
    let spans: Vec<tracing::Span> = tracing::dispatcher::with_default(&dispatch, || {
        (0..8)
            .map(|i| {
                tracing::info_span!(
                    "relay.connection",
                    relay = if i % 2 == 0 { "even" } else { "odd" }
                )
            })
            .collect()
    });
    assert_eq!(active(&t, "even"), Some(4.0));
    let barrier = Arc::new(Barrier::new(spans.len()));
    let handles: Vec<_> = spans
        .into_iter()
        .map(|span| {
            let barrier = Arc::clone(&barrier);
            let dispatch = dispatch.clone();
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    let _g = span.enter();
                    barrier.wait();
                });
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(active(&t, "even"), Some(0.0));
    assert_eq!(active(&t, "odd"), Some(0.0));
}

#[test]
fn instrumented_async_tasks() {
    let t = telemetry();
    let dispatch: tracing::Dispatch = tracing_subscriber::registry().with(t.layer()).into();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (release, released) = tokio::sync::watch::channel(false);
    let tasks: Vec<_> = tracing::dispatcher::with_default(&dispatch, || {
        (0..10)
            .map(|i| {
                let span = tracing::info_span!("relay.connection", relay = "async");
                let d = dispatch.clone();
                let mut released = released.clone();
                let fut = async move {
                    for _ in 0..i {
                        tokio::task::yield_now().await; // hop between workers
                    }
                    let _ = released.wait_for(|r| *r).await; // stay open until the check
                }
                .instrument(span);
                rt.spawn(fut.with_subscriber(d))
            })
            .collect()
    });
    assert_eq!(active(&t, "async"), Some(10.0));
    release.send(true).unwrap();
    rt.block_on(async {
        for task in tasks {
            task.await.unwrap();
        }
    });
    assert_eq!(active(&t, "async"), Some(0.0));
}
