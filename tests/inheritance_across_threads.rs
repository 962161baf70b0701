//! Labels are inherited along the span tree, not along what happens to be entered: a span moved
//! to another thread (as `Instrument` does with a spawned task) still gives its events its
//! parent's labels, explicit parents are followed — also past a span the layer ignores — and a
//! `Span::record` from another thread is seen by events inside the span.
//!
//! Which span an event starts from is the nearest *entered* span the layer keeps (spans no rule
//! uses and with no label field are invisible to it, as to any per-layer-filtered layer); from
//! there the walk follows parents.
mod common;

use common::{sample, telemetry, with_layer};
use tracing::Instrument as _;
use tracing_subscriber::prelude::*;

#[test]
fn a_span_entered_on_another_thread_inherits_from_its_parent() {
    let t = telemetry();
    let d = common::dispatch(&t);
    let conn = tracing::dispatcher::with_default(&d, || {
        let _room = tracing::info_span!("room", channel = "general").entered();
        tracing::info_span!("relay.connection", relay = "relay-1")
    });
    let d2 = d.clone();
    std::thread::spawn(move || {
        tracing::dispatcher::with_default(&d2, || {
            let _c = conn.enter();
            tracing::info!(name: "message.sent", "sent");
        });
    })
    .join()
    .expect("thread");
    let text = t.render().expect("render");
    assert_eq!(
        sample(
            &text,
            "dchat_messages_sent_total",
            &[("channel", "general")]
        ),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn an_instrumented_future_polled_elsewhere_inherits_from_its_parent() {
    let t = telemetry();
    let d = common::dispatch(&t);
    let fut = tracing::dispatcher::with_default(&d, || {
        let _room = tracing::info_span!("room", channel = "lobby").entered();
        async { tracing::info!(name: "message.sent", "sent") }
            .instrument(tracing::info_span!("relay.connection", relay = "relay-2"))
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let d2 = d.clone();
    std::thread::spawn(move || tracing::dispatcher::with_default(&d2, || rt.block_on(fut)))
        .join()
        .expect("thread");
    let text = t.render().expect("render");
    assert_eq!(
        sample(&text, "dchat_messages_sent_total", &[("channel", "lobby")]),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn explicit_parents_are_followed_for_spans_and_events() {
    let t = telemetry();
    with_layer(&t, || {
        let room = tracing::info_span!("room", channel = "explicit");
        let _elsewhere = tracing::info_span!("other", channel = "current").entered();
        tracing::info!(name: "message.sent", parent: &room, "sent");
        let child = tracing::info_span!(parent: &room, "child", relay = "relay-1");
        let _c = child.enter();
        tracing::info!(name: "message.sent", "sent");
        let root = tracing::info_span!(parent: None, "root", relay = "relay-2");
        let _r = root.enter();
        tracing::info!(name: "message.sent", "sent");
    });
    let text = t.render().expect("render");
    let count = |channel| sample(&text, "dchat_messages_sent_total", &[("channel", channel)]);
    assert_eq!(count("explicit"), Some(2.0), "{text}");
    assert_eq!(count("current"), None, "{text}");
    assert_eq!(
        count("unknown"),
        Some(1.0),
        "a root span has no parent: {text}"
    );
}

#[test]
fn a_record_from_another_thread_is_seen_inside_the_entered_span() {
    let t = telemetry();
    let d = common::dispatch(&t);
    tracing::dispatcher::with_default(&d, || {
        let room = tracing::info_span!("room", channel = tracing::field::Empty);
        let _g = room.enter();
        tracing::info!(name: "message.sent", "sent");
        let r = room.clone();
        let d2 = d.clone();
        std::thread::spawn(move || {
            tracing::dispatcher::with_default(&d2, || {
                r.record("channel", "from-elsewhere");
            })
        })
        .join()
        .expect("thread");
        tracing::info!(name: "message.sent", "sent");
    });
    let text = t.render().expect("render");
    let count = |channel| sample(&text, "dchat_messages_sent_total", &[("channel", channel)]);
    assert_eq!(count("unknown"), Some(1.0), "{text}");
    assert_eq!(count("from-elsewhere"), Some(1.0), "{text}");
}

#[test]
fn a_span_inside_an_ignored_span_with_an_explicit_parent_inherits_along_the_tree() {
    let t = telemetry();
    // Another layer keeps every span alive (as dchat's fmt layer does); alone, the registry
    // would not even create `work`, which no layer wants.
    let d: tracing::Dispatch = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink))
        .with(t.layer())
        .into();
    tracing::dispatcher::with_default(&d, || {
        let room = tracing::info_span!("room", channel = "general");
        let _conn = tracing::info_span!("relay.connection", relay = "relay-1").entered();
        // No rule and no label field: the layer ignores `work`; its parent is `room`.
        let work = tracing::info_span!(parent: &room, "work");
        let _w = work.enter();
        let _inner = tracing::info_span!("inner", relay = "relay-2").entered();
        tracing::info!(name: "message.sent", "sent");
    });
    let text = t.render().expect("render");
    assert_eq!(
        sample(
            &text,
            "dchat_messages_sent_total",
            &[("channel", "general")]
        ),
        Some(1.0),
        "inner -> work -> room, not the entered relay.connection: {text}"
    );
}

#[test]
fn deeper_nesting_than_the_entered_stack_holds_still_inherits() {
    let t = telemetry();
    with_layer(&t, || {
        let _room = tracing::info_span!("room", channel = "deep").entered();
        let spans: Vec<_> = (0..300)
            .map(|i| tracing::info_span!("relay.connection", relay = i).entered())
            .collect();
        tracing::info!(name: "message.sent", "sent");
        drop(spans);
        tracing::info!(name: "message.sent", "sent");
    });
    let text = t.render().expect("render");
    assert_eq!(
        sample(&text, "dchat_messages_sent_total", &[("channel", "deep")]),
        Some(2.0),
        "{text}"
    );
}
