//! The standard OpenTelemetry variables the builder reads besides its own `DCHAT_TELEMETRY_*`
//! (and before them, so that those win): the resource's (`OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`) in every build, the OTLP exporter's (`OTEL_EXPORTER_OTLP_*`,
//! `OTEL_METRICS_EXPORTER`, `OTEL_METRIC_EXPORT_INTERVAL`) with the `otlp` feature. Without
//! that feature, an OTLP variable that asks for a push is noted, and `/health` warns that this
//! build cannot push.

use std::ffi::OsString;

use super::TelemetryBuilder;
use crate::labels::label_value;
use crate::resource::parse_resource_attributes;
use crate::Error;

pub(crate) const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
pub(crate) const OTEL_RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";

/// A variable's value, checked to be UTF-8.
pub(crate) fn get(
    lookup: &dyn Fn(&str) -> Option<OsString>,
    variable: &'static str,
    form: &str,
) -> Result<Option<String>, Error> {
    match lookup(variable) {
        None => Ok(None),
        Some(v) => v.into_string().map(Some).map_err(|raw| Error::InvalidEnv {
            variable,
            value: raw.to_string_lossy().into_owned(),
            expected: format!("valid UTF-8: {form}"),
        }),
    }
}

/// The error for `variable` holding `value`, which is not `expected`.
pub(crate) fn invalid(variable: &'static str, value: &str, expected: &str) -> Error {
    Error::InvalidEnv {
        variable,
        value: value.to_owned(),
        expected: expected.to_owned(),
    }
}

const RESOURCE_FORM: &str = "comma-separated key=value pairs, values percent-encoded, such as \
                             deployment.environment=prod,k8s.pod.name=dchat-0";
const SERVICE_FORM: &str = "a non-empty service name of at most 128 bytes";

impl TelemetryBuilder {
    /// Applies the OpenTelemetry variables from `lookup` (before the `DCHAT_TELEMETRY_*` ones).
    pub(super) fn apply_otel_env(
        &mut self,
        lookup: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<(), Error> {
        if let Some(v) = get(lookup, OTEL_RESOURCE_ATTRIBUTES, RESOURCE_FORM)? {
            let attrs = parse_resource_attributes(&v)
                .ok_or_else(|| invalid(OTEL_RESOURCE_ATTRIBUTES, &v, RESOURCE_FORM))?;
            for (key, value) in attrs {
                let clean = label_value(&value)
                    .ok_or_else(|| invalid(OTEL_RESOURCE_ATTRIBUTES, &v, RESOURCE_FORM))?;
                // The two attributes that are constant labels here set those labels (below
                // OTEL_SERVICE_NAME and DCHAT_TELEMETRY_*), so that pushed and scraped agree.
                match key.as_str() {
                    "service.name" => self.service = clean,
                    "service.instance.id" => self.node_id = Some(clean),
                    _ => {
                        self.resource_attributes.retain(|(k, _)| *k != key);
                        self.resource_attributes.push((key, clean));
                    }
                }
            }
        }
        if let Some(v) = get(lookup, OTEL_SERVICE_NAME, SERVICE_FORM)? {
            self.service =
                label_value(&v).ok_or_else(|| invalid(OTEL_SERVICE_NAME, &v, SERVICE_FORM))?;
        }
        #[cfg(feature = "otlp")]
        crate::otlp::apply_env(&mut self.otlp, lookup)?;
        #[cfg(not(feature = "otlp"))]
        {
            self.otlp_requested = push_requested(lookup);
        }
        Ok(())
    }
}

/// The first OTLP variable that asks for a push, in a build that cannot push.
#[cfg(not(feature = "otlp"))]
fn push_requested(lookup: &dyn Fn(&str) -> Option<OsString>) -> Option<&'static str> {
    for var in [
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ] {
        if lookup(var).is_some_and(|v| !v.is_empty()) {
            return Some(var);
        }
    }
    let exporter = lookup("OTEL_METRICS_EXPORTER")?;
    exporter
        .to_string_lossy()
        .split(',')
        .any(|e| e.trim().eq_ignore_ascii_case("otlp"))
        .then_some("OTEL_METRICS_EXPORTER")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(*v)))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    #[test]
    fn dchat_variables_win_over_otel_ones_which_win_over_code() {
        let b = TelemetryBuilder::default()
            .with_service_name("code")
            .apply_env_os(env(&[
                (
                    "OTEL_RESOURCE_ATTRIBUTES",
                    "service.name=attrs,service.instance.id=pod-1,team=chat",
                ),
                ("OTEL_SERVICE_NAME", "otel"),
            ]))
            .unwrap();
        assert_eq!(b.service, "otel");
        assert_eq!(b.node_id.as_deref(), Some("pod-1"));
        assert_eq!(
            b.resource_attributes,
            vec![("team".to_owned(), "chat".to_owned())]
        );
        let b = TelemetryBuilder::default()
            .apply_env_os(env(&[
                ("OTEL_SERVICE_NAME", "otel"),
                ("DCHAT_TELEMETRY_SERVICE", "dchat-relay"),
                ("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=pod-1"),
                ("DCHAT_TELEMETRY_NODE_ID", "node-1"),
            ]))
            .unwrap();
        assert_eq!(b.service, "dchat-relay");
        assert_eq!(b.node_id.as_deref(), Some("node-1"));
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("OTEL_RESOURCE_ATTRIBUTES", "novalue"),
            ("OTEL_RESOURCE_ATTRIBUTES", "k= "),
            ("OTEL_SERVICE_NAME", " "),
        ] {
            let e = TelemetryBuilder::default()
                .apply_env_os(env(&[(var, value)]))
                .unwrap_err();
            assert!(
                matches!(&e, Error::InvalidEnv { variable, .. } if *variable == var),
                "{e}"
            );
        }
    }

    #[cfg(not(feature = "otlp"))]
    #[test]
    fn a_push_asked_of_a_build_without_otlp_is_noted() {
        let b = TelemetryBuilder::default()
            .apply_env_os(env(&[(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://collector:4318",
            )]))
            .unwrap();
        assert_eq!(b.otlp_requested, Some("OTEL_EXPORTER_OTLP_ENDPOINT"));
        let b = TelemetryBuilder::default()
            .apply_env_os(env(&[("OTEL_METRICS_EXPORTER", "none")]))
            .unwrap();
        assert_eq!(b.otlp_requested, None);
    }
}
