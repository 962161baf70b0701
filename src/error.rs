//! The crate's one error type.

use std::net::SocketAddr;
use std::path::PathBuf;

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
    /// Another registry given to the builder
    /// ([`with_metrics_text`](crate::TelemetryBuilder::with_metrics_text) and the like) has a
    /// family whose name is one of this crate's families' or of another registry's (Prometheus
    /// would take the samples of one for the other's).
    #[error("family {family} of registry {registry:?} has a name of {clashes_with}")]
    DuplicateFamily {
        /// The family, as the text format names it.
        family: String,
        /// The registry's name.
        registry: String,
        /// The family it clashes with.
        clashes_with: String,
    },
    /// The HTTP listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The web config file (TLS and basic auth, in Prometheus exporter-toolkit's format) or a
    /// file it names cannot be used: unreadable, not valid YAML, an unknown key, a value out of
    /// range, a key or value this crate does not implement, a certificate or key that does not
    /// load, a password that is not a bcrypt hash.
    #[error("web config {path}: {reason}")]
    WebConfig {
        /// The web config file.
        path: PathBuf,
        /// What is wrong, naming the key (and the file it names, when that is the problem).
        reason: String,
    },
}
