//! A second SIGTERM ends the drain at once: the demo node, given a 60 s drain, turns `/ready`
//! 503 and keeps serving `/metrics` after the first SIGTERM, and exits cleanly right after the
//! second.
#![cfg(unix)]
mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{first_status, http_get, Kill};

fn kill_term(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn the_second_sigterm_ends_a_long_drain() {
    let addr = common::free_addr();
    let child = Command::new(common::example_binary("dchat_node"))
        .args(["--listen", &addr.to_string(), "--rate", "50"])
        .env("DCHAT_TELEMETRY_DRAIN", "60s")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Kill(child);
    let pid = child.0.id();
    assert!(
        first_status(addr, "/ready").is_some(),
        "the node never listened"
    );
    let mut ready = 0;
    for _ in 0..200 {
        ready = http_get(addr, "/ready", "").0;
        if ready == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ready, 200);

    kill_term(pid);
    for _ in 0..200 {
        ready = http_get(addr, "/ready", "").0;
        if ready == 503 {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert_eq!(ready, 503, "shutdown began");
    assert_eq!(http_get(addr, "/metrics", "").0, 200, "draining");
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "exited before the drain ended"
    );

    kill_term(pid);
    // Far less than the 60 s drain.
    let status = child.wait_exit(
        Duration::from_secs(15),
        "the second SIGTERM did not end the drain",
    );
    assert!(status.success(), "{status:?}");
}
