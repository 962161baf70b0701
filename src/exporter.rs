//! The OpenTelemetry side: an `SdkMeterProvider` whose reader is the `opentelemetry-prometheus`
//! exporter, feeding a `prometheus::Registry` that carries the operator's constant labels.

use std::collections::HashMap;

use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry_sdk::metrics::{SdkMeterProvider, Stream};
use prometheus::{Encoder as _, TextEncoder};

use crate::Error;

/// The `Content-Type` of the text exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Meter provider plus Prometheus registry.
pub(crate) struct Exporter {
    provider: SdkMeterProvider,
    registry: prometheus::Registry,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter").finish_non_exhaustive()
    }
}

impl Exporter {
    /// `sdk_limit` is the SDK's per-instrument cardinality limit; the layer's own limit is kept
    /// below it so the SDK never folds series by itself.
    pub(crate) fn new(const_labels: &[(String, String)], sdk_limit: usize) -> Result<(Self, Meter), Error> {
        let labels: HashMap<String, String> = const_labels.iter().cloned().collect();
        let registry = prometheus::Registry::new_custom(None, (!labels.is_empty()).then_some(labels))
            .map_err(|e| Error::Exporter(e.to_string()))?;
        let reader = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_units()
            .without_target_info()
            .scope_info_enabled(false)
            .build()
            .map_err(|e| Error::Exporter(e.to_string()))?;
        let provider = SdkMeterProvider::builder()
            .with_reader(reader)
            .with_view(move |_: &opentelemetry_sdk::metrics::Instrument| {
                Stream::builder().with_cardinality_limit(sdk_limit).build().ok()
            })
            .build();
        let meter = provider.meter("dchat-telemetry");
        Ok((Exporter { provider, registry }, meter))
    }

    /// The text exposition of every metric.
    pub(crate) fn render(&self) -> Result<String, Error> {
        let families = self.registry.gather();
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new().encode(&families, &mut out).map_err(|e| Error::Exporter(e.to_string()))?;
        String::from_utf8(out).map_err(|e| Error::Exporter(e.to_string()))
    }

    /// Flushes and stops the provider.
    pub(crate) fn shutdown(&self) {
        let _ = self.provider.shutdown();
    }
}
