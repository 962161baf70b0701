//! A set of rules checked together: rules feeding one metric agree on it, and the limits that
//! only a whole set can break (label fields, gauges per span, prefix labels).

use std::collections::HashMap;

use super::{KnownValues, LabelSource, Measure, MetricDef, Rule};
use crate::labels::is_valid_label_name;
use crate::limits::{MAX_LABELS, MAX_LABEL_FIELDS, MAX_SPAN_ACTIVE};
use crate::Error;

/// A set of rules, plus the tracing-opentelemetry field-prefix convention.
#[derive(Debug, Clone)]
pub struct Rules {
    pub(crate) rules: Vec<Rule>,
    pub(crate) prefix_fields: bool,
    pub(crate) prefix_labels: Vec<String>,
    /// Labels bounded to known values in every rule (and field-prefix metric) that has them.
    pub(crate) known: Vec<(String, KnownValues)>,
}

impl Rules {
    /// No rules, and no field-prefix metrics.
    #[must_use]
    pub fn empty() -> Self {
        Rules {
            rules: Vec::new(),
            prefix_fields: false,
            prefix_labels: Vec::new(),
            known: Vec::new(),
        }
    }

    /// Adds a rule.
    #[must_use]
    pub fn with_rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Turns the tracing-opentelemetry field prefixes (`monotonic_counter.`, `counter.`,
    /// `histogram.`, `gauge.`) on or off.
    #[must_use]
    pub fn with_prefix_fields(mut self, enabled: bool) -> Self {
        self.prefix_fields = enabled;
        self
    }

    /// The fields that may become labels of field-prefix metrics (the allow-list; every other
    /// field of such an event is ignored). Replaces the default list.
    #[must_use]
    pub fn with_prefix_labels<I, S>(mut self, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.prefix_labels = fields.into_iter().map(Into::into).collect();
        self
    }

    /// Bounds label `label` of every rule and field-prefix metric that has it to `known` (a
    /// rule's own [`RuleBuilder::with_known_values`](crate::RuleBuilder::with_known_values)
    /// wins): any other value is recorded as `known.other()`. Given again for the same label,
    /// the last one counts.
    #[must_use]
    pub fn with_known_values(mut self, label: impl Into<String>, known: KnownValues) -> Self {
        super::known::bind(&mut self.known, label.into(), known);
        self
    }

    /// The rules, in order.
    #[must_use]
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Checks that rules feeding the same metric agree on its definition.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let mut seen: HashMap<&str, &MetricDef> = HashMap::new();
        for rule in &self.rules {
            if let Some(prev) = seen.insert(&rule.metric.name, &rule.metric) {
                if prev != &rule.metric {
                    return Err(Error::InvalidRule {
                        metric: rule.metric.name.clone(),
                        reason: "two rules define this metric differently (kind, unit, help, \
                                 buckets and label names must agree)"
                            .into(),
                    });
                }
            }
        }
        for (label, known) in &self.known {
            let used = self.prefix_labels.contains(label)
                || self
                    .rules
                    .iter()
                    .any(|r| r.metric.label_names.contains(label));
            if !used {
                return Err(Error::InvalidRule {
                    metric: "(all rules)".into(),
                    reason: format!(
                        "known values are given for {label:?}, which no rule has as a label"
                    ),
                });
            }
            if let Err(reason) = known.check() {
                return Err(Error::InvalidRule {
                    metric: "(all rules)".into(),
                    reason: format!("known values of {label:?}: {reason}"),
                });
            }
        }
        for label in &self.prefix_labels {
            if !is_valid_label_name(label) {
                return Err(Error::InvalidRule {
                    metric: "(field-prefix metrics)".into(),
                    reason: format!("prefix label {label:?} is not a valid label name"),
                });
            }
        }
        if self.prefix_labels.len() > MAX_LABELS {
            return Err(Error::InvalidRule {
                metric: "(field-prefix metrics)".into(),
                reason: format!(
                    "{} prefix labels: a metric has at most limits::MAX_LABELS = {MAX_LABELS}",
                    self.prefix_labels.len()
                ),
            });
        }
        let fields = self.label_fields().len();
        if fields > MAX_LABEL_FIELDS {
            return Err(Error::InvalidRule {
                metric: "(all rules)".into(),
                reason: format!(
                    "{fields} distinct label fields: at most limits::MAX_LABEL_FIELDS = \
                     {MAX_LABEL_FIELDS}"
                ),
            });
        }
        let gauges: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| r.measure == Measure::SpanActive)
            .collect();
        if let Some(group) = overlapping(&gauges, MAX_SPAN_ACTIVE + 1) {
            return Err(Error::InvalidRule {
                metric: group[MAX_SPAN_ACTIVE].metric.name.clone(),
                reason: format!(
                    "{} SpanActive rules can match one span ({}): a span moves at most \
                     limits::MAX_SPAN_ACTIVE = {MAX_SPAN_ACTIVE} gauges",
                    group.len(),
                    group
                        .iter()
                        .map(|r| r.metric.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        Ok(())
    }

    /// Every field name that can feed a label: these are the fields kept from spans so that
    /// events inside them inherit labels.
    pub(crate) fn label_fields(&self) -> Vec<String> {
        let mut out: Vec<String> = self.prefix_labels.clone();
        for rule in &self.rules {
            for (_, sources) in &rule.labels {
                for s in sources {
                    if let LabelSource::Field(f) = s {
                        out.push(f.clone());
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// Whether one callsite can match both rules: names and target prefixes do not rule it out
/// (levels never do: every level filter admits ERROR).
fn may_overlap(a: &Rule, b: &Rule) -> bool {
    let names = match (&a.name, &b.name) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    };
    let targets = match (&a.target_prefix, &b.target_prefix) {
        (Some(x), Some(y)) => x.starts_with(y.as_str()) || y.starts_with(x.as_str()),
        _ => true,
    };
    a.applies_to_spans == b.applies_to_spans && names && targets
}

/// `k` rules that pairwise may match one callsite (then one callsite can match them all: names
/// agree and target prefixes nest), if there are.
fn overlapping<'r>(rules: &[&'r Rule], k: usize) -> Option<Vec<&'r Rule>> {
    fn grow<'r>(rules: &[&'r Rule], from: usize, group: &mut Vec<&'r Rule>, k: usize) -> bool {
        if group.len() == k {
            return true;
        }
        for i in from..rules.len() {
            if group.iter().all(|g| may_overlap(g, rules[i])) {
                group.push(rules[i]);
                if grow(rules, i + 1, group, k) {
                    return true;
                }
                group.pop();
            }
        }
        false
    }
    let mut group = Vec::with_capacity(k);
    grow(rules, 0, &mut group, k).then_some(group)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::MetricKind;

    fn gauge(name: &str, span: Option<&str>) -> Rule {
        let b = Rule::builder(MetricKind::UpDownCounter, name).with_description("d");
        let b = match span {
            Some(s) => b.with_span_name(s),
            None => b.on_spans(),
        };
        b.with_measure(Measure::SpanActive).build().unwrap()
    }

    #[test]
    fn a_third_span_active_rule_on_one_span_is_rejected_naming_the_limit() {
        let two = Rules::empty()
            .with_rule(gauge("a", Some("relay.connection")))
            .with_rule(gauge("b", None));
        assert!(two.validate().is_ok());
        // Another span name: no span matches all three.
        assert!(
            two.clone()
                .with_rule(gauge("c", Some("db.query")))
                .validate()
                .is_ok(),
            "no span is named both relay.connection and db.query: two gauges at most"
        );
        let Err(Error::InvalidRule { metric, reason }) = two
            .with_rule(gauge("d", Some("relay.connection")))
            .validate()
        else {
            panic!("three gauges on one span must be rejected")
        };
        assert_eq!(metric, "d");
        assert!(reason.contains("MAX_SPAN_ACTIVE"), "{reason}");
        let apart = Rules::empty()
            .with_rule(gauge("a", Some("x")))
            .with_rule(gauge("b", Some("y")))
            .with_rule(gauge("c", Some("z")));
        assert!(
            apart.validate().is_ok(),
            "three span names: at most one gauge each"
        );
    }

    #[test]
    fn too_many_prefix_labels_are_rejected() {
        let r = Rules::dchat_defaults().with_prefix_labels((0..9).map(|i| format!("l{i}")));
        assert!(matches!(r.validate(), Err(Error::InvalidRule { .. })));
    }

    #[test]
    fn conflicting_definitions_are_rejected() {
        let a = Rule::builder(MetricKind::Counter, "x_total")
            .with_description("a")
            .build()
            .unwrap();
        let b = Rule::builder(MetricKind::Counter, "x_total")
            .with_description("b")
            .build()
            .unwrap();
        assert!(Rules::empty().with_rule(a).with_rule(b).validate().is_err());
    }
}
