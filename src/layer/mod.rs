//! The `tracing_subscriber::Layer` that turns spans and events into metrics.
//!
//! The layer comes wrapped in a per-layer filter ([`CallsiteFilter`]): callsites that no rule
//! matches get `Interest::never` *for this layer only*, so they cost this layer nothing and other
//! layers (a `fmt` layer, say) still see them.

mod callsite;
mod span;
mod visit;

use std::sync::Arc;
use std::time::Instant;

use tracing_core::span::{Attributes, Id, Record};
use tracing_core::subscriber::Interest;
use tracing_core::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::{LookupSpan, Scope};

pub(crate) use callsite::Compiled;
use callsite::{Action, LabelPlan, Plan, PlanTable, ValuePlan, MAX_LABELS};
use span::{InlineFields, SpanState, SpanTable, SPAN_ACTIVE};
use visit::{with_scratch, Scratch, Visitor};

use crate::value::Num;

/// State shared by the layer and its filter.
#[derive(Debug)]
pub(crate) struct Shared {
    compiled: Compiled,
    plans: PlanTable,
}

impl Shared {
    pub(crate) fn new(compiled: Compiled) -> Arc<Self> {
        Arc::new(Shared {
            compiled,
            plans: PlanTable::new(),
        })
    }

    /// Works out and caches the plan of a callsite (an inactive plan too, so the question is
    /// never asked twice); whether the layer wants the callsite at all.
    fn register(&self, meta: &'static Metadata<'static>) -> bool {
        if let Some(plan) = self.plans.get(meta) {
            return plan.is_active();
        }
        let plan = self.compiled.plan(meta);
        let active = plan.is_active();
        self.plans.insert(meta, plan);
        active
    }

    /// The plan of an active callsite, worked out now if tracing has not registered the callsite
    /// with this layer yet (another thread may still be registering it with every dispatcher).
    #[inline]
    fn active_plan(&self, meta: &'static Metadata<'static>) -> Option<callsite::PlanRef<'_>> {
        let plan = match self.plans.get(meta) {
            Some(plan) => plan,
            None => {
                self.register(meta);
                self.plans.get(meta)?
            }
        };
        plan.is_active().then_some(plan)
    }
}

/// The metrics layer. Get one from [`Telemetry::layer`](crate::Telemetry::layer), which wraps it
/// in its [`CallsiteFilter`]. Each layer keeps its own span table (span ids are unique only
/// within one registry); plans and metrics are shared by every layer of one `Telemetry`.
#[derive(Debug)]
pub struct MetricsLayer {
    shared: Arc<Shared>,
    spans: SpanTable,
}

/// The per-layer filter of [`MetricsLayer`]: computes each callsite's plan once, in
/// `callsite_enabled`, and enables only the callsites that have one.
#[derive(Debug, Clone)]
pub struct CallsiteFilter {
    shared: Arc<Shared>,
}

impl MetricsLayer {
    pub(crate) fn new(shared: Arc<Shared>) -> (Self, CallsiteFilter) {
        (
            MetricsLayer {
                shared: Arc::clone(&shared),
                spans: SpanTable::new(),
            },
            CallsiteFilter { shared },
        )
    }
}

impl<S> Filter<S> for CallsiteFilter {
    fn enabled(&self, meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        // A callsite not registered yet (a registration racing on another thread) is let
        // through; the layer works out its plan on first use.
        self.shared
            .plans
            .get(meta)
            .is_none_or(|plan| plan.is_active())
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.shared.register(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }
}

impl<S> Layer<S> for MetricsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(plan) = self.shared.active_plan(event.metadata()) else {
            return;
        };
        if plan.actions.is_empty() {
            return;
        }
        with_scratch(plan.slots.len(), |scratch| {
            event.record(&mut Visitor {
                plan: &plan,
                scratch,
            });
            let needed = needed_ids(&plan, scratch, None);
            if !needed.is_empty() {
                self.collect_fields(&needed, None, ctx.event_scope(event), scratch);
            }
            for action in plan.actions.iter() {
                apply(action, scratch, || 0.0);
            }
        });
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(plan) = self.shared.active_plan(attrs.metadata()) else {
            return;
        };
        with_scratch(plan.slots.len(), |scratch| {
            attrs.record(&mut Visitor {
                plan: &plan,
                scratch,
            });
            let mut state = SpanState {
                meta: attrs.metadata(),
                start: Instant::now(),
                fields: InlineFields::default(),
                active: Default::default(),
            };
            store_fields(&plan, scratch, &mut state.fields);
            if plan
                .actions
                .iter()
                .any(|a| matches!(a.value, ValuePlan::SpanActive))
            {
                scratch.clear(plan.slots.len());
                let needed = needed_ids(&plan, scratch, Some(&state.fields));
                let parents = if needed.is_empty() {
                    None
                } else {
                    ctx.span(id).and_then(|s| s.parent()).map(|p| p.scope())
                };
                self.collect_fields(&needed, Some(&state.fields), parents, scratch);
                let mut k = 0;
                for action in plan
                    .actions
                    .iter()
                    .filter(|a| matches!(a.value, ValuePlan::SpanActive))
                {
                    if k < SPAN_ACTIVE {
                        state.active[k] = apply(action, scratch, || 0.0);
                        k += 1;
                    }
                }
            }
            self.spans.shard(id.into_u64()).insert(id.into_u64(), state);
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let Some(plan) = self.shared.plans.get(span.metadata()) else {
            return;
        };
        if !plan.stores_fields {
            return;
        }
        with_scratch(plan.slots.len(), |scratch| {
            values.record(&mut Visitor {
                plan: &plan,
                scratch,
            });
            let mut shard = self.spans.shard(id.into_u64());
            if let Some(state) = shard.get_mut(&id.into_u64()) {
                store_fields(&plan, scratch, &mut state.fields);
            }
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let removed = self.spans.shard(id.into_u64()).remove(&id.into_u64());
        let Some(state) = removed else { return };
        for series in state.active.iter().flatten() {
            // The series took +1 when the span opened; -1 cannot fail for an up-down counter.
            let _ = series.record(Num::I64(-1));
        }
        let Some(plan) = self.shared.plans.get(state.meta) else {
            return;
        };
        let on_close = |a: &&Action| !matches!(a.value, ValuePlan::SpanActive);
        if !plan.actions.iter().any(|a| on_close(&a)) {
            return;
        }
        let seconds = state.start.elapsed().as_secs_f64();
        with_scratch(plan.slots.len(), |scratch| {
            let needed = needed_ids(&plan, scratch, Some(&state.fields));
            // The registry still holds the span during `on_close`; it is looked up only when a
            // label has to come from an enclosing span.
            let span = if needed.is_empty() {
                None
            } else {
                ctx.span(&id)
            };
            let parents = span.as_ref().and_then(|s| s.parent()).map(|p| p.scope());
            self.collect_fields(&needed, Some(&state.fields), parents, scratch);
            for action in plan.actions.iter().filter(on_close) {
                apply(action, scratch, || seconds);
            }
        });
    }
}

impl MetricsLayer {
    /// Copies every field kept by `own` (the span itself), then the `needed` label fields from
    /// the spans of `scope`, nearest first, into `scratch.inherited`; stops once each needed
    /// field has a value (nearer spans win, so deeper ones would not be used).
    fn collect_fields<S>(
        &self,
        needed: &IdSet,
        own: Option<&InlineFields>,
        scope: Option<Scope<'_, S>>,
        scratch: &mut Scratch,
    ) where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let mut depth: u8 = 0;
        if let Some(own) = own {
            for (fid, v) in own.iter() {
                let r = scratch.push_raw(v);
                scratch.inherited.push((fid, r.0, r.1, 0));
            }
            depth = 1;
        }
        let mut missing = *needed;
        if missing.is_empty() {
            return;
        }
        for span in scope.into_iter().flatten() {
            let id = span.id().into_u64();
            let shard = self.spans.shard(id);
            if let Some(state) = shard.get(&id) {
                let mut i = 0;
                while i < missing.len() {
                    let fid = missing.ids[i];
                    if let Some(v) = state.fields.get(fid) {
                        let r = scratch.push_raw(v);
                        scratch.inherited.push((fid, r.0, r.1, depth));
                        missing.remove(i);
                    } else {
                        i += 1;
                    }
                }
                if missing.is_empty() {
                    return;
                }
            }
            depth = depth.saturating_add(1);
        }
    }
}

/// A small set of label-field ids, on the stack.
#[derive(Debug, Clone, Copy)]
struct IdSet {
    ids: [u8; 16],
    len: usize,
}

impl IdSet {
    const EMPTY: IdSet = IdSet {
        ids: [0; 16],
        len: 0,
    };

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn len(&self) -> usize {
        self.len
    }

    fn insert(&mut self, id: u8) {
        if self.len < self.ids.len() && !self.ids[..self.len].contains(&id) {
            self.ids[self.len] = id;
            self.len += 1;
        }
    }

    fn remove(&mut self, i: usize) {
        self.ids[i] = self.ids[self.len - 1];
        self.len -= 1;
    }
}

/// The label fields the plan's labels still need from enclosing spans: those of every label
/// with no value among the callsite's own captures nor, for spans, among the fields the span
/// itself keeps (`own`).
fn needed_ids(plan: &Plan, scratch: &Scratch, own: Option<&InlineFields>) -> IdSet {
    let mut set = IdSet::EMPTY;
    for label in plan.actions.iter().flat_map(|a| a.labels.iter()) {
        if label.inherit.is_empty() {
            continue;
        }
        let has_own = label
            .own
            .iter()
            .any(|&slot| scratch.label[slot as usize].is_some())
            || own.is_some_and(|f| label.inherit.iter().any(|&fid| f.get(fid).is_some()));
        if !has_own {
            for &fid in label.inherit.iter() {
                set.insert(fid);
            }
        }
    }
    set
}

/// Keeps the label fields a span's plan marks for storing.
fn store_fields(plan: &Plan, scratch: &Scratch, fields: &mut InlineFields) {
    for (slot, usage) in plan.slots.iter().enumerate() {
        if usage.field_id != callsite::NONE {
            if let Some(r) = scratch.label[slot] {
                fields.set(usage.field_id, scratch.str(r));
            }
        }
    }
}

/// Resolves one label: the callsite's own fields (in source order), then the fields kept by
/// spans — the nearest span that has any of the label's sources, and within it the earliest
/// source — then the fallback.
fn label<'s>(plan: &'s LabelPlan, scratch: &'s Scratch) -> &'s str {
    for &slot in plan.own.iter() {
        if let Some(r) = scratch.label[slot as usize] {
            return scratch.str(r);
        }
    }
    let mut best: Option<((u8, usize), (u32, u32))> = None;
    for &(fid, s, e, depth) in &scratch.inherited {
        if let Some(rank) = plan.inherit.iter().position(|&x| x == fid) {
            if best.is_none_or(|(key, _)| (depth, rank) < key) {
                best = Some(((depth, rank), (s, e)));
            }
        }
    }
    match best {
        Some((_, r)) => scratch.str(r),
        None => &plan.fallback,
    }
}

/// Applies one action; returns the series it recorded into (span open gauges keep it).
fn apply(
    action: &Action,
    scratch: &Scratch,
    span_seconds: impl Fn() -> f64,
) -> Option<Arc<crate::meters::Series>> {
    if action.conflict {
        action
            .metric
            .dropped(crate::value::DropReason::KindConflict);
        return None;
    }
    let value = match &action.value {
        ValuePlan::One => Num::U64(1),
        ValuePlan::SpanActive => Num::I64(1),
        ValuePlan::SpanDuration => Num::F64(span_seconds()),
        ValuePlan::Fields { sources, default } => {
            match sources
                .iter()
                .find_map(|&(slot, scale)| Some((scratch.num[slot as usize]?, scale)))
            {
                Some((Ok(n), scale)) => n.scaled(scale),
                Some((Err(reason), _)) => {
                    action.metric.dropped(reason);
                    return None;
                }
                None => match default {
                    Some(d) if d.fract() == 0.0 && *d >= 0.0 && *d < 9.0e15 => Num::U64(*d as u64),
                    Some(d) => Num::F64(*d),
                    None => return None,
                },
            }
        }
    };
    let mut values = [""; MAX_LABELS];
    let n = action.labels.len().min(MAX_LABELS);
    for (v, plan) in values.iter_mut().zip(action.labels.iter()) {
        *v = label(plan, scratch);
    }
    let values = &values[..n];
    let metric = &action.metric;
    let fetched;
    let series = match action.cache.get(action.set, values) {
        Some(s) => s,
        None => {
            let hash = metric.hash_values(action.set, values);
            fetched = metric.series(hash, action.set, values);
            action.cache.put(&fetched);
            &fetched
        }
    };
    metric.record_into(series, value);
    // Only open-span gauges keep the series (to take it back down on close).
    matches!(action.value, ValuePlan::SpanActive).then(|| Arc::clone(series))
}
