//! An environment value that is not valid UTF-8 is an error naming the variable, never skipped:
//! through `apply_env_os`, and for a real process (the demo node) at start-up.
#![cfg(unix)]
mod common;

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::process::{Command, Stdio};
use std::time::Duration;

use dchat_telemetry::{Error, Telemetry};

#[test]
fn apply_env_os_rejects_non_utf8() {
    let err = Telemetry::builder()
        .apply_env_os(|k| {
            (k == "DCHAT_TELEMETRY_NODE_ID").then(|| OsString::from_vec(b"node-\xff".to_vec()))
        })
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidEnv { variable, .. } if *variable == "DCHAT_TELEMETRY_NODE_ID"),
        "{err:?}"
    );
    assert!(err.to_string().contains("valid UTF-8"), "{err}");
    // UTF-8 values pass through as with apply_env.
    let t = Telemetry::builder()
        .apply_env_os(|k| (k == "DCHAT_TELEMETRY_NODE_ID").then(|| OsString::from("n-1")))
        .unwrap()
        .without_env()
        .build()
        .unwrap();
    assert!(t.render().unwrap().contains("node_id=\"n-1\""));
}

#[test]
fn the_demo_node_stops_at_start_up_on_a_non_utf8_value() {
    let child = Command::new(common::example_binary("dchat_node"))
        .args(["--listen", &common::free_addr().to_string()])
        .env("DCHAT_TELEMETRY_SERVICE", OsStr::from_bytes(b"dchat-\xff"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = common::Kill(child);
    let status = child.wait_exit(Duration::from_secs(15), "the node kept running");
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("DCHAT_TELEMETRY_SERVICE") && stderr.contains("UTF-8"),
        "{stderr}"
    );
}
