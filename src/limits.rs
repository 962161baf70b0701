//! Every fixed limit of the crate, in one place.
//!
//! Each limit is enforced where input enters: rules are rejected by
//! [`RuleBuilder::build`](crate::RuleBuilder::build) and [`Rules`](crate::Rules) validation
//! (with [`Error::InvalidRule`](crate::Error::InvalidRule) naming the limit), configuration by
//! the builder (with [`Error::InvalidConfig`](crate::Error::InvalidConfig) or
//! [`Error::InvalidEnv`](crate::Error::InvalidEnv)), and values on the hot path by a documented,
//! counted fallback (a capped label value, a folded series).

use std::time::Duration;

// ---------------------------------------------------------------- label values and rules

/// Longest label value kept, in bytes; longer values are cut on a character boundary.
pub const MAX_LABEL_VALUE_LEN: usize = 128;

/// Labels one metric may have (besides the constant labels): a rule with more is rejected.
pub const MAX_LABELS: usize = 8;

/// Bucket bounds one histogram may have (a rule's or an environment override's); more is
/// rejected. Every bucket is a series per label set, so this also bounds a histogram's
/// cardinality.
pub const MAX_BUCKETS: usize = 64;

/// The longest delivery latency the default rules record, in seconds: a `message.received`
/// whose latency is negative or above it (a peer's clock far off, or a message stored for
/// later) is dropped and counted in `dchat_telemetry_values_dropped_total{reason="out_of_range"}`
/// instead of moving the latency SLO.
pub const MAX_LATENCY_SECONDS: f64 = 300.0;

/// Fields one span or event callsite captures (label and value sources together); a rule whose
/// own sources alone exceed it is rejected, and a callsite that several rules make need more
/// captures only its first `MAX_CAPTURES` distinct fields.
pub const MAX_CAPTURES: usize = 16;

/// Open/close gauges (`Measure::SpanActive` rules) one span may move: rules set up so that one
/// span name could match more are rejected.
pub const MAX_SPAN_ACTIVE: usize = 2;

/// Known values one label may be bounded to ([`KnownValues`](crate::KnownValues)).
pub const MAX_KNOWN_VALUES: usize = 1000;

/// Distinct field names that can feed labels, across all rules (they are numbered in a byte).
pub const MAX_LABEL_FIELDS: usize = 254;

/// Label fields one span keeps for itself and its children.
pub(crate) const SPAN_FIELDS: usize = 8;

/// Bytes of label values one span keeps; a value that does not fit is cut.
pub(crate) const SPAN_BYTES: usize = 256;

/// Label fields one event or span looks up in its enclosing spans at once; a label draws on a
/// handful of fields, and one whose fields are past this many takes its fallback.
pub(crate) const INHERITED_FIELDS: usize = 16;

/// 2^53: every integer up to it is exact as an `f64`, the type of Prometheus' samples.
pub(crate) const F64_EXACT_INTEGERS: u64 = 1 << 53;

/// The largest increment an integer counter takes: every count stays exactly representable in
/// Prometheus' float64 samples, and no sum can wrap around in practice.
pub(crate) const MAX_INCREMENT: u64 = F64_EXACT_INTEGERS;

/// Histogram bounds up to this many are searched linearly (in order, the common case of a
/// short bucket list); longer lists by bisection.
pub(crate) const LINEAR_BUCKET_SEARCH: usize = 16;

// ---------------------------------------------------------------- configuration ranges

/// An inclusive range of a configuration option, with the words the error messages use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Range<T> {
    pub(crate) min: T,
    pub(crate) max: T,
}

impl<T: PartialOrd + Copy> Range<T> {
    pub(crate) fn contains(&self, v: T) -> bool {
        self.min <= v && v <= self.max
    }
}

/// Series per metric before new label sets fold into the overflow series.
pub(crate) const CARDINALITY_LIMIT: Range<usize> = Range {
    min: 1,
    max: 1_000_000,
};
/// The default cardinality limit (the OpenTelemetry SDK's own default).
pub(crate) const DEFAULT_CARDINALITY_LIMIT: usize = 2000;

/// The trailing window of `dchat_error_rate`, in whole seconds.
pub(crate) const ERROR_RATE_WINDOW: Range<Duration> = Range {
    min: Duration::from_secs(1),
    max: Duration::from_secs(3600),
};

/// How long `/metrics` keeps answering after shutdown begins.
pub(crate) const DRAIN: Range<Duration> = Range {
    min: Duration::ZERO,
    max: MAX_DRAIN,
};

/// Time the liveness checks may take.
pub(crate) const CHECK_TIMEOUT: Range<Duration> = Range {
    min: Duration::from_millis(1),
    max: Duration::from_secs(60),
};

/// How long a series may go without an update before it leaves the exposition (`0` = never,
/// else within this range).
pub(crate) const SERIES_TTL: Range<Duration> = Range {
    min: Duration::from_secs(1),
    max: Duration::from_secs(30 * 24 * 3600),
};
/// The default series TTL; see the README ("A series' lifetime") for why 10 minutes.
pub(crate) const DEFAULT_SERIES_TTL: Duration = Duration::from_secs(600);

/// Samples the rules' series may carry in one scrape, node-wide (a histogram series counts its
/// buckets, `+Inf`, `_sum` and `_count`): past it, new label sets fold into their metric's
/// overflow series. Prometheus drops a whole scrape that carries more than its `sample_limit`.
pub(crate) const SAMPLE_BUDGET: Range<usize> = Range {
    min: 100,
    max: 10_000_000,
};
/// The default sample budget: under the shipped ServiceMonitor's `sampleLimit` of 20000, with
/// room for the self-metrics, the process and the tokio runtime metrics (`monitoring/check`
/// compares the two through `tests/data/defaults.tsv`).
pub(crate) const DEFAULT_SAMPLE_BUDGET: usize = 15_000;

/// How long the value of an expired counter or histogram is remembered for its label set's
/// return: longer than every range window of the shipped alerts (the longest is 3 days), so
/// that a quiet label set's return is counted by each of them. Each metric also remembers at
/// most as many expired series as its cardinality limit, forgetting the oldest first.
pub(crate) const REMEMBERED_FOR: Duration = Duration::from_secs(7 * 24 * 3600);

/// Series limit of the self-metrics (bounded by the program: one per metric, reason or check).
pub(crate) const SELF_METRIC_LIMIT: usize = 10_000;

// ---------------------------------------------------------------- per-thread and shared tables

/// Callsites whose plans are found without a lock; past half of it, a locked overflow map.
pub(crate) const PLAN_SLOTS: usize = 8192;

/// Series each thread keeps in its cache (found without touching shared memory); when full,
/// the cache is emptied and refills from the metrics' tables.
pub(crate) const THREAD_SERIES_CACHE: usize = 4096;

/// Series each callsite's action keeps for a fast path (found by comparing values, before any
/// hash or thread-local): enough for one value per thread of a small pool, or the few values
/// most callsites have. A callsite that meets more values than this goes to the threads' caches.
pub(crate) const CALLSITE_SERIES: usize = 8;

/// Spans each thread keeps entered per layer before the layer falls back to the registry.
pub(crate) const MAX_ENTERED: usize = 128;

/// Span cells kept per thread, and for the whole process, for reuse.
pub(crate) const SPAN_CELLS_PER_THREAD: usize = 64;
pub(crate) const SPAN_CELLS_SHARED: usize = 4096;

/// Shards of a layer's span table.
pub(crate) const SPAN_TABLE_SHARDS: usize = 64;

/// Shortest time between two expiry sweeps of one metric triggered by new series at its limit
/// (a burst of distinct values must not sweep on every event).
pub(crate) const SWEEP_AT_LIMIT_EVERY: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------- the HTTP endpoint

/// Largest request body accepted (a scrape or probe has none).
pub const MAX_BODY: usize = 4 * 1024;
/// Largest request head (request line plus headers) accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// Time a client has to send a request's headers (and, over TLS, to finish the handshake).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a request may take end to end.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Lifetime of one keep-alive connection (scrapers reconnect).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// Connections served at once; further ones are closed at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// Connections one client (one IPv4 address, or one IPv6 /64) may hold at once; further ones
/// are closed at once. A scraper or a kubelet holds one or two.
pub const MAX_CONNECTIONS_PER_CLIENT: usize = 32;
/// Of [`MAX_CONNECTIONS`], the last ones are kept for clients that hold none yet: once fewer
/// than this many are free, only a client without an open connection gets one, so clients that
/// keep reopening connections cannot lock out a scraper arriving later.
pub const CONNECTIONS_KEPT_FOR_NEW_CLIENTS: usize = 64;
/// Default of how long `/metrics` keeps answering after shutdown begins.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(5);
/// Longest drain accepted.
pub const MAX_DRAIN: Duration = Duration::from_secs(300);
/// Time open connections get to finish after the listener closes. With the default drain,
/// shutdown takes at most [`DEFAULT_DRAIN`] + `CLOSE_GRACE` = 10 s, well within Kubernetes'
/// default `terminationGracePeriodSeconds` of 30 s.
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Kubernetes' default `terminationGracePeriodSeconds`: after it the kubelet sends SIGKILL, so
/// a drain plus [`CLOSE_GRACE`] longer than the pod's grace period is cut short.
pub const KUBERNETES_GRACE_PERIOD: Duration = Duration::from_secs(30);
/// Renders of `/metrics` at once.
pub const RENDERS_AT_ONCE: usize = 2;
/// Scrapes of `/metrics` in flight at once (rendering, or waiting for one of the
/// [`RENDERS_AT_ONCE`] permits); a scrape beyond it is answered 503 at once.
pub const MAX_SCRAPES_IN_FLIGHT: usize = 4;
/// Longest `Accept` header value considered when negotiating the format (longer: text format).
pub const MAX_ACCEPT_LEN: usize = 1024;
/// Longest `Accept-Encoding` header value considered (longer: no compression).
pub const MAX_ACCEPT_ENCODING_LEN: usize = 256;

// ---------------------------------------------------------------- pushes and flushes

/// Time one OTLP push may take, retries and the receiver's answer included.
#[cfg(feature = "otlp")]
pub(crate) const OTLP_TIMEOUT: Range<Duration> = Range {
    min: Duration::from_millis(1),
    max: Duration::from_secs(60),
};
/// Time between two OTLP pushes.
#[cfg(feature = "otlp")]
pub(crate) const OTLP_INTERVAL: Range<Duration> = Range {
    min: Duration::from_millis(100),
    max: Duration::from_secs(3600),
};
/// Headers one OTLP push may carry besides its own.
#[cfg(feature = "otlp")]
pub(crate) const MAX_OTLP_HEADERS: usize = 64;
/// How long the end of [`serve`](crate::Telemetry::serve)'s drain waits for the OpenTelemetry
/// readers' last push (an OTLP push's timeout is 10 s by default); a push still going on after
/// it finishes on its own thread.
pub const FLUSH_WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- the web config

/// Largest web config file, certificate, key or CA file read.
pub const MAX_WEB_CONFIG_FILE: usize = 1024 * 1024;
/// YAML nodes of a web config (aliases counted as what they expand to).
pub const MAX_WEB_CONFIG_NODES: usize = 10_000;
/// Users in `basic_auth_users`.
pub const MAX_USERS: usize = 1000;
/// The highest bcrypt cost accepted: a verification at cost 14 takes about a second of CPU
/// (each step doubles it), and Go's `bcrypt.DefaultCost` is 10.
pub const MAX_BCRYPT_COST: u32 = 14;
/// bcrypt verifications at once (each on a blocking thread); a request that finds them all busy
/// waits at most [`BCRYPT_WAIT`], then is answered 503.
pub const BCRYPTS_AT_ONCE: usize = 1;
/// How long a request waits for a bcrypt verification slot.
pub const BCRYPT_WAIT: Duration = Duration::from_secs(2);
/// Verified credentials remembered (by a SHA-256 of them), so that a scrape every 15 s costs
/// no bcrypt verification after the first.
pub const AUTH_CACHE_ENTRIES: usize = 256;
/// How often, at most, the web config and the files it names are read again to notice a
/// change (on the next connection or request after it).
pub const WEB_CONFIG_RELOAD_CHECK: Duration = Duration::from_secs(1);

// The endpoint's limits agree with each other, and the default shutdown (drain, close grace and
// the last push) fits Kubernetes' default grace period: checked when the crate compiles.
const _: () = {
    assert!(DEFAULT_DRAIN.as_secs() + CLOSE_GRACE.as_secs() < KUBERNETES_GRACE_PERIOD.as_secs());
    assert!(
        DEFAULT_DRAIN.as_secs() + CLOSE_GRACE.as_secs() + FLUSH_WAIT.as_secs()
            < KUBERNETES_GRACE_PERIOD.as_secs()
    );
    assert!(MAX_CONNECTIONS_PER_CLIENT < MAX_CONNECTIONS - CONNECTIONS_KEPT_FOR_NEW_CLIENTS);
    assert!(RENDERS_AT_ONCE <= MAX_SCRAPES_IN_FLIGHT);
};
