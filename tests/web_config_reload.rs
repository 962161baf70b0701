//! Rotation without a restart: a new certificate and key, or a new password, written over the
//! files the web config names, is served from the next connection after the change is noticed
//! (files are looked at once a second); a change that does not load leaves the previous
//! configuration in force and makes `/health` warn.
mod common;

use std::time::{Duration, Instant};

use common::tls::{
    basic, bcrypt_hash, default_client, der, https_get, replace, write_pem, Ca, TempDir,
};
use common::Server;
use dchat_telemetry::Telemetry;

/// Polls `f` until it holds (bounded: 15 s).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("never: {what}");
}

#[test]
fn certificates_and_passwords_rotate_without_restart() {
    let ca = Ca::new("test CA");
    let dir = TempDir::new("rotate");
    let first = ca.server("first");
    write_pem(&dir, &first, None);
    let config = |hash: &str| {
        format!(
            "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n\
             basic_auth_users:\n  prometheus: {hash}\n"
        )
    };
    let path = dir.write("web-config.yml", &config(&bcrypt_hash("old")));
    let t = Telemetry::builder()
        .with_drain_period(Duration::ZERO)
        .with_web_config(&path)
        .without_env()
        .build()
        .unwrap();
    let server = Server::start(&t);
    let client = default_client(&ca.cert_pem);
    let old = basic("prometheus", "old");
    let r = https_get(server.addr, &client, "/metrics", &old).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.server_cert, der(&first.cert));

    // A new certificate and key (as a Secret update writes them).
    let second = ca.server("second");
    write_pem(&dir, &second, None);
    eventually("the new certificate is served", || {
        https_get(server.addr, &client, "/metrics", &old)
            .is_ok_and(|r| r.status == 200 && r.server_cert == der(&second.cert))
    });

    // A new password: the old one stops working, the new one works.
    replace(&path, &config(&bcrypt_hash("new")));
    let new = basic("prometheus", "new");
    eventually("the new password is accepted", || {
        https_get(server.addr, &client, "/metrics", &new).is_ok_and(|r| r.status == 200)
    });
    assert_eq!(
        https_get(server.addr, &client, "/metrics", &old)
            .unwrap()
            .status,
        401
    );

    // A broken change (a key that does not match the certificate): the previous configuration
    // stays in force and /health warns (200, "warn"), naming the file.
    replace(&dir.path("tls.key"), &ca.server("third").key);
    eventually("/health warns about the web config", || {
        https_get(server.addr, &client, "/health", "").is_ok_and(|r| {
            let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            r.status == 200
                && json["checks"]["web-config:liveness"][0]["status"] == "warn"
                && json["checks"]["web-config:liveness"][0]["output"]
                    .as_str()
                    .unwrap_or("")
                    .contains("previous web config stays in force")
        })
    });
    let r = https_get(server.addr, &client, "/metrics", &new).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.server_cert,
        der(&second.cert),
        "still the last good certificate"
    );

    // Fixed again: the warning goes away.
    let fourth = ca.server("fourth");
    write_pem(&dir, &fourth, None);
    eventually("the fixed certificate is served and /health passes", || {
        https_get(server.addr, &client, "/metrics", &new)
            .is_ok_and(|r| r.status == 200 && r.server_cert == der(&fourth.cert))
            && https_get(server.addr, &client, "/health", "").is_ok_and(|r| {
                let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
                json["checks"]["web-config:liveness"][0]["status"] == "pass"
            })
    });
    server.stop().unwrap();
}
