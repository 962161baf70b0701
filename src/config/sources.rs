//! The builder's setters for what `/metrics` shows besides the rules' metrics: the build, the
//! resource, and other metric registries.

use std::sync::Arc;

use super::TelemetryBuilder;
use crate::build_info::BuildInfo;
use crate::exposition::foreign::Source;
use crate::exposition::Format;

impl TelemetryBuilder {
    /// What build runs: `dchat_build_info{version,revision}` and the `service.version` resource
    /// attribute (default: `version="unknown"`, `revision="unknown"`, and no `service.version`).
    /// [`build_info!`](crate::build_info!) makes one from the application's `Cargo.toml`.
    pub fn with_build_info(mut self, build: BuildInfo) -> Self {
        self.build_info = build;
        self
    }

    /// A further OpenTelemetry resource attribute (`deployment.environment`, `k8s.pod.name`):
    /// in what every OpenTelemetry reader (an OTLP push) reports, and as a label of
    /// `target_info` (dots as underscores). `OTEL_RESOURCE_ATTRIBUTES` adds more. The constant
    /// labels' attributes (`service.name`, `service.instance.id`, `node_id`, ...) and
    /// `service.version` override one of the same key.
    pub fn with_resource_attribute(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        let key = key.into();
        self.resource_attributes.retain(|(k, _)| *k != key);
        self.resource_attributes.push((key, value.into()));
        self
    }

    /// Another metric library's families in the same `/metrics`: `encode` writes them in
    /// `format` (its library's own text encoder: OpenMetrics for `prometheus-client`, the text
    /// format for `prometheus`), at each scrape, on the render's blocking thread. They are read
    /// back and written in the format the scrape asked for, with the constant labels, in the
    /// node's sample budget; a family that clashes with another's name, does not fit the budget
    /// or cannot be read is left out and counted (see the README, "Other registries"). A clash
    /// with a family that exists when [`build`](TelemetryBuilder::build) runs is an error then.
    /// `name` names the registry in messages.
    ///
    /// Any version of `prometheus-client` works this way
    /// (`prometheus_client::encoding::text::encode_registry` with [`Format::OpenMetrics`]); the
    /// `prometheus-client` feature gives `with_prometheus_client_registry` for 0.22 and the
    /// `prometheus` feature `with_prometheus_registry` for `prometheus` 0.14:
    ///
    /// ```
    /// use dchat_telemetry::{Format, Telemetry};
    ///
    /// let telemetry = Telemetry::builder()
    ///     .with_metrics_text("legacy", Format::Text, |out: &mut String| {
    ///         out.push_str("# HELP legacy_jobs_total Jobs.\n# TYPE legacy_jobs_total counter\nlegacy_jobs_total 3\n");
    ///         Ok(())
    ///     })
    ///     .without_env()
    ///     .build()?;
    /// let text = telemetry.render()?;
    /// assert!(text.contains(r#"legacy_jobs_total{service="dchat"} 3"#));
    /// # Ok::<(), dchat_telemetry::Error>(())
    /// ```
    pub fn with_metrics_text<F>(
        mut self,
        name: impl Into<String>,
        format: Format,
        encode: F,
    ) -> Self
    where
        F: Fn(&mut String) -> std::fmt::Result + Send + Sync + 'static,
    {
        self.sources.push(Source {
            name: name.into(),
            format,
            encode: Arc::new(encode),
        });
        self
    }

    /// A `prometheus-client` (0.22, libp2p 0.54's) registry's families in the same `/metrics`
    /// (see [`with_metrics_text`](TelemetryBuilder::with_metrics_text)). The registry is locked
    /// while a scrape reads it; metrics registered after `build` show up too.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use prometheus_client::{metrics::counter::Counter, registry::Registry};
    ///
    /// let mut registry = Registry::default();
    /// let dials: Counter = Counter::default();
    /// registry.register("libp2p_dials", "Dials.", dials.clone());
    /// dials.inc();
    /// let telemetry = dchat_telemetry::Telemetry::builder()
    ///     .with_prometheus_client_registry("libp2p", Arc::new(Mutex::new(registry)))
    ///     .without_env()
    ///     .build()?;
    /// assert!(telemetry.render()?.contains(r#"libp2p_dials_total{service="dchat"} 1"#));
    /// # Ok::<(), dchat_telemetry::Error>(())
    /// ```
    #[cfg(feature = "prometheus-client")]
    pub fn with_prometheus_client_registry(
        self,
        name: impl Into<String>,
        registry: Arc<std::sync::Mutex<prometheus_client::registry::Registry>>,
    ) -> Self {
        self.with_metrics_text(name, Format::OpenMetrics, move |out: &mut String| {
            let registry = registry
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            prometheus_client::encoding::text::encode_registry(out, &registry)
        })
    }

    /// A `prometheus` (0.14) registry's families in the same `/metrics` (see
    /// [`with_metrics_text`](TelemetryBuilder::with_metrics_text)): gathered at each scrape.
    ///
    /// ```
    /// let registry = prometheus::Registry::new();
    /// let jobs = prometheus::IntCounter::new("app_jobs_total", "Jobs.").unwrap();
    /// registry.register(Box::new(jobs.clone())).unwrap();
    /// jobs.inc();
    /// let telemetry = dchat_telemetry::Telemetry::builder()
    ///     .with_prometheus_registry("app", registry)
    ///     .without_env()
    ///     .build()?;
    /// assert!(telemetry.render()?.contains(r#"app_jobs_total{service="dchat"} 1"#));
    /// # Ok::<(), dchat_telemetry::Error>(())
    /// ```
    #[cfg(feature = "prometheus")]
    pub fn with_prometheus_registry(
        self,
        name: impl Into<String>,
        registry: prometheus::Registry,
    ) -> Self {
        self.with_metrics_text(name, Format::Text, move |out: &mut String| {
            use prometheus::Encoder as _;
            let mut buf = Vec::new();
            prometheus::TextEncoder::new()
                .encode(&registry.gather(), &mut buf)
                .map_err(|_| std::fmt::Error)?;
            out.push_str(&String::from_utf8_lossy(&buf));
            Ok(())
        })
    }
}
