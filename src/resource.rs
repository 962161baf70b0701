//! Who this node is, in OpenTelemetry's words: the resource every OpenTelemetry reader (an OTLP
//! push) reports, and the `target_info` family `/metrics` shows it as.
//!
//! The constant labels become resource attributes: `service` as `service.name`, `node_id` both
//! as itself and as `service.instance.id` (which OTLP receivers such as Prometheus 3's make the
//! `instance` label: without it, every pushing node would land in one series), `role` and the
//! other constant labels as themselves; the build's version as `service.version`. Attributes
//! from `OTEL_RESOURCE_ATTRIBUTES` or
//! [`with_resource_attribute`](crate::TelemetryBuilder::with_resource_attribute) come first and
//! are overridden by those, and the SDK's `telemetry.sdk.*` attributes are added.

use opentelemetry::KeyValue;
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::Resource;

use crate::build_info::BuildInfo;
use crate::labels::{label_value, sanitize_label_name};

/// The resource of a node with these constant labels (as exported), build and further
/// attributes.
pub(crate) fn resource(
    const_labels: &[(String, String)],
    build: &BuildInfo,
    extra: &[(String, String)],
) -> Resource {
    let mut attrs: Vec<(String, String)> = extra.to_vec();
    let mut set = |k: &str, v: &str| {
        attrs.retain(|(a, _)| a != k);
        attrs.push((k.to_owned(), v.to_owned()));
    };
    for (k, v) in const_labels {
        match k.as_str() {
            "service" => set("service.name", v),
            "node_id" => {
                set("service.instance.id", v);
                set("node_id", v);
            }
            _ => set(k, v),
        }
    }
    if let Some(version) = build.known_version() {
        set("service.version", version);
    }
    Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_attributes(attrs.into_iter().map(|(k, v)| KeyValue::new(k, v)))
        .build()
}

/// The labels of `target_info`: every attribute of `resource`, its key made a label name (dots
/// and other characters as `_`), sorted by name. Keys that make the same name have their values
/// joined with `;` in the order of the keys (as Prometheus' OTLP receiver does); values are
/// sanitised and capped like every label value, and empty ones left out.
pub(crate) fn target_info_labels(resource: &Resource) -> Vec<(String, String)> {
    let mut attrs: Vec<(String, String)> = resource
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), label_value(v.as_str().as_ref())?)))
        .collect();
    attrs.sort();
    let mut out: Vec<(String, String)> = Vec::with_capacity(attrs.len());
    for (key, value) in attrs {
        let name = sanitize_label_name(&key);
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.push(';');
                v.push_str(&value);
            }
            None => out.push((name, value)),
        }
    }
    out.sort();
    out
}

/// Parses `OTEL_RESOURCE_ATTRIBUTES`: comma-separated `key=value` pairs, values
/// percent-encoded (`%2C` for a comma); `None` when a pair has no `=`, an empty key, or a
/// value that does not decode to UTF-8.
pub(crate) fn parse_resource_attributes(v: &str) -> Option<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=')?;
        let key = key.trim();
        if key.is_empty() {
            return None;
        }
        let value = percent_decode(value.trim())?;
        out.retain(|(k, _)| k != key);
        out.push((key.to_owned(), value));
    }
    Some(out)
}

/// `%XX` escapes decoded; `None` for a broken escape or a result that is not UTF-8.
pub(crate) fn percent_decode(v: &str) -> Option<String> {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consts() -> Vec<(String, String)> {
        [
            ("service", "dchat"),
            ("node_id", "node-1"),
            ("role", "relay"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    #[test]
    fn node_id_is_the_instance_and_stays_itself() {
        let extra = vec![
            ("service.instance.id".to_owned(), "pod-7".to_owned()),
            ("deployment.environment".to_owned(), "prod".to_owned()),
        ];
        let r = resource(&consts(), &BuildInfo::new("1.2.3", "abc"), &extra);
        let get = |k: &'static str| r.get(&opentelemetry::Key::new(k)).map(|v| v.to_string());
        assert_eq!(get("service.name").as_deref(), Some("dchat"));
        assert_eq!(get("service.instance.id").as_deref(), Some("node-1"));
        assert_eq!(get("node_id").as_deref(), Some("node-1"));
        assert_eq!(get("role").as_deref(), Some("relay"));
        assert_eq!(get("service.version").as_deref(), Some("1.2.3"));
        assert_eq!(get("deployment.environment").as_deref(), Some("prod"));
        assert_eq!(get("telemetry.sdk.language").as_deref(), Some("rust"));
        let labels = target_info_labels(&r);
        let names: Vec<&str> = labels.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
        assert!(labels.contains(&("service_instance_id".into(), "node-1".into())));
        assert!(labels.contains(&("deployment_environment".into(), "prod".into())));
        let unknown = resource(&consts(), &BuildInfo::default(), &[]);
        assert_eq!(
            unknown.get(&opentelemetry::Key::new("service.version")),
            None
        );
    }

    #[test]
    fn clashing_names_are_joined_in_key_order() {
        let r = Resource::builder_empty()
            .with_attributes([KeyValue::new("a_b", "2"), KeyValue::new("a.b", "1")])
            .build();
        assert_eq!(target_info_labels(&r), vec![("a_b".into(), "1;2".into())]);
    }

    #[test]
    fn resource_attributes_parse_and_decode() {
        assert_eq!(
            parse_resource_attributes(" k8s.pod.name=p-1 , team=chat%2Cops,team=x"),
            Some(vec![
                ("k8s.pod.name".into(), "p-1".into()),
                ("team".into(), "x".into())
            ])
        );
        assert_eq!(parse_resource_attributes(""), Some(vec![]));
        assert_eq!(parse_resource_attributes("novalue"), None);
        assert_eq!(parse_resource_attributes("=v"), None);
        assert_eq!(parse_resource_attributes("k=%zz"), None);
        assert_eq!(parse_resource_attributes("k=%ff"), None);
        assert_eq!(percent_decode("a%20b%"), None);
    }
}
