//! The standard process metrics are on by default with their usual names and types, and can be
//! switched off.
mod common;

#[test]
fn process_metrics_by_default_and_switchable_off() {
    let on = common::telemetry().render().unwrap();
    for (name, kind) in [
        ("process_cpu_seconds_total", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_virtual_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
        ("process_max_fds", "gauge"),
        ("process_start_time_seconds", "gauge"),
        ("process_threads", "gauge"),
    ] {
        assert!(on.contains(&format!("# TYPE {name} {kind}\n")), "{name}");
        assert!(common::sample(&on, name, &[]).is_some(), "{name}");
    }
    assert!(common::sample(&on, "process_resident_memory_bytes", &[]).unwrap() > 1e6);
    let off = dchat_telemetry::Telemetry::builder()
        .with_process_metrics(false)
        .without_env()
        .build()
        .unwrap()
        .render()
        .unwrap();
    assert!(!off.contains("process_"), "{off}");
}
