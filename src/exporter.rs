//! The OpenTelemetry side: an `SdkMeterProvider` whose reader is the `opentelemetry-prometheus`
//! exporter, feeding a `prometheus::Registry`.

use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry_sdk::metrics::{SdkMeterProvider, Stream};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::Error;

/// The `Content-Type` of the text exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Meter provider plus Prometheus registry.
pub(crate) struct Exporter {
    provider: SdkMeterProvider,
    registry: prometheus::Registry,
    /// Length of the last exposition.
    last_len: AtomicUsize,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter").finish_non_exhaustive()
    }
}

impl Exporter {
    /// `limit` is the layer's per-metric cardinality limit; the SDK's is set above it.
    /// The constant labels (`service`, `node_id`, the operator's) are the registry's common
    /// labels, added at gathering time rather than carried, cloned and converted as attributes
    /// of every data point at every collection; the encoder prints each sample's labels sorted
    /// by name, so the exposition stays stable.
    pub(crate) fn new(
        limit: usize,
        const_labels: Vec<(String, String)>,
    ) -> Result<(Self, Meter), Error> {
        let labels = (!const_labels.is_empty()).then(|| const_labels.into_iter().collect());
        let registry = prometheus::Registry::new_custom(None, labels)
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
            .with_view(move |i: &opentelemetry_sdk::metrics::Instrument| {
                let sdk_limit = crate::meters::sdk_cardinality_limit(i.name(), limit);
                Stream::builder()
                    .with_cardinality_limit(sdk_limit)
                    .build()
                    .ok()
            })
            .build();
        let meter = provider.meter("dchat-telemetry");
        let exporter = Exporter {
            provider,
            registry,
            last_len: AtomicUsize::new(16 * 1024),
        };
        Ok((exporter, meter))
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
        // Sized from the last exposition, so the buffer is not regrown (and copied) on the way.
        let hint = self.last_len.load(Ordering::Relaxed);
        let mut out = String::with_capacity(hint + hint / 8 + 1024);
        crate::text::encode(&families, &mut out);
        self.last_len.store(out.len(), Ordering::Relaxed);
        Ok(out)
    }

    /// Flushes and stops the provider.
    pub(crate) fn shutdown(&self) {
        let _ = self.provider.shutdown();
    }
}
