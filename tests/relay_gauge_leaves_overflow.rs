//! An open span's gauge never stays in the overflow series once there is room: after a burst
//! of relays that connect and leave fills the metric, relays that stay connected land in the
//! overflow series, and once the burst's series expire each of them moves to its own series
//! (value 1) and the overflow series goes. Counts are never lost or doubled on the way.
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use dchat_telemetry::{ManualClock, Telemetry};

const TTL: Duration = Duration::from_secs(1);

fn gauge(text: &str, labels: &[(&str, &str)]) -> Option<f64> {
    common::sample(text, "dchat_relay_connections_active", labels)
}

fn telemetry(clock: &ManualClock) -> Telemetry {
    Telemetry::builder()
        .with_series_ttl(TTL)
        .with_clock(clock.clone())
        .without_env()
        .build()
        .unwrap()
}

#[test]
fn live_relays_come_out_of_overflow_within_one_ttl() {
    let clock = ManualClock::new();
    let t = telemetry(&clock);
    let dispatch = common::dispatch(&t);
    let live = tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..5000 {
            drop(tracing::info_span!(
                "relay.connection",
                relay = format!("burst-{i}")
            ));
        }
        ["live-a", "live-b", "live-c"].map(|r| tracing::info_span!("relay.connection", relay = r))
    });
    let text = t.render().unwrap();
    assert_eq!(gauge(&text, &[("otel_metric_overflow", "true")]), Some(3.0));
    assert_eq!(
        gauge(&text, &[("relay", "live-a")]),
        None,
        "hidden in overflow"
    );
    assert_eq!(t.series_count("dchat_relay_connections_active"), Some(2000));

    // One TTL later the burst's series expire; the same render moves the live relays out.
    clock.advance(TTL);
    let text = t.render().unwrap();
    for r in ["live-a", "live-b", "live-c"] {
        assert_eq!(gauge(&text, &[("relay", r)]), Some(1.0), "{r}: {text}");
    }
    assert_eq!(gauge(&text, &[("otel_metric_overflow", "true")]), Some(0.0));
    assert_eq!(common::sum(&text, "dchat_relay_connections_active"), 3.0);

    // One more TTL: the emptied overflow series is gone; the live relays stay.
    clock.advance(TTL);
    let text = t.render().unwrap();
    assert_eq!(
        gauge(&text, &[("otel_metric_overflow", "true")]),
        None,
        "{text}"
    );
    assert_eq!(t.series_count("dchat_relay_connections_active"), Some(3));
    clock.advance(TTL * 10);
    assert_eq!(
        gauge(&t.render().unwrap(), &[("relay", "live-b")]),
        Some(1.0),
        "open spans' series never expire"
    );
    drop(live);
    let text = t.render().unwrap();
    assert_eq!(common::sum(&text, "dchat_relay_connections_active"), 0.0);
}

#[test]
fn a_span_that_closes_while_parked_takes_its_count_with_it() {
    let clock = ManualClock::new();
    let t = Telemetry::builder()
        .with_series_ttl(TTL)
        .with_clock(clock.clone())
        .with_cardinality_limit(1)
        .without_env()
        .build()
        .unwrap();
    let dispatch = common::dispatch(&t);
    tracing::dispatcher::with_default(&dispatch, || {
        let first = tracing::info_span!("relay.connection", relay = "first");
        let parked = tracing::info_span!("relay.connection", relay = "parked");
        let text = t.render().unwrap();
        assert_eq!(gauge(&text, &[("otel_metric_overflow", "true")]), Some(1.0));
        drop(parked);
        drop(first);
        clock.advance(TTL);
        let text = t.render().unwrap();
        assert_eq!(
            gauge(&text, &[("relay", "parked")]),
            None,
            "closed: never moved"
        );
        assert_eq!(common::sum(&text, "dchat_relay_connections_active"), 0.0);
    });
}

/// Threads open and close relay spans over more relays than the limit while the scraper
/// renders and moves time past the TTL at every scrape (sweeps, expiry and moves out of
/// overflow race with the spans). Whenever every thread holds its spans still, each render's
/// gauges add up to exactly the open spans; at the end, to zero.
#[test]
fn moves_out_of_overflow_never_lose_or_double_a_count() {
    const THREADS: usize = 4;
    const HELD: usize = 5;
    let clock = ManualClock::new();
    let t = Telemetry::builder()
        .with_series_ttl(TTL)
        .with_clock(clock.clone())
        .with_cardinality_limit(8)
        .without_env()
        .build()
        .unwrap();
    let dispatch = common::dispatch(&t);
    let rounds = 30;
    let still = Arc::new(Barrier::new(THREADS + 1));
    let go_on = Arc::new(Barrier::new(THREADS + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..THREADS)
        .map(|n| {
            let (dispatch, still, go_on) = (dispatch.clone(), still.clone(), go_on.clone());
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    let mut x = (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    for _ in 0..rounds {
                        let mut held = Vec::new();
                        for _ in 0..200 {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            let span = tracing::info_span!(
                                "relay.connection",
                                relay = format!("r{}", x % 40)
                            );
                            if held.len() < HELD {
                                held.push(span);
                            } else if x % 3 == 0 {
                                held[(x % HELD as u64) as usize] = span;
                            }
                        }
                        still.wait(); // holding exactly HELD spans
                        go_on.wait();
                    }
                });
            })
        })
        .collect();
    let scraper = {
        let (t, clock, stop) = (t.clone(), clock.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                clock.advance(TTL);
                t.render().unwrap();
                std::thread::yield_now();
            }
        })
    };
    for _ in 0..rounds {
        still.wait();
        for _ in 0..3 {
            clock.advance(TTL);
            let text = t.render().unwrap();
            assert_eq!(
                common::sum(&text, "dchat_relay_connections_active"),
                (THREADS * HELD) as f64,
                "{text}"
            );
        }
        go_on.wait();
    }
    for th in threads {
        th.join().unwrap();
    }
    stop.store(true, Ordering::Release);
    scraper.join().unwrap();
    let text = t.render().unwrap();
    assert_eq!(
        common::sum(&text, "dchat_relay_connections_active"),
        0.0,
        "{text}"
    );
    assert!(
        text.lines()
            .all(|l| !l.starts_with("dchat_relay_connections_active{") || l.ends_with(" 0")),
        "no series left below or above zero: {text}"
    );
}
