//! Fuzzes the path from field values to the exposition: arbitrary bytes become label values,
//! numbers and counts of dchat's events; the exposition must stay well-formed (every sample
//! line `name{label="escaped",...} value`), bounded, and nothing may panic.
#![no_main]

use std::sync::OnceLock;

use dchat_telemetry::Telemetry;
use libfuzzer_sys::fuzz_target;
use tracing_subscriber::prelude::*;

fn setup() -> &'static (Telemetry, tracing::Dispatch) {
    static S: OnceLock<(Telemetry, tracing::Dispatch)> = OnceLock::new();
    S.get_or_init(|| {
        let t = Telemetry::builder()
            .with_cardinality_limit(64)
            .without_env()
            .build()
            .expect("config");
        let d = tracing_subscriber::registry().with(t.layer()).into();
        (t, d)
    })
}

/// Checks one sample line: a valid metric name, optional `{k="v",...}` with only `\\`, `\"`,
/// `\n` escapes and no raw newline, then a space and a float.
fn check_line(line: &str) {
    let (name, rest) = match line.find('{') {
        Some(i) => (&line[..i], &line[i..]),
        None => line.split_at(line.find(' ').expect("sample has a value")),
    };
    assert!(
        is_valid_metric_name(name),
        "bad name in {line:?}"
    );
    let mut chars = rest.chars().peekable();
    let mut value_part = rest;
    if chars.peek() == Some(&'{') {
        chars.next();
        let mut consumed = 1;
        loop {
            // label name
            let mut key = String::new();
            for c in chars.by_ref() {
                consumed += c.len_utf8();
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            assert!(
                !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "bad label name {key:?} in {line:?}"
            );
            assert_eq!(chars.next(), Some('"'), "{line:?}");
            consumed += 1;
            loop {
                let c = chars.next().expect("unterminated label value");
                consumed += c.len_utf8();
                match c {
                    '\\' => {
                        let e = chars.next().expect("dangling escape");
                        consumed += e.len_utf8();
                        assert!(
                            matches!(e, '\\' | '"' | 'n'),
                            "bad escape \\{e} in {line:?}"
                        );
                    }
                    '"' => break,
                    '\n' => panic!("raw newline in a label value"),
                    _ => {}
                }
            }
            match chars.next() {
                Some(',') => consumed += 1,
                Some('}') => {
                    consumed += 1;
                    break;
                }
                other => panic!("expected , or }} got {other:?} in {line:?}"),
            }
        }
        value_part = &rest[consumed..];
    }
    let v = value_part.trim();
    assert!(
        v == "+Inf" || v == "-Inf" || v == "NaN" || v.parse::<f64>().is_ok(),
        "bad value {v:?} in {line:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let (t, d) = setup();
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\u{1}');
    let a = parts.next().unwrap_or("");
    let b = parts.next().unwrap_or("");
    let n = data
        .iter()
        .fold(0u64, |h, &x| h.wrapping_mul(31).wrapping_add(x as u64));
    tracing::dispatcher::with_default(d, || {
        let _room = tracing::info_span!("room", channel = a).entered();
        tracing::info!(name: "message.sent", "sent");
        tracing::info!(name: "message.sent", channel = b, count = n, "sent");
        tracing::info!(name: "message.received", channel = %b, latency_ms = f64::from_bits(n), "received");
        tracing::info!(name: "message.received", channel = ?a, latency_seconds = b, "received");
        tracing::error!(error.type = a, error_kind = b, "failed");
        let _relay = tracing::info_span!("relay.connection", relay = b).entered();
        drop(tracing::info_span!("db.query", operation = a).entered());
        tracing::info!(monotonic_counter.fuzz_count = n, channel = a);
        tracing::info!(gauge.fuzz_level = f64::from_bits(n.rotate_left(7)));
    });
    let out = t.render().expect("render");
    assert!(
        out.len() < 4 << 20,
        "exposition grew to {} bytes",
        out.len()
    );
    for line in out.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        check_line(line);
    }
});

/// Prometheus' metric name rule (`[a-zA-Z_:][a-zA-Z0-9_:]*`), written out here so the check
/// does not trust the crate's own.
fn is_valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}
