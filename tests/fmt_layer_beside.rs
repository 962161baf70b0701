//! The layer never switches a callsite off for other layers: a `fmt` layer beside it sees every
//! event, matched or not, and the metrics still count.
mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{sample, telemetry};
use tracing_subscriber::prelude::*;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn fmt_layer_sees_matched_and_unmatched_events() {
    let t = telemetry();
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone()),
        )
        .with(t.layer());
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..3 {
            tracing::info!(name: "message.sent", channel = "general", "sent one");
            tracing::info!("an unmatched line");
            let _s = tracing::info_span!("unmatched.span").entered();
            tracing::debug!("a debug line");
        }
    });
    let logged = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert_eq!(logged.matches("sent one").count(), 3, "{logged}");
    assert_eq!(logged.matches("an unmatched line").count(), 3, "{logged}");
    assert_eq!(logged.matches("a debug line").count(), 3, "{logged}");
    let text = t.render().unwrap();
    assert_eq!(
        sample(
            &text,
            "dchat_messages_sent_total",
            &[("channel", "general")]
        ),
        Some(3.0)
    );
}
