//! [`Telemetry`]: the handle dchat keeps — the layer, the exposition, health and the server.

use std::sync::Arc;
use std::time::Instant;

use opentelemetry::metrics::Meter;
use tracing_core::Subscriber;
use tracing_subscriber::filter::Filtered;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer as _;

use crate::catalog;
use crate::config::TelemetryBuilder;
use crate::exporter::Exporter;
use crate::health::Health;
use crate::layer::{CallsiteFilter, Compiled, MetricsLayer, Shared};
use crate::meters::{Meters, Metric};
use crate::rules::MetricDef;
use crate::value::Num;
use crate::Error;

pub(crate) struct Inner {
    pub(crate) config: TelemetryBuilder,
    exporter: Exporter,
    _meter: Meter,
    meters: Arc<Meters>,
    shared: Arc<Shared>,
    pub(crate) health: Health,
    scrapes: Arc<Metric>,
    scrape_duration: Arc<Metric>,
    render_failed: Arc<std::sync::atomic::AtomicBool>,
    /// Renders of `/metrics` allowed at once.
    pub(crate) render_permits: tokio::sync::Semaphore,
}

/// dchat's telemetry: build one at start-up, add [`Telemetry::layer`] to the tracing registry
/// and run [`Telemetry::serve`] (or merge [`Telemetry::router`] into an axum app).
///
/// Cheap to clone; clones share everything.
///
/// ```
/// use tracing_subscriber::prelude::*;
///
/// let telemetry = dchat_telemetry::Telemetry::builder()
///     .with_service_name("dchat")
///     .with_node_id("node-1")
///     .without_env()
///     .build()?;
/// let subscriber = tracing_subscriber::registry().with(telemetry.layer());
/// tracing::subscriber::with_default(subscriber, || {
///     tracing::info!(name: "message.sent", channel = "general");
/// });
/// let text = telemetry.render()?;
/// assert!(text.contains(r#"dchat_messages_sent_total{channel="general",node_id="node-1",service="dchat"} 1"#));
/// # Ok::<(), dchat_telemetry::Error>(())
/// ```
#[derive(Clone)]
pub struct Telemetry {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("addr", &self.inner.config.addr)
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// A builder with dchat's defaults.
    pub fn builder() -> TelemetryBuilder {
        TelemetryBuilder::default()
    }

    pub(crate) fn from_builder(config: TelemetryBuilder) -> Result<Self, Error> {
        let (exporter, meter) = Exporter::new(config.cardinality_limit, config.all_const_labels())?;
        let meters = Arc::new(Meters::new(
            meter.clone(),
            config.cardinality_limit,
            config.error_rate_window.as_secs().clamp(1, 3600) as u32,
        ));
        let compiled = Compiled::new(&config.effective_rules(), Arc::clone(&meters))?;
        let shared = Shared::new(compiled);
        let builtin = |info: &catalog::MetricInfo| {
            meters
                .get_or_create(&MetricDef::from_info(info), true)
                .ok_or_else(|| Error::InvalidRule {
                    metric: info.name.to_owned(),
                    reason: "a rule defines a metric with this built-in name".into(),
                })
        };
        let scrapes = builtin(&catalog::SCRAPES)?;
        let scrape_duration = builtin(&catalog::SCRAPE_DURATION)?;
        let failures = builtin(&catalog::HEALTH_CHECK_FAILURES)?;
        let health = Health::new(config.check_timeout);
        health.set_failure_metric(failures);
        scrapes.record(&[], Num::U64(0));
        let render_failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        {
            let flag = Arc::clone(&render_failed);
            health.add_liveness_check("exporter", move || {
                if flag.load(std::sync::atomic::Ordering::SeqCst) {
                    Err("the last render of /metrics failed".into())
                } else {
                    Ok(())
                }
            });
        }
        {
            let health = health.clone();
            let _ready = meter
                .f64_observable_gauge(catalog::READY.name)
                .with_description(catalog::READY.help)
                .with_unit(catalog::READY.unit)
                .with_callback(move |o| o.observe(if health.is_ready() { 1.0 } else { 0.0 }, &[]))
                .build();
        }
        Ok(Telemetry {
            inner: Arc::new(Inner {
                config,
                exporter,
                _meter: meter,
                meters,
                shared,
                health,
                scrapes,
                scrape_duration,
                render_failed,
                render_permits: tokio::sync::Semaphore::new(2),
            }),
        })
    }

    /// The tracing layer, with its per-layer callsite filter. Add it to a
    /// `tracing_subscriber::registry()`; any number of layers may sit beside it.
    pub fn layer<S>(&self) -> Filtered<MetricsLayer, CallsiteFilter, S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let (layer, filter) = MetricsLayer::new(Arc::clone(&self.inner.shared));
        layer.with_filter(filter)
    }

    /// The Prometheus text exposition of every metric (what `/metrics` serves).
    ///
    /// # Errors
    /// [`Error::Exporter`] when the exporter cannot encode the metrics.
    pub fn render(&self) -> Result<String, Error> {
        let start = Instant::now();
        let r = self.inner.exporter.render();
        self.inner
            .render_failed
            .store(r.is_err(), std::sync::atomic::Ordering::SeqCst);
        self.inner.scrapes.record(&[], Num::U64(1));
        self.inner
            .scrape_duration
            .record(&[], Num::F64(start.elapsed().as_secs_f64()));
        r
    }

    /// Liveness checks and readiness gates.
    #[must_use]
    pub fn health(&self) -> &Health {
        &self.inner.health
    }

    /// The number of distinct label sets `metric` (its scraped name) holds, overflow excluded;
    /// `None` for an unknown metric.
    #[must_use]
    pub fn series_count(&self, metric: &str) -> Option<usize> {
        self.inner.meters.get(metric).map(|m| m.series_count())
    }

    /// The configured listen address (after environment overrides), which
    /// [`serve`](Telemetry::serve) binds.
    #[must_use]
    pub fn addr(&self) -> std::net::SocketAddr {
        self.inner.config.addr
    }

    /// Stops the meter provider; later renders fail with [`Error::Exporter`] (and `/health`
    /// reports the `exporter` check failing).
    pub fn shutdown(&self) {
        self.inner.exporter.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lock poisoned by a panic inside the crate is recovered: readiness keeps working,
    /// `/health` warns (200, not a restart) and the self-metric counts it.
    #[tokio::test]
    async fn a_poisoned_lock_warns_in_health_and_is_counted() {
        let t = Telemetry::builder().without_env().build().unwrap();
        let health = t.health().clone();
        let poisoner = std::thread::spawn(move || {
            let _guard = health.inner_gates_for_test().lock().unwrap();
            panic!("poison the gates on purpose");
        });
        assert!(poisoner.join().is_err());
        let gate = t.health().readiness_gate("database");
        gate.set_ready(true);
        assert!(t.health().is_ready(), "the poisoned lock is recovered");
        let report = t.health().liveness().await;
        assert_eq!(report.status, crate::Status::Warn, "{report:?}");
        assert!(report.is_pass());
        let warn = &report.checks["telemetry-locks:liveness"][0];
        assert!(warn.output.as_deref().unwrap_or("").contains("recovered"));
        let text = t.render().unwrap();
        let line = text
            .lines()
            .find(|l| {
                l.starts_with(
                    "dchat_telemetry_health_check_failures_total{check=\"telemetry-locks\"",
                )
            })
            .unwrap_or_else(|| panic!("no telemetry-locks series:\n{text}"));
        let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(value >= 1.0, "{line}");
    }
}
