//! The catalogue in code equals its golden copy, which `monitoring/check` reads.
#[test]
fn catalog_tsv_matches_code() {
    let golden = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/catalog.tsv"
    ))
    .unwrap();
    assert_eq!(
        golden,
        dchat_telemetry::catalog::catalog_tsv(),
        "update tests/data/catalog.tsv"
    );
}
