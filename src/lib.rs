//! # dchat-telemetry
//!
//! Production metrics for dchat, the relay-based chat node. A [`tracing_subscriber::Layer`]
//! turns dchat's ordinary `tracing` spans and events into metrics, which an `axum` endpoint
//! serves to Prometheus at `/metrics` (text 0.0.4 or OpenMetrics 1.0), beside `/health`
//! (liveness) and `/ready` (readiness); OpenTelemetry metric readers see the same metrics.
//!
//! dchat's code keeps using plain `tracing`. The default [`Rules`] implement these conventions:
//!
//! | dchat emits | becomes |
//! | --- | --- |
//! | event `message.sent` (field `channel`, optional `count`) | `dchat_messages_sent_total{channel}` |
//! | event `message.received` (optional `latency_seconds` or `latency_ms`) | `dchat_messages_received_total{channel}`, `dchat_message_latency_seconds{channel}` |
//! | event `message.send_failed` (field `channel`) | `dchat_messages_send_failed_total{channel}` |
//! | event `message.dropped` (field `reason`) | `dchat_messages_dropped_total{reason}` |
//! | event `peer.dial_failed` | `dchat_dial_failures_total` |
//! | span `relay.connection` (field `relay`) | `dchat_relay_connections_active{relay}`: +1 open, -1 close |
//! | span `db.query` (field `db.operation.name`, `db.operation` or `operation`) | `dchat_database_query_duration_seconds{operation}` |
//! | any ERROR event | `dchat_errors_total{type}`, `dchat_error_rate{type}`; `type` = `error.type`, else `error_kind`, else the target |
//! | fields `monotonic_counter.x`, `counter.x`, `histogram.x`, `gauge.x` | instruments named `x`, as tracing-opentelemetry makes them |
//!
//! ## Data flow
//!
//! ```text
//!  tracing callsite ──register──▶ plan::Compiled::plan ──▶ plan::PlanTable     (once per callsite)
//!        │                         (rules → plan)
//!        ▼ event / span
//!  layer (filter → visit → inherit → apply) ──▶ series (per-thread cache → store → cell)
//!                                                   │
//!              render / scrape ◀────────────────────┤ sweep (expiry), then read
//!   exposition (text 0.0.4 | OpenMetrics) ──▶ server (/metrics /health /ready)
//!                                                   │
//!   otel (observable instruments, SDK histograms) ◀─┘ another OpenTelemetry reader (OTLP)
//! ```
//!
//! Imports run one way: the catalogue's data types (`MetricInfo`, `MetricDef`) are read by
//! every part; the rule model reads only them, the limits and the label syntax; plans read the
//! rules and hold the store's metrics; the layer reads plans and writes into the store; the
//! exposition and `otel` read the store. The store (`series`) reads none of the parts that use
//! it: `otel` learns of each new metric as the store's `Observer`. Configuration, `Telemetry`
//! and the server sit on top of them all.
//!
//! Labels come only from allow-listed fields, also inherited from enclosing spans, and a label
//! whose values arrive from the network can be bounded to [`KnownValues`]. Values are
//! sanitised and capped at [`limits::MAX_LABEL_VALUE_LEN`] bytes; each metric keeps at most
//! the cardinality limit (default 2000) series and all of them at most the node-wide sample
//! budget (default 15000 samples, under the shipped ServiceMonitor's `sampleLimit`), the rest
//! folding into one `otel_metric_overflow="true"` series per metric while
//! `dchat_telemetry_label_sets_dropped_total` counts them; a series idle for the series TTL
//! (default 10 minutes) leaves the exposition and frees its place, and a counter that comes
//! back continues from its value, so Prometheus' `increase()` counts every event of a quiet
//! label set. Values that cannot be recorded (NaN, negative counts, wrong types) are counted in
//! `dchat_telemetry_values_dropped_total{metric,reason}`. Nothing a caller logs panics.
//!
//! ```no_run
//! use tracing_subscriber::prelude::*;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), dchat_telemetry::Error> {
//! let telemetry = dchat_telemetry::Telemetry::builder().with_service_name("dchat").build()?;
//! tracing_subscriber::registry()
//!     .with(tracing_subscriber::fmt::layer())
//!     .with(telemetry.layer())
//!     .init();
//! let db_ready = telemetry.health().readiness_gate("database");
//! tokio::spawn(telemetry.clone().serve()); // /metrics /health /ready on DCHAT_TELEMETRY_ADDR
//! db_ready.set_ready(true);
//! tracing::info!(name: "message.sent", channel = "general");
//! # Ok(()) }
//! ```

//!
//! ## Optional features
//!
//! - `otlp`: push the same metrics over OTLP/HTTP (`TelemetryBuilder::with_otlp`, the
//!   standard `OTEL_EXPORTER_OTLP_*` variables), `node_id` as `service.instance.id`.
//! - `prometheus-client`, `prometheus`: another registry's families (libp2p's, the
//!   application's) in the same `/metrics`; without either,
//!   [`TelemetryBuilder::with_metrics_text`] takes any library's text encoder.
//!
//! Every build has `dchat_build_info` ([`BuildInfo`], [`build_info!`]) and `target_info`.

// The library reports through tracing, its health checks and its self-metrics; never by
// printing into the application's terminal. (The rest of the lints are in Cargo.toml.)
#![warn(clippy::print_stdout, clippy::print_stderr)]
// Doc comments on every public item (in Cargo.toml this lint would also reach the benches'
// macro-made functions).
#![warn(missing_docs)]

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod build_info;
pub mod catalog;
mod clock;
mod config;
mod error;
mod exposition;
mod health;
mod labels;
mod layer;
pub mod limits;
mod otel;
#[cfg(feature = "otlp")]
mod otlp;
mod plan;
mod resource;
mod rules;
mod series;
mod server;
mod sync;
mod telemetry;
mod value;

pub use build_info::BuildInfo;
pub use catalog::{MetricInfo, MetricKind};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::TelemetryBuilder;
pub use error::Error;
pub use exposition::{Format, CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE};
pub use health::{CheckResult, Health, ReadinessGate, Report, Status, HEALTH_CONTENT_TYPE};
pub use layer::{CallsiteFilter, MetricsLayer};
#[cfg(feature = "otlp")]
pub use otlp::OtlpConfig;
pub use rules::{KnownValues, LabelSource, Measure, Rule, RuleBuilder, Rules};
pub use server::shutdown_signal;
pub use telemetry::Telemetry;
