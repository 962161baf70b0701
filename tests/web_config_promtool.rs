//! The example web config (`examples/web-config.yml`) passes `promtool check web-config`
//! (Prometheus' own check of exporter-toolkit's format) and loads here; and configs promtool
//! rejects are rejected here too. promtool reads the certificate and key, so both are generated
//! beside the copy.
mod common;

use std::process::Command;

use common::tls::{write_pem, Ca, TempDir};
use dchat_telemetry::Telemetry;

const EXAMPLE: &str = include_str!("../examples/web-config.yml");

fn promtool(path: &std::path::Path) -> (bool, String) {
    let out = Command::new("promtool")
        .args(["check", "web-config"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("promtool not runnable ({e}); run scripts/install-tools"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn ours(path: &std::path::Path) -> Result<(), String> {
    Telemetry::builder()
        .with_web_config(path)
        .without_env()
        .build()
        .map(drop)
        .map_err(|e| e.to_string())
}

#[test]
fn the_example_passes_promtool_and_loads() {
    let ca = Ca::new("test CA");
    let dir = TempDir::new("promtool");
    write_pem(&dir, &ca.server("dchat"), Some(&ca));
    let path = dir.write("web-config.yml", EXAMPLE);
    let (ok, report) = promtool(&path);
    assert!(
        ok,
        "promtool check web-config rejects the example:\n{report}"
    );
    ours(&path).unwrap();

    // The commented-out client certificate lines, switched on: both accept it.
    let mtls = EXAMPLE
        .replace("  # client_auth_type", "  client_auth_type")
        .replace("  # client_ca_file", "  client_ca_file");
    let path = dir.write("mtls.yml", &mtls);
    let (ok, report) = promtool(&path);
    assert!(ok, "{report}");
    ours(&path).unwrap();
}

#[test]
fn what_promtool_rejects_is_rejected_here() {
    let ca = Ca::new("test CA");
    let dir = TempDir::new("promtool-bad");
    write_pem(&dir, &ca.server("dchat"), Some(&ca));
    let tls = "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n";
    for text in [
        format!("{tls}  unknown_key: 1\n"),
        format!("{tls}  min_version: TLS14\n"),
        format!("{tls}  client_auth_type: Sometimes\n"),
        format!("{tls}  client_ca_file: ca.crt\n"),
        "tls_server_config:\n  key_file: tls.key\n".to_owned(),
        "tls_server_config:\n  cert_file: tls.crt\n  key_file: absent.key\n".to_owned(),
        "basic_auth_users:\n  alice: plaintext\n".to_owned(),
        "http_server_config:\n  headers:\n    Server: dchat\n".to_owned(),
        "http_server_config:\n  headers:\n    X-Frame-Options: allow\n".to_owned(),
        "rate_limit:\n  interval: 1s\n".to_owned(),
        format!("{tls}  client_allowed_sans: [a]\n"),
    ] {
        let path = dir.write("bad.yml", &text);
        let (ok, report) = promtool(&path);
        assert!(!ok, "promtool accepts {text:?}: {report}");
        assert!(ours(&path).is_err(), "we accept {text:?}");
    }
}
