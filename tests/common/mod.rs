//! Helpers shared by the behaviour tests: a telemetry with fixed constant labels, a subscriber
//! around it, and a small reader of the text exposition.
#![allow(dead_code)]

pub(crate) mod gate;
pub(crate) mod otlp;
pub(crate) mod tls;

use dchat_telemetry::{Rules, Telemetry};
use tracing_subscriber::prelude::*;

/// A telemetry with `service="dchat"`, `node_id="test-node"`, no environment.
pub(crate) fn telemetry() -> Telemetry {
    Telemetry::builder()
        .with_node_id("test-node")
        .without_env()
        .build()
        .expect("valid config")
}

/// Like [`telemetry`] with other rules.
pub(crate) fn telemetry_with(rules: Rules) -> Telemetry {
    Telemetry::builder()
        .with_node_id("test-node")
        .with_rules(rules)
        .without_env()
        .build()
        .expect("valid config")
}

/// A dispatcher made of a registry holding only the telemetry layer.
pub(crate) fn dispatch(t: &Telemetry) -> tracing::Dispatch {
    tracing_subscriber::registry().with(t.layer()).into()
}

/// Runs `f` with a subscriber made of a registry and `t`'s layer as the default.
pub(crate) fn with_layer<R>(t: &Telemetry, f: impl FnOnce() -> R) -> R {
    let subscriber = tracing_subscriber::registry().with(t.layer());
    tracing::subscriber::with_default(subscriber, f)
}

/// The value of the sample whose name is `name` and whose labels include every `labels` pair.
/// Panics when several samples match (the test is ambiguous).
pub(crate) fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
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
pub(crate) fn sum(text: &str, name: &str) -> f64 {
    samples(text)
        .into_iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Parses the sample lines of a text exposition (label values unescaped).
pub(crate) fn samples(text: &str) -> Vec<Sample> {
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
pub(crate) fn promtool_findings(text: &str) -> Option<String> {
    let out = pipe_through(
        "promtool",
        &["check", "metrics"],
        text,
        "run scripts/install-tools first",
    );
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (!out.status.success() || !report.trim().is_empty()).then_some(report)
}

/// Runs `promtool check metrics` on `text` and accepts lint-only findings (exit code 3, e.g.
/// "metric names should not contain abbreviated units" about a name the *caller* chose); `Err`
/// with the report when promtool cannot parse the exposition.
pub(crate) fn promtool_parses(text: &str) -> Result<(), String> {
    let out = pipe_through(
        "promtool",
        &["check", "metrics"],
        text,
        "run scripts/install-tools first",
    );
    match out.status.code() {
        Some(0) | Some(3) => Ok(()),
        _ => Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

/// Runs `program args` with `text` on its stdin (written from a thread, so a large input cannot
/// deadlock against a full stdout pipe) and returns its output. Panics with `hint` when the
/// program cannot be started.
pub(crate) fn pipe_through(
    program: &str,
    args: &[&str],
    text: &str,
    hint: &str,
) -> std::process::Output {
    use std::io::Write as _;
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} not runnable ({e}); {hint}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = text.as_bytes().to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("process ran");
    let _ = writer.join();
    out
}

/// Status, lower-cased headers, body.
pub(crate) type Response = (u16, Vec<(String, String)>, Vec<u8>);

/// A raw HTTP/1.1 exchange over loopback: sends `request` as is, reads until the server closes
/// (bounded by a 10 s timeout). Returns (status, lower-cased headers, body).
pub(crate) fn http_raw(addr: std::net::SocketAddr, request: &[u8]) -> std::io::Result<Response> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    s.write_all(request)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    parse_response(&buf)
}

/// Status, lower-cased headers and (de-chunked) body of a whole HTTP/1.1 response.
pub(crate) fn parse_response(buf: &[u8]) -> std::io::Result<Response> {
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("no header end in {:?}", String::from_utf8_lossy(buf)),
            )
        })?;
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = buf[split + 4..].to_vec();
    if header(&headers, "transfer-encoding") == Some("chunked") {
        body = dechunk(&body);
    }
    Ok((status, headers, body))
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&raw[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&raw[start..(start + size).min(raw.len())]);
        raw = &raw[(start + size + 2).min(raw.len())..];
    }
    out
}

/// `GET path` with `Connection: close` and extra header lines.
pub(crate) fn http_get(
    addr: std::net::SocketAddr,
    path: &str,
    extra: &str,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra}\r\n");
    http_raw(addr, req.as_bytes()).expect("HTTP exchange")
}

pub(crate) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A running server on a free 127.0.0.1 port; stopped (signal + join) on drop.
pub(crate) struct Server {
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub thread: Option<std::thread::JoinHandle<Result<(), dchat_telemetry::Error>>>,
}

impl Server {
    pub(crate) fn start(t: &Telemetry) -> Server {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let t = t.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                t.serve_on(listener, async move {
                    let _ = rx.await;
                })
                .await
            })
        });
        Server {
            addr,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    /// Sends the shutdown signal without waiting.
    pub(crate) fn signal(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// Signals and waits for `serve_on` to return.
    pub(crate) fn stop(mut self) -> Result<(), dchat_telemetry::Error> {
        self.signal();
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.signal();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A telemetry for server tests: no drain, so stopping is immediate.
pub(crate) fn server_telemetry() -> Telemetry {
    Telemetry::builder()
        .with_node_id("test-node")
        .with_drain_period(std::time::Duration::ZERO)
        .without_env()
        .build()
        .expect("valid config")
}

/// Parses `text` with Python `prometheus_client`'s strict text parser
/// (`scripts/check-exposition.py`); `Err` with the parser's complaint when it rejects it.
/// Panics when Python or the package is missing (`scripts/install-tools` installs it).
pub(crate) fn python_parse(text: &str) -> Result<usize, String> {
    python_parse_with(text, &[])
}

/// Like [`python_parse`], with Python `prometheus_client`'s OpenMetrics parser.
pub(crate) fn python_parse_openmetrics(text: &str) -> Result<usize, String> {
    python_parse_with(text, &["--openmetrics"])
}

fn python_parse_with(text: &str, flags: &[&str]) -> Result<usize, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/check-exposition.py");
    let mut args = vec![script];
    args.extend_from_slice(flags);
    let out = pipe_through("python3", &args, text, "run scripts/install-tools first");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !stderr.contains("No module named"),
        "prometheus_client missing; run scripts/install-tools: {stderr}"
    );
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0))
    } else {
        Err(stderr)
    }
}

/// The path of an example binary; `cargo test` builds examples next to the test binaries
/// (target/<profile>/examples/), and a filtered run (`cargo test --test x`) builds it here.
pub(crate) fn example_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let bin = dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "--example", name])
            .status()
            .unwrap();
        assert!(status.success(), "building example {name} failed");
    }
    bin
}

/// Kills and reaps a child process when the test ends, whichever way it ends.
pub(crate) struct Kill(pub std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Kill {
    /// Waits (bounded) for the process to exit on its own.
    pub(crate) fn wait_exit(
        &mut self,
        within: std::time::Duration,
        what: &str,
    ) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                return s;
            }
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// A free 127.0.0.1 address (the port is released for the server under test to bind).
pub(crate) fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Polls `GET path` until the server at `addr` answers (bounded: 10 s); the first status seen.
pub(crate) fn first_status(addr: std::net::SocketAddr, path: &str) -> Option<u16> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    for _ in 0..400 {
        if let Ok((status, _, _)) = http_raw(addr, request.as_bytes()) {
            return Some(status);
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    None
}

/// A blocking TCP connection to `addr` from the local address `source` (any 127.0.0.0/8 address
/// works on Linux loopback), so that one test can be several clients.
pub(crate) fn connect_from(
    source: std::net::IpAddr,
    addr: std::net::SocketAddr,
) -> std::io::Result<std::net::TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(std::net::SocketAddr::new(source, 0))?;
        tokio::time::timeout(std::time::Duration::from_secs(5), socket.connect(addr))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
    })?;
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    Ok(stream)
}

/// `GET path` (Connection: close) from the local address `source`.
pub(crate) fn http_get_from(
    source: std::net::IpAddr,
    addr: std::net::SocketAddr,
    path: &str,
) -> std::io::Result<Response> {
    use std::io::{Read, Write};
    let mut s = connect_from(source, addr)?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    parse_response(&buf)
}
