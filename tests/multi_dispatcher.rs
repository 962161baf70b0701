//! Several dispatchers, each with its own telemetry, hitting the same never-seen callsites at
//! the same moment from several threads: every telemetry counts every event. (tracing
//! registers a callsite with all dispatchers from one thread while the others may already be
//! dispatching it; the layer must not drop those first events.)
mod common;

use std::sync::{Arc, Barrier};

use tracing_subscriber::prelude::*;

macro_rules! callsites {
    ($($name:ident),*) => {
        $(fn $name() {
            tracing::info!(name: "message.sent", channel = "race", "sent");
            drop(tracing::info_span!("relay.connection", relay = "race"));
        })*
        const CALLSITES: &[fn()] = &[$($name),*];
    };
}

callsites!(
    c00, c01, c02, c03, c04, c05, c06, c07, c08, c09, c10, c11, c12, c13, c14, c15, c16, c17, c18,
    c19, c20, c21, c22, c23, c24, c25, c26, c27, c28, c29, c30, c31
);

#[test]
fn first_events_of_new_callsites_are_counted_by_every_dispatcher() {
    const THREADS: usize = 4;
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let t = common::telemetry();
                let dispatch: tracing::Dispatch =
                    tracing_subscriber::registry().with(t.layer()).into();
                barrier.wait();
                tracing::dispatcher::with_default(&dispatch, || {
                    for c in CALLSITES {
                        c();
                    }
                });
                t.render().unwrap()
            })
        })
        .collect();
    for h in handles {
        let text = h.join().unwrap();
        let n = CALLSITES.len() as f64;
        assert_eq!(
            common::sample(&text, "dchat_messages_sent_total", &[("channel", "race")]),
            Some(n),
            "{text}"
        );
        assert_eq!(
            common::sample(
                &text,
                "dchat_relay_connections_active",
                &[("relay", "race")]
            ),
            Some(0.0)
        );
    }
}
