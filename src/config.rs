//! Configuration: the builder, and the environment variables that override it.

use std::net::SocketAddr;
use std::time::Duration;

use crate::labels::{is_valid_label_name, push_sanitized, MAX_LABEL_VALUE_LEN};
use crate::rules::Rules;
use crate::telemetry::Telemetry;
use crate::{catalog, Error};

/// `DCHAT_TELEMETRY_ADDR`: listen address of the server.
pub const ENV_ADDR: &str = "DCHAT_TELEMETRY_ADDR";
/// `DCHAT_TELEMETRY_SERVICE`: the `service` constant label.
pub const ENV_SERVICE: &str = "DCHAT_TELEMETRY_SERVICE";
/// `DCHAT_TELEMETRY_NODE_ID`: the `node_id` constant label.
pub const ENV_NODE_ID: &str = "DCHAT_TELEMETRY_NODE_ID";
/// `DCHAT_TELEMETRY_CONST_LABELS`: further constant labels, `name=value,name=value`.
pub const ENV_CONST_LABELS: &str = "DCHAT_TELEMETRY_CONST_LABELS";
/// `DCHAT_TELEMETRY_LATENCY_BUCKETS`: buckets of `dchat_message_latency_seconds`.
pub const ENV_LATENCY_BUCKETS: &str = "DCHAT_TELEMETRY_LATENCY_BUCKETS";
/// `DCHAT_TELEMETRY_DB_BUCKETS`: buckets of `dchat_database_query_duration_seconds`.
pub const ENV_DB_BUCKETS: &str = "DCHAT_TELEMETRY_DB_BUCKETS";
/// `DCHAT_TELEMETRY_CARDINALITY_LIMIT`: series per metric before the overflow series.
pub const ENV_CARDINALITY_LIMIT: &str = "DCHAT_TELEMETRY_CARDINALITY_LIMIT";
/// `DCHAT_TELEMETRY_ERROR_RATE_WINDOW`: trailing window of `dchat_error_rate`.
pub const ENV_ERROR_RATE_WINDOW: &str = "DCHAT_TELEMETRY_ERROR_RATE_WINDOW";
/// `DCHAT_TELEMETRY_DRAIN`: how long `/metrics` keeps answering after shutdown begins.
pub const ENV_DRAIN: &str = "DCHAT_TELEMETRY_DRAIN";

/// Every environment variable the builder reads, with its accepted form.
pub const ENV_VARS: &[(&str, &str)] = &[
    (ENV_ADDR, FORM_ADDR),
    (ENV_SERVICE, FORM_LABEL_VALUE),
    (ENV_NODE_ID, FORM_LABEL_VALUE),
    (ENV_CONST_LABELS, FORM_CONST_LABELS),
    (ENV_LATENCY_BUCKETS, FORM_BUCKETS),
    (ENV_DB_BUCKETS, FORM_BUCKETS),
    (ENV_CARDINALITY_LIMIT, FORM_LIMIT),
    (ENV_ERROR_RATE_WINDOW, FORM_WINDOW),
    (ENV_DRAIN, FORM_DRAIN),
];

const FORM_ADDR: &str = "host:port with an IP host, such as 0.0.0.0:9090 or 127.0.0.1:9100";
const FORM_LABEL_VALUE: &str = "a non-empty value of at most 128 bytes";
const FORM_CONST_LABELS: &str =
    "comma-separated name=value pairs with label names matching [a-zA-Z_][a-zA-Z0-9_]*, such as region=eu,zone=a";
const FORM_BUCKETS: &str =
    "comma-separated, strictly increasing, finite numbers of seconds, such as 0.001,0.01,0.1,1";
const FORM_LIMIT: &str = "an integer from 1 to 1000000";
const FORM_WINDOW: &str = "a duration from 1s to 3600s, such as 60, 60s or 5m";
const FORM_DRAIN: &str = "a duration from 0s to 300s, such as 5, 5s or 1m";

/// Builds a [`Telemetry`]. Every option has a default and can be set in code; at
/// [`build`](TelemetryBuilder::build) the `DCHAT_TELEMETRY_*` environment variables override
/// what code set (unless [`without_env`](TelemetryBuilder::without_env) was called).
#[derive(Debug, Clone)]
#[must_use]
pub struct TelemetryBuilder {
    pub(crate) addr: SocketAddr,
    pub(crate) service: String,
    pub(crate) node_id: Option<String>,
    pub(crate) const_labels: Vec<(String, String)>,
    pub(crate) buckets: Vec<(String, Vec<f64>)>,
    pub(crate) cardinality_limit: usize,
    pub(crate) error_rate_window: Duration,
    pub(crate) drain: Duration,
    pub(crate) check_timeout: Duration,
    pub(crate) rules: Rules,
    read_env: bool,
}

impl Default for TelemetryBuilder {
    fn default() -> Self {
        TelemetryBuilder {
            addr: SocketAddr::from(([0, 0, 0, 0], 9090)),
            service: "dchat".into(),
            node_id: None,
            const_labels: Vec::new(),
            buckets: Vec::new(),
            cardinality_limit: 2000,
            error_rate_window: Duration::from_secs(60),
            drain: Duration::from_secs(5),
            check_timeout: Duration::from_millis(800),
            rules: Rules::dchat_defaults(),
            read_env: true,
        }
    }
}

impl TelemetryBuilder {
    /// The `service` constant label (default `dchat`).
    pub fn with_service_name(mut self, name: impl Into<String>) -> Self {
        self.service = name.into();
        self
    }

    /// The `node_id` constant label (none by default).
    pub fn with_node_id(mut self, id: impl Into<String>) -> Self {
        self.node_id = Some(id.into());
        self
    }

    /// A further constant label on every series.
    pub fn with_const_label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.const_labels.push((name.into(), value.into()));
        self
    }

    /// Address [`Telemetry::serve`] listens on (default `0.0.0.0:9090`).
    pub fn with_addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Replaces the bucket bounds of the histogram `metric` (its scraped name).
    pub fn with_buckets(mut self, metric: impl Into<String>, buckets: impl Into<Vec<f64>>) -> Self {
        self.buckets.push((metric.into(), buckets.into()));
        self
    }

    /// Series per metric before new label sets go to the overflow series (default 2000).
    pub fn with_cardinality_limit(mut self, limit: usize) -> Self {
        self.cardinality_limit = limit;
        self
    }

    /// Trailing window of `dchat_error_rate` (default 60 s, whole seconds from 1 to 3600).
    pub fn with_error_rate_window(mut self, window: Duration) -> Self {
        self.error_rate_window = window;
        self
    }

    /// How long `/metrics` keeps answering after shutdown begins (default 5 s, at most 300 s).
    pub fn with_drain_period(mut self, drain: Duration) -> Self {
        self.drain = drain;
        self
    }

    /// Time the liveness checks may take before they count as failed (default 800 ms, under
    /// Kubernetes' default probe timeout of 1 s).
    pub fn with_check_timeout(mut self, timeout: Duration) -> Self {
        self.check_timeout = timeout;
        self
    }

    /// The rules (default [`Rules::dchat_defaults`]).
    pub fn with_rules(mut self, rules: Rules) -> Self {
        self.rules = rules;
        self
    }

    /// Ignore the `DCHAT_TELEMETRY_*` environment variables.
    pub fn without_env(mut self) -> Self {
        self.read_env = false;
        self
    }

    /// Applies environment overrides, validates everything and starts the meter provider.
    ///
    /// # Errors
    /// [`Error::InvalidEnv`] naming the variable and its accepted form, [`Error::InvalidConfig`]
    /// or [`Error::InvalidRule`] for bad values set in code, [`Error::Exporter`] when the
    /// OpenTelemetry pipeline cannot be built.
    pub fn build(self) -> Result<Telemetry, Error> {
        let read_env = self.read_env;
        let builder = if read_env {
            self.apply_env(|k| std::env::var(k).ok())?
        } else {
            self
        };
        builder.validate()?;
        Telemetry::from_builder(builder)
    }

    /// Applies overrides from `lookup` (the environment, or a map in tests).
    ///
    /// # Errors
    /// [`Error::InvalidEnv`] naming the first variable whose value is not of its accepted form.
    pub fn apply_env(mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let invalid =
            |variable: &'static str, value: &str, expected: &'static str| Error::InvalidEnv {
                variable,
                value: value.to_owned(),
                expected,
            };
        if let Some(v) = lookup(ENV_ADDR) {
            self.addr = v
                .trim()
                .parse()
                .map_err(|_| invalid(ENV_ADDR, &v, FORM_ADDR))?;
        }
        if let Some(v) = lookup(ENV_SERVICE) {
            self.service =
                label_value(&v).ok_or_else(|| invalid(ENV_SERVICE, &v, FORM_LABEL_VALUE))?;
        }
        if let Some(v) = lookup(ENV_NODE_ID) {
            self.node_id =
                Some(label_value(&v).ok_or_else(|| invalid(ENV_NODE_ID, &v, FORM_LABEL_VALUE))?);
        }
        if let Some(v) = lookup(ENV_CONST_LABELS) {
            for pair in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (name, value) = pair
                    .split_once('=')
                    .ok_or_else(|| invalid(ENV_CONST_LABELS, &v, FORM_CONST_LABELS))?;
                let name = name.trim();
                let value = label_value(value)
                    .ok_or_else(|| invalid(ENV_CONST_LABELS, &v, FORM_CONST_LABELS))?;
                if !self.usable_const_label_name(name) {
                    return Err(invalid(ENV_CONST_LABELS, &v, FORM_CONST_LABELS));
                }
                self.const_labels.retain(|(n, _)| n != name);
                self.const_labels.push((name.to_owned(), value));
            }
        }
        for (var, metric) in [
            (ENV_LATENCY_BUCKETS, catalog::MESSAGE_LATENCY.name),
            (ENV_DB_BUCKETS, catalog::DB_QUERY_DURATION.name),
        ] {
            if let Some(v) = lookup(var) {
                let buckets = parse_buckets(&v).ok_or_else(|| invalid(var, &v, FORM_BUCKETS))?;
                self.buckets.push((metric.to_owned(), buckets));
            }
        }
        if let Some(v) = lookup(ENV_CARDINALITY_LIMIT) {
            self.cardinality_limit = v
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=1_000_000).contains(n))
                .ok_or_else(|| invalid(ENV_CARDINALITY_LIMIT, &v, FORM_LIMIT))?;
        }
        if let Some(v) = lookup(ENV_ERROR_RATE_WINDOW) {
            self.error_rate_window = parse_duration(&v)
                .filter(|d| (1..=3600).contains(&d.as_secs()) && d.subsec_nanos() == 0)
                .ok_or_else(|| invalid(ENV_ERROR_RATE_WINDOW, &v, FORM_WINDOW))?;
        }
        if let Some(v) = lookup(ENV_DRAIN) {
            self.drain = parse_duration(&v)
                .filter(|d| d.as_secs() <= 300)
                .ok_or_else(|| invalid(ENV_DRAIN, &v, FORM_DRAIN))?;
        }
        Ok(self)
    }

    fn validate(&self) -> Result<(), Error> {
        let bad =
            |option: &'static str, reason: String| Err(Error::InvalidConfig { option, reason });
        if !(1..=1_000_000).contains(&self.cardinality_limit) {
            return bad(
                "cardinality_limit",
                format!("{} is not from 1 to 1000000", self.cardinality_limit),
            );
        }
        let w = self.error_rate_window;
        if !(1..=3600).contains(&w.as_secs()) || w.subsec_nanos() != 0 {
            return bad(
                "error_rate_window",
                format!("{w:?} is not whole seconds from 1 to 3600"),
            );
        }
        if self.drain > Duration::from_secs(300) {
            return bad(
                "drain_period",
                format!("{:?} is longer than 300 s", self.drain),
            );
        }
        if self.check_timeout.is_zero() || self.check_timeout > Duration::from_secs(60) {
            return bad(
                "check_timeout",
                format!("{:?} is not from 1 ns to 60 s", self.check_timeout),
            );
        }
        for (name, value) in self.all_const_labels() {
            if !self.usable_const_label_name(&name) {
                return bad(
                    "const_labels",
                    format!("{name:?} is not a valid label name, or is reserved, or is a label of a rule or of a built-in metric"),
                );
            }
            if label_value(&value).is_none() {
                return bad(
                    "const_labels",
                    format!("value of {name:?} must be non-empty, at most 128 bytes"),
                );
            }
        }
        for (metric, buckets) in &self.buckets {
            let ok = !buckets.is_empty()
                && buckets.iter().all(|b| b.is_finite())
                && buckets.windows(2).all(|w| w[0] < w[1]);
            if !ok {
                return bad(
                    "buckets",
                    format!("buckets of {metric} must be finite and strictly increasing"),
                );
            }
            if !self
                .rules
                .rules
                .iter()
                .any(|r| &r.metric.name == metric && !r.metric.buckets.is_empty())
            {
                return bad(
                    "buckets",
                    format!("{metric} is not a histogram of the rules"),
                );
            }
        }
        Ok(())
    }

    /// Whether `name` can be a constant label: valid, not reserved, not a rule's label nor a
    /// built-in metric's (`metric`, `reason`, `check`): a sample must not carry a name twice.
    fn usable_const_label_name(&self, name: &str) -> bool {
        is_valid_label_name(name)
            && name != "otel_metric_overflow"
            && !crate::catalog::CATALOG
                .iter()
                .any(|m| m.labels.contains(&name))
            && !self
                .rules
                .rules
                .iter()
                .any(|r| r.metric.label_names.iter().any(|l| l == name))
            && !self.rules.prefix_labels.iter().any(|l| l == name)
    }

    /// `service`, `node_id` and the further constant labels, in that order, with values as
    /// exported (trimmed, control characters replaced, capped). `validate` rejects empty ones.
    pub(crate) fn all_const_labels(&self) -> Vec<(String, String)> {
        let clean = |v: &str| label_value(v).unwrap_or_default();
        let mut out = vec![("service".to_owned(), clean(&self.service))];
        if let Some(id) = &self.node_id {
            out.push(("node_id".to_owned(), clean(id)));
        }
        for (n, v) in &self.const_labels {
            out.retain(|(m, _)| m != n);
            out.push((n.clone(), clean(v)));
        }
        out
    }

    /// The rules with bucket overrides applied.
    pub(crate) fn effective_rules(&self) -> Rules {
        let mut rules = self.rules.clone();
        for (metric, buckets) in &self.buckets {
            for r in rules.rules.iter_mut().filter(|r| &r.metric.name == metric) {
                r.metric.buckets = buckets.clone();
            }
        }
        rules
    }
}

fn label_value(v: &str) -> Option<String> {
    let v = v.trim();
    let mut out = String::new();
    (!v.is_empty() && push_sanitized(&mut out, v, MAX_LABEL_VALUE_LEN)).then_some(out)
}

fn parse_buckets(v: &str) -> Option<Vec<f64>> {
    let b: Vec<f64> = v
        .split(',')
        .map(|x| x.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .ok()?;
    (!b.is_empty() && b.iter().all(|x| x.is_finite()) && b.windows(2).all(|w| w[0] < w[1]))
        .then_some(b)
}

/// `60`, `60s`, `500ms`, `5m`.
fn parse_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    let (num, mult_ms) = if let Some(n) = v.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 60_000)
    } else {
        (v, 1000)
    };
    let n: u64 = num.trim().parse().ok()?;
    Some(Duration::from_millis(n.checked_mul(mult_ms)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("soon"), None);
    }

    #[test]
    fn buckets() {
        assert_eq!(parse_buckets("0.1, 1,10"), Some(vec![0.1, 1.0, 10.0]));
        assert_eq!(parse_buckets("1,1"), None);
        assert_eq!(parse_buckets("1,nan"), None);
        assert_eq!(parse_buckets(""), None);
    }
}
