//! Plain HTTP without authentication on a non-loopback address logs one WARN line at start-up
//! (target `dchat_telemetry`); on loopback, or with basic auth, none.
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::tls::{bcrypt_hash, TempDir};
use dchat_telemetry::Telemetry;

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Starts and stops a server on `bind`; the WARN lines logged meanwhile.
fn warnings(t: &Telemetry, bind: &str, lines: &Lines) -> Vec<String> {
    lines.0.lock().unwrap().clear();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
        t.clone().serve_on(listener, async {}).await.unwrap();
    });
    String::from_utf8(lines.0.lock().unwrap().clone())
        .unwrap()
        .lines()
        .filter(|l| l.contains("WARN"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn one_warning_for_an_open_non_loopback_listener() {
    let lines = Lines::default();
    let writer = lines.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish(),
    )
    .unwrap();
    let open = Telemetry::builder()
        .with_drain_period(Duration::ZERO)
        .without_env()
        .build()
        .unwrap();
    let warned = warnings(&open, "0.0.0.0:0", &lines);
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].contains("without authentication"), "{warned:?}");
    assert!(warnings(&open, "127.0.0.1:0", &lines).is_empty());

    let dir = TempDir::new("warn");
    let path = dir.write(
        "web-config.yml",
        &format!("basic_auth_users:\n  prometheus: {}\n", bcrypt_hash("pw")),
    );
    let protected = Telemetry::builder()
        .with_drain_period(Duration::ZERO)
        .with_web_config(path)
        .without_env()
        .build()
        .unwrap();
    assert!(warnings(&protected, "0.0.0.0:0", &lines).is_empty());
}
