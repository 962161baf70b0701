//! What runs and who it is: `dchat_build_info{version,revision}` from the application (1, a
//! gauge in the text format, the `info` family `dchat_build` in OpenMetrics), and `target_info`
//! with the node's resource attributes (`service_name`, `service_instance_id` from `node_id`,
//! `service_version`, `OTEL_RESOURCE_ATTRIBUTES`' ones), both checked by promtool and Python's
//! text and OpenMetrics parsers.
mod common;

use std::ffi::OsString;

use dchat_telemetry::{BuildInfo, Error, Format, Telemetry};

fn telemetry() -> Telemetry {
    let env = [(
        "OTEL_RESOURCE_ATTRIBUTES",
        "deployment.environment=prod,k8s.pod.name=dchat-relay-0",
    )];
    Telemetry::builder()
        .with_node_id("relay-1")
        .with_role("relay")
        .with_build_info(dchat_telemetry::build_info!().with_label("profile", "test"))
        .with_resource_attribute("k8s.namespace.name", "chat")
        .apply_env_os(|k| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| OsString::from(v))
        })
        .unwrap()
        .without_env()
        .build()
        .unwrap()
}

#[test]
fn text_format() {
    let text = telemetry().render().unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert!(text.contains("# TYPE dchat_build_info gauge\n"), "{text}");
    assert_eq!(
        common::sample(
            &text,
            "dchat_build_info",
            &[
                ("version", version),
                ("profile", "test"),
                ("node_id", "relay-1"),
                ("role", "relay")
            ]
        ),
        Some(1.0)
    );
    assert!(text.contains("# TYPE target_info gauge\n"), "{text}");
    let target = common::samples(&text)
        .into_iter()
        .find(|s| s.name == "target_info")
        .unwrap();
    assert_eq!(target.value, 1.0);
    for (k, v) in [
        ("service_name", "dchat"),
        ("service_instance_id", "relay-1"),
        ("service_version", version),
        ("node_id", "relay-1"),
        ("role", "relay"),
        ("deployment_environment", "prod"),
        ("k8s_pod_name", "dchat-relay-0"),
        ("k8s_namespace_name", "chat"),
        ("telemetry_sdk_language", "rust"),
        ("service", "dchat"),
    ] {
        assert!(
            target.labels.contains(&(k.to_owned(), v.to_owned())),
            "{k}={v} in {:?}",
            target.labels
        );
    }
    assert_eq!(common::promtool_findings(&text), None);
    common::python_parse(&text).unwrap();
}

#[test]
fn openmetrics_info_families() {
    let text = telemetry().render_format(Format::OpenMetrics).unwrap();
    assert!(text.contains("# TYPE dchat_build info\n"), "{text}");
    assert!(text.contains("# TYPE target info\n"), "{text}");
    assert!(text.contains("\ndchat_build_info{"), "{text}");
    assert!(text.contains("\ntarget_info{"), "{text}");
    common::python_parse_openmetrics(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
}

#[test]
fn without_build_info_the_labels_say_unknown() {
    let t = Telemetry::builder().without_env().build().unwrap();
    let text = t.render().unwrap();
    assert_eq!(
        common::sample(
            &text,
            "dchat_build_info",
            &[("version", "unknown"), ("revision", "unknown")]
        ),
        Some(1.0)
    );
    assert!(!text.contains("service_version="), "no version is claimed");
}

#[test]
fn bad_build_info_is_refused() {
    let err = Telemetry::builder()
        .with_build_info(BuildInfo::new("", "abc"))
        .without_env()
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidConfig {
                option: "build_info",
                ..
            }
        ),
        "{err}"
    );
    let err = Telemetry::builder()
        .with_node_id("n")
        .with_build_info(BuildInfo::new("1", "abc").with_label("node_id", "x"))
        .without_env()
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidConfig {
                option: "build_info",
                ..
            }
        ),
        "{err}"
    );
}
