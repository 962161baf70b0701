//! `db.query` spans take their operation from `db.operation.name` (the current OpenTelemetry
//! semantic convention), else `db.operation`, else `operation`.
mod common;

#[test]
fn the_current_semantic_convention_name_is_read_first() {
    let t = common::telemetry();
    common::with_layer(&t, || {
        drop(tracing::info_span!("db.query", db.operation.name = "select").entered());
        drop(tracing::info_span!("db.query", db.operation = "insert").entered());
        drop(tracing::info_span!("db.query", operation = "update").entered());
        drop(
            tracing::info_span!(
                "db.query",
                db.operation.name = "delete",
                db.operation = "old"
            )
            .entered(),
        );
    });
    let text = t.render().unwrap();
    for op in ["select", "insert", "update", "delete"] {
        assert_eq!(
            common::sample(
                &text,
                "dchat_database_query_duration_seconds_count",
                &[("operation", op)]
            ),
            Some(1.0),
            "{op}"
        );
    }
    assert_eq!(
        common::sample(
            &text,
            "dchat_database_query_duration_seconds_count",
            &[("operation", "old")]
        ),
        None
    );
}
