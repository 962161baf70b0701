//! Per-callsite plans: what a span or event of one callsite feeds, worked out once when the
//! callsite registers, and found again per event with a lock-free lookup.

use crate::sync::Recover;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use arrayvec::ArrayVec;
use tracing_core::Metadata;

use crate::catalog::MetricKind;
use crate::labels::{
    push_sanitized, sanitize_label_name, sanitize_metric_name, MAX_LABEL_VALUE_LEN,
};
use crate::meters::{integral_counter, Meters, Metric, Series};
use crate::rules::{LabelSource, Measure, MetricDef, Rule, Rules};

/// No capture slot / no label-field id.
pub(crate) const NONE: u8 = u8::MAX;
/// Fields captured per span or event; further fields are ignored.
pub(crate) const MAX_CAPTURES: usize = 16;
/// Labels per metric handled on the allocation-free path (as many as a series key holds).
pub(crate) const MAX_LABELS: usize = crate::label_key::MAX_KEY_VALUES;

/// The default buckets tracing-opentelemetry's `histogram.` fields get (the SDK's defaults).
const PREFIX_BUCKETS: &[f64] = &[
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
    10000.0,
];

/// How a captured field is used.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SlotUse {
    /// Kept as a (sanitised) string: it feeds a label.
    pub(crate) label: bool,
    /// Kept as a number: it feeds a value.
    pub(crate) value: bool,
    /// For spans: the label-field id under which the span keeps it for inheritance.
    pub(crate) field_id: u8,
}

/// How one field of a callsite is used: its capture slot ([`NONE`] when not captured) and what
/// the slot keeps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldUse {
    pub(crate) slot: u8,
    pub(crate) label: bool,
    pub(crate) value: bool,
}

/// Capture slots, inline (a callsite has at most [`MAX_CAPTURES`]): read on every event without
/// following a pointer.
pub(crate) type Slots = ArrayVec<u8, MAX_CAPTURES>;

/// Where an action's value comes from.
#[derive(Debug)]
pub(crate) enum ValuePlan {
    One,
    Fields {
        /// `(capture slot, scale)`, in order of preference: the first inline (most values have
        /// one source), then the rest.
        first: Option<(u8, f64)>,
        rest: Box<[(u8, f64)]>,
        default: Option<f64>,
    },
    SpanDuration,
    SpanActive,
}

/// Where one label's value comes from.
#[derive(Debug)]
pub(crate) struct LabelPlan {
    /// Capture slots of the callsite's own fields, in order of preference.
    pub(crate) own: Slots,
    /// Label-field ids to look for in enclosing spans, in order of preference.
    pub(crate) inherit: Box<[u8]>,
    /// Used when no field yields a value: the target, a fixed value or `unknown`.
    pub(crate) fallback: Box<str>,
}

/// One metric update a callsite makes.
#[derive(Debug)]
pub(crate) struct Action {
    pub(crate) metric: Arc<Metric>,
    pub(crate) set: u32,
    pub(crate) value: ValuePlan,
    pub(crate) labels: Box<[LabelPlan]>,
    /// The field names an instrument that exists with another kind: count, do not record.
    pub(crate) conflict: bool,
    pub(crate) cache: SeriesCache,
}

/// A label that may come from an enclosing span: the capture slots that give it a value of the
/// callsite's own (if any holds one, no span is consulted) and the label-field ids to look for.
pub(crate) type Inheriting = (Slots, Box<[u8]>);

/// Everything a callsite does.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Field index -> how the field is used: one load per field visited.
    pub(crate) fields: Box<[FieldUse]>,
    pub(crate) slots: Box<[SlotUse]>,
    pub(crate) actions: Box<[Action]>,
    /// Spans: whether the span keeps fields for its own labels or its children's.
    pub(crate) stores_fields: bool,
    /// The distinct `(own slots, inherited field ids)` of the labels that may come from an
    /// enclosing span, so an event works out what to look up without walking every label.
    pub(crate) inheriting: Box<[Inheriting]>,
    /// When every inheriting label has capture slots of its own: all those slots, as a bit set.
    /// An event that filled all of them needs nothing from its spans (checked with one AND).
    pub(crate) own_mask: Option<u16>,
    /// Spans: whether opening the span moves a gauge (`SpanActive`).
    pub(crate) opens_gauges: bool,
    /// Spans: whether closing the span records anything besides taking its gauges back down.
    pub(crate) closes: bool,
    /// Spans: whether some action records the span's duration (only then is the clock read).
    pub(crate) timed: bool,
}

impl Plan {
    /// Whether this callsite does anything at all.
    pub(crate) fn is_active(&self) -> bool {
        !self.actions.is_empty() || self.stores_fields
    }
}

/// A handful of series an action has used, found with atomic loads and string compares only
/// (no hash, no lock), so that the common case — a callsite that keeps hitting a few label
/// sets — never touches the metric's shared table. Slots fill in order and are never replaced.
#[derive(Debug, Default)]
pub(crate) struct SeriesCache {
    slots: [OnceLock<Arc<Series>>; 4],
}

impl SeriesCache {
    #[inline]
    pub(crate) fn get(&self, set: u32, values: &[&str]) -> Option<&Arc<Series>> {
        for slot in &self.slots {
            // A slot is only filled after every slot before it, so an empty one ends the search.
            let s = slot.get()?;
            if s.key_eq(set, values) {
                return Some(s);
            }
        }
        None
    }

    pub(crate) fn put(&self, series: &Arc<Series>) {
        if series.is_overflow() {
            return; // the overflow series: every use must be counted, so never cached
        }
        for slot in &self.slots {
            if slot.set(Arc::clone(series)).is_ok() {
                return;
            }
        }
    }
}

/// Compiled rules: every metric resolved, every label field numbered.
pub(crate) struct Compiled {
    pub(crate) rules: Vec<(Rule, Arc<Metric>)>,
    /// Field names that can feed labels; their index is the label-field id.
    pub(crate) label_fields: Vec<String>,
    pub(crate) prefix_fields: bool,
    pub(crate) prefix_labels: Vec<String>,
    pub(crate) meters: Arc<Meters>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("rules", &self.rules.len())
            .finish_non_exhaustive()
    }
}

impl Compiled {
    pub(crate) fn new(rules: &Rules, meters: Arc<Meters>) -> Result<Self, crate::Error> {
        rules.validate()?;
        let mut compiled = Vec::with_capacity(rules.rules.len());
        for rule in &rules.rules {
            let measures: Vec<&Measure> = rules
                .rules
                .iter()
                .filter(|r| r.metric.name == rule.metric.name)
                .map(|r| &r.measure)
                .collect();
            let metric = meters
                .get_or_create(&rule.metric, integral_counter(&rule.metric, &measures))
                .ok_or_else(|| crate::Error::InvalidRule {
                    metric: rule.metric.name.clone(),
                    reason: "a built-in metric of another kind has this name".into(),
                })?;
            compiled.push((rule.clone(), metric));
        }
        let mut label_fields = rules.label_fields();
        label_fields.truncate(NONE as usize);
        Ok(Compiled {
            rules: compiled,
            label_fields,
            prefix_fields: rules.prefix_fields,
            prefix_labels: rules.prefix_labels.clone(),
            meters,
        })
    }

    fn field_id(&self, name: &str) -> u8 {
        // `label_fields` is truncated to fewer than 255 entries, so the index fits.
        self.label_fields
            .iter()
            .position(|f| f == name)
            .map_or(NONE, |i| i as u8)
    }

    /// Works out the plan for one callsite.
    pub(crate) fn plan(&self, meta: &'static Metadata<'static>) -> Plan {
        let mut b = PlanBuilder {
            meta,
            slot_of_field: vec![NONE; meta.fields().len()].into_boxed_slice(),
            slots: Vec::new(),
        };
        if meta.is_span() {
            for field in meta.fields().iter() {
                let id = self.field_id(field.name());
                if id != NONE {
                    if let Some(slot) = b.slot(field.name()) {
                        b.slots[slot as usize].label = true;
                        b.slots[slot as usize].field_id = id;
                    }
                }
            }
        }
        let mut actions = Vec::new();
        for (rule, metric) in &self.rules {
            if !rule.matches(meta) {
                continue;
            }
            let value = match &rule.measure {
                Measure::One => ValuePlan::One,
                Measure::SpanDuration => ValuePlan::SpanDuration,
                Measure::SpanActive => ValuePlan::SpanActive,
                Measure::Fields { sources, default } => {
                    let mut sources: Vec<(u8, f64)> = sources
                        .iter()
                        .filter_map(|(name, scale)| {
                            let slot = b.slot(name)?;
                            b.slots[slot as usize].value = true;
                            Some((slot, *scale))
                        })
                        .collect();
                    if sources.is_empty() && default.is_none() {
                        continue; // this callsite never carries the value
                    }
                    let first = (!sources.is_empty()).then(|| sources.remove(0));
                    ValuePlan::Fields {
                        first,
                        rest: sources.into_boxed_slice(),
                        default: *default,
                    }
                }
            };
            let labels = rule
                .labels
                .iter()
                .map(|(_, sources)| self.label_plan(&mut b, sources))
                .collect();
            actions.push(Action {
                metric: Arc::clone(metric),
                set: 0,
                value,
                labels,
                conflict: false,
                cache: SeriesCache::default(),
            });
        }
        if self.prefix_fields && meta.is_event() {
            self.prefix_actions(&mut b, &mut actions);
        }
        let stores_fields = meta.is_span() && b.slots.iter().any(|s| s.field_id != NONE);
        let is_gauge = |a: &Action| matches!(a.value, ValuePlan::SpanActive);
        let mut inheriting: Vec<Inheriting> = Vec::new();
        for l in actions.iter().flat_map(|a| a.labels.iter()) {
            if !l.inherit.is_empty()
                && !inheriting
                    .iter()
                    .any(|(own, inherit)| *own == l.own && *inherit == l.inherit)
            {
                inheriting.push((l.own.clone(), l.inherit.clone()));
            }
        }
        let own_mask = inheriting.iter().all(|(own, _)| !own.is_empty()).then(|| {
            inheriting
                .iter()
                .flat_map(|(own, _)| own.iter())
                .fold(0u16, |m, &slot| {
                    m | 1u16.checked_shl(u32::from(slot)).unwrap_or(0)
                })
        });
        let fields = b
            .slot_of_field
            .iter()
            .map(|&slot| {
                let usage = b.slots.get(slot as usize).copied().unwrap_or_default();
                FieldUse {
                    slot,
                    label: usage.label,
                    value: usage.value,
                }
            })
            .collect();
        Plan {
            fields,
            slots: b.slots.into_boxed_slice(),
            own_mask,
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

    fn label_plan(&self, b: &mut PlanBuilder, sources: &[LabelSource]) -> LabelPlan {
        let mut own = Slots::new();
        let mut inherit = Vec::new();
        let mut fallback = None;
        for source in sources {
            match source {
                LabelSource::Field(name) => {
                    if let Some(slot) = b.slot(name) {
                        b.slots[slot as usize].label = true;
                        // At most MAX_CAPTURES distinct slots exist; repeats are kept once.
                        if !own.contains(&slot) {
                            let _ = own.try_push(slot);
                        }
                    }
                    let id = self.field_id(name);
                    if id != NONE {
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
        }
    }

    /// tracing-opentelemetry's convention: `monotonic_counter.x`, `counter.x`, `histogram.x`,
    /// `gauge.x` fields feed instruments named `x`; allow-listed fields of the event are labels.
    fn prefix_actions(&self, b: &mut PlanBuilder, actions: &mut Vec<Action>) {
        let meta = b.meta;
        let label_fields: Vec<&'static str> = meta
            .fields()
            .iter()
            .map(|f| f.name())
            .filter(|n| self.prefix_labels.iter().any(|l| l == n))
            .collect();
        for field in meta.fields().iter() {
            let name = field.name();
            let (kind, base) = if let Some(b) = name.strip_prefix("monotonic_counter.") {
                (MetricKind::Counter, b)
            } else if let Some(b) = name.strip_prefix("counter.") {
                (MetricKind::UpDownCounter, b)
            } else if let Some(b) = name.strip_prefix("histogram.") {
                (MetricKind::Histogram, b)
            } else if let Some(b) = name.strip_prefix("gauge.") {
                (MetricKind::Gauge, b)
            } else {
                continue;
            };
            let Some(slot) = b.slot(name) else { continue };
            b.slots[slot as usize].value = true;
            let sanitized = sanitize_metric_name(base);
            // `_total` is added back to counters; a base that is nothing else keeps it (an
            // empty name would break the whole exposition).
            let base = match sanitized.strip_suffix("_total") {
                Some(b) if !b.is_empty() => b,
                _ => &sanitized,
            };
            let composed = if kind == MetricKind::Counter {
                format!("{base}_total")
            } else {
                base.to_owned()
            };
            // Composing can give a reserved `__` prefix (`_` + `_total`): the shared name rules
            // deal with it.
            let metric_name = sanitize_metric_name(&composed);
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
            let (metric, conflict) = match self.meters.get_or_create(&def, false) {
                Some(m) => (m, false),
                None => match self.meters.get(&metric_name) {
                    Some(m) => (m, true),
                    None => continue,
                },
            };
            let labels = label_fields
                .iter()
                .map(|f| {
                    let slot = b.slot(f).unwrap_or(NONE);
                    if slot != NONE {
                        b.slots[slot as usize].label = true;
                    }
                    LabelPlan {
                        own: (slot != NONE).then_some(slot).into_iter().collect(),
                        inherit: Box::new([]),
                        fallback: "unknown".into(),
                    }
                })
                .collect();
            let set = metric.label_set_id(&label_names);
            actions.push(Action {
                metric,
                set,
                value: ValuePlan::Fields {
                    first: Some((slot, 1.0)),
                    rest: Box::new([]),
                    default: None,
                },
                labels,
                conflict,
                cache: SeriesCache::default(),
            });
        }
    }
}

fn sanitized(v: &str) -> Box<str> {
    let mut s = String::new();
    push_sanitized(&mut s, v, MAX_LABEL_VALUE_LEN);
    s.into_boxed_str()
}

struct PlanBuilder {
    meta: &'static Metadata<'static>,
    slot_of_field: Box<[u8]>,
    slots: Vec<SlotUse>,
}

impl PlanBuilder {
    /// The capture slot of the callsite's field `name`, allotted on first use; `None` when the
    /// callsite has no such field or all slots are taken.
    fn slot(&mut self, name: &str) -> Option<u8> {
        let field = self.meta.fields().field(name)?;
        let idx = field.index();
        if self.slot_of_field[idx] == NONE {
            if self.slots.len() >= MAX_CAPTURES {
                return None;
            }
            self.slot_of_field[idx] = self.slots.len() as u8;
            self.slots.push(SlotUse {
                field_id: NONE,
                ..SlotUse::default()
            });
        }
        Some(self.slot_of_field[idx])
    }
}

/// A plan found in the [`PlanTable`]: borrowed from the lock-free slots, or shared from the
/// (rarely used) overflow map.
pub(crate) enum PlanRef<'a> {
    Slot(&'a Plan),
    Shared(Arc<Plan>),
}

impl std::ops::Deref for PlanRef<'_> {
    type Target = Plan;
    fn deref(&self) -> &Plan {
        match self {
            PlanRef::Slot(p) => p,
            PlanRef::Shared(p) => p,
        }
    }
}

/// Plans by callsite, found without a lock: an open-addressing table keyed by the address of
/// the callsite's `'static` metadata. Plans (inactive ones too) are only added (in
/// `register_callsite`, or on first use), never removed; past half the table's capacity new
/// plans go to a locked overflow map.
pub(crate) struct PlanTable {
    slots: Box<[PlanSlot]>,
    used: Mutex<usize>,
    has_overflow: AtomicBool,
    overflow: RwLock<HashMap<usize, Arc<Plan>>>,
}

#[derive(Default)]
struct PlanSlot {
    key: AtomicUsize,
    plan: OnceLock<Arc<Plan>>,
}

const PLAN_SLOTS: usize = 8192;

impl std::fmt::Debug for PlanTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanTable").finish_non_exhaustive()
    }
}

fn key_of(meta: &Metadata<'_>) -> usize {
    std::ptr::from_ref(meta) as usize
}

fn home(key: usize) -> usize {
    // Fibonacci hashing of the address; the table size is a power of two.
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize) >> 20) & (PLAN_SLOTS - 1)
}

impl PlanTable {
    pub(crate) fn new() -> Self {
        PlanTable {
            slots: (0..PLAN_SLOTS).map(|_| PlanSlot::default()).collect(),
            used: Mutex::new(0),
            has_overflow: AtomicBool::new(false),
            overflow: RwLock::new(HashMap::new()),
        }
    }

    /// The plan of a callsite; `None` for callsites not planned yet.
    #[inline]
    pub(crate) fn get(&self, meta: &Metadata<'_>) -> Option<PlanRef<'_>> {
        let key = key_of(meta);
        let mut i = home(key);
        loop {
            let slot = &self.slots[i];
            let k = slot.key.load(Ordering::Acquire);
            if k == key {
                return slot.plan.get().map(|p| PlanRef::Slot(p));
            }
            if k == 0 {
                break;
            }
            i = (i + 1) & (PLAN_SLOTS - 1);
        }
        if self.has_overflow.load(Ordering::Acquire) {
            return self.get_overflow(key);
        }
        None
    }

    #[cold]
    fn get_overflow(&self, key: usize) -> Option<PlanRef<'_>> {
        let map = self.overflow.read().recover();
        map.get(&key).map(|p| PlanRef::Shared(Arc::clone(p)))
    }

    /// Adds the plan of a callsite, active or not (idempotent: a re-registered callsite keeps
    /// its first plan).
    pub(crate) fn insert(&self, meta: &'static Metadata<'static>, plan: Plan) {
        let key = key_of(meta);
        let mut used = self.used.lock().recover();
        if *used < PLAN_SLOTS / 2 {
            let mut i = home(key);
            loop {
                let slot = &self.slots[i];
                let k = slot.key.load(Ordering::Acquire);
                if k == key {
                    return;
                }
                if k == 0 {
                    // Only this (locked) writer sets plans, so the slot is free.
                    let _ = slot.plan.set(Arc::new(plan));
                    slot.key.store(key, Ordering::Release);
                    *used += 1;
                    return;
                }
                i = (i + 1) & (PLAN_SLOTS - 1);
            }
        }
        if self.get(meta).is_some() {
            return;
        }
        let mut map = self.overflow.write().recover();
        map.entry(key).or_insert_with(|| Arc::new(plan));
        self.has_overflow.store(true, Ordering::Release);
    }
}
