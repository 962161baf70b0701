//! The endpoint over real TLS on 127.0.0.1, configured by a web config file: the right
//! credentials 200, none or wrong 401 with `WWW-Authenticate`, plain HTTP on the TLS port
//! refused, TLS below `min_version` refused, a client certificate required when configured, the
//! probes open without credentials unless told otherwise, and every refusal counted.
mod common;

use std::time::Duration;

use common::tls::{
    basic, bcrypt_hash, client_config, default_client, https_get, write_pem, Ca, TempDir,
};
use common::{header, http_raw, sample, Server};
use dchat_telemetry::Telemetry;

fn telemetry(dir: &TempDir, web_config: &str, probe_auth: bool) -> Telemetry {
    let path = dir.write("web-config.yml", web_config);
    Telemetry::builder()
        .with_node_id("tls-node")
        .with_drain_period(Duration::ZERO)
        .with_web_config(path)
        .with_probe_auth(probe_auth)
        .without_env()
        .build()
        .unwrap()
}

fn rejected(text: &str, reason: &str) -> f64 {
    sample(
        text,
        "dchat_telemetry_http_rejected_total",
        &[("reason", reason)],
    )
    .unwrap()
}

#[test]
fn basic_auth_over_tls() {
    let ca = Ca::new("test CA");
    let dir = TempDir::new("tls");
    write_pem(&dir, &ca.server("dchat"), None);
    let t = telemetry(
        &dir,
        &format!(
            "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n\
             http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n\
             basic_auth_users:\n  prometheus: {}\n",
            bcrypt_hash("s3cret")
        ),
        false,
    );
    let server = Server::start(&t);
    let client = default_client(&ca.cert_pem);
    let right = basic("prometheus", "s3cret");

    let ok = https_get(server.addr, &client, "/metrics", &right).unwrap();
    assert_eq!(ok.status, 200);
    assert!(String::from_utf8_lossy(&ok.body).contains("node_id=\"tls-node\""));
    assert_eq!(
        header(&ok.headers, "x-content-type-options"),
        Some("nosniff")
    );
    // Again: answered from the verification cache, same result.
    assert_eq!(
        https_get(server.addr, &client, "/metrics", &right)
            .unwrap()
            .status,
        200
    );

    for extra in [
        String::new(),
        basic("prometheus", "guess"),
        basic("mallory", "s3cret"),
        "Authorization: Bearer s3cret\r\n".to_owned(),
    ] {
        let r = https_get(server.addr, &client, "/metrics", &extra).unwrap();
        assert_eq!(r.status, 401, "{extra:?}");
        assert_eq!(
            header(&r.headers, "www-authenticate"),
            Some("Basic realm=\"dchat-telemetry\""),
            "{extra:?}"
        );
        assert!(
            !String::from_utf8_lossy(&r.body).contains("dchat_"),
            "{extra:?}"
        );
    }
    // Probes need no credentials by default; unknown paths do.
    assert_eq!(
        https_get(server.addr, &client, "/health", "")
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        https_get(server.addr, &client, "/ready", "")
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        https_get(server.addr, &client, "/nope", "").unwrap().status,
        401
    );
    assert_eq!(
        https_get(server.addr, &client, "/nope", &right)
            .unwrap()
            .status,
        404
    );

    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = http_raw(
        server.addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(!matches!(plain, Ok((200, _, _))), "{plain:?}");

    let text = String::from_utf8(
        https_get(server.addr, &client, "/metrics", &right)
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(rejected(&text, "unauthorized"), 5.0, "{text}");
    assert_eq!(rejected(&text, "tls"), 1.0);
    assert_eq!(rejected(&text, "in_flight"), 0.0);
    server.stop().unwrap();
}

#[test]
fn a_client_certificate_when_required_and_tls_13_when_asked() {
    let ca = Ca::new("test CA");
    let client_ca = Ca::new("client CA");
    let dir = TempDir::new("mtls");
    write_pem(&dir, &ca.server("dchat"), None);
    dir.write("clients.crt", &client_ca.cert_pem);
    let t = telemetry(
        &dir,
        "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  min_version: TLS13\n  \
         client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: clients.crt\n",
        false,
    );
    let server = Server::start(&t);
    let tls13 = [&rustls::version::TLS13];
    let good = client_ca.client("prometheus");
    let with_cert = client_config(&ca.cert_pem, &tls13, Some(&good));
    let r = https_get(server.addr, &with_cert, "/metrics", "").unwrap();
    assert_eq!(r.status, 200);

    // No client certificate: the handshake fails.
    let without = client_config(&ca.cert_pem, &tls13, None);
    assert!(https_get(server.addr, &without, "/metrics", "").is_err());
    // A certificate from another CA: refused.
    let stranger = ca.client("stranger");
    let other = client_config(&ca.cert_pem, &tls13, Some(&stranger));
    assert!(https_get(server.addr, &other, "/metrics", "").is_err());
    // A client that speaks only TLS 1.2, with a good certificate: below min_version, refused.
    let tls12 = client_config(&ca.cert_pem, &[&rustls::version::TLS12], Some(&good));
    assert!(https_get(server.addr, &tls12, "/metrics", "").is_err());

    let text = String::from_utf8(
        https_get(server.addr, &with_cert, "/metrics", "")
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(rejected(&text, "tls"), 3.0, "{text}");
    server.stop().unwrap();
}

#[test]
fn probes_need_credentials_when_configured() {
    let ca = Ca::new("test CA");
    let dir = TempDir::new("probes");
    write_pem(&dir, &ca.server("dchat"), None);
    let t = telemetry(
        &dir,
        &format!(
            "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n\
             basic_auth_users:\n  kubelet: {}\n",
            bcrypt_hash("probe")
        ),
        true,
    );
    let server = Server::start(&t);
    let client = default_client(&ca.cert_pem);
    for path in ["/health", "/ready", "/metrics"] {
        assert_eq!(
            https_get(server.addr, &client, path, "").unwrap().status,
            401,
            "{path}"
        );
        let r = https_get(server.addr, &client, path, &basic("kubelet", "probe")).unwrap();
        assert_eq!(r.status, 200, "{path}");
    }
    server.stop().unwrap();
}

/// Basic auth without TLS (a web config with only `basic_auth_users`): plain HTTP, credentials
/// checked; and curl, a client of its own, agrees over TLS.
#[test]
fn basic_auth_without_tls_and_curl_over_tls() {
    let dir = TempDir::new("plain-auth");
    let t = telemetry(
        &dir,
        &format!("basic_auth_users:\n  prometheus: {}\n", bcrypt_hash("pw")),
        false,
    );
    let server = Server::start(&t);
    assert_eq!(common::http_get(server.addr, "/metrics", "").0, 401);
    assert_eq!(
        common::http_get(server.addr, "/metrics", &basic("prometheus", "pw")).0,
        200
    );
    server.stop().unwrap();

    let ca = Ca::new("test CA");
    let dir = TempDir::new("curl");
    write_pem(&dir, &ca.server("dchat"), None);
    let ca_file = dir.write("ca.crt", &ca.cert_pem);
    let t = telemetry(
        &dir,
        &format!(
            "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n\
             basic_auth_users:\n  prometheus: {}\n",
            bcrypt_hash("pw")
        ),
        false,
    );
    let server = Server::start(&t);
    let curl = |args: &[&str]| -> String {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "10",
            ])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("curl not runnable ({e}); install curl"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let url = format!("https://127.0.0.1:{}/metrics", server.addr.port());
    let ca_arg = ca_file.to_str().unwrap();
    assert_eq!(
        curl(&["--cacert", ca_arg, "-u", "prometheus:pw", &url]),
        "200"
    );
    assert_eq!(
        curl(&["--cacert", ca_arg, "-u", "prometheus:nope", &url]),
        "401"
    );
    assert_eq!(curl(&["--cacert", ca_arg, &url]), "401");
    // Without trusting the CA, curl refuses the server (000: no HTTP status).
    assert_eq!(curl(&["-u", "prometheus:pw", &url]), "000");
    assert_eq!(
        curl(&[
            "--cacert",
            ca_arg,
            "--tls-max",
            "1.2",
            "-u",
            "prometheus:pw",
            &url
        ]),
        "200"
    );
    server.stop().unwrap();
}
