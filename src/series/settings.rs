//! How a [`Metrics`](super::Metrics) makes metrics: the node's limits, TTL, clock and budget,
//! and which metrics are the crate's own (exempt from the limits that bound what dchat logs).

use std::sync::Arc;
use std::time::Duration;

use super::budget::SampleBudget;
use crate::catalog;
use crate::clock::Clock;

/// The layer's and the server's own metrics: their series are bounded by the program (one per
/// metric, reason or check), not by what dchat logs, so the user's cardinality limit and the
/// series TTL do not apply to them.
const SELF_METRICS: &[&catalog::MetricInfo] = &[
    &catalog::LABEL_SETS_DROPPED,
    &catalog::VALUES_DROPPED,
    &catalog::SERIES_EXPIRED,
    &catalog::SERIES_FORGOTTEN,
    &catalog::SAMPLES,
    &catalog::SAMPLE_BUDGET,
    &catalog::SERIES,
    &catalog::HEALTH_CHECK_FAILURES,
    &catalog::SCRAPES,
    &catalog::SCRAPE_DURATION,
    &catalog::READY,
    &catalog::FILTER_BLOCKED,
    &catalog::HTTP_REJECTED,
    &catalog::OTLP_EXPORT_FAILURES,
    &catalog::REGISTRY_FAMILIES_SKIPPED,
    &catalog::BUILD_INFO,
];

/// Whether `name` is one of the crate's own metrics.
pub(crate) fn is_self_metric(name: &str) -> bool {
    SELF_METRICS.iter().any(|m| m.name == name)
}

/// How [`Metrics`](super::Metrics) makes metrics.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) limit: usize,
    pub(crate) ttl: Option<Duration>,
    pub(crate) rate_window_secs: u32,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) exemplars: bool,
    /// The node's sample budget, shared by every rule metric (`None`: unbounded, for tests of
    /// one metric).
    pub(crate) budget: Option<Arc<SampleBudget>>,
    /// Whether OpenMetrics scrapes carry `_created` lines (each counter and histogram series
    /// then costs one sample more).
    pub(crate) created: bool,
}
