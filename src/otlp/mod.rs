//! OTLP push (the `otlp` feature): the same metrics `/metrics` serves, pushed to an OTLP/HTTP
//! receiver (an OpenTelemetry Collector, Prometheus 3's `/api/v1/otlp`) every export interval,
//! by the OpenTelemetry SDK's periodic reader on a thread of its own, with protobuf bodies
//! through opentelemetry-otlp and reqwest's blocking client (plain `http://`: no TLS stack).
//!
//! Configured with [`OtlpConfig`] on the builder or the standard `OTEL_EXPORTER_OTLP_*`
//! variables ([`config`]). A push that fails never reaches the application: it is counted in
//! `dchat_telemetry_otlp_export_failures_total`, `/health` warns until a push succeeds again,
//! and one WARN line says so when pushes start failing ([`export`]). The final values are
//! pushed when [`Telemetry::shutdown`](crate::Telemetry::shutdown) stops the meter provider and
//! at the end of [`serve`](crate::Telemetry::serve)'s drain.

mod config;
mod export;

pub(crate) use config::apply_env;
pub use config::OtlpConfig;
pub(crate) use export::{reader, OtlpState};
