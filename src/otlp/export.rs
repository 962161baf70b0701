//! The push itself: opentelemetry-otlp's exporter behind the SDK's periodic reader, wrapped so
//! that a failed push is counted and reported here and never reaches the application (the
//! wrapper answers the reader "done" either way, so the SDK does not log it as an error event,
//! which the rules would count as one of dchat's own errors).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use opentelemetry_otlp::{Compression, MetricExporter, Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, Temporality};

use super::OtlpConfig;
use crate::series::Metric;
use crate::sync::Recover;
use crate::value::Num;
use crate::Error;

/// How the pushes have gone: counted for the self-metric, reported by `/health`.
#[derive(Debug)]
pub(crate) struct OtlpState {
    endpoint: String,
    failures: AtomicU64,
    /// The last push's error, while pushes fail.
    last_error: Mutex<Option<String>>,
    /// `dchat_telemetry_otlp_export_failures_total` (made after the meter provider).
    metric: OnceLock<Arc<Metric>>,
}

impl OtlpState {
    pub(crate) fn new(config: &OtlpConfig) -> Self {
        OtlpState {
            endpoint: config.endpoint.clone(),
            failures: AtomicU64::new(0),
            last_error: Mutex::new(None),
            metric: OnceLock::new(),
        }
    }

    /// Where failures are counted from now on.
    pub(crate) fn count_in(&self, metric: Arc<Metric>) {
        let _ = self.metric.set(metric);
    }

    /// Failed pushes so far.
    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Acquire)
    }

    fn failed(&self, error: String) {
        let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if let Some(m) = self.metric.get() {
            m.record::<&str>(&[], Num::U64(1));
        }
        let was_failing = self
            .last_error
            .lock()
            .recover()
            .replace(error.clone())
            .is_some();
        if !was_failing {
            tracing::warn!(
                target: "dchat_telemetry",
                endpoint = %self.endpoint,
                failures = n,
                %error,
                "an OTLP push of the metrics failed; counted in \
                 dchat_telemetry_otlp_export_failures_total, /health warns until a push succeeds \
                 (/metrics serves every metric meanwhile)"
            );
        }
    }

    fn succeeded(&self) {
        if self.last_error.lock().recover().take().is_some() {
            tracing::info!(
                target: "dchat_telemetry",
                endpoint = %self.endpoint,
                "OTLP pushes of the metrics succeed again"
            );
        }
    }

    /// The `/health` warning while pushes fail.
    pub(crate) fn problem(&self) -> Option<String> {
        let last = self.last_error.lock().recover().clone()?;
        Some(format!(
            "the last OTLP push to {} failed ({} failed so far, counted in \
             dchat_telemetry_otlp_export_failures_total): {last}; /metrics still serves every \
             metric",
            self.endpoint,
            self.failures()
        ))
    }
}

/// opentelemetry-otlp's exporter, its outcome counted.
#[derive(Debug)]
pub(crate) struct Counted {
    inner: MetricExporter,
    state: Arc<OtlpState>,
}

impl PushMetricExporter for Counted {
    fn export(
        &self,
        metrics: &ResourceMetrics,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let inner = self.inner.export(metrics);
        let state = Arc::clone(&self.state);
        async move {
            match inner.await {
                Ok(()) => state.succeeded(),
                Err(e) => state.failed(e.to_string()),
            }
            Ok(())
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

/// The periodic reader that pushes per `config`, counting its outcomes in `state`.
///
/// # Errors
/// [`Error::Exporter`] when opentelemetry-otlp cannot make its exporter (its HTTP client).
pub(crate) fn reader(
    config: &OtlpConfig,
    state: Arc<OtlpState>,
) -> Result<PeriodicReader<Counted>, Error> {
    let headers: HashMap<String, String> = config.headers.iter().cloned().collect();
    let mut builder = MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(config.endpoint.trim())
        .with_timeout(config.timeout)
        .with_headers(headers)
        .with_temporality(config.temporality);
    if config.gzip {
        builder = builder.with_compression(Compression::Gzip);
    }
    let inner = builder.build().map_err(|e| Error::Exporter {
        reason: "the OTLP exporter could not be made".into(),
        source: Some(Box::new(e)),
    })?;
    Ok(PeriodicReader::builder(Counted { inner, state })
        .with_interval(config.interval)
        .build())
}
