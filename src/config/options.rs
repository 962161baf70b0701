//! The options operators set: each one's environment variable, its range (from
//! [`crate::limits`]), the form the error messages show, and the one check shared by values set
//! in code and from the environment.

use std::time::Duration;

pub(crate) use crate::labels::label_value;
use crate::limits::{
    Range, CARDINALITY_LIMIT, CHECK_TIMEOUT, DRAIN, ERROR_RATE_WINDOW, MAX_BUCKETS,
    MAX_KNOWN_VALUES, MAX_LABEL_VALUE_LEN, SAMPLE_BUDGET, SERIES_TTL,
};

/// An option of the builder that can be wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opt {
    Addr,
    Service,
    NodeId,
    Role,
    ConstLabels,
    LatencyBuckets,
    DbBuckets,
    CardinalityLimit,
    ErrorRateWindow,
    Drain,
    SeriesTtl,
    SampleBudget,
    CreatedTimestamps,
    Channels,
    KnownValues,
    WebConfig,
    ProbeAuth,
    CheckTimeout,
    Buckets,
}

/// The options that have an environment variable, in the README's order.
pub(crate) const FROM_ENV: &[Opt] = &[
    Opt::Addr,
    Opt::Service,
    Opt::NodeId,
    Opt::Role,
    Opt::ConstLabels,
    Opt::LatencyBuckets,
    Opt::DbBuckets,
    Opt::CardinalityLimit,
    Opt::ErrorRateWindow,
    Opt::Drain,
    Opt::SeriesTtl,
    Opt::SampleBudget,
    Opt::CreatedTimestamps,
    Opt::Channels,
    Opt::WebConfig,
    Opt::ProbeAuth,
];

impl Opt {
    /// The environment variable that overrides it, if any.
    pub(crate) fn var(self) -> Option<&'static str> {
        Some(match self {
            Opt::Addr => "DCHAT_TELEMETRY_ADDR",
            Opt::Service => "DCHAT_TELEMETRY_SERVICE",
            Opt::NodeId => "DCHAT_TELEMETRY_NODE_ID",
            Opt::Role => "DCHAT_TELEMETRY_ROLE",
            Opt::ConstLabels => "DCHAT_TELEMETRY_CONST_LABELS",
            Opt::LatencyBuckets => "DCHAT_TELEMETRY_LATENCY_BUCKETS",
            Opt::DbBuckets => "DCHAT_TELEMETRY_DB_BUCKETS",
            Opt::CardinalityLimit => "DCHAT_TELEMETRY_CARDINALITY_LIMIT",
            Opt::ErrorRateWindow => "DCHAT_TELEMETRY_ERROR_RATE_WINDOW",
            Opt::Drain => "DCHAT_TELEMETRY_DRAIN",
            Opt::SeriesTtl => "DCHAT_TELEMETRY_SERIES_TTL",
            Opt::SampleBudget => "DCHAT_TELEMETRY_SAMPLE_BUDGET",
            Opt::CreatedTimestamps => "DCHAT_TELEMETRY_CREATED_TIMESTAMPS",
            Opt::Channels => "DCHAT_TELEMETRY_CHANNELS",
            Opt::WebConfig => "DCHAT_TELEMETRY_WEB_CONFIG",
            Opt::ProbeAuth => "DCHAT_TELEMETRY_PROBE_AUTH",
            Opt::CheckTimeout | Opt::Buckets | Opt::KnownValues => return None,
        })
    }

    /// Its name in code (the builder's `with_*` setter without the prefix).
    pub(crate) fn option(self) -> &'static str {
        match self {
            Opt::Addr => "addr",
            Opt::Service => "service_name",
            Opt::NodeId => "node_id",
            Opt::Role => "role",
            Opt::ConstLabels => "const_labels",
            Opt::LatencyBuckets | Opt::DbBuckets | Opt::Buckets => "buckets",
            Opt::CardinalityLimit => "cardinality_limit",
            Opt::ErrorRateWindow => "error_rate_window",
            Opt::Drain => "drain_period",
            Opt::SeriesTtl => "series_ttl",
            Opt::SampleBudget => "sample_budget",
            Opt::CreatedTimestamps => "created_timestamps",
            Opt::Channels | Opt::KnownValues => "known_values",
            Opt::WebConfig => "web_config",
            Opt::ProbeAuth => "probe_auth",
            Opt::CheckTimeout => "check_timeout",
        }
    }

    /// The accepted form, as error messages and the README show it.
    pub(crate) fn form(self) -> String {
        match self {
            Opt::Addr => "host:port with an IP host, such as 0.0.0.0:9090 or 127.0.0.1:9100".into(),
            Opt::Service | Opt::NodeId | Opt::Role => {
                format!("a non-empty value of at most {MAX_LABEL_VALUE_LEN} bytes")
            }
            Opt::ConstLabels => "comma-separated name=value pairs with label names matching \
                                 [a-zA-Z_][a-zA-Z0-9_]*, such as region=eu,zone=a"
                .into(),
            Opt::LatencyBuckets | Opt::DbBuckets | Opt::Buckets => format!(
                "1 to {MAX_BUCKETS} comma-separated, strictly increasing, finite numbers of \
                 seconds, such as 0.001,0.01,0.1,1"
            ),
            Opt::CardinalityLimit => format!(
                "an integer from {} to {}",
                CARDINALITY_LIMIT.min, CARDINALITY_LIMIT.max
            ),
            Opt::ErrorRateWindow => {
                format!(
                    "{}, whole seconds, such as 60, 60s or 5m",
                    duration_range(ERROR_RATE_WINDOW)
                )
            }
            Opt::Drain => format!("{}, such as 5, 5s or 1m", duration_range(DRAIN)),
            Opt::SeriesTtl => format!(
                "0 (series never expire) or {}, such as 600, 10m or 1h",
                duration_range(SERIES_TTL)
            ),
            Opt::SampleBudget => format!(
                "an integer from {} to {} samples",
                SAMPLE_BUDGET.min, SAMPLE_BUDGET.max
            ),
            Opt::CreatedTimestamps => "true or false (also 1 or 0)".into(),
            Opt::Channels => format!(
                "comma-separated channel names (at most {MAX_KNOWN_VALUES}, each a label value \
                 of at most {MAX_LABEL_VALUE_LEN} bytes), such as general,random; any other \
                 channel is recorded as other"
            ),
            Opt::KnownValues => format!(
                "at most {MAX_KNOWN_VALUES} label values, each non-empty, without surrounding \
                 spaces or control characters, of at most {MAX_LABEL_VALUE_LEN} bytes, for a \
                 label that some rule has"
            ),
            Opt::WebConfig => "the path of a web config file in Prometheus exporter-toolkit's \
                               format (tls_server_config, basic_auth_users)"
                .into(),
            Opt::ProbeAuth => "true or false (also 1 or 0)".into(),
            Opt::CheckTimeout => duration_range(CHECK_TIMEOUT),
        }
    }
}

fn duration_range(r: Range<Duration>) -> String {
    format!("a duration from {} to {}", show(r.min), show(r.max))
}

/// A duration in the largest unit that shows it whole (`250ms`, `60s`, `5m`, `30d`).
fn show(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, per) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms >= per && ms % per == 0 {
            return format!("{}{unit}", ms / per);
        }
    }
    if ms == 0 {
        "0s".into()
    } else {
        format!("{ms}ms")
    }
}

// ---------------------------------------------------------------- the checks, shared

pub(crate) fn valid_cardinality_limit(n: usize) -> bool {
    CARDINALITY_LIMIT.contains(n)
}

pub(crate) fn valid_error_rate_window(d: Duration) -> bool {
    ERROR_RATE_WINDOW.contains(d) && d.subsec_nanos() == 0
}

pub(crate) fn valid_drain(d: Duration) -> bool {
    DRAIN.contains(d)
}

/// `None` (never) or within [`SERIES_TTL`].
pub(crate) fn valid_series_ttl(d: Option<Duration>) -> bool {
    d.is_none_or(|d| SERIES_TTL.contains(d))
}

pub(crate) fn valid_sample_budget(n: usize) -> bool {
    SAMPLE_BUDGET.contains(n)
}

pub(crate) fn valid_check_timeout(d: Duration) -> bool {
    CHECK_TIMEOUT.contains(d)
}

// ---------------------------------------------------------------- parsing

/// `true`/`false`, `1`/`0` (any case, spaces around allowed).
pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// `1,2.5,10`.
pub(crate) fn parse_buckets(v: &str) -> Option<Vec<f64>> {
    v.split(',')
        .map(|x| x.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .ok()
}

/// `60` (seconds), `60s`, `500ms`, `5m`, `2h`, `1d`.
pub(crate) fn parse_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    let (num, mult_ms) = [
        ("ms", 1),
        ("s", 1000),
        ("m", 60_000),
        ("h", 3_600_000),
        ("d", 86_400_000),
    ]
    .into_iter()
    .find_map(|(suffix, ms)| v.strip_suffix(suffix).map(|n| (n, ms)))
    .unwrap_or((v, 1000));
    let n: u64 = num.trim().parse().ok()?;
    Some(Duration::from_millis(n.checked_mul(mult_ms)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::valid_buckets;
    use proptest::prelude::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("soon"), None);
    }

    #[test]
    fn buckets() {
        assert_eq!(parse_buckets("0.1, 1,10"), Some(vec![0.1, 1.0, 10.0]));
        assert!(!valid_buckets(&[1.0, 1.0]));
        assert!(!valid_buckets(&[1.0, f64::NAN]));
        assert!(!valid_buckets(&[]));
        assert_eq!(parse_buckets(""), None);
        let most: Vec<f64> = (0..MAX_BUCKETS).map(|i| i as f64).collect();
        assert!(valid_buckets(&most));
        let too_many: Vec<f64> = (0..=MAX_BUCKETS).map(|i| i as f64).collect();
        assert!(!valid_buckets(&too_many));
    }

    #[test]
    fn booleans() {
        assert_eq!(parse_bool(" TRUE "), Some(true));
        assert_eq!(parse_bool("0"), Some(false));
        assert_eq!(parse_bool("maybe"), None);
    }

    #[test]
    fn forms_come_from_the_ranges() {
        assert_eq!(Opt::CardinalityLimit.form(), "an integer from 1 to 1000000");
        assert!(Opt::ErrorRateWindow.form().contains("from 1s to 1h"));
        assert!(Opt::Drain.form().contains("from 0s to 5m"));
        assert!(Opt::SeriesTtl
            .form()
            .starts_with("0 (series never expire) or a duration from 1s to 30d"));
        for o in FROM_ENV {
            assert!(
                o.var().is_some_and(|v| v.starts_with("DCHAT_TELEMETRY_")),
                "{o:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in any::<String>()) {
            let _ = parse_duration(&s);
            let _ = parse_buckets(&s);
            let _ = label_value(&s);
            let _ = parse_bool(&s);
        }

        #[test]
        fn whole_durations_round_trip(n in 0u64..100_000, unit in 0usize..4) {
            let (suffix, secs) = [("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)][unit];
            prop_assert_eq!(parse_duration(&format!("{n}{suffix}")), Some(Duration::from_secs(n * secs)));
        }
    }
}
