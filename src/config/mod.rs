//! Configuration: the builder, and the environment variables that override it ([`options`]
//! holds each option's variable, range, accepted form and check).

mod options;
pub(crate) mod otel_env;
mod sources;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tracing_core::LevelFilter;

use crate::build_info::BuildInfo;
use crate::catalog::valid_buckets;
use crate::clock::{Clock, SystemClock};
use crate::exposition::foreign::Source;
use crate::labels::is_valid_label_name;
use crate::limits::{
    DEFAULT_CARDINALITY_LIMIT, DEFAULT_DRAIN, DEFAULT_SAMPLE_BUDGET, DEFAULT_SERIES_TTL,
};
use crate::otel::PendingReader;
use crate::rules::{KnownValues, Rules};
use crate::telemetry::Telemetry;
use crate::{catalog, Error};
use options::{
    label_value, parse_bool, parse_buckets, parse_duration, valid_cardinality_limit,
    valid_check_timeout, valid_drain, valid_error_rate_window, valid_sample_budget,
    valid_series_ttl, Opt, FROM_ENV,
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
    pub(crate) role: Option<String>,
    pub(crate) const_labels: Vec<(String, String)>,
    pub(crate) buckets: Vec<(String, Vec<f64>)>,
    pub(crate) cardinality_limit: usize,
    pub(crate) error_rate_window: Duration,
    pub(crate) drain: Duration,
    pub(crate) check_timeout: Duration,
    pub(crate) rules: Rules,
    /// `None`: series never expire.
    pub(crate) series_ttl: Option<Duration>,
    pub(crate) sample_budget: usize,
    pub(crate) created_timestamps: bool,
    /// Labels bounded to known values in every rule that has them.
    pub(crate) known: Vec<(String, KnownValues)>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) otel_readers: Vec<PendingReader>,
    pub(crate) expected_level: LevelFilter,
    pub(crate) process_metrics: bool,
    pub(crate) runtime: Option<tokio::runtime::Handle>,
    pub(crate) exemplars: bool,
    /// The web config file (TLS, basic auth), if any.
    pub(crate) web_config: Option<PathBuf>,
    /// Whether `/health` and `/ready` need the web config's credentials too.
    pub(crate) probe_auth: bool,
    /// What build runs (`dchat_build_info`, `service.version`).
    pub(crate) build_info: BuildInfo,
    /// Further resource attributes (`OTEL_RESOURCE_ATTRIBUTES`, `with_resource_attribute`).
    pub(crate) resource_attributes: Vec<(String, String)>,
    /// Other registries whose families `/metrics` shows.
    pub(crate) sources: Vec<Source>,
    /// The OTLP push, if any.
    #[cfg(feature = "otlp")]
    pub(crate) otlp: Option<crate::otlp::OtlpConfig>,
    /// An OTLP variable that asked for a push this build cannot make.
    #[cfg(not(feature = "otlp"))]
    pub(crate) otlp_requested: Option<&'static str>,
    read_env: bool,
}

impl Default for TelemetryBuilder {
    fn default() -> Self {
        TelemetryBuilder {
            addr: SocketAddr::from(([0, 0, 0, 0], 9090)),
            service: "dchat".into(),
            node_id: None,
            role: None,
            const_labels: Vec::new(),
            buckets: Vec::new(),
            cardinality_limit: DEFAULT_CARDINALITY_LIMIT,
            error_rate_window: Duration::from_secs(60),
            drain: DEFAULT_DRAIN,
            check_timeout: Duration::from_millis(800),
            rules: Rules::dchat_defaults(),
            series_ttl: Some(DEFAULT_SERIES_TTL),
            sample_budget: DEFAULT_SAMPLE_BUDGET,
            created_timestamps: false,
            known: Vec::new(),
            clock: Arc::new(SystemClock::new()),
            otel_readers: Vec::new(),
            expected_level: LevelFilter::INFO,
            process_metrics: true,
            runtime: None,
            exemplars: false,
            web_config: None,
            probe_auth: false,
            build_info: BuildInfo::default(),
            resource_attributes: Vec::new(),
            sources: Vec::new(),
            #[cfg(feature = "otlp")]
            otlp: None,
            #[cfg(not(feature = "otlp"))]
            otlp_requested: None,
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

    /// The `role` constant label (none by default): what part the node plays, so that alerts
    /// can be scoped to the nodes that can have the condition. dchat's roles are `relay`,
    /// `validator` and `user`.
    pub fn with_role(mut self, role: impl Into<String>) -> Self {
        self.role = Some(role.into());
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
    ///
    /// Shutdown then takes up to the drain plus
    /// [`CLOSE_GRACE`](crate::limits::CLOSE_GRACE) (5 s) for open connections: keep the two
    /// under the pod's `terminationGracePeriodSeconds` (Kubernetes' default is 30 s), or the
    /// kubelet's SIGKILL cuts the drain short. A second SIGTERM or Ctrl-C during the drain ends
    /// it at once.
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
    /// place under the cardinality limit and the sample budget (default 10 minutes;
    /// `Duration::ZERO`: never). An open span's gauge series never expires; a counter or
    /// histogram that comes back continues from the value it had (see the README, "A series'
    /// lifetime", for what Prometheus sees).
    pub fn with_series_ttl(mut self, ttl: Duration) -> Self {
        self.series_ttl = (!ttl.is_zero()).then_some(ttl);
        self
    }

    /// Samples the rules' series may carry in one scrape, node-wide (default 15000, under the
    /// shipped ServiceMonitor's `sampleLimit` of 20000): a histogram series counts its buckets,
    /// `+Inf`, `_sum` and `_count`. Past it, new label sets fold into their metric's overflow
    /// series and `/health` warns, so that no flood of label values makes Prometheus drop the
    /// node's whole scrape.
    pub fn with_sample_budget(mut self, samples: usize) -> Self {
        self.sample_budget = samples;
        self
    }

    /// Whether OpenMetrics scrapes carry a `_created` line for each counter and histogram series
    /// (default off). Prometheus 3 with the `created-timestamp-zero-ingestion` feature reads
    /// them as the series' start and counts its first increment; without that feature (and on
    /// Prometheus 2) each line is stored as one more series, so leave it off there. On, each
    /// counter and histogram series costs one more sample of the budget.
    pub fn with_created_timestamps(mut self, on: bool) -> Self {
        self.created_timestamps = on;
        self
    }

    /// Bounds label `label` of every rule (and field-prefix metric) that has it to `known`:
    /// any other value is recorded as `known.other()`, so that a label whose values arrive
    /// from the network (a channel name read from a received message) cannot choose the
    /// node's series. Counters and histograms whose labels are all bounded start at 0 for every
    /// value, and keep those series (see [`KnownValues`]).
    ///
    /// ```
    /// use dchat_telemetry::{KnownValues, Telemetry};
    ///
    /// let telemetry = Telemetry::builder()
    ///     .with_known_values("channel", KnownValues::new(["general", "random"], "other"))
    ///     .without_env()
    ///     .build()?;
    /// let text = telemetry.render()?;
    /// assert!(text.contains(r#"dchat_messages_send_failed_total{channel="general",service="dchat"} 0"#));
    /// assert!(text.contains(r#"dchat_messages_send_failed_total{channel="other",service="dchat"} 0"#));
    /// # Ok::<(), dchat_telemetry::Error>(())
    /// ```
    pub fn with_known_values(mut self, label: impl Into<String>, known: KnownValues) -> Self {
        crate::rules::bind_known(&mut self.known, label.into(), known);
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

    /// Serves the endpoint as a web config file in Prometheus exporter-toolkit's format says
    /// (the file Go exporters take with `--web.config.file`): TLS (`tls_server_config`: a
    /// certificate, optionally client certificates verified against a CA, a minimum TLS
    /// version) and bcrypt basic auth (`basic_auth_users`). Also `DCHAT_TELEMETRY_WEB_CONFIG`.
    ///
    /// The file is read and checked at [`build`](TelemetryBuilder::build): a key or value this
    /// crate does not implement is an [`Error::WebConfig`] naming it, never ignored. While
    /// serving, the file and the certificate, key and CA files it names are read again when they
    /// change (checked at most once a second, on the next connection or request), so a rotated
    /// certificate or a changed password takes effect without a restart; a changed file that
    /// does not load leaves the previous configuration in force, and `/health` warns.
    ///
    /// Basic auth applies to [`Telemetry::router`] wherever it is served; TLS applies to
    /// [`Telemetry::serve`] and its siblings (a router merged into an application of its own is
    /// served over whatever that application's server does).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), dchat_telemetry::Error> {
    /// // web-config.yml, beside tls.crt and tls.key (a Kubernetes TLS Secret's names):
    /// //   tls_server_config:
    /// //     cert_file: tls.crt
    /// //     key_file: tls.key
    /// //   basic_auth_users:
    /// //     prometheus: $2y$10$...   # htpasswd -nbBC 10 prometheus PASSWORD
    /// let telemetry = dchat_telemetry::Telemetry::builder()
    ///     .with_web_config("/etc/dchat/web-config.yml")
    ///     .build()?;
    /// telemetry.serve().await
    /// # }
    /// ```
    pub fn with_web_config(mut self, path: impl Into<PathBuf>) -> Self {
        self.web_config = Some(path.into());
        self
    }

    /// Whether `/health` and `/ready` also need the web config's basic auth credentials
    /// (default `false`: Kubernetes' probes carry none, and the two reports hold no label
    /// values). `/metrics` always needs them when `basic_auth_users` is set. Also
    /// `DCHAT_TELEMETRY_PROBE_AUTH`.
    pub fn with_probe_auth(mut self, on: bool) -> Self {
        self.probe_auth = on;
        self
    }

    /// Ignore the environment variables: the `DCHAT_TELEMETRY_*` ones and the OpenTelemetry
    /// ones the builder reads (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, and with the
    /// `otlp` feature `OTEL_EXPORTER_OTLP_*`, `OTEL_METRICS_EXPORTER`,
    /// `OTEL_METRIC_EXPORT_INTERVAL`; see the README for what opentelemetry-otlp itself reads).
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
            self.apply_env_os(|k| std::env::var_os(k))?
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
    pub fn apply_env(self, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        self.apply_env_os(|k| lookup(k).map(OsString::from))
    }

    /// Applies overrides from `lookup`, which returns values as the operating system holds them
    /// (`std::env::var_os` is what [`build`](TelemetryBuilder::build) uses): a value that is not
    /// valid UTF-8 is an error, never skipped.
    ///
    /// ```
    /// let builder = dchat_telemetry::Telemetry::builder().apply_env_os(|k| std::env::var_os(k))?;
    /// # let _ = builder;
    /// # Ok::<(), dchat_telemetry::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidEnv`] naming the first variable whose value is not valid UTF-8 or not of
    /// its accepted form.
    pub fn apply_env_os(
        mut self,
        lookup: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Self, Error> {
        // The OpenTelemetry variables first: the DCHAT_TELEMETRY_* ones override them.
        self.apply_otel_env(&lookup)?;
        for &opt in FROM_ENV {
            let Some(var) = opt.var() else { continue };
            let Some(v) = lookup(var) else { continue };
            let v = match v.into_string() {
                Ok(v) => v,
                Err(raw) => {
                    return Err(Error::InvalidEnv {
                        variable: var,
                        value: raw.to_string_lossy().into_owned(),
                        expected: format!("valid UTF-8: {}", opt.form()),
                    })
                }
            };
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
            Opt::Role => self.role = Some(label_value(v)?),
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
            Opt::WebConfig => {
                let path = v.trim();
                if path.is_empty() {
                    return None;
                }
                self.web_config = Some(PathBuf::from(path));
            }
            Opt::ProbeAuth => self.probe_auth = parse_bool(v)?,
            Opt::SampleBudget => {
                self.sample_budget = v.trim().parse().ok().filter(|n| valid_sample_budget(*n))?;
            }
            Opt::CreatedTimestamps => self.created_timestamps = parse_bool(v)?,
            Opt::Channels => {
                let names: Vec<&str> = v
                    .split(',')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .collect();
                let known = KnownValues::new(names, "other");
                known.check().ok()?;
                self.known.retain(|(l, _)| l != "channel");
                self.known.push(("channel".to_owned(), known));
            }
            Opt::CheckTimeout | Opt::Buckets | Opt::KnownValues => return None,
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
        if !valid_sample_budget(self.sample_budget) {
            return bad(Opt::SampleBudget, self.sample_budget.to_string());
        }
        for (label, known) in &self.known {
            if let Err(reason) = known.check() {
                return Err(Error::InvalidConfig {
                    option: Opt::KnownValues.option(),
                    reason: format!("known values of {label:?}: {reason}"),
                });
            }
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
        self.validate_additions()?;
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

    /// Checks the build info, the resource attributes, the registries and the OTLP push.
    fn validate_additions(&self) -> Result<(), Error> {
        let consts = self.all_const_labels();
        if let Some(reason) = self.build_info.problem(&consts) {
            return Err(Error::InvalidConfig {
                option: "build_info",
                reason,
            });
        }
        for (key, value) in &self.resource_attributes {
            if key.trim().is_empty() || label_value(value).is_none() {
                return Err(Error::InvalidConfig {
                    option: "resource_attribute",
                    reason: format!(
                        "{key:?}={value:?}: a non-empty key and a non-empty value of at most \
                         {} bytes",
                        crate::limits::MAX_LABEL_VALUE_LEN
                    ),
                });
            }
        }
        for (i, s) in self.sources.iter().enumerate() {
            if s.name.trim().is_empty() || self.sources[..i].iter().any(|o| o.name == s.name) {
                return Err(Error::InvalidConfig {
                    option: "metrics_text",
                    reason: format!("registry name {:?} is empty or given twice", s.name),
                });
            }
        }
        #[cfg(feature = "otlp")]
        if let Some(otlp) = &self.otlp {
            otlp.validate()?;
        }
        Ok(())
    }

    /// Whether `name` can be a constant label: valid, not reserved, not a rule's label nor a
    /// built-in metric's (`metric`, `reason`, `check`): a sample must not carry a name twice.
    fn usable_const_label_name(&self, name: &str) -> bool {
        is_valid_label_name(name)
            && name != crate::labels::OVERFLOW_LABEL
            && !catalog::CATALOG.iter().any(|m| m.labels.contains(&name))
            && !self
                .rules
                .rules
                .iter()
                .any(|r| r.metric.label_names.iter().any(|l| l == name))
            && !self.rules.prefix_labels.iter().any(|l| l == name)
    }

    /// `service`, `node_id`, `role` and the further constant labels, in that order, with values as
    /// exported (trimmed, control characters replaced, capped). `validate` rejects empty ones.
    pub(crate) fn all_const_labels(&self) -> Vec<(String, String)> {
        let clean = |v: &str| label_value(v).unwrap_or_default();
        let mut out = vec![("service".to_owned(), clean(&self.service))];
        if let Some(id) = &self.node_id {
            out.push(("node_id".to_owned(), clean(id)));
        }
        if let Some(role) = &self.role {
            out.push(("role".to_owned(), clean(role)));
        }
        for (n, v) in &self.const_labels {
            out.retain(|(m, _)| m != n);
            out.push((n.clone(), clean(v)));
        }
        out
    }

    /// The rules with bucket overrides and known values applied.
    pub(crate) fn effective_rules(&self) -> Rules {
        let mut rules = self.rules.clone();
        for (label, known) in &self.known {
            rules = rules.with_known_values(label.clone(), known.clone());
        }
        for (metric, buckets) in &self.buckets {
            for r in rules.rules.iter_mut().filter(|r| &r.metric.name == metric) {
                r.metric.buckets = buckets.clone();
            }
        }
        rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{CLOSE_GRACE, DRAIN};

    /// The defaults `monitoring/check` compares the shipped files with (the ServiceMonitor's
    /// `sampleLimit` against the sample budget, the drain, close grace and last push against
    /// Kubernetes' grace period),
    /// as the table kept in `tests/data/defaults.tsv`.
    fn defaults_tsv() -> String {
        let b = TelemetryBuilder::default();
        let rows: [(&str, u128); 8] = [
            ("sample_budget", b.sample_budget as u128),
            ("cardinality_limit", b.cardinality_limit as u128),
            (
                "series_ttl_seconds",
                b.series_ttl.map_or(0, |t| u128::from(t.as_secs())),
            ),
            ("drain_seconds", u128::from(b.drain.as_secs())),
            ("drain_max_seconds", u128::from(DRAIN.max.as_secs())),
            ("close_grace_seconds", u128::from(CLOSE_GRACE.as_secs())),
            (
                "flush_wait_seconds",
                u128::from(crate::limits::FLUSH_WAIT.as_secs()),
            ),
            ("check_timeout_ms", b.check_timeout.as_millis()),
        ];
        let mut out = String::from("# name\tvalue\n");
        for (name, value) in rows {
            out.push_str(&format!("{name}\t{value}\n"));
        }
        out
    }

    #[test]
    fn defaults_tsv_matches_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/defaults.tsv");
        let ours = defaults_tsv();
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(path, &ours).unwrap();
        }
        let golden = std::fs::read_to_string(path).unwrap_or_default();
        assert_eq!(
            golden, ours,
            "update tests/data/defaults.tsv (UPDATE_GOLDEN=1)"
        );
    }
}
