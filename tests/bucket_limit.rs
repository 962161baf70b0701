//! At most `limits::MAX_BUCKETS` bucket bounds per histogram, for rules and for the
//! environment's bucket overrides alike.
use dchat_telemetry::limits::MAX_BUCKETS;
use dchat_telemetry::{Error, MetricKind, Rule, Telemetry};

fn bounds(n: usize) -> Vec<f64> {
    (1..=n).map(|i| i as f64 / 1000.0).collect()
}

fn rule(n: usize) -> Result<Rule, Error> {
    Rule::builder(MetricKind::Histogram, "dchat_job_duration_seconds")
        .with_event_name("job.done")
        .with_value_field("seconds")
        .with_unit("seconds")
        .with_description("Job durations.")
        .with_buckets(bounds(n))
        .build()
}

#[test]
fn rules_and_env_buckets_are_capped() {
    assert!(rule(MAX_BUCKETS).is_ok());
    let err = rule(MAX_BUCKETS + 1).unwrap_err();
    assert!(
        err.to_string().contains(&format!("at most {MAX_BUCKETS}")),
        "{err}"
    );

    let csv = |n| {
        bounds(n)
            .iter()
            .map(f64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let ok = csv(MAX_BUCKETS);
    assert!(Telemetry::builder()
        .apply_env(|k| (k == "DCHAT_TELEMETRY_LATENCY_BUCKETS").then(|| ok.clone()))
        .is_ok());
    let too_many = csv(MAX_BUCKETS + 1);
    let err = Telemetry::builder()
        .apply_env(|k| (k == "DCHAT_TELEMETRY_DB_BUCKETS").then(|| too_many.clone()))
        .unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidEnv {
            variable: "DCHAT_TELEMETRY_DB_BUCKETS",
            ..
        }
    ));
    assert!(
        err.to_string().contains(&format!("1 to {MAX_BUCKETS}")),
        "{err}"
    );
    let err = Telemetry::builder()
        .with_buckets("dchat_message_latency_seconds", bounds(MAX_BUCKETS + 1))
        .without_env()
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig { .. }), "{err:?}");
}
