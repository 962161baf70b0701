//! The metric catalogue: every metric dchat-telemetry exports by default, as Prometheus scrapes it.
//!
//! This is the one place where names, types, labels, units, help texts and buckets live. The
//! default [`Rules`](crate::Rules) are built from it, `monitoring/` is checked against it (through
//! the golden copy `tests/data/catalog.tsv`), and the self-metrics of the layer and the server are
//! declared here too.

use crate::limits::MAX_BUCKETS;

/// The kind of instrument behind a metric, and so its Prometheus `TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MetricKind {
    /// A monotonic sum (`TYPE counter`); its name ends in `_total`. Integer counts are kept as
    /// exact `u64`; fractional increments make the counter a `f64` one.
    Counter,
    /// A sum that goes up and down (`TYPE gauge`), e.g. open connections.
    UpDownCounter,
    /// The last value recorded (`TYPE gauge`).
    Gauge,
    /// An explicit-bucket histogram (`TYPE histogram`).
    Histogram,
    /// Events per second over a trailing window (`TYPE gauge`), computed at scrape time from a
    /// ring of per-second counts.
    RateGauge,
}

impl MetricKind {
    /// The `# TYPE` word Prometheus shows for this kind.
    #[must_use]
    pub fn prometheus_type(self) -> &'static str {
        FamilyType::of(self).word(false)
    }
}

/// The type of an exposed family: the catalogue's kinds, and the other types another
/// registry's families may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FamilyType {
    Counter,
    Gauge,
    Histogram,
    /// Another registry's summary.
    Summary,
    /// `TYPE info` in OpenMetrics (the family named without `_info`), a gauge in the text format.
    Info,
    /// Another registry's state set: a gauge in the text format.
    StateSet,
    /// `unknown` in OpenMetrics, `untyped` in the text format.
    Unknown,
}

impl FamilyType {
    /// The family type of a metric of `kind`.
    pub(crate) fn of(kind: MetricKind) -> FamilyType {
        match kind {
            MetricKind::Counter => FamilyType::Counter,
            MetricKind::Histogram => FamilyType::Histogram,
            MetricKind::UpDownCounter | MetricKind::Gauge | MetricKind::RateGauge => {
                FamilyType::Gauge
            }
        }
    }

    /// The type a `# TYPE` word names, in either format (`untyped` and `unknown` alike).
    pub(crate) fn from_word(word: &str) -> Option<FamilyType> {
        Some(match word {
            "counter" => FamilyType::Counter,
            "gauge" => FamilyType::Gauge,
            "histogram" => FamilyType::Histogram,
            "summary" => FamilyType::Summary,
            "info" => FamilyType::Info,
            "stateset" => FamilyType::StateSet,
            "unknown" | "untyped" => FamilyType::Unknown,
            _ => return None,
        })
    }

    /// The `# TYPE` word: in OpenMetrics (`openmetrics`), else in the text format 0.0.4.
    pub(crate) fn word(self, openmetrics: bool) -> &'static str {
        match (self, openmetrics) {
            (FamilyType::Counter, _) => "counter",
            (FamilyType::Gauge, _) | (FamilyType::Info | FamilyType::StateSet, false) => "gauge",
            (FamilyType::Histogram, _) => "histogram",
            (FamilyType::Summary, _) => "summary",
            (FamilyType::Info, true) => "info",
            (FamilyType::StateSet, true) => "stateset",
            (FamilyType::Unknown, true) => "unknown",
            (FamilyType::Unknown, false) => "untyped",
        }
    }
}

/// One entry of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricInfo {
    /// The name as scraped (counters end in `_total`).
    pub name: &'static str,
    /// Instrument kind.
    pub kind: MetricKind,
    /// The label names each series carries (besides the operator's constant labels).
    pub labels: &'static [&'static str],
    /// Unit, in words (`seconds`, `messages`); seconds-valued metrics end in `_seconds`.
    pub unit: &'static str,
    /// The `# HELP` text.
    pub help: &'static str,
    /// Histogram bucket upper bounds, when the kind is [`MetricKind::Histogram`].
    pub buckets: &'static [f64],
}

/// A metric as the layer, the store and the OpenTelemetry side know it: a catalogue entry
/// ([`MetricDef::from_info`]) or a user rule's metric.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MetricDef {
    pub(crate) name: String,
    pub(crate) kind: MetricKind,
    pub(crate) unit: String,
    pub(crate) help: String,
    pub(crate) buckets: Vec<f64>,
    pub(crate) label_names: Vec<String>,
}

impl MetricDef {
    pub(crate) fn from_info(info: &MetricInfo) -> Self {
        MetricDef {
            name: info.name.to_owned(),
            kind: info.kind,
            unit: info.unit.to_owned(),
            help: info.help.to_owned(),
            buckets: info.buckets.to_vec(),
            label_names: info.labels.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// Histogram bounds: one to [`MAX_BUCKETS`], finite, strictly increasing (checked for the
/// options' buckets and every rule's).
pub(crate) fn valid_buckets(b: &[f64]) -> bool {
    !b.is_empty()
        && b.len() <= MAX_BUCKETS
        && b.iter().all(|x| x.is_finite())
        && b.windows(2).all(|w| w[0] < w[1])
}

/// Buckets for chat message delivery latency: 1 ms .. 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets for database queries: 0.5 ms .. 5 s.
pub const DB_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Buckets for rendering `/metrics`: 0.5 ms .. 30 s (a render nearing a scrape timeout of 10 or
/// 30 s stays measurable).
pub const SCRAPE_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// `dchat_messages_sent_total{channel}`.
pub const MESSAGES_SENT: MetricInfo = MetricInfo {
    name: "dchat_messages_sent_total",
    kind: MetricKind::Counter,
    labels: &["channel"],
    unit: "messages",
    help: "Chat messages sent by this node.",
    buckets: &[],
};
/// `dchat_messages_received_total{channel}`.
pub const MESSAGES_RECEIVED: MetricInfo = MetricInfo {
    name: "dchat_messages_received_total",
    kind: MetricKind::Counter,
    labels: &["channel"],
    unit: "messages",
    help: "Chat messages received by this node.",
    buckets: &[],
};
/// `dchat_message_latency_seconds{channel}`.
pub const MESSAGE_LATENCY: MetricInfo = MetricInfo {
    name: "dchat_message_latency_seconds",
    kind: MetricKind::Histogram,
    labels: &["channel"],
    unit: "seconds",
    help: "End-to-end delivery latency of received chat messages.",
    buckets: LATENCY_BUCKETS,
};
/// `dchat_relay_connections_active{relay}`.
pub const RELAY_CONNECTIONS: MetricInfo = MetricInfo {
    name: "dchat_relay_connections_active",
    kind: MetricKind::UpDownCounter,
    labels: &["relay"],
    unit: "connections",
    help: "Relay connections currently open.",
    buckets: &[],
};
/// `dchat_database_query_duration_seconds{operation}`.
pub const DB_QUERY_DURATION: MetricInfo = MetricInfo {
    name: "dchat_database_query_duration_seconds",
    kind: MetricKind::Histogram,
    labels: &["operation"],
    unit: "seconds",
    help: "Duration of database queries.",
    buckets: DB_BUCKETS,
};
/// `dchat_messages_send_failed_total{channel}`.
pub const MESSAGES_SEND_FAILED: MetricInfo = MetricInfo {
    name: "dchat_messages_send_failed_total",
    kind: MetricKind::Counter,
    labels: &["channel"],
    unit: "messages",
    help: "Chat messages this node failed to hand to the relay mesh.",
    buckets: &[],
};
/// `dchat_messages_dropped_total{reason}`.
pub const MESSAGES_DROPPED: MetricInfo = MetricInfo {
    name: "dchat_messages_dropped_total",
    kind: MetricKind::Counter,
    labels: &["reason"],
    unit: "messages",
    help: "Chat messages this node received but could not use, by reason (undecodable, say).",
    buckets: &[],
};
/// `dchat_dial_failures_total`.
pub const DIAL_FAILURES: MetricInfo = MetricInfo {
    name: "dchat_dial_failures_total",
    kind: MetricKind::Counter,
    labels: &[],
    unit: "dials",
    help: "Outgoing connections to peers that failed (the peer down, unreachable, or not who it was said to be).",
    buckets: &[],
};
/// `dchat_errors_total{type}`.
pub const ERRORS: MetricInfo = MetricInfo {
    name: "dchat_errors_total",
    kind: MetricKind::Counter,
    labels: &["type"],
    unit: "errors",
    help: "Errors logged at ERROR level, by type.",
    buckets: &[],
};
/// `dchat_error_rate{type}`.
pub const ERROR_RATE: MetricInfo = MetricInfo {
    name: "dchat_error_rate",
    kind: MetricKind::RateGauge,
    labels: &["type"],
    unit: "errors per second",
    help: "Errors per second over the trailing error-rate window, by type.",
    buckets: &[],
};
/// `dchat_telemetry_ready`: 1 when `/ready` would answer 200.
pub const READY: MetricInfo = MetricInfo {
    name: "dchat_telemetry_ready",
    kind: MetricKind::Gauge,
    labels: &[],
    unit: "1",
    help: "1 when every readiness gate is ready and no shutdown has begun, else 0.",
    buckets: &[],
};
/// `dchat_telemetry_health_check_failures_total{check}`.
pub const HEALTH_CHECK_FAILURES: MetricInfo = MetricInfo {
    name: "dchat_telemetry_health_check_failures_total",
    kind: MetricKind::Counter,
    labels: &["check"],
    unit: "failures",
    help: "Liveness checks that failed, panicked or timed out; check=\"telemetry-locks\" counts locks recovered after a panic inside the layer.",
    buckets: &[],
};
/// `dchat_telemetry_label_sets_dropped_total{metric}`.
pub const LABEL_SETS_DROPPED: MetricInfo = MetricInfo {
    name: "dchat_telemetry_label_sets_dropped_total",
    kind: MetricKind::Counter,
    labels: &["metric"],
    unit: "label sets",
    help: "Measurements whose label set was folded into the overflow series because the metric reached its cardinality limit.",
    buckets: &[],
};
/// `dchat_telemetry_values_dropped_total{metric,reason}`.
pub const VALUES_DROPPED: MetricInfo = MetricInfo {
    name: "dchat_telemetry_values_dropped_total",
    kind: MetricKind::Counter,
    labels: &["metric", "reason"],
    unit: "values",
    help:
        "Values the layer could not record (NaN, negative for a counter, wrong type, out of range).",
    buckets: &[],
};
/// `dchat_telemetry_series{metric}`.
pub const SERIES: MetricInfo = MetricInfo {
    name: "dchat_telemetry_series",
    kind: MetricKind::Gauge,
    labels: &["metric"],
    unit: "series",
    help:
        "Live series per metric (the overflow series not counted), against the cardinality limit.",
    buckets: &[],
};
/// `dchat_telemetry_series_expired_total{metric}`.
pub const SERIES_EXPIRED: MetricInfo = MetricInfo {
    name: "dchat_telemetry_series_expired_total",
    kind: MetricKind::Counter,
    labels: &["metric"],
    unit: "series",
    help: "Series removed from the exposition after going without an update for the series TTL.",
    buckets: &[],
};
/// `dchat_telemetry_series_forgotten_total{metric}`.
pub const SERIES_FORGOTTEN: MetricInfo = MetricInfo {
    name: "dchat_telemetry_series_forgotten_total",
    kind: MetricKind::Counter,
    labels: &["metric"],
    unit: "series",
    help: "Remembered values of expired counters and histograms forgotten (past the bound of remembered series or the horizon): such a label set starts again from zero if it returns.",
    buckets: &[],
};
/// `dchat_telemetry_samples`.
pub const SAMPLES: MetricInfo = MetricInfo {
    name: "dchat_telemetry_samples",
    kind: MetricKind::Gauge,
    labels: &[],
    unit: "samples",
    help: "Samples the rules' series (each metric's overflow series reserved) and other registries' families hold, counted against the sample budget.",
    buckets: &[],
};
/// `dchat_telemetry_sample_budget`.
pub const SAMPLE_BUDGET: MetricInfo = MetricInfo {
    name: "dchat_telemetry_sample_budget",
    kind: MetricKind::Gauge,
    labels: &[],
    unit: "samples",
    help: "The node-wide sample budget: past it, new label sets fold into their metric's overflow series.",
    buckets: &[],
};
/// `dchat_telemetry_filter_blocked{reason}`.
pub const FILTER_BLOCKED: MetricInfo = MetricInfo {
    name: "dchat_telemetry_filter_blocked",
    kind: MetricKind::Gauge,
    labels: &["reason"],
    unit: "callsites",
    help: "Above 0 when a tracing filter outside the metrics layer keeps events from it: reason=\"max_level\" is 1 when the process-wide maximum level is below the conventions' level, reason=\"callsites\" counts matched callsites another filter disables, reason=\"not_installed\" is 1 when the layer is in no dispatcher.",
    buckets: &[],
};
/// `dchat_telemetry_scrapes_total{format}`.
pub const SCRAPES: MetricInfo = MetricInfo {
    name: "dchat_telemetry_scrapes_total",
    kind: MetricKind::Counter,
    labels: &["format"],
    unit: "scrapes",
    help: "Scrapes of /metrics served, by format (text or openmetrics).",
    buckets: &[],
};
/// `dchat_telemetry_scrape_duration_seconds`.
pub const SCRAPE_DURATION: MetricInfo = MetricInfo {
    name: "dchat_telemetry_scrape_duration_seconds",
    kind: MetricKind::Histogram,
    labels: &[],
    unit: "seconds",
    help: "Time taken to render /metrics.",
    buckets: SCRAPE_BUCKETS,
};
/// `dchat_telemetry_http_rejected_total{reason}`.
pub const HTTP_REJECTED: MetricInfo = MetricInfo {
    name: "dchat_telemetry_http_rejected_total",
    kind: MetricKind::Counter,
    labels: &["reason"],
    unit: "refusals",
    help: "Requests and connections the endpoint refused: reason=\"in_flight\" (503: scrapes beyond the in-flight limit, or credential checks all busy), \"connections\" (the connection cap), \"per_client\" (one client's connection cap), \"unauthorized\" (401), \"tls\" (a failed TLS handshake).",
    buckets: &[],
};
/// `dchat_telemetry_otlp_export_failures_total`.
pub const OTLP_EXPORT_FAILURES: MetricInfo = MetricInfo {
    name: "dchat_telemetry_otlp_export_failures_total",
    kind: MetricKind::Counter,
    labels: &[],
    unit: "exports",
    help: "OTLP pushes of the metrics that failed (the receiver down, refusing or too slow); 0 when no OTLP push is configured.",
    buckets: &[],
};
/// `dchat_telemetry_registry_families_skipped_total{reason}`.
pub const REGISTRY_FAMILIES_SKIPPED: MetricInfo = MetricInfo {
    name: "dchat_telemetry_registry_families_skipped_total",
    kind: MetricKind::Counter,
    labels: &["reason"],
    unit: "families",
    help: "Families of other metric registries left out of a scrape: reason=\"duplicate\" (a name another family has), \"sample_budget\" (its samples did not fit the sample budget), \"invalid\" (the registry's output could not be read).",
    buckets: &[],
};
/// `dchat_build_info{version,revision}`: always 1, its labels saying what runs (set with
/// [`TelemetryBuilder::with_build_info`](crate::TelemetryBuilder::with_build_info)). A gauge in
/// the text format; OpenMetrics scrapes get it as the `info` family `dchat_build`.
pub const BUILD_INFO: MetricInfo = MetricInfo {
    name: "dchat_build_info",
    kind: MetricKind::Gauge,
    labels: &["version", "revision"],
    unit: "",
    help:
        "The running build: always 1, with the application's version and source revision as labels.",
    buckets: &[],
};
/// `target_info`: always 1, its labels the node's OpenTelemetry resource attributes (dots as
/// underscores: `service_name`, `service_instance_id`, `service_version`, ...). A gauge in the
/// text format; OpenMetrics scrapes get it as the `info` family `target`.
pub const TARGET_INFO: MetricInfo = MetricInfo {
    name: "target_info",
    kind: MetricKind::Gauge,
    labels: &[],
    unit: "",
    help: "Target metadata",
    buckets: &[],
};

/// `process_cpu_seconds_total`.
pub const PROCESS_CPU_SECONDS: MetricInfo = MetricInfo {
    name: "process_cpu_seconds_total",
    kind: MetricKind::Counter,
    labels: &[],
    unit: "seconds",
    help: "Total user and system CPU time spent in seconds.",
    buckets: &[],
};
/// `process_resident_memory_bytes`.
pub const PROCESS_RESIDENT_MEMORY: MetricInfo = MetricInfo {
    name: "process_resident_memory_bytes",
    kind: MetricKind::Gauge,
    labels: &[],
    unit: "bytes",
    help: "Resident memory size in bytes.",
    buckets: &[],
};
/// `process_virtual_memory_bytes`.
pub const PROCESS_VIRTUAL_MEMORY: MetricInfo = MetricInfo {
    name: "process_virtual_memory_bytes",
    kind: MetricKind::Gauge,
    labels: &[],
    unit: "bytes",
    help: "Virtual memory size in bytes.",
    buckets: &[],
};
/// `process_open_fds`.
pub const PROCESS_OPEN_FDS: MetricInfo = MetricInfo {
    name: "process_open_fds",
    kind: MetricKind::Gauge,
    labels: &[],
    unit: "file descriptors",
    help: "Number of open file descriptors.",
    buckets: &[],
};
/// `process_max_fds`.
pub const PROCESS_MAX_FDS: MetricInfo = MetricInfo {
    name: "process_max_fds",
    kind: MetricKind::Gauge,
    labels: &[],
    unit: "file descriptors",
    help: "Maximum number of open file descriptors.",
    buckets: &[],
};
/// `process_start_time_seconds`.
pub const PROCESS_START_TIME: MetricInfo = MetricInfo {
    name: "process_start_time_seconds",
    kind: MetricKind::Gauge,
    labels: &[],
    unit: "seconds",
    help: "Start time of the process since unix epoch in seconds.",
    buckets: &[],
};
/// `process_threads`.
pub const PROCESS_THREADS: MetricInfo = MetricInfo {
    name: "process_threads",
    kind: MetricKind::Gauge,
    labels: &[],
    unit: "threads",
    help: "Number of OS threads in the process.",
    buckets: &[],
};
/// `tokio_runtime_workers`.
pub const TOKIO_WORKERS: MetricInfo = MetricInfo {
    name: "tokio_runtime_workers",
    kind: MetricKind::Gauge,
    labels: &[],
    unit: "threads",
    help: "Worker threads of the tokio runtime.",
    buckets: &[],
};
/// `tokio_runtime_alive_tasks`.
pub const TOKIO_ALIVE_TASKS: MetricInfo = MetricInfo {
    name: "tokio_runtime_alive_tasks",
    kind: MetricKind::Gauge,
    labels: &[],
    unit: "tasks",
    help: "Tasks alive in the tokio runtime (spawned and not yet finished).",
    buckets: &[],
};
/// `tokio_runtime_global_queue_depth`.
pub const TOKIO_GLOBAL_QUEUE_DEPTH: MetricInfo = MetricInfo {
    name: "tokio_runtime_global_queue_depth",
    kind: MetricKind::Gauge,
    labels: &[],
    unit: "tasks",
    help: "Tasks waiting in the tokio runtime's global (injection) queue.",
    buckets: &[],
};
/// `tokio_runtime_busy_seconds_total{worker}`.
pub const TOKIO_BUSY_SECONDS: MetricInfo = MetricInfo {
    name: "tokio_runtime_busy_seconds_total",
    kind: MetricKind::Counter,
    labels: &["worker"],
    unit: "seconds",
    help: "Time each tokio worker thread has spent busy (not parked), in seconds.",
    buckets: &[],
};

/// The whole catalogue, in the order of `tests/data/catalog.tsv`.
pub const CATALOG: &[MetricInfo] = &[
    MESSAGES_SENT,
    MESSAGES_RECEIVED,
    MESSAGES_SEND_FAILED,
    MESSAGES_DROPPED,
    DIAL_FAILURES,
    MESSAGE_LATENCY,
    RELAY_CONNECTIONS,
    DB_QUERY_DURATION,
    ERRORS,
    ERROR_RATE,
    READY,
    HEALTH_CHECK_FAILURES,
    LABEL_SETS_DROPPED,
    VALUES_DROPPED,
    SERIES,
    SERIES_EXPIRED,
    SERIES_FORGOTTEN,
    SAMPLES,
    SAMPLE_BUDGET,
    FILTER_BLOCKED,
    SCRAPES,
    SCRAPE_DURATION,
    HTTP_REJECTED,
    OTLP_EXPORT_FAILURES,
    REGISTRY_FAMILIES_SKIPPED,
    BUILD_INFO,
    TARGET_INFO,
    PROCESS_CPU_SECONDS,
    PROCESS_RESIDENT_MEMORY,
    PROCESS_VIRTUAL_MEMORY,
    PROCESS_OPEN_FDS,
    PROCESS_MAX_FDS,
    PROCESS_START_TIME,
    PROCESS_THREADS,
    TOKIO_WORKERS,
    TOKIO_ALIVE_TASKS,
    TOKIO_GLOBAL_QUEUE_DEPTH,
    TOKIO_BUSY_SECONDS,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        for m in CATALOG {
            assert!(crate::labels::is_valid_metric_name(m.name), "{}", m.name);
            assert_eq!(
                m.kind == MetricKind::Counter,
                m.name.ends_with(crate::labels::COUNTER_SUFFIX),
                "{}",
                m.name
            );
            let base = crate::labels::counter_family(m.name);
            assert_eq!(
                m.unit == "seconds",
                base.ends_with("_seconds"),
                "{}",
                m.name
            );
            assert_eq!(
                m.kind == MetricKind::Histogram,
                !m.buckets.is_empty(),
                "{}",
                m.name
            );
            assert!(m.buckets.windows(2).all(|w| w[0] < w[1]), "{}", m.name);
        }
    }
}
