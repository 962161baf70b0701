//! What another metric reader learns of the store: the store calls an [`Observer`] when it makes
//! a metric, and never the reader's own types, so the dependency runs from the reader (the
//! OpenTelemetry side, `crate::otel`) to the store only.

use std::sync::Arc;

use opentelemetry::metrics::Histogram;

use super::Metric;
use crate::catalog::MetricDef;

/// A reader of the store's metrics besides the exposition.
pub(crate) trait Observer: Send + Sync {
    /// The instrument a histogram metric's series also record every measurement into (there
    /// is no observable histogram to read them at collection); `None` when nothing reads them.
    fn histogram(&self, def: &MetricDef) -> Option<Histogram<f64>>;

    /// `metric` was made: register whatever reads its series.
    fn metric_made(&self, metric: &Arc<Metric>);
}

/// No reader: histograms record into nothing else, and nothing is registered (tests).
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct NoObserver;

#[cfg(test)]
impl Observer for NoObserver {
    fn histogram(&self, _: &MetricDef) -> Option<Histogram<f64>> {
        None
    }

    fn metric_made(&self, _: &Arc<Metric>) {}
}
