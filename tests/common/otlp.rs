//! Real OTLP receivers on 127.0.0.1 for the push tests: `scripts/otlp-receiver.py` (decodes each
//! request with the official protobuf definitions and hands it over as JSON) and `rotel-agent`
//! (PyPI `rotel`: an OpenTelemetry collector) in front of it. Both are installed by
//! `scripts/install-tools`; a missing one fails the test with a message saying so. Every
//! process is stopped (killed and reaped) when its handle drops.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A free port on 127.0.0.1 (bound, then released for the process that takes it).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The decoding receiver: every request it answered, as protobuf's JSON mapping.
pub(crate) struct Receiver {
    pub(crate) port: u16,
    child: Child,
    requests: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    pub(crate) fn start() -> Receiver {
        Receiver::start_on(0)
    }

    /// A receiver on `port` (0: a free one).
    pub(crate) fn start_on(port: u16) -> Receiver {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/otlp-receiver.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .stdin(Stdio::piped()) // it exits when this closes
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs; run scripts/install-tools");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        let Some(port) = first
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
        else {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!("the OTLP receiver did not start ({first:?}, {err}); run scripts/install-tools");
        };
        let requests = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&requests);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        Receiver {
            port,
            child,
            requests,
        }
    }

    /// The requests received so far.
    pub(crate) fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits (at most `limit`) until `done` holds for the requests received; returns them.
    pub(crate) fn wait_for(&self, limit: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let got = self.requests();
            if done(&got) {
                return got;
            }
            assert!(
                start.elapsed() < limit,
                "the receiver did not get what was expected within {limit:?}; it got:\n{}",
                serde_json::to_string_pretty(&got).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `rotel-agent`, receiving OTLP/HTTP on `port` and forwarding it (OTLP/HTTP) to `to`.
pub(crate) struct Rotel {
    pub(crate) port: u16,
    child: Child,
    pid_file: std::path::PathBuf,
}

impl Rotel {
    pub(crate) fn start(to: u16) -> Rotel {
        let out = Command::new("python3")
            .args([
                "-c",
                "import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))",
            ])
            .output()
            .expect("python3 runs; run scripts/install-tools");
        let agent = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(
            out.status.success() && std::path::Path::new(&agent).exists(),
            "rotel-agent missing (PyPI rotel); run scripts/install-tools: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (port, grpc) = (free_port(), free_port());
        let pid_file =
            std::env::temp_dir().join(format!("dchat-rotel-{}-{port}.pid", std::process::id()));
        let child = Command::new(&agent)
            .args(["start", "--otlp-http-endpoint"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--otlp-grpc-endpoint")
            .arg(format!("127.0.0.1:{grpc}"))
            .arg("--pid-file")
            .arg(&pid_file)
            .args(["--exporter", "otlp", "--otlp-exporter-protocol", "http"])
            .arg("--otlp-exporter-endpoint")
            .arg(format!("http://127.0.0.1:{to}"))
            .args(["--metrics-batch-timeout", "100ms"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rotel-agent starts");
        let rotel = Rotel {
            port,
            child,
            pid_file,
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "rotel-agent did not listen on 127.0.0.1:{port} within 15 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        rotel
    }
}

impl Drop for Rotel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

/// The resource metrics of every request whose resource has `service.instance.id` = `id`.
pub(crate) fn of_instance<'a>(requests: &'a [Value], id: &str) -> Vec<&'a Value> {
    requests
        .iter()
        .filter_map(|r| r["resourceMetrics"].as_array())
        .flatten()
        .filter(|rm| attribute(&rm["resource"], "service.instance.id").as_deref() == Some(id))
        .collect()
}

/// A string attribute of a resource or data point (`{"attributes": [{"key", "value"}]}`).
pub(crate) fn attribute(holder: &Value, key: &str) -> Option<String> {
    holder["attributes"]
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == key)
        .and_then(|kv| kv["value"]["stringValue"].as_str().map(str::to_owned))
}

/// The last metric named `name` among resource metrics (the latest push's).
pub(crate) fn metric<'a>(resource_metrics: &[&'a Value], name: &str) -> Option<&'a Value> {
    resource_metrics
        .iter()
        .filter_map(|rm| rm["scopeMetrics"].as_array())
        .flatten()
        .filter_map(|sm| sm["metrics"].as_array())
        .flatten()
        .rfind(|m| m["name"] == name)
}

/// The data point of `metric` (its `sum`, `gauge` or `histogram`) whose attribute `key` is
/// `value` (any point when `key` is empty).
pub(crate) fn point<'a>(metric: &'a Value, key: &str, value: &str) -> Option<&'a Value> {
    ["sum", "gauge", "histogram"]
        .iter()
        .filter_map(|k| metric[*k]["dataPoints"].as_array())
        .flatten()
        .find(|p| key.is_empty() || attribute(p, key).as_deref() == Some(value))
}

/// A JSON number that protobuf's JSON mapping may have written as a string (64-bit integers).
pub(crate) fn num(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| v.as_str()?.parse().ok())
}
