//! Configuration: the builder, and the environment variables that override it ([`options`]
//! holds each option's variable, range, accepted form and check).

mod options;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tracing_core::LevelFilter;

use crate::clock::{Clock, SystemClock};
use crate::labels::is_valid_label_name;
use crate::limits::{DEFAULT_CARDINALITY_LIMIT, DEFAULT_SERIES_TTL};
use crate::otel::PendingReader;
use crate::rules::Rules;
use crate::telemetry::Telemetry;
use crate::{catalog, Error};
pub(crate) use options::valid_buckets;
use options::{
    label_value, parse_buckets, parse_duration, valid_cardinality_limit, valid_check_timeout,
    valid_drain, valid_error_rate_window, valid_series_ttl, Opt, FROM_ENV,
};

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
    /// `None`: series never expire.
    pub(crate) series_ttl: Option<Duration>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) otel_readers: Vec<PendingReader>,
    pub(crate) expected_level: LevelFilter,
    pub(crate) process_metrics: bool,
    pub(crate) runtime: Option<tokio::runtime::Handle>,
    pub(crate) exemplars: bool,
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
            cardinality_limit: DEFAULT_CARDINALITY_LIMIT,
            error_rate_window: Duration::from_secs(60),
            drain: Duration::from_secs(5),
            check_timeout: Duration::from_millis(800),
            rules: Rules::dchat_defaults(),
            series_ttl: Some(DEFAULT_SERIES_TTL),
            clock: Arc::new(SystemClock::new()),
            otel_readers: Vec::new(),
            expected_level: LevelFilter::INFO,
            process_metrics: true,
            runtime: None,
            exemplars: false,
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

    /// How long a series may go without an update before it leaves the exposition and frees its
    /// place under the cardinality limit (default 10 minutes; `Duration::ZERO`: never). An open
    /// span's gauge series never expires; a series that comes back starts again from zero,
    /// which Prometheus' `rate()` and `increase()` treat as a counter reset.
    pub fn with_series_ttl(mut self, ttl: Duration) -> Self {
        self.series_ttl = (!ttl.is_zero()).then_some(ttl);
        self
    }

    /// The clock expiry reads (default the system's monotonic clock); tests pass a
    /// [`ManualClock`](crate::ManualClock) to move time without sleeping.
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// An OpenTelemetry metric reader (an OTLP exporter's periodic reader, say) that sees the
    /// same metrics as `/metrics` (see the crate docs, "OpenTelemetry"). The first `Telemetry`
    /// built from this builder (or a clone of it) takes the reader.
    pub fn with_otel_reader<R: opentelemetry_sdk::metrics::reader::MetricReader>(
        mut self,
        reader: R,
    ) -> Self {
        self.otel_readers.push(PendingReader::new(reader));
        self
    }

    /// The least severe level the conventions are emitted at (default INFO): `/health` warns
    /// when the process-wide maximum level is below it, since such events never reach the layer.
    pub fn with_expected_level(mut self, level: LevelFilter) -> Self {
        self.expected_level = level;
        self
    }

    /// Whether `/metrics` carries the standard `process_*` metrics (default on; Linux only).
    pub fn with_process_metrics(mut self, on: bool) -> Self {
        self.process_metrics = on;
        self
    }

    /// Reports this tokio runtime's metrics (`tokio_runtime_*`): workers, alive tasks, global
    /// queue depth and per-worker busy time.
    pub fn with_tokio_runtime(mut self, handle: tokio::runtime::Handle) -> Self {
        self.runtime = Some(handle);
        self
    }

    /// Whether histogram buckets and counters recorded inside a span with an OpenTelemetry trace
    /// context (tracing-opentelemetry's layer beside this one) keep exemplars for OpenMetrics
    /// scrapes (default off: turn it on where that layer is installed). Off, it costs nothing;
    /// on, each matched event reads the thread's OpenTelemetry context once (a few nanoseconds
    /// without a context, more with one: see benches/README.md).
    pub fn with_exemplars(mut self, on: bool) -> Self {
        self.exemplars = on;
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
        for &opt in FROM_ENV {
            let Some(var) = opt.var() else { continue };
            let Some(v) = lookup(var) else { continue };
            if self.set_from_env(opt, &v).is_none() {
                return Err(Error::InvalidEnv {
                    variable: var,
                    value: v,
                    expected: opt.form(),
                });
            }
        }
        Ok(self)
    }

    /// Parses `v` into `opt` and checks it; `None` when it is not of the accepted form.
    fn set_from_env(&mut self, opt: Opt, v: &str) -> Option<()> {
        match opt {
            Opt::Addr => self.addr = v.trim().parse().ok()?,
            Opt::Service => self.service = label_value(v)?,
            Opt::NodeId => self.node_id = Some(label_value(v)?),
            Opt::ConstLabels => {
                for pair in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let (name, value) = pair.split_once('=')?;
                    let name = name.trim();
                    let value = label_value(value)?;
                    if !self.usable_const_label_name(name) {
                        return None;
                    }
                    self.const_labels.retain(|(n, _)| n != name);
                    self.const_labels.push((name.to_owned(), value));
                }
            }
            Opt::LatencyBuckets | Opt::DbBuckets => {
                let buckets = parse_buckets(v).filter(|b| valid_buckets(b))?;
                let metric = if opt == Opt::LatencyBuckets {
                    catalog::MESSAGE_LATENCY.name
                } else {
                    catalog::DB_QUERY_DURATION.name
                };
                self.buckets.push((metric.to_owned(), buckets));
            }
            Opt::CardinalityLimit => {
                self.cardinality_limit = v
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| valid_cardinality_limit(*n))?;
            }
            Opt::ErrorRateWindow => {
                self.error_rate_window =
                    parse_duration(v).filter(|d| valid_error_rate_window(*d))?;
            }
            Opt::Drain => self.drain = parse_duration(v).filter(|d| valid_drain(*d))?,
            Opt::SeriesTtl => {
                let d = parse_duration(v)?;
                let ttl = (!d.is_zero()).then_some(d);
                self.series_ttl = Some(ttl).filter(|t| valid_series_ttl(*t))?;
            }
            Opt::CheckTimeout | Opt::Buckets => return None,
        }
        Some(())
    }

    /// Every environment variable the builder reads, with its accepted form.
    #[must_use]
    pub fn env_vars() -> Vec<(&'static str, String)> {
        FROM_ENV
            .iter()
            .filter_map(|o| Some((o.var()?, o.form())))
            .collect()
    }

    /// Checks every option (with the same checks the environment's values pass).
    fn validate(&self) -> Result<(), Error> {
        let bad = |opt: Opt, what: String| {
            Err(Error::InvalidConfig {
                option: opt.option(),
                reason: format!("{what} is not {}", opt.form()),
            })
        };
        if !valid_cardinality_limit(self.cardinality_limit) {
            return bad(Opt::CardinalityLimit, self.cardinality_limit.to_string());
        }
        if !valid_error_rate_window(self.error_rate_window) {
            return bad(
                Opt::ErrorRateWindow,
                format!("{:?}", self.error_rate_window),
            );
        }
        if !valid_drain(self.drain) {
            return bad(Opt::Drain, format!("{:?}", self.drain));
        }
        if !valid_series_ttl(self.series_ttl) {
            return bad(Opt::SeriesTtl, format!("{:?}", self.series_ttl));
        }
        if !valid_check_timeout(self.check_timeout) {
            return bad(Opt::CheckTimeout, format!("{:?}", self.check_timeout));
        }
        for (name, value) in self.all_const_labels() {
            if !self.usable_const_label_name(&name) {
                return Err(Error::InvalidConfig {
                    option: Opt::ConstLabels.option(),
                    reason: format!("{name:?} is not a valid label name, or is reserved, or is a label of a rule or of a built-in metric"),
                });
            }
            if label_value(&value).is_none() {
                return bad(Opt::ConstLabels, format!("the value of {name:?}"));
            }
        }
        for (metric, buckets) in &self.buckets {
            if !valid_buckets(buckets) {
                return bad(Opt::Buckets, format!("{buckets:?} (buckets of {metric})"));
            }
            if !self
                .rules
                .rules
                .iter()
                .any(|r| &r.metric.name == metric && !r.metric.buckets.is_empty())
            {
                return Err(Error::InvalidConfig {
                    option: Opt::Buckets.option(),
                    reason: format!("{metric} is not a histogram of the rules"),
                });
            }
        }
        Ok(())
    }

    /// Whether `name` can be a constant label: valid, not reserved, not a rule's label nor a
    /// built-in metric's (`metric`, `reason`, `check`): a sample must not carry a name twice.
    fn usable_const_label_name(&self, name: &str) -> bool {
        is_valid_label_name(name)
            && name != "otel_metric_overflow"
            && !catalog::CATALOG.iter().any(|m| m.labels.contains(&name))
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
