//! [`Telemetry`]: the handle dchat keeps — the layer, the exposition, health and the server.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use opentelemetry_sdk::metrics::SdkMeterProvider;
use tracing_core::Subscriber;
use tracing_subscriber::filter::Filtered;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer as _;

use crate::catalog;
use crate::catalog::MetricDef;
use crate::config::TelemetryBuilder;
use crate::exposition::foreign::Sources;
use crate::exposition::{self, Collected, Exposition, Format};
use crate::health::Health;
use crate::layer::diagnose::Diagnose;
use crate::layer::{CallsiteFilter, MetricsLayer, Shared};
use crate::otel::Otel;
use crate::plan::Compiled;
use crate::series::budget::SampleBudget;
use crate::series::{Metric, Metrics, Settings};
use crate::value::Num;
use crate::Error;

/// The self-metrics the telemetry itself updates (at scrape time, or per scrape).
#[derive(Debug)]
struct Own {
    scrapes: Arc<Metric>,
    scrape_duration: Arc<Metric>,
    ready: Arc<Metric>,
    series: Arc<Metric>,
    filter_blocked: Arc<Metric>,
    samples: Arc<Metric>,
    sample_budget: Arc<Metric>,
}

pub(crate) struct Inner {
    pub(crate) config: TelemetryBuilder,
    otel: Arc<Otel>,
    /// Other registries whose families `/metrics` shows.
    sources: Arc<Sources>,
    metrics: Arc<Metrics>,
    budget: Arc<SampleBudget>,
    shared: Arc<Shared>,
    pub(crate) health: Health,
    exposition: Exposition,
    own: Own,
    render_failed: Arc<AtomicBool>,
    shut_down: AtomicBool,
    /// Renders of `/metrics` allowed at once.
    pub(crate) render_permits: tokio::sync::Semaphore,
    /// The endpoint's web config, limits and refusal counts.
    pub(crate) server: crate::server::ServerState,
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

    /// Builds the node's telemetry from a validated builder: the OpenTelemetry side (and the OTLP
    /// push), the store, the compiled rules, the crate's own metrics, the health checks and the
    /// server's state, in that order.
    pub(crate) fn from_builder(config: TelemetryBuilder) -> Result<Self, Error> {
        let const_labels = config.all_const_labels();
        let resource = crate::resource::resource(
            &const_labels,
            &config.build_info,
            &config.resource_attributes,
        );
        let target_info = crate::resource::target_info_labels(&resource);
        let (otel, otlp) = otel(&config, resource)?;
        let budget = Arc::new(SampleBudget::new(config.sample_budget));
        let metrics = Arc::new(Metrics::new(
            settings(&config, &budget),
            Arc::clone(&otel) as Arc<dyn crate::series::Observer>,
        ));
        let compiled = Compiled::new(&config.effective_rules(), Arc::clone(&metrics))?;
        compiled.predeclare()?;
        let shared = Shared::new(compiled, Diagnose::new(config.expected_level));
        let builtin = Builtins::new(&metrics, &config)?;
        let own = builtin.own;
        let sources = Arc::new(Sources::new(config.sources.clone(), builtin.skipped));
        let health = Health::new(config.check_timeout);
        health.set_failure_metric(builtin.check_failures);
        watch_otlp(&health, &config, otlp, builtin.otlp_failures);
        let server = crate::server::ServerState::new(&config, builtin.http_rejected, &health)?;
        let render_failed = Arc::new(AtomicBool::new(false));
        add_checks(&health, &render_failed, &budget, &sources, &shared);
        let exposition = Exposition::new(const_labels, target_info, config.created_timestamps);
        sources.check(exposition.taken(&metrics.all(), &collect(&config)))?;
        Ok(Telemetry {
            inner: Arc::new(Inner {
                exposition,
                config,
                otel,
                sources,
                metrics,
                budget,
                shared,
                health,
                own,
                render_failed,
                shut_down: AtomicBool::new(false),
                render_permits: tokio::sync::Semaphore::new(crate::limits::RENDERS_AT_ONCE),
                server,
            }),
        })
    }

    /// The tracing layer, with its per-layer callsite filter. Add it to a
    /// `tracing_subscriber::registry()`; any number of layers may sit beside it.
    ///
    /// Give other layers their filters with `with_filter` rather than filtering the whole
    /// registry: a registry-wide filter (such as `EnvFilter` from `RUST_LOG=warn`) drops events
    /// before any layer sees them, the metrics included (`/health` then warns).
    pub fn layer<S>(&self) -> Filtered<MetricsLayer, CallsiteFilter, S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let (layer, filter) = MetricsLayer::new(Arc::clone(&self.inner.shared));
        layer.with_filter(filter)
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric.
    ///
    /// # Errors
    /// [`Error::Exporter`] after [`Telemetry::shutdown`].
    pub fn render(&self) -> Result<String, Error> {
        self.render_format(Format::Text)
    }

    /// The exposition in `format` (what `/metrics` serves for the scraper's `Accept` header).
    /// Each render first removes the series idle for the series TTL.
    ///
    /// # Errors
    /// [`Error::Exporter`] after [`Telemetry::shutdown`].
    pub fn render_format(&self, format: Format) -> Result<String, Error> {
        let start = Instant::now();
        let inner = &self.inner;
        if inner.shut_down.load(Ordering::SeqCst) {
            inner.render_failed.store(true, Ordering::SeqCst);
            return Err(Error::Exporter {
                reason: "the telemetry was shut down".into(),
                source: None,
            });
        }
        let own = &inner.own;
        let ready = if inner.health.is_ready() { 1.0 } else { 0.0 };
        own.ready.record::<&str>(&[], Num::F64(ready));
        let blocked = inner.shared.diagnose.blocked();
        for (reason, n) in [
            ("max_level", usize::from(blocked.max_level.is_some())),
            ("callsites", blocked.callsites.len()),
            ("not_installed", usize::from(blocked.not_installed)),
        ] {
            own.filter_blocked.record(&[reason], Num::F64(n as f64));
        }
        let all = inner.metrics.all();
        for m in &all {
            m.sweep();
            m.move_parked();
        }
        let collected = collect(&inner.config);
        let foreign = inner.sources.collect(
            || inner.exposition.taken(&all, &collected),
            Some(&inner.budget),
            inner.config.created_timestamps,
        );
        own.samples
            .record::<&str>(&[], Num::F64(inner.budget.used() as f64));
        own.sample_budget
            .record::<&str>(&[], Num::F64(inner.budget.limit() as f64));
        for m in all.iter().filter(|m| !m.is_self_metric()) {
            own.series
                .record(&[&m.def.name], Num::F64(m.series_count() as f64));
        }
        let text = inner.exposition.render(&all, &collected, &foreign, format);
        inner.render_failed.store(false, Ordering::SeqCst);
        own.scrapes.record(&[format.label()], Num::U64(1));
        own.scrape_duration
            .record::<&str>(&[], Num::F64(start.elapsed().as_secs_f64()));
        Ok(text)
    }

    /// A render panicked: the `exporter` liveness check fails until a render succeeds.
    pub(crate) fn render_panicked(&self) {
        self.inner.render_failed.store(true, Ordering::SeqCst);
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
        self.inner.metrics.get(metric).map(|m| m.series_count())
    }

    /// The configured listen address (after environment overrides), which
    /// [`serve`](Telemetry::serve) binds.
    #[must_use]
    pub fn addr(&self) -> std::net::SocketAddr {
        self.inner.config.addr
    }

    /// The OpenTelemetry meter provider the metrics are reported through (to the readers given
    /// with [`TelemetryBuilder::with_otel_reader`]); other instruments may be made from it.
    #[must_use]
    pub fn meter_provider(&self) -> &SdkMeterProvider {
        self.inner.otel.provider()
    }

    /// Stops the meter provider, which makes its readers collect and export one last time (an
    /// OTLP push of the final values: this waits for it, at most 5 s, the SDK's limit); later
    /// renders fail with [`Error::Exporter`] (and `/health` reports the `exporter` check
    /// failing). Call it when the application is done (after [`serve`](Telemetry::serve)
    /// returned); from async code, on a blocking thread.
    pub fn shutdown(&self) {
        self.inner.shut_down.store(true, Ordering::SeqCst);
        self.inner.otel.shutdown();
    }

    /// Makes the OpenTelemetry readers (an OTLP push) export now, waiting at most
    /// [`FLUSH_WAIT`](crate::limits::FLUSH_WAIT) on a blocking thread: the end of the drain
    /// pushes the final counts. A push still going on after that finishes on its own.
    pub(crate) async fn flush_readers(&self) {
        if !self.inner.otel.is_enabled() {
            return;
        }
        let provider = self.inner.otel.provider().clone();
        let flush = tokio::task::spawn_blocking(move || provider.force_flush());
        let _ = tokio::time::timeout(crate::limits::FLUSH_WAIT, flush).await;
    }
}

/// The process and runtime metrics now (read at each scrape).
fn collect(config: &TelemetryBuilder) -> Vec<Collected> {
    let mut collected: Vec<Collected> = Vec::new();
    if config.process_metrics {
        collected.extend(exposition::process::collect());
    }
    if let Some(rt) = &config.runtime {
        collected.extend(exposition::runtime::collect(rt));
    }
    collected
}

/// The OTLP push's state, where the build has the feature.
#[cfg(feature = "otlp")]
type OtlpPush = Option<Arc<crate::otlp::OtlpState>>;
#[cfg(not(feature = "otlp"))]
type OtlpPush = ();

/// The OpenTelemetry side with the builder's readers (and the OTLP push's, when configured).
fn otel(
    config: &TelemetryBuilder,
    resource: opentelemetry_sdk::Resource,
) -> Result<(Arc<Otel>, OtlpPush), Error> {
    #[allow(unused_mut)] // without the otlp feature no reader is added here
    let mut readers = config.otel_readers.clone();
    #[cfg(feature = "otlp")]
    let otlp = match &config.otlp {
        Some(c) => {
            let state = Arc::new(crate::otlp::OtlpState::new(c));
            let reader = crate::otlp::reader(c, Arc::clone(&state))?;
            readers.push(crate::otel::PendingReader::new(reader));
            Some(state)
        }
        None => None,
    };
    #[cfg(not(feature = "otlp"))]
    let otlp = ();
    let otel = Arc::new(Otel::new(&readers, resource, config.cardinality_limit)?);
    Ok((otel, otlp))
}

/// How the store makes metrics, from the builder.
fn settings(config: &TelemetryBuilder, budget: &Arc<SampleBudget>) -> Settings {
    Settings {
        limit: config.cardinality_limit,
        ttl: config.series_ttl,
        // Validated within limits::ERROR_RATE_WINDOW (whole seconds up to an hour).
        rate_window_secs: u32::try_from(config.error_rate_window.as_secs()).unwrap_or_else(|_| {
            debug_assert!(false, "a validated window fits a u32 of seconds");
            u32::MAX
        }),
        clock: Arc::clone(&config.clock),
        exemplars: config.exemplars,
        budget: Some(Arc::clone(budget)),
        created: config.created_timestamps,
    }
}

/// The crate's own metrics, made at start-up.
struct Builtins {
    own: Own,
    check_failures: Arc<Metric>,
    otlp_failures: Arc<Metric>,
    skipped: Arc<Metric>,
    http_rejected: Arc<Metric>,
}

impl Builtins {
    /// Makes them, records the build info, and starts the counters whose series are known at 0.
    ///
    /// # Errors
    /// [`Error::InvalidRule`] when a rule defines a metric with a built-in name.
    fn new(metrics: &Metrics, config: &TelemetryBuilder) -> Result<Self, Error> {
        let builtin = |def: &MetricDef| {
            metrics
                .get_or_create(def, true)
                .ok_or_else(|| Error::InvalidRule {
                    metric: def.name.clone(),
                    reason: "a rule defines a metric with this built-in name".into(),
                })
        };
        let of = |info: &catalog::MetricInfo| builtin(&MetricDef::from_info(info));
        let own = Own {
            scrapes: of(&catalog::SCRAPES)?,
            scrape_duration: of(&catalog::SCRAPE_DURATION)?,
            ready: of(&catalog::READY)?,
            series: of(&catalog::SERIES)?,
            filter_blocked: of(&catalog::FILTER_BLOCKED)?,
            samples: of(&catalog::SAMPLES)?,
            sample_budget: of(&catalog::SAMPLE_BUDGET)?,
        };
        for format in [Format::Text, Format::OpenMetrics] {
            own.scrapes.record(&[format.label()], Num::U64(0));
        }
        let otlp_failures = of(&catalog::OTLP_EXPORT_FAILURES)?;
        otlp_failures.record::<&str>(&[], Num::U64(0));
        let mut build = MetricDef::from_info(&catalog::BUILD_INFO);
        build.label_names = config.build_info.names();
        builtin(&build)?.record(&config.build_info.values(), Num::F64(1.0));
        Ok(Builtins {
            own,
            check_failures: of(&catalog::HEALTH_CHECK_FAILURES)?,
            otlp_failures,
            skipped: of(&catalog::REGISTRY_FAMILIES_SKIPPED)?,
            http_rejected: of(&catalog::HTTP_REJECTED)?,
        })
    }
}

/// Counts the OTLP push's failures and warns in `/health` while it fails; without the feature,
/// warns that an `OTEL_*` variable asked for a push this build cannot make.
#[cfg(feature = "otlp")]
fn watch_otlp(health: &Health, _: &TelemetryBuilder, otlp: OtlpPush, failures: Arc<Metric>) {
    if let Some(state) = otlp {
        state.count_in(failures);
        health.add_warning("otlp", move || state.problem());
    }
}

/// Counts the OTLP push's failures and warns in `/health` while it fails; without the feature,
/// warns that an `OTEL_*` variable asked for a push this build cannot make.
#[cfg(not(feature = "otlp"))]
fn watch_otlp(health: &Health, config: &TelemetryBuilder, _: OtlpPush, _: Arc<Metric>) {
    if let Some(var) = config.otlp_requested {
        health.add_warning("otlp", move || {
            Some(format!(
                "{var} asks for an OTLP push, but this build of dchat-telemetry has no otlp \
                 feature: nothing is pushed (/metrics serves every metric)"
            ))
        });
    }
}

/// The health checks of the exporter itself: liveness fails while renders fail; warnings while
/// the sample budget is full, another registry's families are left out, or a tracing filter
/// hides events from the layer.
fn add_checks(
    health: &Health,
    render_failed: &Arc<AtomicBool>,
    budget: &Arc<SampleBudget>,
    sources: &Arc<Sources>,
    shared: &Arc<Shared>,
) {
    let flag = Arc::clone(render_failed);
    health.add_liveness_check("exporter", move || {
        if flag.load(Ordering::SeqCst) {
            Err("the last render of /metrics failed".into())
        } else {
            Ok(())
        }
    });
    let budget = Arc::clone(budget);
    health.add_warning("sample-budget", move || {
        budget.is_full().then(|| {
            format!(
                "the sample budget is full ({} of {} samples): new label sets fold into their \
                 metric's overflow series until idle series expire; raise \
                 DCHAT_TELEMETRY_SAMPLE_BUDGET (and the scrape's sampleLimit) or bound the labels",
                budget.used(),
                budget.limit()
            )
        })
    });
    if sources.has_any() {
        let sources = Arc::clone(sources);
        health.add_warning("metrics-registries", move || sources.problem());
    }
    let shared = Arc::clone(shared);
    health.add_warning("tracing-filter", move || {
        let d = &shared.diagnose;
        d.blocked().message(d.expected())
    });
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
