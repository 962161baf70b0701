//! Helpers shared by the behaviour tests: a telemetry with fixed constant labels, a subscriber
//! around it, and a small reader of the text exposition.
#![allow(dead_code)]

use dchat_telemetry::{Rules, Telemetry};
use tracing_subscriber::prelude::*;

/// A telemetry with `service="dchat"`, `node_id="test-node"`, no environment.
pub fn telemetry() -> Telemetry {
    Telemetry::builder()
        .with_node_id("test-node")
        .without_env()
        .build()
        .expect("valid config")
}

/// Like [`telemetry`] with other rules.
pub fn telemetry_with(rules: Rules) -> Telemetry {
    Telemetry::builder()
        .with_node_id("test-node")
        .with_rules(rules)
        .without_env()
        .build()
        .expect("valid config")
}

/// Runs `f` with a registry holding only the telemetry layer as the default subscriber.
pub fn with_layer<R>(t: &Telemetry, f: impl FnOnce() -> R) -> R {
    let subscriber = tracing_subscriber::registry().with(t.layer());
    tracing::subscriber::with_default(subscriber, f)
}

/// The value of the sample whose name is `name` and whose labels include every `labels` pair.
/// Panics when several samples match (the test is ambiguous).
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<f64> = samples(text)
        .into_iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
        })
        .map(|s| s.value)
        .collect();
    assert!(
        found.len() <= 1,
        "{name} {labels:?} matches {} samples in:\n{text}",
        found.len()
    );
    found.first().copied()
}

/// The sum of every sample named `name`.
pub fn sum(text: &str, name: &str) -> f64 {
    samples(text)
        .into_iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Parses the sample lines of a text exposition (label values unescaped).
pub fn samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (name, rest) = match line.find('{') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => {
                let (n, v) = line.split_once(' ').expect("sample line");
                out.push(Sample {
                    name: n.into(),
                    labels: vec![],
                    value: parse_value(v),
                });
                continue;
            }
        };
        let mut labels = Vec::new();
        let mut chars = rest.char_indices().peekable();
        let mut key = String::new();
        let mut end = 0;
        while let Some((i, c)) = chars.next() {
            match c {
                '}' => {
                    end = i + 1;
                    break;
                }
                ',' => {}
                '=' => {
                    assert_eq!(chars.next().map(|x| x.1), Some('"'));
                    let mut val = String::new();
                    while let Some((_, c)) = chars.next() {
                        match c {
                            '\\' => match chars.next().map(|x| x.1) {
                                Some('n') => val.push('\n'),
                                Some('\\') => val.push('\\'),
                                Some('"') => val.push('"'),
                                other => panic!("bad escape {other:?} in {line}"),
                            },
                            '"' => break,
                            c => val.push(c),
                        }
                    }
                    labels.push((std::mem::take(&mut key), val));
                }
                c => key.push(c),
            }
        }
        let value = parse_value(rest[end..].trim());
        out.push(Sample {
            name: name.into(),
            labels,
            value,
        });
    }
    out
}

fn parse_value(v: &str) -> f64 {
    match v.trim() {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().unwrap_or_else(|_| panic!("bad value {v:?}")),
    }
}

/// Runs `promtool check metrics` on `text`; returns its combined output when it reports
/// anything (lint or parse errors). Panics when promtool is not installed: the test command
/// (`scripts/test`) installs it, and a missing tool must not turn into a silent pass.
pub fn promtool_findings(text: &str) -> Option<String> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool not runnable ({e}); run scripts/install-tools first"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = text.as_bytes().to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("promtool ran");
    let _ = writer.join();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (!out.status.success() || !report.trim().is_empty()).then_some(report)
}
