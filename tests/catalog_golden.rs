//! The catalogue in code equals its golden copy, which `monitoring/check` reads.
use dchat_telemetry::catalog::CATALOG;

/// The catalogue as the tab-separated table kept in `tests/data/catalog.tsv` (header included).
fn catalog_tsv() -> String {
    let mut out = String::from("# name\ttype\tlabels\tunit\thelp\n");
    for m in CATALOG {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            m.name,
            m.kind.prometheus_type(),
            m.labels.join(","),
            m.unit,
            m.help
        ));
    }
    out
}

#[test]
fn catalog_tsv_matches_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/catalog.tsv");
    let golden = std::fs::read_to_string(path).unwrap();
    let ours = catalog_tsv();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &ours).unwrap();
    }
    assert_eq!(
        golden, ours,
        "update tests/data/catalog.tsv (UPDATE_GOLDEN=1)"
    );
}
