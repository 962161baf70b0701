//! A web config that cannot be used stops start-up with an `Error::WebConfig` naming the file
//! and what is wrong; `DCHAT_TELEMETRY_WEB_CONFIG` and `DCHAT_TELEMETRY_PROBE_AUTH` set the same
//! options as the builder.
mod common;

use common::tls::{bcrypt_hash, write_pem, Ca, TempDir};
use dchat_telemetry::{Error, Telemetry};

fn build(path: &std::path::Path) -> Result<Telemetry, Error> {
    Telemetry::builder()
        .with_web_config(path)
        .without_env()
        .build()
}

#[test]
fn unusable_web_configs_fail_start_up_naming_the_problem() {
    let ca = Ca::new("test CA");
    let other = Ca::new("other CA");
    let dir = TempDir::new("startup");
    write_pem(&dir, &ca.server("dchat"), None);
    dir.write("other.key", &other.server("x").key);
    dir.write("garbage.pem", "not a certificate\n");
    let tls = "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n";
    let cases: Vec<(String, &str)> = vec![
        ("tls_server_config:\n  cert_file: missing.crt\n  key_file: tls.key\n".into(), "missing.crt"),
        ("tls_server_config:\n  cert_file: tls.crt\n  key_file: other.key\n".into(), "key_file"),
        ("tls_server_config:\n  cert_file: garbage.pem\n  key_file: tls.key\n".into(), "no PEM certificate"),
        ("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: garbage.pem\n".into(), "client_ca_file"),
        (format!("{tls}  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n"), "cipher_suites is not implemented"),
        (format!("{tls}  min_version: TLS11\n"), "TLS11 is not implemented"),
        (format!("{tls}http_server_config:\n  http2: true\n"), "HTTP/2 is not implemented"),
        (format!("{tls}rate_limit:\n  interval: 1s\n"), "unknown key \"rate_limit\""),
        ("basic_auth_users:\n  alice: plaintext\n".into(), "bcrypt hash"),
        ("basic_auth_users: [\n".into(), "line"),
    ];
    for (text, says) in cases {
        let path = dir.write("web-config.yml", &text);
        let err = build(&path).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(&err, Error::WebConfig { path: p, .. } if *p == path),
            "{text}: {err:?}"
        );
        assert!(
            msg.contains(says) && msg.contains("web-config.yml"),
            "{text}: {msg}"
        );
    }
    let err = build(&dir.path("absent.yml")).unwrap_err();
    assert!(matches!(err, Error::WebConfig { .. }), "{err:?}");
}

#[test]
fn the_environment_sets_the_web_config_and_probe_auth() {
    let dir = TempDir::new("env");
    let path = dir.write(
        "web-config.yml",
        &format!("basic_auth_users:\n  prometheus: {}\n", bcrypt_hash("pw")),
    );
    let path_text = path.to_str().unwrap().to_owned();
    let builder = Telemetry::builder()
        .apply_env(|k| match k {
            "DCHAT_TELEMETRY_WEB_CONFIG" => Some(path_text.clone()),
            "DCHAT_TELEMETRY_PROBE_AUTH" => Some("true".into()),
            _ => None,
        })
        .unwrap();
    let t = builder
        .with_drain_period(std::time::Duration::ZERO)
        .without_env()
        .build()
        .unwrap();
    let server = common::Server::start(&t);
    assert_eq!(common::http_get(server.addr, "/health", "").0, 401);
    assert_eq!(common::http_get(server.addr, "/metrics", "").0, 401);
    server.stop().unwrap();

    for (var, value) in [
        ("DCHAT_TELEMETRY_PROBE_AUTH", "sometimes"),
        ("DCHAT_TELEMETRY_WEB_CONFIG", "  "),
    ] {
        let err = Telemetry::builder()
            .apply_env(|k| (k == var).then(|| value.to_owned()))
            .unwrap_err();
        assert!(matches!(err, Error::InvalidEnv { variable, .. } if variable == var));
    }
}
