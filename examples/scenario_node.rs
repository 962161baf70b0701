//! A node that plays one situation the metrics must stay true in, for checks with a real
//! Prometheus (`monitoring/e2e.d/counters.py`):
//!
//! ```text
//! cargo run --release --example scenario_node -- --listen 127.0.0.1:9100 --scenario rare
//! ```
//! - `rare`: one `message.send_failed` on channel `quiet` and one error of type `rare` every
//!   `--every` seconds (default 5), the first after `--start-after` seconds (default 0, so
//!   that a scraper started beside the node sees the first event): with a short series TTL each
//!   series expires between its events; `increase()` must still count every event but at most
//!   the first.
//! - `churn`: 5000 relay connections open and close at once, then `live-0`, `live-1` and
//!   `live-2` stay open: once the burst's series expire, each live relay shows in its own
//!   series and the overflow series goes.
//! - `flood`: the seed's metrics, then 5000 channels (received with latency, sent, failed),
//!   3000 relays, 3000 database operations and 5000 error types at once: one scrape must stay
//!   under the ServiceMonitor's `sampleLimit` and keep the seed's series.
//!
//! Every option comes from the `DCHAT_TELEMETRY_*` variables (the series TTL, say); the node
//! prints `ready` once it serves, and runs until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use dchat_telemetry::Telemetry;
use tracing_subscriber::prelude::*;

const USAGE: &str =
    "usage: scenario_node --listen ADDR --scenario rare|churn|flood [--every SECS] [--start-after SECS]";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Scenario {
    Rare,
    Churn,
    Flood,
}

/// What the command line asks for.
struct Args {
    listen: SocketAddr,
    scenario: Scenario,
    every: u64,
    start_after: u64,
}

fn seconds(flag: &str, value: &str) -> Result<u64, String> {
    value
        .parse()
        .ok()
        .filter(|s| (1..=3600).contains(s))
        .ok_or_else(|| format!("{flag} {value:?}: 1..=3600 seconds"))
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut listen, mut scenario, mut every, mut start_after) = (None, None, 5, 0);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => listen = Some(value.parse().map_err(|_| format!("--listen {value:?}"))?),
            "--scenario" => {
                scenario = Some(match value.as_str() {
                    "rare" => Scenario::Rare,
                    "churn" => Scenario::Churn,
                    "flood" => Scenario::Flood,
                    _ => return Err(format!("--scenario {value:?}")),
                })
            }
            "--every" => every = seconds("--every", &value)?,
            "--start-after" => start_after = seconds("--start-after", &value)?,
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    Ok(Args {
        listen: listen.ok_or("--listen is required")?,
        scenario: scenario.ok_or("--scenario is required")?,
        every,
        start_after,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let Args {
        listen,
        scenario,
        every,
        start_after,
    } = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let telemetry = match Telemetry::builder()
        .with_node_id("scenario")
        .apply_env(|k| std::env::var(k).ok())
        .and_then(|b| b.with_addr(listen).without_env().build())
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    tracing_subscriber::registry()
        .with(telemetry.layer())
        .init();
    let served = tokio::spawn(telemetry.clone().serve());
    println!("ready");
    // The seed's own series, as a node has them before anything else happens.
    tracing::info!(name: "message.sent", channel = "general");
    tracing::info!(name: "message.received", channel = "general", latency_seconds = 0.04);
    drop(tracing::info_span!("db.query", db.operation = "select"));
    let _seed_relay = tracing::info_span!("relay.connection", relay = "seed");
    let _held = match scenario {
        Scenario::Rare => {
            tokio::spawn(async move {
                let first = tokio::time::Instant::now() + Duration::from_secs(start_after);
                let mut tick = tokio::time::interval_at(first, Duration::from_secs(every));
                loop {
                    tick.tick().await;
                    tracing::warn!(name: "message.send_failed", channel = "quiet");
                    tracing::error!(error.type = "rare", "a rare failure");
                }
            });
            Vec::new()
        }
        Scenario::Churn => {
            for i in 0..5000 {
                drop(tracing::info_span!(
                    "relay.connection",
                    relay = format!("burst-{i}")
                ));
            }
            (0..3)
                .map(|i| tracing::info_span!("relay.connection", relay = format!("live-{i}")))
                .collect()
        }
        Scenario::Flood => {
            for i in 0..5000 {
                let channel = format!("flood-{i}");
                tracing::info!(name: "message.received", channel, latency_seconds = 0.05);
                tracing::info!(name: "message.sent", channel);
                tracing::warn!(name: "message.send_failed", channel);
                tracing::error!(error.type = format!("type-{i}"), "failure");
            }
            for i in 0..3000 {
                drop(tracing::info_span!(
                    "relay.connection",
                    relay = format!("peer-{i}")
                ));
                drop(tracing::info_span!(
                    "db.query",
                    db.operation = format!("op-{i}")
                ));
            }
            Vec::new()
        }
    };
    match served.await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
