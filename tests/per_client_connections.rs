//! One client cannot take every connection: past its cap of connections held at once, its
//! next connection is closed without an answer (and counted), while another client is served.
mod common;

use std::io::Write;
use std::net::IpAddr;

use common::{connect_from, http_get_from, sample, server_telemetry, Server};
use dchat_telemetry::limits::MAX_CONNECTIONS_PER_CLIENT;

#[test]
fn a_client_at_its_cap_is_refused_and_another_is_served() {
    let t = server_telemetry();
    let server = Server::start(&t);
    let hog: IpAddr = "127.0.0.1".parse().unwrap();
    let other: IpAddr = "127.0.0.2".parse().unwrap();
    // The hog holds its whole share, each connection half-way through a request (they are cut
    // by the 5 s header timeout; everything below takes far less).
    let mut held = Vec::new();
    for _ in 0..MAX_CONNECTIONS_PER_CLIENT {
        let mut s = connect_from(hog, server.addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        held.push(s);
    }
    // Its next connection is closed without an HTTP answer (bounded retries: the accept loop
    // may not have admitted every held connection yet when the first try arrives).
    let mut refused = false;
    for _ in 0..50 {
        if http_get_from(hog, server.addr, "/metrics").is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused, "the client's connection beyond its cap was served");
    // Another client is served meanwhile.
    let (status, _, body) = http_get_from(other, server.addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    assert!(
        sample(
            &text,
            "dchat_telemetry_http_rejected_total",
            &[("reason", "per_client")]
        )
        .is_some_and(|v| v >= 1.0),
        "{text}"
    );
    drop(held);
    server.stop().unwrap();
}
