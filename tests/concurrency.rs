//! Several threads emit 100,000 matched events each while another renders repeatedly: the
//! final counts are exact.
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{sample, telemetry};
use tracing_subscriber::prelude::*;

#[test]
fn exact_counts_under_concurrent_emit_and_render() {
    const THREADS: usize = 4;
    const EVENTS: u64 = 100_000;
    let t = telemetry();
    let dispatch: tracing::Dispatch = tracing_subscriber::registry().with(t.layer()).into();
    let done = Arc::new(AtomicBool::new(false));
    let renderer = {
        let t = t.clone();
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut renders = 0u32;
            // Bounded in count as well as by the emitters finishing.
            while !done.load(Ordering::SeqCst) && renders < 100_000 {
                let text = t.render().unwrap();
                assert!(text.is_empty() || text.contains("# TYPE"));
                renders += 1;
            }
            renders
        })
    };
    let emitters: Vec<_> = (0..THREADS)
        .map(|i| {
            let dispatch = dispatch.clone();
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    let channel = if i % 2 == 0 { "even" } else { "odd" };
                    let _room = tracing::info_span!("room", channel = channel).entered();
                    for n in 0..EVENTS {
                        tracing::info!(name: "message.sent", "sent");
                        // A span per 100 events keeps the span path busy too.
                        if n % 100 == 0 {
                            let _q =
                                tracing::info_span!("db.query", operation = "insert").entered();
                        }
                    }
                });
            })
        })
        .collect();
    for e in emitters {
        e.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let renders = renderer.join().unwrap();
    assert!(renders > 0);
    let text = t.render().unwrap();
    let per = (THREADS as u64 / 2 * EVENTS) as f64;
    assert_eq!(
        sample(&text, "dchat_messages_sent_total", &[("channel", "even")]),
        Some(per)
    );
    assert_eq!(
        sample(&text, "dchat_messages_sent_total", &[("channel", "odd")]),
        Some(per)
    );
    let queries = (THREADS as u64 * EVENTS / 100) as f64;
    assert_eq!(
        sample(
            &text,
            "dchat_database_query_duration_seconds_count",
            &[("operation", "insert")]
        ),
        Some(queries)
    );
}
