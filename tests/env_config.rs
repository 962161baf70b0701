//! Every option can be set in code and overridden by an environment variable; a bad value
//! fails start-up with an error naming the variable and the accepted form.
use std::collections::HashMap;
use std::time::Duration;

use dchat_telemetry::{Error, Telemetry, TelemetryBuilder};

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn environment_overrides_code() {
    let b = Telemetry::builder()
        .with_addr("127.0.0.1:1".parse().unwrap())
        .with_cardinality_limit(5)
        .apply_env(env(&[
            ("DCHAT_TELEMETRY_ADDR", "127.0.0.1:9191"),
            ("DCHAT_TELEMETRY_NODE_ID", "pod-7"),
            ("DCHAT_TELEMETRY_ROLE", "validator"),
            ("DCHAT_TELEMETRY_CONST_LABELS", "region=eu, zone=a"),
            ("DCHAT_TELEMETRY_LATENCY_BUCKETS", "0.01,0.1,1"),
            ("DCHAT_TELEMETRY_DB_BUCKETS", "0.001,0.01"),
            ("DCHAT_TELEMETRY_CARDINALITY_LIMIT", "3"),
            ("DCHAT_TELEMETRY_ERROR_RATE_WINDOW", "2m"),
            ("DCHAT_TELEMETRY_DRAIN", "0s"),
        ]))
        .unwrap();
    let t = b.without_env().build().unwrap();
    assert_eq!(t.addr(), "127.0.0.1:9191".parse().unwrap());
    let subscriber = tracing_subscriber::registry();
    use tracing_subscriber::prelude::*;
    tracing::subscriber::with_default(subscriber.with(t.layer()), || {
        for c in 0..10 {
            tracing::info!(name: "message.received", channel = c, latency_seconds = 0.05);
        }
        tracing::error!("e");
    });
    let text = t.render().unwrap();
    assert!(
        text.contains(r#"node_id="pod-7""#)
            && text.contains(r#"role="validator""#)
            && text.contains(r#"region="eu""#)
            && text.contains(r#"zone="a""#)
    );
    assert!(
        text.contains(r#"le="0.1""#) && !text.contains(r#"le="0.025""#),
        "latency buckets overridden"
    );
    assert_eq!(t.series_count("dchat_messages_received_total"), Some(3));
    let rate = text
        .lines()
        .find(|l| l.starts_with("dchat_error_rate{"))
        .unwrap();
    assert!(rate.ends_with(&format!(" {}", 1.0 / 120.0)), "{rate}");
}

#[test]
fn invalid_values_name_the_variable_and_the_form() {
    let cases = [
        ("DCHAT_TELEMETRY_ADDR", "localhost"),
        ("DCHAT_TELEMETRY_NODE_ID", ""),
        ("DCHAT_TELEMETRY_CONST_LABELS", "1bad=x"),
        ("DCHAT_TELEMETRY_CONST_LABELS", "novalue"),
        ("DCHAT_TELEMETRY_LATENCY_BUCKETS", "1,0.5"),
        ("DCHAT_TELEMETRY_DB_BUCKETS", "a,b"),
        ("DCHAT_TELEMETRY_CARDINALITY_LIMIT", "0"),
        ("DCHAT_TELEMETRY_CARDINALITY_LIMIT", "-5"),
        ("DCHAT_TELEMETRY_ERROR_RATE_WINDOW", "0"),
        ("DCHAT_TELEMETRY_ERROR_RATE_WINDOW", "2h"),
        ("DCHAT_TELEMETRY_DRAIN", "forever"),
        ("DCHAT_TELEMETRY_SERVICE", &"x".repeat(200)),
        ("DCHAT_TELEMETRY_SERIES_TTL", "500ms"),
        ("DCHAT_TELEMETRY_SERIES_TTL", "31d"),
        ("DCHAT_TELEMETRY_SERIES_TTL", "later"),
    ];
    for (var, value) in cases {
        let err = Telemetry::builder()
            .apply_env(env(&[(var, value)]))
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidEnv { variable, .. } if *variable == var),
            "{var}={value}: {err:?}"
        );
        let msg = err.to_string();
        let vars = TelemetryBuilder::env_vars();
        let form = &vars.iter().find(|(v, _)| *v == var).unwrap().1;
        assert!(msg.contains(var) && msg.contains(form.as_str()), "{msg}");
    }
}

#[test]
fn invalid_code_config_is_rejected() {
    let bad = [
        Telemetry::builder().with_cardinality_limit(0),
        Telemetry::builder().with_error_rate_window(Duration::from_millis(1500)),
        Telemetry::builder().with_drain_period(Duration::from_secs(3600)),
        Telemetry::builder().with_series_ttl(Duration::from_millis(10)),
        Telemetry::builder().with_const_label("le", "x"),
        Telemetry::builder().with_const_label("channel", "x"),
        // Labels of the built-in self-metrics: a sample would carry the name twice.
        Telemetry::builder().with_const_label("check", "x"),
        Telemetry::builder().with_const_label("reason", "x"),
        Telemetry::builder().with_const_label("metric", "x"),
        Telemetry::builder().with_buckets("dchat_message_latency_seconds", [1.0, 1.0]),
        Telemetry::builder().with_buckets("dchat_errors_total", [1.0]),
    ];
    for b in bad {
        let dbg = format!("{b:?}");
        assert!(
            matches!(b.without_env().build(), Err(Error::InvalidConfig { .. })),
            "{dbg}"
        );
    }
}
