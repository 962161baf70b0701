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

/// Fields one span or event callsite captures (label and value sources together); a rule whose
/// own sources alone exceed it is rejected, and a callsite that several rules make need more
/// captures only its first `MAX_CAPTURES` distinct fields.
pub const MAX_CAPTURES: usize = 16;

/// Open/close gauges (`Measure::SpanActive` rules) one span may move: rules set up so that one
/// span name could match more are rejected.
pub const MAX_SPAN_ACTIVE: usize = 2;

/// Distinct field names that can feed labels, across all rules (they are numbered in a byte).
pub const MAX_LABEL_FIELDS: usize = 254;

/// Label fields one span keeps for itself and its children.
pub(crate) const SPAN_FIELDS: usize = 8;

/// Bytes of label values one span keeps; a value that does not fit is cut.
pub(crate) const SPAN_BYTES: usize = 256;

/// The largest increment an integer counter takes (2^53): every count stays exactly
/// representable in Prometheus' float64 samples, and no sum can wrap around in practice.
pub(crate) const MAX_INCREMENT: u64 = 1 << 53;

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
    max: Duration::from_secs(300),
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
pub(crate) const MAX_BODY: usize = 4 * 1024;
/// Largest request head (request line plus headers) accepted.
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// Time a client has to send a request's headers.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a request may take end to end.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Lifetime of one keep-alive connection (scrapers reconnect).
pub(crate) const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// Connections served at once; further ones are closed at once.
pub(crate) const MAX_CONNECTIONS: usize = 1024;
/// Time open connections get to finish after the listener closes.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Renders of `/metrics` at once; further scrapes queue.
pub(crate) const RENDERS_AT_ONCE: usize = 2;
/// Longest `Accept` header value considered when negotiating the format (longer: text format).
pub(crate) const MAX_ACCEPT_LEN: usize = 1024;
