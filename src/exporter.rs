//! The OpenTelemetry side: an `SdkMeterProvider` whose reader is the `opentelemetry-prometheus`
//! exporter, feeding a `prometheus::Registry`.

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
    /// `limit` is the layer's per-metric cardinality limit; the SDK's is set above it.
    /// Constant labels are not set here but on every series' attributes (the exporter then
    /// prints all labels sorted by name, which keeps the exposition stable).
    pub(crate) fn new(limit: usize) -> Result<(Self, Meter), Error> {
        let registry = prometheus::Registry::new();
        let reader = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_units()
            .without_target_info()
            .scope_info_enabled(false)
            .build()
            .map_err(|e| Error::Exporter(e.to_string()))?;
        let provider = SdkMeterProvider::builder()
            .with_reader(reader)
            .with_view(move |i: &opentelemetry_sdk::metrics::Instrument| {
                let sdk_limit = crate::meters::sdk_cardinality_limit(i.name(), limit);
                Stream::builder()
                    .with_cardinality_limit(sdk_limit)
                    .build()
                    .ok()
            })
            .build();
        let meter = provider.meter("dchat-telemetry");
        Ok((Exporter { provider, registry }, meter))
    }

    /// The text exposition of every metric.
    pub(crate) fn render(&self) -> Result<String, Error> {
        let families = self.registry.gather();
        // A telemetry always exports its readiness gauge, so no family at all means the
        // pipeline failed (opentelemetry-prometheus logs collection errors, e.g. after the
        // provider was shut down, and returns nothing): report it rather than serve emptiness.
        if families.is_empty() {
            return Err(Error::Exporter(
                "the exporter returned no metrics (meter provider shut down?)".into(),
            ));
        }
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new()
            .encode(&families, &mut out)
            .map_err(|e| Error::Exporter(e.to_string()))?;
        String::from_utf8(out).map_err(|e| Error::Exporter(e.to_string()))
    }

    /// Flushes and stops the provider.
    pub(crate) fn shutdown(&self) {
        let _ = self.provider.shutdown();
    }
}
