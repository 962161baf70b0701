//! tracing-opentelemetry's field-prefix convention: an event field `monotonic_counter.x`,
//! `counter.x`, `histogram.x` or `gauge.x` feeds an instrument named `x`, so code written for
//! tracing-opentelemetry's `MetricsLayer` moves over unchanged.

use super::compile::{Compiled, PlanBuilder};
use super::{Action, LabelPlan, Source, ValuePlan};
use crate::catalog::MetricDef;
use crate::catalog::MetricKind;
use crate::labels::{sanitize_label_name, sanitize_metric_name, COUNTER_SUFFIX};

/// The default buckets tracing-opentelemetry's `histogram.` fields get (the SDK's defaults).
const PREFIX_BUCKETS: &[f64] = &[
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
    10000.0,
];

/// The instrument kind a field's prefix names, and the rest of the name.
fn prefix_kind(field: &str) -> Option<(MetricKind, &str)> {
    [
        ("monotonic_counter.", MetricKind::Counter),
        ("counter.", MetricKind::UpDownCounter),
        ("histogram.", MetricKind::Histogram),
        ("gauge.", MetricKind::Gauge),
    ]
    .into_iter()
    .find_map(|(prefix, kind)| field.strip_prefix(prefix).map(|base| (kind, base)))
}

/// The scraped name of the metric a prefix field feeds: sanitised, `_total` on counters only
/// (once), never empty or reserved.
fn metric_name(kind: MetricKind, base: &str) -> String {
    let sanitized = sanitize_metric_name(base);
    // `_total` is added back to counters; a base that is nothing else keeps it (an empty name
    // would break the whole exposition).
    let base = match sanitized.strip_suffix(COUNTER_SUFFIX) {
        Some(b) if !b.is_empty() => b,
        _ => &sanitized,
    };
    let composed = if kind == MetricKind::Counter {
        format!("{base}{COUNTER_SUFFIX}")
    } else {
        base.to_owned()
    };
    // Composing can give a reserved `__` prefix (`_` + `_total`): the shared name rules deal
    // with it.
    sanitize_metric_name(&composed)
}

impl Compiled {
    /// tracing-opentelemetry's convention: `monotonic_counter.x`, `counter.x`, `histogram.x`,
    /// `gauge.x` fields feed instruments named `x`; allow-listed fields of the event are labels.
    pub(super) fn prefix_actions(&self, b: &mut PlanBuilder, actions: &mut Vec<Action>) {
        let meta = b.meta;
        let label_fields: Vec<&'static str> = meta
            .fields()
            .iter()
            .map(|f| f.name())
            .filter(|n| self.prefix_labels.iter().any(|l| l == n))
            .collect();
        for field in meta.fields().iter() {
            let name = field.name();
            let Some((kind, base)) = prefix_kind(name) else {
                continue;
            };
            let Some(slot) = b.slot(name) else { continue };
            b.usage(slot).value = true;
            let metric_name = metric_name(kind, base);
            let label_names: Vec<String> = label_fields
                .iter()
                .map(|f| sanitize_label_name(f))
                .collect();
            let def = MetricDef {
                name: metric_name.clone(),
                kind,
                unit: String::new(),
                help: format!(
                    "Recorded from the tracing field `{}`.",
                    name.escape_default()
                ),
                buckets: if kind == MetricKind::Histogram {
                    PREFIX_BUCKETS.to_vec()
                } else {
                    Vec::new()
                },
                label_names: label_names.clone(),
            };
            let (metric, conflict) = match self.metrics.get_or_create(&def, false) {
                Some(m) => (m, false),
                None => match self.metrics.get(&metric_name) {
                    Some(m) => (m, true),
                    None => continue,
                },
            };
            let labels = label_fields
                .iter()
                .map(|f| {
                    let slot = b.slot(f);
                    if let Some(slot) = slot {
                        b.usage(slot).label = true;
                    }
                    LabelPlan {
                        own: slot.into_iter().collect(),
                        inherit: Box::new([]),
                        fallback: "unknown".into(),
                        known: self.known(None, f),
                    }
                })
                .collect();
            let set = metric.label_set_id(&label_names);
            actions.push(Action {
                metric,
                set,
                value: ValuePlan::Fields {
                    first: Some(Source { slot, scale: 1.0 }),
                    rest: Box::new([]),
                    default: None,
                    range: None,
                },
                labels,
                conflict,
                cache: Default::default(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_name_kinds() {
        assert_eq!(
            prefix_kind("monotonic_counter.hits"),
            Some((MetricKind::Counter, "hits"))
        );
        assert_eq!(
            prefix_kind("counter.queue"),
            Some((MetricKind::UpDownCounter, "queue"))
        );
        assert_eq!(
            prefix_kind("histogram.latency"),
            Some((MetricKind::Histogram, "latency"))
        );
        assert_eq!(prefix_kind("gauge.temp"), Some((MetricKind::Gauge, "temp")));
        assert_eq!(prefix_kind("channel"), None);
    }

    #[test]
    fn names_are_valid_with_total_on_counters_only() {
        assert_eq!(metric_name(MetricKind::Counter, "hits"), "hits_total");
        assert_eq!(metric_name(MetricKind::Counter, "hits_total"), "hits_total");
        assert_eq!(metric_name(MetricKind::Gauge, "a.b"), "a_b");
        assert_eq!(metric_name(MetricKind::Gauge, "_total"), "_total");
        assert_eq!(metric_name(MetricKind::Counter, "_"), "x__total");
        assert_eq!(metric_name(MetricKind::Histogram, ""), "_");
    }
}
