//! Property test over field *names*: callsites built at run time with arbitrary names after the
//! tracing-opentelemetry prefixes still give an exposition that `promtool check metrics` parses
//! (its lint about names the caller chose aside) and Python `prometheus_client` accepts, with
//! valid, unreserved metric names.
mod common;

use std::sync::OnceLock;

use common::{promtool_parses, python_parse, telemetry};
use proptest::prelude::*;
use tracing_core::callsite::Callsite;
use tracing_core::field::{FieldSet, Value};
use tracing_core::{identify_callsite, Interest, Kind, Level, Metadata};
use tracing_subscriber::prelude::*;

/// A callsite made at run time (leaked: tracing wants `'static` callsites).
struct DynCallsite(OnceLock<&'static Metadata<'static>>);

impl Callsite for DynCallsite {
    fn set_interest(&self, _: Interest) {}
    fn metadata(&self) -> &Metadata<'_> {
        self.0
            .get()
            .expect("metadata is set before the callsite is registered")
    }
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// An event callsite with three fields: two metric fields and `channel`.
fn callsite(names: [&'static str; 3]) -> &'static Metadata<'static> {
    let cs: &'static DynCallsite = Box::leak(Box::new(DynCallsite(OnceLock::new())));
    let fields: &'static [&'static str] = Box::leak(Box::new(names));
    let meta: &'static Metadata<'static> = Box::leak(Box::new(Metadata::new(
        "dyn event",
        "dchat::dyn",
        Level::INFO,
        None,
        None,
        None,
        FieldSet::new(fields, identify_callsite!(cs)),
        Kind::EVENT,
    )));
    let _ = cs.0.set(meta);
    tracing_core::callsite::register(cs);
    meta
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn any_prefixed_field_names_give_a_valid_exposition(
        a in prop_oneof![any::<String>(), Just(String::new()), Just("_".to_owned()), Just("__reserved".to_owned()), Just("9".to_owned())],
        b in "[\\PC\"\\\\\n{}= .:-]{0,30}",
        kind in 0usize..4,
        value in any::<f64>(),
        channel in any::<String>(),
    ) {
        let prefixes = ["monotonic_counter.", "counter.", "histogram.", "gauge."];
        let first = leak(format!("{}{a}", prefixes[kind]));
        let second = leak(format!("{}{b}", prefixes[(kind + 1) % 4]));
        if first == second || first == "channel" || second == "channel" {
            return Ok(());
        }
        let t = telemetry();
        let dispatch: tracing::Dispatch = tracing_subscriber::registry().with(t.layer()).into();
        tracing::dispatcher::with_default(&dispatch, || {
            let meta = callsite([first, second, "channel"]);
            let fields = meta.fields();
            let (f1, f2, f3) = (fields.field(first).unwrap(), fields.field(second).unwrap(), fields.field("channel").unwrap());
            let v1: &dyn Value = &value;
            let v2: &dyn Value = &3i64;
            let v3: &dyn Value = &channel.as_str();
            let values = [(&f1, Some(v1)), (&f2, Some(v2)), (&f3, Some(v3))];
            tracing_core::Event::dispatch(meta, &fields.value_set(&values));
        });
        let text = t.render().unwrap();
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let name = line.split(' ').nth(2).unwrap_or("");
            prop_assert!(is_valid_metric_name(name), "{}", line);
            prop_assert!(!name.starts_with("__"), "reserved name {}", name);
        }
        // Lint findings about names the caller chose (units in names, ...) are allowed; a
        // parse error is not.
        if let Err(e) = promtool_parses(&text) {
            prop_assert!(false, "promtool could not parse the exposition: {}", e);
        }
        if let Err(e) = python_parse(&text) {
            prop_assert!(false, "prometheus_client rejected: {}", e);
        }
    }
}

/// Prometheus' metric name rule (`[a-zA-Z_:][a-zA-Z0-9_:]*`), written out here so the check
/// does not trust the crate's own.
fn is_valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}
