//! A simulated dchat node: plain `tracing` with dchat's conventions, served on :9090.
//!
//! ```text
//! cargo run --release --example dchat_node -- [--listen ADDR] [--node-id ID] [--role ROLE] [--rate N]
//!                                             [--duration SECS] [--fault KIND]
//! ```
//! Faults: `errors` (error burst), `slow-db` (slow queries), `relay-loss` (all relay
//! connections drop), `stall` (messages sent, none received).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dchat_telemetry::Telemetry;
use tokio::sync::watch;
use tracing::Instrument as _;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

const USAGE: &str = "usage: dchat_node [--listen ADDR] [--node-id ID] [--role ROLE] [--rate EVENTS_PER_SEC] [--duration SECS] [--fault errors|slow-db|relay-loss|stall|send-failures]

  --listen ADDR       where /metrics, /health and /ready are served (default: DCHAT_TELEMETRY_ADDR or 0.0.0.0:9090)
  --node-id ID        the node_id label on every series (default: DCHAT_TELEMETRY_NODE_ID or node-1)
  --role ROLE         the role label on every series: relay, validator or user (default: DCHAT_TELEMETRY_ROLE or relay)
  --rate N            messages sent per second, 1..=100000 (default: 50)
  --duration SECS     run this long, then shut down gracefully and exit 0 (default: until Ctrl-C)
  --fault KIND        induce trouble: errors, slow-db, relay-loss, stall or send-failures";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    Errors,
    SlowDb,
    RelayLoss,
    Stall,
    SendFailures,
}

#[derive(Debug)]
struct Args {
    listen: Option<SocketAddr>,
    node_id: Option<String>,
    role: Option<String>,
    rate: u32,
    duration: Option<Duration>,
    fault: Option<Fault>,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        listen: None,
        node_id: None,
        role: None,
        rate: 50,
        duration: None,
        fault: None,
    };
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--listen" => {
                let v = value("--listen")?;
                args.listen = Some(v.parse().map_err(|_| {
                    format!("--listen: {v:?} is not host:port, such as 127.0.0.1:9090")
                })?);
            }
            "--node-id" => {
                let id = value("--node-id")?;
                if id.is_empty() || id.len() > 128 {
                    return Err("--node-id: 1 to 128 bytes".into());
                }
                args.node_id = Some(id);
            }
            "--role" => {
                let v = value("--role")?;
                if !["relay", "validator", "user"].contains(&v.as_str()) {
                    return Err(format!("--role: {v:?} is not relay, validator or user"));
                }
                args.role = Some(v);
            }
            "--rate" => {
                let v = value("--rate")?;
                args.rate = v
                    .parse()
                    .ok()
                    .filter(|r| (1..=100_000).contains(r))
                    .ok_or_else(|| format!("--rate: {v:?} is not 1..=100000"))?;
            }
            "--duration" => {
                let v = value("--duration")?;
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s < 1e7)
                    .ok_or_else(|| {
                        format!("--duration: {v:?} is not a positive number of seconds")
                    })?;
                args.duration = Some(Duration::from_secs_f64(secs));
            }
            "--fault" => {
                let v = value("--fault")?;
                args.fault = Some(match v.as_str() {
                    "errors" => Fault::Errors,
                    "slow-db" => Fault::SlowDb,
                    "relay-loss" => Fault::RelayLoss,
                    "stall" => Fault::Stall,
                    "send-failures" => Fault::SendFailures,
                    _ => {
                        return Err(format!(
                            "--fault: {v:?} is not one of errors, slow-db, relay-loss, stall, send-failures"
                        ))
                    }
                });
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

/// A small xorshift generator: the simulation needs variety, not cryptography.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
    /// Log-normal-ish delivery latency: median ~40 ms, a long tail into seconds.
    fn latency(&mut self) -> f64 {
        let z = (0..6).map(|_| self.unit()).sum::<f64>() - 3.0;
        (0.04 * (z * 0.9).exp()).min(20.0)
    }
}

#[derive(Default)]
struct Progress {
    sent: AtomicU64,
    errors: AtomicU64,
    relays: AtomicU64,
}

const CHANNELS: &[&str] = &["general", "random", "dev", "ops"];
const RELAYS: &[&str] = &["relay-eu-1", "relay-eu-2", "relay-us-1", "relay-ap-1"];
const OPERATIONS: &[&str] = &["insert", "select", "update", "delete"];
const ERROR_TYPES: &[&str] = &["timeout", "storage", "protocol"];

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(msg) => {
            if msg.is_empty() {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("dchat_node: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dchat_node: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dchat_node: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(mut args: Args) -> Result<(), Box<dyn std::error::Error>> {
    // Environment first (validated by the builder), then the flags on top.
    let mut builder = Telemetry::builder().apply_env_os(|k| std::env::var_os(k))?;
    let node_id = args
        .node_id
        .clone()
        .or_else(|| std::env::var("DCHAT_TELEMETRY_NODE_ID").ok())
        .unwrap_or_else(|| "node-1".to_owned());
    builder = builder.with_node_id(node_id.clone());
    args.node_id = Some(node_id.clone());
    match (&args.role, std::env::var_os("DCHAT_TELEMETRY_ROLE")) {
        (Some(role), _) => builder = builder.with_role(role),
        (None, None) => builder = builder.with_role("relay"),
        (None, Some(_)) => {} // the environment's, applied above
    }
    if let Some(addr) = args.listen {
        builder = builder.with_addr(addr);
    }
    let telemetry = builder
        .with_tokio_runtime(tokio::runtime::Handle::current())
        .with_build_info(dchat_telemetry::build_info!())
        .without_env()
        .build()?;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(LevelFilter::WARN),
        )
        .with(telemetry.layer())
        .init();

    let listener = tokio::net::TcpListener::bind(telemetry.addr())
        .await
        .map_err(|source| dchat_telemetry::Error::Bind {
            addr: telemetry.addr(),
            source,
        })?;
    let addr = listener.local_addr()?;
    let shown = if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    println!("dchat node {node_id} serving on {addr}");
    println!("  metrics: http://{shown}/metrics");
    println!("  health:  http://{shown}/health");
    println!("  ready:   http://{shown}/ready");

    let (stop_tx, stop_rx) = watch::channel(false);
    let signal = {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let server = tokio::spawn(telemetry.clone().serve_on(listener, signal));
    {
        let stop_tx = stop_tx.clone();
        let duration = args.duration;
        tokio::spawn(async move {
            match duration {
                Some(d) => tokio::select! {
                    () = tokio::time::sleep(d) => {},
                    () = dchat_telemetry::shutdown_signal() => {},
                },
                None => dchat_telemetry::shutdown_signal().await,
            }
            eprintln!("dchat_node: shutting down (draining /metrics)");
            let _ = stop_tx.send(true);
        });
    }

    let db_ready = telemetry.health().readiness_gate("database");
    let progress = Arc::new(Progress::default());
    tokio::spawn(report_progress(Arc::clone(&progress), stop_rx.clone()));
    simulate(&args, &db_ready, &progress, stop_rx).await;
    server.await??;
    Ok(())
}

/// The node's life: start-up (database not ready), then messages, relays, queries and errors
/// until shutdown begins.
async fn simulate(
    args: &Args,
    db_ready: &dchat_telemetry::ReadinessGate,
    progress: &Progress,
    mut stop: watch::Receiver<bool>,
) {
    let seed = args
        .node_id
        .as_deref()
        .unwrap_or("node-1")
        .bytes()
        .fold(0x9E37_79B9_7F4A_7C15u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01B3)
        })
        | 1;
    let mut rng = Rng(seed);
    tracing::info!(target: "dchat::startup", "connecting to the database");
    // An async block is instrumented, never holding an entered span across `.await`.
    tokio::time::sleep(Duration::from_millis(800))
        .instrument(tracing::info_span!("db.query", db.operation = "migrate"))
        .await;
    db_ready.set_ready(true);
    tracing::info!(target: "dchat::startup", "database ready");

    let mut relays: Vec<tracing::Span> = RELAYS[..3]
        .iter()
        .map(|r| tracing::info_span!("relay.connection", relay = *r))
        .collect();
    let tick = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let mut interval = tokio::time::interval(tick.max(Duration::from_micros(100)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let per_tick = if tick < Duration::from_micros(100) {
        (f64::from(args.rate) / 10_000.0).ceil() as u64
    } else {
        1
    };
    let started = Instant::now();
    let mut any_sent = false;
    let mut any_dropped = false;
    loop {
        tokio::select! {
            _ = interval.tick() => {},
            _ = stop.wait_for(|s| *s) => break,
        }
        for _ in 0..per_tick {
            let channel = rng.pick(CHANNELS);
            let room = tracing::info_span!("room", channel);
            let _room = room.enter();
            // A message the relay mesh did not take (the very first one, sent before the mesh
            // formed, then 1 in 1000, well inside the 1 % error budget even for a node minutes
            // old; 3 in 10 under --fault send-failures) is a delivery failure, logged at WARN as
            // dchat does.
            let fail_chance = if args.fault == Some(Fault::SendFailures) {
                0.3
            } else {
                0.001
            };
            let first = !std::mem::replace(&mut any_sent, true);
            if first || rng.unit() < fail_chance {
                tracing::warn!(name: "message.send_failed", "no relay accepted the message");
                continue;
            }
            tracing::info!(name: "message.sent", count = 1u64, "message sent");
            progress.sent.fetch_add(1, Ordering::Relaxed);
            if args.fault != Some(Fault::Stall) {
                let latency_ms = (rng.latency() * 1000.0) as u64;
                tracing::info!(name: "message.received", latency_ms, "message received");
                // Now and then a message from a peer that cannot be decoded: dropped, counted.
                if !std::mem::replace(&mut any_dropped, true) || rng.unit() < 0.001 {
                    tracing::info!(name: "message.dropped", reason = "undecodable", "dropped");
                    tracing::info!(name: "peer.dial_failed", "a peer did not answer");
                }
            }
            // One query per message, of varying cost, on a task of its own.
            let op = rng.pick(OPERATIONS);
            let base = match op {
                "select" => 0.002,
                "insert" => 0.006,
                "update" => 0.01,
                _ => 0.004,
            };
            let secs = if args.fault == Some(Fault::SlowDb) {
                0.8 + rng.unit()
            } else {
                base * (0.5 + 2.0 * rng.unit())
            };
            tokio::spawn(
                async move { tokio::time::sleep(Duration::from_secs_f64(secs)).await }
                    .instrument(tracing::info_span!("db.query", db.operation = op)),
            );
            // Occasional errors (a burst under --fault errors) and legacy unstructured lines.
            let error_chance = if args.fault == Some(Fault::Errors) {
                0.3
            } else {
                0.005
            };
            if rng.unit() < error_chance {
                progress.errors.fetch_add(1, Ordering::Relaxed);
                if rng.unit() < 0.3 {
                    tracing::error!(target: "dchat::storage", "Failed to store message: {}", "database is locked");
                } else {
                    tracing::error!(error.type = rng.pick(ERROR_TYPES), "request failed");
                }
            }
        }
        // Relays come and go; under --fault relay-loss they all drop and stay gone.
        if args.fault == Some(Fault::RelayLoss) && started.elapsed() > Duration::from_secs(2) {
            relays.clear();
        } else if rng.unit() < 0.02 {
            if relays.len() > 2 && rng.unit() < 0.5 {
                relays.remove((rng.next() % relays.len() as u64) as usize);
            } else if relays.len() < RELAYS.len() {
                relays.push(tracing::info_span!(
                    "relay.connection",
                    relay = rng.pick(RELAYS)
                ));
            }
        }
        progress
            .relays
            .store(relays.len() as u64, Ordering::Relaxed);
    }
    drop(relays);
    progress.relays.store(0, Ordering::Relaxed);
}

async fn report_progress(p: Arc<Progress>, mut stop: watch::Receiver<bool>) {
    let every = Duration::from_secs(5);
    let (mut sent, mut errors) = (0, 0);
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {},
            _ = stop.wait_for(|s| *s) => return,
        }
        let (s, e) = (
            p.sent.load(Ordering::Relaxed),
            p.errors.load(Ordering::Relaxed),
        );
        eprintln!(
            "dchat_node: {:.1} messages/s, {} active relays, {:.2} errors/s",
            (s - sent) as f64 / every.as_secs_f64(),
            p.relays.load(Ordering::Relaxed),
            (e - errors) as f64 / every.as_secs_f64()
        );
        (sent, errors) = (s, e);
    }
}
