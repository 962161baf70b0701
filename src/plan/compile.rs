//! Compiling rules into plans: every metric resolved and every label field numbered once
//! ([`Compiled::new`]), then a callsite's [`Plan`] worked out from its static metadata when it
//! registers ([`Compiled::plan`]).

use crate::series::LabelSetId;
use std::sync::{Arc, Mutex};

use tracing_core::Metadata;

use super::{
    Action, CaptureMask, FieldId, FieldUse, Inheriting, KnownSet, LabelPlan, Plan, Settled, Slot,
    SlotUse, Slots, Source, ValuePlan,
};
use crate::catalog::{MetricDef, MetricKind};
use crate::labels::push_sanitized;
use crate::limits::{MAX_INCREMENT, MAX_LABEL_VALUE_LEN};
use crate::rules::{KnownValues, LabelSource, Measure, Rule, Rules};
use crate::series::{Metric, Metrics};
use crate::sync::Recover;
use crate::value::Num;

/// Compiled rules: every metric resolved, every label field numbered.
pub(crate) struct Compiled {
    pub(crate) rules: Vec<(Rule, Arc<Metric>)>,
    /// Field names that can feed labels; their index is the label-field id.
    pub(crate) label_fields: Vec<String>,
    pub(crate) prefix_fields: bool,
    pub(crate) prefix_labels: Vec<String>,
    /// Labels every rule bounds to known values (a rule's own bounds win).
    known: Vec<(String, KnownValues)>,
    /// Known values compiled once, shared by every plan that uses them.
    known_sets: Mutex<Vec<(KnownValues, Arc<KnownSet>)>>,
    pub(crate) metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("rules", &self.rules.len())
            .finish_non_exhaustive()
    }
}

impl Compiled {
    pub(crate) fn new(rules: &Rules, metrics: Arc<Metrics>) -> Result<Self, crate::Error> {
        rules.validate()?;
        let mut compiled = Vec::with_capacity(rules.rules.len());
        for rule in &rules.rules {
            let measures: Vec<&Measure> = rules
                .rules
                .iter()
                .filter(|r| r.metric.name == rule.metric.name)
                .map(|r| &r.measure)
                .collect();
            let metric = metrics
                .get_or_create(&rule.metric, integral_counter(&rule.metric, &measures))
                .ok_or_else(|| crate::Error::InvalidRule {
                    metric: rule.metric.name.clone(),
                    reason: "a built-in metric of another kind has this name".into(),
                })?;
            compiled.push((rule.clone(), metric));
        }
        // `Rules::validate` rejects more than MAX_LABEL_FIELDS; the cut only keeps ids in a byte.
        let mut label_fields = rules.label_fields();
        label_fields.truncate(crate::limits::MAX_LABEL_FIELDS);
        Ok(Compiled {
            rules: compiled,
            label_fields,
            prefix_fields: rules.prefix_fields,
            prefix_labels: rules.prefix_labels.clone(),
            known: rules.known.clone(),
            known_sets: Mutex::new(Vec::new()),
            metrics,
        })
    }

    fn field_id(&self, name: &str) -> FieldId {
        self.label_fields
            .iter()
            .position(|f| f == name)
            .and_then(FieldId::new)
            .unwrap_or(FieldId::NONE)
    }

    /// Works out the plan for one callsite: its spans' label fields, then the actions of the
    /// rules it matches, then what the layer derives from them per event.
    pub(crate) fn plan(&self, meta: &'static Metadata<'static>) -> Plan {
        let mut b = PlanBuilder {
            meta,
            slot_of_field: vec![Slot::NONE; meta.fields().len()].into_boxed_slice(),
            slots: Vec::new(),
        };
        if meta.is_span() {
            self.keep_span_fields(&mut b);
        }
        let mut actions: Vec<Action> = self
            .rules
            .iter()
            .filter(|(rule, _)| rule.matches(meta))
            .filter_map(|(rule, metric)| self.action(&mut b, rule, metric))
            .collect();
        if self.prefix_fields && meta.is_event() {
            self.prefix_actions(&mut b, &mut actions);
        }
        let stores_fields = meta.is_span() && b.slots.iter().any(|s| s.field_id != FieldId::NONE);
        let is_gauge = |a: &Action| matches!(a.value, ValuePlan::SpanActive);
        let inheriting = inheriting(&actions);
        Plan {
            fields: b.field_uses(),
            slots: b.slots.into_boxed_slice(),
            settled_by: settled_by(meta, &actions),
            own_mask: own_mask(&inheriting),
            inheriting: inheriting.into_boxed_slice(),
            opens_gauges: actions.iter().any(is_gauge),
            closes: actions.iter().any(|a| !is_gauge(a)),
            timed: actions
                .iter()
                .any(|a| matches!(a.value, ValuePlan::SpanDuration)),
            actions: actions.into_boxed_slice(),
            stores_fields,
        }
    }

    /// A span keeps the label fields it carries, for its own labels and its children's.
    fn keep_span_fields(&self, b: &mut PlanBuilder) {
        for field in b.meta.fields().iter() {
            let id = self.field_id(field.name());
            if id == FieldId::NONE {
                continue;
            }
            if let Some(slot) = b.slot(field.name()) {
                let usage = b.usage(slot);
                usage.label = true;
                usage.field_id = id;
            }
        }
    }

    /// What `rule` does at this callsite; `None` when the callsite never carries its value.
    fn action(&self, b: &mut PlanBuilder, rule: &Rule, metric: &Arc<Metric>) -> Option<Action> {
        let value = match &rule.measure {
            Measure::One => ValuePlan::One,
            Measure::SpanDuration => ValuePlan::SpanDuration,
            Measure::SpanActive => ValuePlan::SpanActive,
            Measure::Fields { sources, default } => {
                let mut sources: Vec<Source> = sources
                    .iter()
                    .filter_map(|(name, scale)| {
                        let slot = b.slot(name)?;
                        b.usage(slot).value = true;
                        Some(Source {
                            slot,
                            scale: *scale,
                        })
                    })
                    .collect();
                if sources.is_empty() && default.is_none() {
                    return None;
                }
                let first = (!sources.is_empty()).then(|| sources.remove(0));
                ValuePlan::Fields {
                    first,
                    rest: sources.into_boxed_slice(),
                    default: default.map(default_value),
                    range: rule.value_range,
                }
            }
        };
        let labels = rule
            .labels
            .iter()
            .map(|(name, sources)| {
                let known = self.known(Some(rule), name);
                self.label_plan(b, sources, known)
            })
            .collect();
        Some(Action {
            metric: Arc::clone(metric),
            set: LabelSetId::FIRST,
            value,
            labels,
            conflict: false,
            cache: Default::default(),
        })
    }

    /// The known values `label` (of `rule`, or of a field-prefix metric) is bounded to.
    fn known_values<'a>(&'a self, rule: Option<&'a Rule>, label: &str) -> Option<&'a KnownValues> {
        rule.and_then(|r| r.known(label))
            .or_else(|| self.known.iter().find(|(l, _)| l == label).map(|(_, k)| k))
    }

    /// Creates, at 0, the series of every label set of the counters and histograms whose
    /// labels are all bounded to known values, and keeps them for good: Prometheus never
    /// counts the first sample of a new series, so a series that exists before its first event
    /// is the one way that event is counted on every Prometheus version.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) when the label sets exceed the
    /// metric's cardinality limit or the sample budget.
    pub(crate) fn predeclare(&self) -> Result<(), crate::Error> {
        for (rule, metric) in &self.rules {
            if !matches!(metric.def.kind, MetricKind::Counter | MetricKind::Histogram)
                || rule.labels.is_empty()
            {
                continue;
            }
            let Some(known) = rule
                .labels
                .iter()
                .map(|(name, _)| self.known_values(Some(rule), name))
                .collect::<Option<Vec<&KnownValues>>>()
            else {
                continue;
            };
            let sets: Vec<Vec<&str>> = known.iter().fold(vec![Vec::new()], |sets, k| {
                sets.iter()
                    .flat_map(|prefix| {
                        k.all().map(move |v| {
                            let mut set = prefix.clone();
                            set.push(v);
                            set
                        })
                    })
                    .collect()
            });
            let fail = |what: String| crate::Error::InvalidConfig {
                option: "known_values",
                reason: format!(
                    "{}: {what}; bound fewer values, or raise the limit",
                    metric.def.name
                ),
            };
            if sets.len() > metric.store.limit {
                return Err(fail(format!(
                    "the known values make {} label sets, more than the cardinality limit of {}",
                    sets.len(),
                    metric.store.limit
                )));
            }
            for set in &sets {
                if !metric.predeclare(set) {
                    return Err(fail(format!(
                        "{} label sets do not fit the sample budget",
                        sets.len()
                    )));
                }
            }
        }
        Ok(())
    }

    /// The compiled known values of `label` (of `rule`, or of a field-prefix metric).
    pub(super) fn known(&self, rule: Option<&Rule>, label: &str) -> Option<Arc<KnownSet>> {
        let k = self.known_values(rule, label)?;
        let mut cache = self.known_sets.lock().recover();
        if let Some((_, set)) = cache.iter().find(|(v, _)| v == k) {
            return Some(Arc::clone(set));
        }
        let set = Arc::new(KnownSet::new(k));
        cache.push((k.clone(), Arc::clone(&set)));
        Some(set)
    }

    fn label_plan(
        &self,
        b: &mut PlanBuilder,
        sources: &[LabelSource],
        known: Option<Arc<KnownSet>>,
    ) -> LabelPlan {
        let mut own = Slots::new();
        let mut inherit = Vec::new();
        let mut fallback = None;
        for source in sources {
            match source {
                LabelSource::Field(name) => {
                    if let Some(slot) = b.slot(name) {
                        b.usage(slot).label = true;
                        // At most MAX_CAPTURES distinct slots exist; repeats are kept once.
                        if !own.contains(&slot) {
                            let pushed = own.try_push(slot);
                            debug_assert!(pushed.is_ok(), "more slots than MAX_CAPTURES");
                        }
                    }
                    let id = self.field_id(name);
                    if id != FieldId::NONE {
                        inherit.push(id);
                    }
                }
                LabelSource::Target => {
                    fallback.get_or_insert_with(|| sanitized(b.meta.target()));
                }
                LabelSource::Fixed(v) => {
                    fallback.get_or_insert_with(|| sanitized(v));
                }
            }
        }
        LabelPlan {
            own,
            inherit: inherit.into_boxed_slice(),
            fallback: fallback.unwrap_or_else(|| "unknown".into()),
            known,
        }
    }
}

/// A rule's default value, as recorded: an exact integer when it is one a counter takes.
fn default_value(d: f64) -> Num {
    if d.fract() == 0.0 && d >= 0.0 && d <= MAX_INCREMENT as f64 {
        Num::U64(d as u64)
    } else {
        Num::F64(d)
    }
}

fn sanitized(v: &str) -> Box<str> {
    let mut s = String::new();
    push_sanitized(&mut s, v, MAX_LABEL_VALUE_LEN);
    s.into_boxed_str()
}

/// The distinct sources of the labels that may come from an enclosing span.
fn inheriting(actions: &[Action]) -> Vec<Inheriting> {
    let mut inheriting: Vec<Inheriting> = Vec::new();
    for l in actions.iter().flat_map(|a| a.labels.iter()) {
        if !l.inherit.is_empty()
            && !inheriting
                .iter()
                .any(|i| i.own == l.own && i.fields == l.inherit)
        {
            inheriting.push(Inheriting {
                own: l.own.clone(),
                fields: l.inherit.clone(),
            });
        }
    }
    inheriting
}

/// When every inheriting label has capture slots of its own: all those slots.
fn own_mask(inheriting: &[Inheriting]) -> Option<CaptureMask> {
    inheriting.iter().all(|i| !i.own.is_empty()).then(|| {
        inheriting
            .iter()
            .flat_map(|i| i.own.iter())
            .fold(CaptureMask::EMPTY, |m, &slot| m.with(slot))
    })
}

/// The field whose string alone settles an event: one action, a value that needs no field,
/// one label whose only own source is that field.
fn settled_by(meta: &Metadata<'_>, actions: &[Action]) -> Option<Settled> {
    match actions {
        [a] if meta.is_event() => match (&a.labels[..], a.value.constant()) {
            ([l], Some(value)) if l.own.len() == 1 => {
                l.own.first().map(|&slot| Settled { slot, value })
            }
            _ => None,
        },
        _ => None,
    }
}

/// A callsite's plan while it is worked out: the capture slots allotted so far.
pub(super) struct PlanBuilder {
    pub(super) meta: &'static Metadata<'static>,
    slot_of_field: Box<[Slot]>,
    slots: Vec<SlotUse>,
}

impl PlanBuilder {
    /// The capture slot of the callsite's field `name`, allotted on first use; `None` when the
    /// callsite has no such field or all slots are taken.
    pub(super) fn slot(&mut self, name: &str) -> Option<Slot> {
        let idx = self.meta.fields().field(name)?.index();
        let Some(&slot) = self.slot_of_field.get(idx) else {
            debug_assert!(false, "a field index past the callsite's fields");
            return None;
        };
        if slot != Slot::NONE {
            return Some(slot);
        }
        let slot = Slot::new(self.slots.len())?;
        self.slot_of_field[idx] = slot;
        self.slots.push(SlotUse::default());
        Some(slot)
    }

    /// How `slot` (one [`PlanBuilder::slot`] gave) is used.
    pub(super) fn usage(&mut self, slot: Slot) -> &mut SlotUse {
        // `slot` came from `PlanBuilder::slot`, which pushed its entry; growing rather than
        // panicking keeps a wrong slot from failing the application's callsite registration.
        let i = slot.index();
        debug_assert!(i < self.slots.len(), "a slot this builder did not allot");
        if i >= self.slots.len() {
            self.slots.resize(i + 1, SlotUse::default());
        }
        &mut self.slots[i]
    }

    /// Field index -> its slot and what the slot keeps.
    fn field_uses(&self) -> Box<[FieldUse]> {
        self.slot_of_field
            .iter()
            .map(|&slot| {
                let usage = self.slots.get(slot.index()).copied().unwrap_or_default();
                FieldUse {
                    slot,
                    label: usage.label,
                    value: usage.value,
                }
            })
            .collect()
    }
}

/// Whether a counter fed by these measures only ever adds integers (then it is an exact `u64`).
fn integral_counter(def: &MetricDef, measures: &[&Measure]) -> bool {
    def.kind == MetricKind::Counter
        && measures.iter().all(|m| match m {
            Measure::One => true,
            Measure::Fields { sources, default } => {
                sources.iter().all(|(_, s)| *s == 1.0)
                    && default.is_none_or(|d| d.fract() == 0.0 && d >= 0.0)
            }
            _ => false,
        })
}

#[cfg(test)]
impl Compiled {
    /// `rules` compiled against metrics of their own (limit 100, no expiry, a manual clock, no
    /// OpenTelemetry reader): for unit tests of plans and of what runs them.
    pub(crate) fn for_test(rules: &Rules) -> Compiled {
        use crate::clock::ManualClock;
        use crate::series::Settings;
        let metrics = Metrics::new(
            Settings {
                limit: 100,
                ttl: None,
                rate_window_secs: 60,
                clock: Arc::new(ManualClock::new()),
                exemplars: false,
                budget: None,
                created: false,
            },
            Arc::new(crate::series::NoObserver),
        );
        // UNWRAP: test-only; the rules a test passes are valid ones.
        Compiled::new(rules, Arc::new(metrics)).expect("valid rules")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog;
    use crate::rules::RuleBuilder;
    use tracing::callsite::Callsite as _;

    fn compiled(rules: &Rules) -> Compiled {
        Compiled::for_test(rules)
    }

    fn names(plan: &Plan) -> Vec<&str> {
        plan.actions
            .iter()
            .map(|a| a.metric.def.name.as_str())
            .collect()
    }

    fn field_id(c: &Compiled, name: &str) -> FieldId {
        let id = c.field_id(name);
        assert_ne!(id, FieldId::NONE, "{name} is a label field");
        id
    }

    fn slot(i: usize) -> Slot {
        Slot::new(i).expect("a slot under MAX_CAPTURES")
    }

    #[test]
    fn message_sent_counts_one_by_default_and_labels_its_channel() {
        let c = compiled(&Rules::dchat_defaults());
        let cs = tracing::callsite!(name: "message.sent", kind: tracing::metadata::Kind::EVENT,
            level: tracing::Level::INFO, fields: message, channel);
        let plan = c.plan(cs.metadata());
        assert_eq!(names(&plan), [catalog::MESSAGES_SENT.name]);
        let a = &plan.actions[0];
        assert_eq!(
            a.value,
            ValuePlan::Fields {
                first: None,
                rest: Box::new([]),
                default: Some(Num::U64(1)),
                range: None,
            },
            "no `count` field here: the default, converted once"
        );
        assert_eq!(
            a.labels[..],
            [LabelPlan {
                own: [slot(0)].into_iter().collect(),
                inherit: Box::new([field_id(&c, "channel")]),
                fallback: "unknown".into(),
                known: None,
            }]
        );
        // `message` is not used; `channel` is captured as a label in slot 0.
        assert_eq!(plan.fields[0].slot, Slot::NONE);
        assert_eq!((plan.fields[1].slot, plan.fields[1].label), (slot(0), true));
        assert_eq!(plan.own_mask, Some(CaptureMask::EMPTY.with(slot(0))));
        assert!(!plan.stores_fields, "events keep nothing");
        assert_eq!(
            plan.settled_by,
            Some(Settled {
                slot: slot(0),
                value: Num::U64(1)
            }),
            "the channel alone settles the event: recorded the moment it is visited"
        );
    }

    /// The plans of one counter rule `name` (labels and callsites as `f` sets them up).
    fn one_counter(name: &str, f: impl FnOnce(RuleBuilder) -> RuleBuilder) -> Compiled {
        let rule = f(Rule::builder(MetricKind::Counter, name).with_description("A count."))
            .build()
            .expect("a valid rule");
        compiled(&Rules::empty().with_rule(rule))
    }

    #[test]
    fn only_an_event_with_one_action_one_label_and_no_value_field_is_settled_by_a_field() {
        let c = compiled(&Rules::dchat_defaults());
        let settled = |cs: &'static dyn tracing::callsite::Callsite| {
            c.plan(cs.metadata()).settled_by.map(|s| s.slot)
        };
        let with_count = tracing::callsite!(name: "message.sent", kind: tracing::metadata::Kind::EVENT,
            fields: count, channel);
        assert_eq!(settled(with_count), None, "the value needs the count field");
        let two_actions = tracing::callsite!(name: "message.received",
            kind: tracing::metadata::Kind::EVENT, fields: channel, latency_seconds);
        assert_eq!(settled(two_actions), None, "a counter and a histogram");
        let one_action = tracing::callsite!(name: "message.received",
            kind: tracing::metadata::Kind::EVENT, fields: message, channel);
        assert_eq!(
            settled(one_action),
            Some(slot(0)),
            "no latency: the counter alone"
        );
        let no_field = tracing::callsite!(name: "message.sent", kind: tracing::metadata::Kind::EVENT,
            fields: message);
        assert_eq!(
            settled(no_field),
            None,
            "the label has no field of its own here"
        );
        let span = tracing::callsite!(name: "relay.connection", kind: tracing::metadata::Kind::SPAN,
            fields: relay);
        assert_eq!(settled(span), None, "a gauge span");
        let c = one_counter("two_labels_total", |r| {
            r.with_event_name("two.labels")
                .with_label("a")
                .with_label("b")
        });
        let two_labels = tracing::callsite!(name: "two.labels", kind: tracing::metadata::Kind::EVENT,
            fields: a, b);
        assert_eq!(c.plan(two_labels.metadata()).settled_by, None, "two labels");
        // A span counted once per span, with one label of its own: everything an event needs to
        // be settled but being an event (a span's fields are kept, not recorded while visited).
        let c = one_counter("spans_total", |r| {
            r.with_span_name("counted.span").with_label("a")
        });
        let span = tracing::callsite!(name: "counted.span", kind: tracing::metadata::Kind::SPAN,
            fields: a);
        let plan = c.plan(span.metadata());
        assert_eq!(
            plan.actions[0].value,
            ValuePlan::One,
            "a count, like an event's"
        );
        assert_eq!(plan.settled_by, None, "spans are never settled by a field");
        let counted = tracing::callsite!(name: "counted", kind: tracing::metadata::Kind::EVENT,
            fields: a);
        let c = one_counter("counted_total", |r| {
            r.with_event_name("counted")
                .with_value_default(3.0)
                .with_label("a")
        });
        assert_eq!(
            c.plan(counted.metadata()).settled_by,
            Some(Settled {
                slot: slot(0),
                value: Num::U64(3)
            }),
            "the default, as the copying path records it"
        );
    }

    #[test]
    fn a_count_field_feeds_the_value_and_a_fraction_stays_a_float() {
        let c = compiled(&Rules::dchat_defaults());
        let cs = tracing::callsite!(name: "message.sent", kind: tracing::metadata::Kind::EVENT,
            fields: count, channel);
        let plan = c.plan(cs.metadata());
        let ValuePlan::Fields { first, default, .. } = &plan.actions[0].value else {
            panic!("{:?}", plan.actions[0].value)
        };
        assert_eq!(
            *first,
            Some(Source {
                slot: slot(0),
                scale: 1.0
            })
        );
        assert_eq!(*default, Some(Num::U64(1)));
        assert!(plan.slots[0].value);
        assert_eq!(default_value(0.5), Num::F64(0.5));
        assert_eq!(default_value(-1.0), Num::F64(-1.0));
        assert_eq!(
            default_value(MAX_INCREMENT as f64 * 2.0),
            Num::F64(MAX_INCREMENT as f64 * 2.0)
        );
    }

    #[test]
    fn db_query_spans_are_timed_and_keep_their_operation() {
        let c = compiled(&Rules::dchat_defaults());
        let cs = tracing::callsite!(name: "db.query", kind: tracing::metadata::Kind::SPAN,
            fields: db.operation);
        let plan = c.plan(cs.metadata());
        assert_eq!(names(&plan), [catalog::DB_QUERY_DURATION.name]);
        assert_eq!(plan.actions[0].value, ValuePlan::SpanDuration);
        assert!(plan.timed && plan.closes && !plan.opens_gauges);
        assert!(
            plan.stores_fields,
            "db.operation can label this span and its children"
        );
        assert_eq!(plan.slots[0].field_id, field_id(&c, "db.operation"));
        let op = &plan.actions[0].labels[0];
        assert_eq!(
            op.inherit[..],
            [
                field_id(&c, "db.operation.name"),
                field_id(&c, "db.operation"),
                field_id(&c, "operation")
            ],
            "the current semantic convention first, then the older names"
        );
    }

    #[test]
    fn relay_spans_open_gauges() {
        let c = compiled(&Rules::dchat_defaults());
        let cs = tracing::callsite!(name: "relay.connection", kind: tracing::metadata::Kind::SPAN,
            fields: relay);
        let plan = c.plan(cs.metadata());
        assert_eq!(names(&plan), [catalog::RELAY_CONNECTIONS.name]);
        assert!(plan.opens_gauges && !plan.closes && !plan.timed);
    }

    #[test]
    fn error_events_count_by_type_falling_back_to_the_target() {
        let c = compiled(&Rules::dchat_defaults());
        let cs = tracing::callsite!(name: "event x", kind: tracing::metadata::Kind::EVENT,
            target: "dchat::storage", level: tracing::Level::ERROR, fields: message);
        let plan = c.plan(cs.metadata());
        assert_eq!(
            names(&plan),
            [catalog::ERRORS.name, catalog::ERROR_RATE.name]
        );
        for a in plan.actions.iter() {
            assert!(a.labels[0].own.is_empty(), "no error.type field here");
            assert_eq!(&*a.labels[0].fallback, "dchat::storage");
            assert_eq!(
                a.labels[0].inherit[..],
                [field_id(&c, "error.type"), field_id(&c, "error_kind")]
            );
        }
        assert_eq!(plan.own_mask, None, "a label without own slots may inherit");
        let warn = tracing::callsite!(name: "event y", kind: tracing::metadata::Kind::EVENT,
            level: tracing::Level::WARN, fields: message);
        assert!(
            !c.plan(warn.metadata()).is_active(),
            "a WARN event is not an error"
        );
    }

    #[test]
    fn prefix_fields_feed_instruments_named_after_them() {
        let c = compiled(&Rules::dchat_defaults());
        let cs = tracing::callsite!(name: "event z", kind: tracing::metadata::Kind::EVENT,
            fields: monotonic_counter.hits, channel, user);
        let plan = c.plan(cs.metadata());
        assert_eq!(names(&plan), ["hits_total"]);
        let a = &plan.actions[0];
        assert_eq!(
            a.value,
            ValuePlan::Fields {
                first: Some(Source {
                    slot: slot(0),
                    scale: 1.0
                }),
                rest: Box::new([]),
                default: None,
                range: None,
            }
        );
        assert_eq!(
            a.labels.len(),
            1,
            "only allow-listed fields label it (not `user`)"
        );
        assert_eq!(a.labels[0].own[..], [slot(1)]);
        assert!(
            a.labels[0].inherit.is_empty(),
            "prefix labels are the event's own"
        );
        assert_eq!(a.metric.label_names(a.set)[..], ["channel".to_owned()]);
    }

    #[test]
    fn label_sources_keep_their_order_of_precedence() {
        let rule = Rule::builder(MetricKind::Counter, "x_total")
            .with_event_name("x")
            .with_description("d")
            .with_label_from(
                "who",
                [
                    LabelSource::field("user"),
                    LabelSource::field("peer"),
                    LabelSource::Fixed("nobody".into()),
                    LabelSource::Target,
                ],
            )
            .build()
            .unwrap();
        let c = compiled(&Rules::empty().with_rule(rule));
        // Fields in the opposite order of the sources: slots follow the sources' order.
        let cs = tracing::callsite!(name: "x", kind: tracing::metadata::Kind::EVENT,
            fields: peer, user);
        let plan = c.plan(cs.metadata());
        let l = &plan.actions[0].labels[0];
        assert_eq!(l.own[..], [slot(0), slot(1)]);
        assert_eq!(
            plan.fields[1].slot,
            slot(0),
            "user (first source) got slot 0"
        );
        assert_eq!(l.inherit[..], [field_id(&c, "user"), field_id(&c, "peer")]);
        assert_eq!(&*l.fallback, "nobody", "the first fallback source wins");
    }
}
