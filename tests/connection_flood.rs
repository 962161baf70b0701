//! A thousand connections at once from one client, half of them sending garbage or stalling:
//! the server stays up, refuses that client's connections beyond its cap, serves the next
//! scrape from another client, and its memory stays bounded.
mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{http_get, server_telemetry, Server};

fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(0)
        * 4096
}

/// The soft limit on open files (`/proc/self/limits`); both ends of every connection live in
/// this process, so the flood is sized to fit under it.
fn open_files_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

#[test]
fn thousand_connections_then_a_scrape() {
    let flood = 1000.min(open_files_limit().saturating_sub(200) / 2);
    eprintln!("flooding with {flood} connections");
    let t = server_telemetry();
    let server = Server::start(&t);
    assert_eq!(http_get(server.addr, "/metrics", "").0, 200);
    let before = rss();
    let mut conns = Vec::new();
    for i in 0..flood {
        let Ok(mut s) = std::net::TcpStream::connect_timeout(&server.addr, Duration::from_secs(2))
        else {
            continue;
        };
        let _ = match i % 4 {
            0 => s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"), // stalls mid-headers
            1 => s.write_all(b"\x16\x03\x01\x02\x00garbage-not-http\r\n\r\n"),
            2 => s.write_all(
                b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\n\r\nbody",
            ),
            _ => Ok(()), // idle
        };
        conns.push(s);
    }
    let opened = conns.len();
    // While they are all still open, the next scrape is served well within Prometheus' 10 s
    // scrape timeout (bounded retries).
    let start = Instant::now();
    let mut status = 0;
    while start.elapsed() < Duration::from_secs(5) {
        // Another client (another loopback address): the flood's cap does not touch it.
        if let Ok((s, _, _)) =
            common::http_get_from("127.0.0.2".parse().unwrap(), server.addr, "/metrics")
        {
            status = s;
            if s == 200 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        status, 200,
        "no scrape served within 15 s of {opened} hostile connections"
    );
    let grown = rss().saturating_sub(before);
    eprintln!(
        "{opened} connections opened; scrape after {:?}; RSS growth {grown} B",
        start.elapsed()
    );
    assert!(grown < 64 << 20, "memory grew by {grown} bytes");
    drop(conns);
    let text = String::from_utf8(http_get(server.addr, "/metrics", "").2).unwrap();
    let per_client = common::sample(
        &text,
        "dchat_telemetry_http_rejected_total",
        &[("reason", "per_client")],
    );
    assert!(
        per_client.is_some_and(|n| n >= 1.0),
        "the flood's connections beyond the cap were not refused: {per_client:?}"
    );
    assert_eq!(http_get(server.addr, "/health", "").0, 200);
    server.stop().unwrap();
}
