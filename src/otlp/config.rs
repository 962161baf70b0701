//! [`OtlpConfig`]: where and how often to push, set in code or by the standard variables.

use std::ffi::OsString;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Uri};
use opentelemetry_sdk::metrics::Temporality;

use crate::config::otel_env::{get, invalid};
use crate::limits::{Range, MAX_OTLP_HEADERS, OTLP_INTERVAL, OTLP_TIMEOUT};
use crate::resource::percent_decode;
use crate::Error;

/// The OTLP/HTTP receiver's default metrics URL (the OpenTelemetry specification's).
pub(crate) const DEFAULT_ENDPOINT: &str = "http://localhost:4318/v1/metrics";

/// An OTLP push of the metrics: where (an `http://` URL), with which headers, how often, within
/// what time, and with which temporality. Give it to
/// [`TelemetryBuilder::with_otlp`](crate::TelemetryBuilder::with_otlp), or let the
/// `OTEL_EXPORTER_OTLP_*` variables make one (see the README, "OTLP push"); checked at
/// [`build`](crate::TelemetryBuilder::build).
///
/// ```no_run
/// use std::time::Duration;
/// use dchat_telemetry::{OtlpConfig, Telemetry};
///
/// let telemetry = Telemetry::builder()
///     .with_node_id("relay-1")
///     .with_otlp(
///         OtlpConfig::new()
///             .with_endpoint("http://otel-collector:4318/v1/metrics")
///             .with_interval(Duration::from_secs(30)),
///     )
///     .build()?; // OTEL_EXPORTER_OTLP_* variables override these
/// // ... at exit: the final values are pushed.
/// telemetry.shutdown();
/// # Ok::<(), dchat_telemetry::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct OtlpConfig {
    pub(crate) endpoint: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) timeout: Duration,
    pub(crate) interval: Duration,
    pub(crate) temporality: Temporality,
    pub(crate) gzip: bool,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            headers: Vec::new(),
            timeout: Duration::from_secs(10),
            interval: Duration::from_secs(60),
            temporality: Temporality::Cumulative,
            gzip: false,
        }
    }
}

impl OtlpConfig {
    /// The defaults: `http://localhost:4318/v1/metrics`, every 60 s, 10 s per push, cumulative,
    /// no compression.
    pub fn new() -> Self {
        OtlpConfig::default()
    }

    /// The receiver's metrics URL, used as is (`http://collector:4318/v1/metrics`; Prometheus
    /// 3: `http://prometheus:9090/api/v1/otlp/v1/metrics`). Plain `http://` only: this feature's
    /// HTTP client has no TLS.
    pub fn with_endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = url.into();
        self
    }

    /// A header sent with every push (an API key, say).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        self.headers.push((name, value.into()));
        self
    }

    /// Time one push may take, retries included (default 10 s; 1 ms to 60 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Time between two pushes (default 60 s; 100 ms to 1 h).
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Cumulative (the default: what Prometheus' OTLP receiver takes), delta or low-memory
    /// temporality; what each does to expired series is in the README ("OTLP push").
    pub fn with_temporality(mut self, temporality: Temporality) -> Self {
        self.temporality = temporality;
        self
    }

    /// Whether pushes are gzip-compressed (default off).
    pub fn with_gzip(mut self, on: bool) -> Self {
        self.gzip = on;
        self
    }

    /// Checks what was set in code.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let bad =
            |option: &'static str, reason: String| Err(Error::InvalidConfig { option, reason });
        if let Err(reason) = check_endpoint(&self.endpoint) {
            return bad("otlp.endpoint", reason);
        }
        if let Err(reason) = check_headers(&self.headers) {
            return bad("otlp.header", reason);
        }
        if !OTLP_TIMEOUT.contains(self.timeout) {
            return bad(
                "otlp.timeout",
                format!("{:?} is not {}", self.timeout, range_ms(OTLP_TIMEOUT)),
            );
        }
        if !OTLP_INTERVAL.contains(self.interval) {
            return bad(
                "otlp.interval",
                format!("{:?} is not {}", self.interval, range_ms(OTLP_INTERVAL)),
            );
        }
        Ok(())
    }
}

impl crate::TelemetryBuilder {
    /// Pushes the metrics over OTLP/HTTP as `config` says (the `otlp` feature; none by
    /// default). The `OTEL_EXPORTER_OTLP_*` variables override it, an endpoint variable alone
    /// turns the push on, and `OTEL_METRICS_EXPORTER=none` turns it off (see the README, "OTLP
    /// push"). `node_id` is pushed as `service.instance.id`, so that every node stays apart.
    pub fn with_otlp(mut self, config: OtlpConfig) -> Self {
        self.otlp = Some(config);
        self
    }
}

fn range_ms(r: Range<Duration>) -> String {
    format!(
        "from {} to {} milliseconds",
        r.min.as_millis(),
        r.max.as_millis()
    )
}

/// An `http://` URL with a host.
fn check_endpoint(url: &str) -> Result<(), String> {
    let uri: Uri = url
        .trim()
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "{url:?}: https needs TLS, which the otlp feature's HTTP client does not have; \
                 push to a collector over http (a sidecar, or one in the cluster), or give a \
                 reader of your own to with_otel_reader"
            ))
        }
        _ => return Err(format!("{url:?} is not an http:// URL")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    Ok(())
}

fn check_headers(headers: &[(String, String)]) -> Result<(), String> {
    if headers.len() > MAX_OTLP_HEADERS {
        return Err(format!(
            "{} headers (at most {MAX_OTLP_HEADERS})",
            headers.len()
        ));
    }
    for (name, value) in headers {
        if HeaderName::from_bytes(name.as_bytes()).is_err() || HeaderValue::from_str(value).is_err()
        {
            return Err(format!(
                "{name:?} is not a header name, or its value not a header value"
            ));
        }
    }
    Ok(())
}

/// `key=value,...` with percent-encoded values (the OTLP headers variables' form).
fn parse_headers(v: &str) -> Option<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=')?;
        let name = name.trim().to_owned();
        let value = percent_decode(value.trim())?;
        out.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        out.push((name, value));
    }
    check_headers(&out).ok()?;
    Some(out)
}

const ENDPOINT_FORM: &str = "an http:// URL with a host (no TLS in this build), such as \
                             http://otel-collector:4318";
const HEADERS_FORM: &str =
    "comma-separated name=value pairs, values percent-encoded, such as api-key=abc%3D";
const MS_FORM: &str = "a whole number of milliseconds";
const EXPORTER_FORM: &str = "otlp, none or prometheus (comma-separated)";
const PROTOCOL_FORM: &str = "http/protobuf (the only protocol this build pushes)";
const COMPRESSION_FORM: &str = "gzip or none";
const TEMPORALITY_FORM: &str = "cumulative, delta or lowmemory";

/// Applies the OTLP variables from `lookup` to `otlp` (made when a variable asks for a push,
/// dropped when `OTEL_METRICS_EXPORTER=none`).
///
/// # Errors
/// [`Error::InvalidEnv`] naming the first variable whose value is not of its accepted form.
pub(crate) fn apply_env(
    otlp: &mut Option<OtlpConfig>,
    lookup: &dyn Fn(&str) -> Option<OsString>,
) -> Result<(), Error> {
    let var = |name: &'static str, form: &str| get(lookup, name, form);
    // A signal-specific variable wins over the general one.
    let either = |specific: &'static str, general: &'static str, form: &str| {
        Ok::<_, Error>(match var(specific, form)? {
            Some(v) => Some((specific, v)),
            None => var(general, form)?.map(|v| (general, v)),
        })
    };
    let mut wanted = None;
    if let Some(v) = var("OTEL_METRICS_EXPORTER", EXPORTER_FORM)? {
        let names: Vec<String> = v
            .split(',')
            .map(|e| e.trim().to_ascii_lowercase())
            .collect();
        if names
            .iter()
            .any(|e| !matches!(e.as_str(), "otlp" | "none" | "prometheus" | ""))
        {
            return Err(invalid("OTEL_METRICS_EXPORTER", &v, EXPORTER_FORM));
        }
        if names.iter().any(|e| e == "otlp") {
            wanted = Some(true);
        } else if names.iter().any(|e| e == "none") {
            wanted = Some(false);
        }
    }
    let endpoint = match var("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", ENDPOINT_FORM)? {
        Some(url) => Some(("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", url.trim().to_owned())),
        None => var("OTEL_EXPORTER_OTLP_ENDPOINT", ENDPOINT_FORM)?.map(|base| {
            let base = base.trim().trim_end_matches('/');
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("{base}/v1/metrics"))
        }),
    };
    if endpoint.is_some() && wanted.is_none() {
        wanted = Some(true);
    }
    match wanted {
        Some(false) => {
            *otlp = None;
            return Ok(());
        }
        Some(true) if otlp.is_none() => *otlp = Some(OtlpConfig::default()),
        _ => {}
    }
    let Some(config) = otlp.as_mut() else {
        return Ok(()); // no push: the other variables do not matter
    };
    if let Some((name, url)) = endpoint {
        check_endpoint(&url).map_err(|e| invalid(name, &url, &format!("{ENDPOINT_FORM} ({e})")))?;
        config.endpoint = url;
    }
    if let Some((name, v)) = either(
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
        "OTEL_EXPORTER_OTLP_HEADERS",
        HEADERS_FORM,
    )? {
        for (k, val) in parse_headers(&v).ok_or_else(|| invalid(name, &v, HEADERS_FORM))? {
            config.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&k));
            config.headers.push((k, val));
        }
    }
    let ms = |name: &'static str, v: &str, range: Range<Duration>| {
        v.trim()
            .parse::<u64>()
            .ok()
            .map(Duration::from_millis)
            .filter(|d| range.contains(*d))
            .ok_or_else(|| invalid(name, v, &format!("{MS_FORM} {}", range_ms(range))))
    };
    if let Some((name, v)) = either(
        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        MS_FORM,
    )? {
        config.timeout = ms(name, &v, OTLP_TIMEOUT)?;
    }
    if let Some(v) = var("OTEL_METRIC_EXPORT_INTERVAL", MS_FORM)? {
        config.interval = ms("OTEL_METRIC_EXPORT_INTERVAL", &v, OTLP_INTERVAL)?;
    }
    if let Some((name, v)) = either(
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        PROTOCOL_FORM,
    )? {
        if v.trim() != "http/protobuf" {
            return Err(invalid(name, &v, PROTOCOL_FORM));
        }
    }
    if let Some((name, v)) = either(
        "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        COMPRESSION_FORM,
    )? {
        config.gzip = match v.trim().to_ascii_lowercase().as_str() {
            "gzip" => true,
            "none" => false,
            _ => return Err(invalid(name, &v, COMPRESSION_FORM)),
        };
    }
    const TEMPORALITY: &str = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE";
    if let Some(v) = var(TEMPORALITY, TEMPORALITY_FORM)? {
        config.temporality = match v.trim().to_ascii_lowercase().as_str() {
            "cumulative" => Temporality::Cumulative,
            "delta" => Temporality::Delta,
            "lowmemory" => Temporality::LowMemory,
            _ => return Err(invalid(TEMPORALITY, &v, TEMPORALITY_FORM)),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn apply(
        start: Option<OtlpConfig>,
        pairs: &[(&str, &str)],
    ) -> Result<Option<OtlpConfig>, Error> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(*v)))
            .collect();
        let mut otlp = start;
        apply_env(&mut otlp, &|k: &str| map.get(k).cloned())?;
        Ok(otlp)
    }

    #[test]
    fn an_endpoint_variable_turns_the_push_on() {
        assert_eq!(apply(None, &[]).unwrap(), None);
        let c = apply(
            None,
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")],
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.endpoint, "http://collector:4318/v1/metrics");
        let c = apply(
            None,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                (
                    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                    "http://prom:9090/api/v1/otlp/v1/metrics",
                ),
                ("OTEL_EXPORTER_OTLP_HEADERS", "a=1,b=x%2Cy"),
                ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "2500"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "9000"),
                ("OTEL_METRIC_EXPORT_INTERVAL", "15000"),
                ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "Delta"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.endpoint, "http://prom:9090/api/v1/otlp/v1/metrics");
        assert_eq!(
            c.headers,
            vec![("a".into(), "1".into()), ("b".into(), "x,y".into())]
        );
        assert_eq!(c.timeout, Duration::from_millis(2500));
        assert_eq!(c.interval, Duration::from_secs(15));
        assert_eq!(c.temporality, Temporality::Delta);
        assert!(c.gzip);
        let c = apply(None, &[("OTEL_METRICS_EXPORTER", "otlp")])
            .unwrap()
            .unwrap();
        assert_eq!(c.endpoint, DEFAULT_ENDPOINT);
    }

    #[test]
    fn none_turns_off_what_code_turned_on() {
        let code = Some(OtlpConfig::new().with_endpoint("http://a:1/v1/metrics"));
        assert_eq!(
            apply(
                code.clone(),
                &[
                    ("OTEL_METRICS_EXPORTER", "none"),
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://b:2")
                ]
            )
            .unwrap(),
            None
        );
        let kept = apply(code.clone(), &[("OTEL_METRIC_EXPORT_INTERVAL", "5000")])
            .unwrap()
            .unwrap();
        assert_eq!(kept.endpoint, "http://a:1/v1/metrics");
        assert_eq!(kept.interval, Duration::from_secs(5));
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "collector:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "novalue"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "0"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
            (
                "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
                "sometimes",
            ),
            ("OTEL_METRICS_EXPORTER", "console"),
        ] {
            let e = apply(Some(OtlpConfig::new()), &[(var, value)]).unwrap_err();
            assert!(
                matches!(&e, Error::InvalidEnv { variable, .. } if *variable == var),
                "{var}: {e}"
            );
        }
    }

    #[test]
    fn code_values_are_checked() {
        assert!(OtlpConfig::new().validate().is_ok());
        for bad in [
            OtlpConfig::new().with_endpoint("https://x:1"),
            OtlpConfig::new().with_endpoint("not a url"),
            OtlpConfig::new().with_header("bad name", "v"),
            OtlpConfig::new().with_timeout(Duration::ZERO),
            OtlpConfig::new().with_interval(Duration::from_millis(10)),
        ] {
            assert!(
                matches!(bad.validate(), Err(Error::InvalidConfig { .. })),
                "{bad:?}"
            );
        }
    }
}
