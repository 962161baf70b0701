//! Expiry racing with recording on the same series: recorder threads add to one counter in
//! bursts with pauses while a scraper moves an injected clock past the TTL and renders (each
//! render sweeps idle series). The series expires during pauses and comes back continuing from
//! its last value: no scrape ever sees it go back, and the last one shows exactly the number of
//! increments: no count is lost, to a sweep or to a thread's cached copy of a dead series.
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dchat_telemetry::{ManualClock, Telemetry};

#[test]
fn no_count_is_lost_to_expiry() {
    let clock = ManualClock::new();
    let t = Telemetry::builder()
        .with_series_ttl(Duration::from_secs(60))
        .with_clock(clock.clone())
        .without_env()
        .build()
        .unwrap();
    let dispatch = common::dispatch(&t);
    let done = Arc::new(AtomicBool::new(false));
    let added = Arc::new(AtomicU64::new(0));
    // Set by the scraper for a few scrapes now and then: both recorders hold off, so the series
    // surely expires; between holds, pauses race with the sweeps.
    let hold = Arc::new(AtomicBool::new(false));
    let recorders: Vec<_> = (0..2u64)
        .map(|seed| {
            let (dispatch, done, added) = (dispatch.clone(), done.clone(), added.clone());
            let hold = hold.clone();
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                    for _ in 0..40_000 {
                        while hold.load(Ordering::Acquire) {
                            std::hint::spin_loop();
                        }
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        // Bursts of 0..=3 increments, then a pause of 0..1000 spins: the
                        // series is now hammered, now idle across a sweep.
                        for _ in 0..x % 4 {
                            tracing::info!(name: "message.sent", channel = "general");
                            added.fetch_add(1, Ordering::Relaxed);
                        }
                        for _ in 0..(x >> 8) % 1000 {
                            std::hint::spin_loop();
                        }
                    }
                });
                done.store(true, Ordering::Release);
            })
        })
        .collect();
    let (mut last, mut expired) = (0.0, 0.0);
    let mut read = |text: &str| {
        let e = common::sample(
            text,
            "dchat_telemetry_series_expired_total",
            &[("metric", "dchat_messages_sent_total")],
        )
        .unwrap_or(0.0);
        expired = e;
        // Absent while expired; whenever it is there, never below what a scrape saw before.
        if let Some(v) =
            common::sample(text, "dchat_messages_sent_total", &[("channel", "general")])
        {
            assert!(v >= last, "the counter went back from {last} to {v}");
            last = v;
        }
    };
    let mut scrapes = 0u64;
    while !recorders.iter().all(|r| r.is_finished()) {
        scrapes += 1;
        hold.store(scrapes % 10 < 3, Ordering::Release);
        // Past the TTL at every scrape: any series idle since the last one expires now.
        clock.advance(Duration::from_secs(61));
        read(&t.render().unwrap());
    }
    hold.store(false, Ordering::Release);
    for r in recorders {
        r.join().unwrap();
    }
    assert!(done.load(Ordering::Acquire));
    read(&t.render().unwrap());
    assert_eq!(
        last,
        added.load(Ordering::Relaxed) as f64,
        "{expired} expiries"
    );
    assert!(
        expired > 0.0,
        "the series expired at least once during the run"
    );
}
