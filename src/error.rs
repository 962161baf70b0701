//! The crate's one error type.

use std::net::SocketAddr;

/// Everything that can go wrong while configuring or running dchat-telemetry.
///
/// Nothing on the tracing hot path returns an error: bad values there are dropped and counted in
/// `dchat_telemetry_values_dropped_total`. These errors come from configuration (builders,
/// environment variables) and from the HTTP server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An environment variable holds a value that cannot be used.
    #[error("invalid value {value:?} in environment variable {variable}: expected {expected}")]
    InvalidEnv {
        /// The variable's name, e.g. `DCHAT_TELEMETRY_ADDR`.
        variable: &'static str,
        /// The value found.
        value: String,
        /// The accepted form, e.g. `host:port, such as 0.0.0.0:9090`.
        expected: String,
    },
    /// A configuration value set in code cannot be used.
    #[error("invalid configuration for {option}: {reason}")]
    InvalidConfig {
        /// The option, e.g. `cardinality_limit`.
        option: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// A metric rule is inconsistent or names something Prometheus cannot carry.
    #[error("invalid rule for metric {metric:?}: {reason}")]
    InvalidRule {
        /// The metric the rule feeds.
        metric: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The exposition or the OpenTelemetry side cannot serve: the telemetry was shut down, or
    /// the OpenTelemetry SDK refused an operation.
    #[error("metrics exporter failed: {reason}")]
    Exporter {
        /// What failed.
        reason: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The HTTP listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
}
