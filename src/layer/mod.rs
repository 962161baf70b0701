//! The `tracing_subscriber::Layer` that turns spans and events into metrics.
//!
//! The layer comes wrapped in a per-layer filter ([`CallsiteFilter`]): callsites that no rule
//! matches get `Interest::never` *for this layer only*, so they cost this layer nothing and other
//! layers (a `fmt` layer, say) still see them.

mod callsite;
mod entered;
mod id_set;
mod span;
mod visit;

use std::sync::Arc;

use arrayvec::ArrayVec;

use tracing_core::span::{Attributes, Id, Record};
use tracing_core::subscriber::Interest;
use tracing_core::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

pub(crate) use callsite::Compiled;
use callsite::{Action, LabelPlan, Plan, PlanTable, ValuePlan, MAX_LABELS};
use id_set::IdSet;
use span::{InlineFields, SpanTable, SPAN_ACTIVE};
use visit::{with_scratch, Scratch, Visitor};

use crate::value::Num;

/// State shared by the layer and its filter.
#[derive(Debug)]
pub(crate) struct Shared {
    compiled: Compiled,
    plans: PlanTable,
    /// Span durations: the CPU's time-stamp counter where it is invariant (about 10 ns a read
    /// here, against about 25 ns for `Instant::now()`), else the OS monotonic clock.
    clock: quanta::Clock,
}

impl Shared {
    pub(crate) fn new(compiled: Compiled) -> Arc<Self> {
        Arc::new(Shared {
            compiled,
            plans: PlanTable::new(),
            clock: quanta::Clock::new(),
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
    /// This layer's key in the threads' entered-span stacks.
    id: u64,
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
                id: entered::layer_id(),
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
        let Some(plan_ref) = self.shared.active_plan(event.metadata()) else {
            return;
        };
        let plan: &Plan = &plan_ref;
        if plan.actions.is_empty() {
            return;
        }
        with_scratch(|scratch| {
            event.record(&mut Visitor::new(plan, scratch));
            if !plan.inheriting.is_empty() && !plan.own_mask.is_some_and(|m| scratch.has_labels(m))
            {
                let mut needed = IdSet::EMPTY;
                needed_ids(plan, scratch, None, &mut needed);
                // A contextual event's enclosing spans start at this thread's current span; an
                // explicit parent (or an unusable stack) is asked of the registry.
                if !needed.is_empty() {
                    let parent_of = |id: u64| self.parent_cell(&ctx, id);
                    let from_stack = event.is_contextual()
                        && self
                            .with_current(|cell| {
                                if let Some(cell) = cell {
                                    inherit(cell, &mut needed, 0, scratch, &parent_of);
                                }
                            })
                            .is_some();
                    if !from_stack {
                        let parent = ctx.event_span(event);
                        let cell = parent.and_then(|s| self.spans.get(s.id().into_u64()));
                        if let Some(cell) = cell {
                            inherit(&cell, &mut needed, 0, scratch, &parent_of);
                        }
                    }
                }
            }
            for action in plan.actions.iter() {
                apply(action, scratch, || 0.0);
            }
        });
    }

    fn on_enter(&self, id: &Id, _ctx: Context<'_, S>) {
        entered::enter(self.id, id.into_u64());
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        entered::exit(self.id, id.into_u64());
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(plan) = self.shared.active_plan(attrs.metadata()) else {
            return;
        };
        // The span's parent in the span tree (as this layer's filter sees it) is looked up
        // only when a label needs it: now for gauge labels missing from the span's own fields,
        // else on first need.
        let parent_of = |id: u64| self.parent_cell(&ctx, id);
        let mut parent = None;
        let mut parent_known = attrs.is_root();
        with_scratch(|scratch| {
            attrs.record(&mut Visitor::new(&plan, scratch));
            let mut active: [Option<Arc<crate::meters::Series>>; SPAN_ACTIVE] = Default::default();
            // A span that opens gauges works out their labels from its own fields first (kept in
            // `own` meanwhile); any other span stores its fields straight into its cell.
            let mut own: Option<InlineFields> = None;
            if plan.opens_gauges {
                let own = own.insert(InlineFields::default());
                store_fields(&plan, scratch, own);
                scratch.clear();
                push_own(own, scratch);
                let mut needed = IdSet::EMPTY;
                needed_ids(&plan, scratch, Some(own), &mut needed);
                if !needed.is_empty() && !parent_known {
                    parent = parent_of(id.into_u64());
                    parent_known = true;
                }
                if let Some(parent) = parent.as_ref().filter(|_| !needed.is_empty()) {
                    inherit(parent, &mut needed, 1, scratch, &parent_of);
                }
                let gauges = plan
                    .actions
                    .iter()
                    .filter(|a| matches!(a.value, ValuePlan::SpanActive));
                for (slot, action) in active.iter_mut().zip(gauges) {
                    *slot = apply(action, scratch, || 0.0);
                }
            }
            let meta = attrs.metadata();
            self.spans.open(id.into_u64(), |state| {
                state.meta = Some(meta);
                if plan.timed {
                    state.start = self.shared.clock.raw();
                }
                match &own {
                    Some(own) => state.fields.clone_from(own),
                    None if plan.stores_fields => store_fields(&plan, scratch, &mut state.fields),
                    None => {}
                }
                state.active = std::mem::take(&mut active);
                state.id = id.into_u64();
                state.parent_known = parent_known;
                state.parent = parent.take();
            });
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        let Some(cell) = self.spans.get(id.into_u64()) else {
            return;
        };
        let meta = cell.lock().meta;
        let Some(plan) = meta.and_then(|m| self.shared.plans.get(m)) else {
            return;
        };
        if !plan.stores_fields {
            return;
        }
        with_scratch(|scratch| {
            values.record(&mut Visitor::new(&plan, scratch));
            store_fields(&plan, scratch, &mut cell.lock().fields);
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        with_scratch(|scratch| {
            // What needs the span's state is read in its cell, under its lock (its parents' are
            // taken one at a time); nothing there can log, which could come back into this
            // layer. Recording happens after, outside every lock.
            let parent_of = |id: u64| self.parent_cell(&ctx, id);
            let mut gauges: [Option<Arc<crate::meters::Series>>; SPAN_ACTIVE] = Default::default();
            let closed = self.spans.close(id.into_u64(), |state| {
                gauges = std::mem::take(&mut state.active);
                let plan = state.meta.and_then(|m| self.shared.plans.get(m))?;
                if !plan.closes {
                    return None;
                }
                let clock = &self.shared.clock;
                let seconds = if plan.timed {
                    clock.delta_as_nanos(state.start, clock.raw()) as f64 * 1e-9
                } else {
                    0.0
                };
                scratch.clear();
                push_own(&state.fields, scratch);
                let mut needed = IdSet::EMPTY;
                needed_ids(&plan, scratch, Some(&state.fields), &mut needed);
                if !needed.is_empty() {
                    if !state.parent_known {
                        state.parent = parent_of(state.id);
                        state.parent_known = true;
                    }
                    if let Some(parent) = &state.parent {
                        inherit(parent, &mut needed, 1, scratch, &parent_of);
                    }
                }
                Some((plan, seconds))
            });
            for series in gauges.iter().flatten() {
                // The series took +1 when the span opened; -1 cannot fail for an up-down counter.
                let _ = series.record(Num::I64(-1));
            }
            let Some(Some((plan, seconds))) = closed else {
                return;
            };
            for action in plan
                .actions
                .iter()
                .filter(|a| !matches!(a.value, ValuePlan::SpanActive))
            {
                apply(action, scratch, || seconds);
            }
        });
    }
}

impl MetricsLayer {
    /// Runs `f` with the cell of this thread's current span (as this layer sees it: the
    /// innermost entered span its filter enabled); `None` when the thread's stack cannot be
    /// used and the registry must be asked.
    fn with_current<R>(&self, f: impl FnOnce(Option<&Arc<span::SpanCell>>) -> R) -> Option<R> {
        entered::with_entered(|entries| {
            // The innermost entry with a cell (one without is a span whose callsite was still
            // being registered when it opened: skipped, as a scope walk would).
            for e in entries.iter_mut().rev().filter(|e| e.layer == self.id) {
                if !e.looked_up {
                    e.cell = self.spans.get(e.id);
                    e.looked_up = true;
                }
                if let Some(cell) = &e.cell {
                    return f(Some(cell));
                }
            }
            f(None)
        })
    }

    /// The cell of the parent, in the span tree as this layer's filter sees it (spans it
    /// ignores are passed over), of open span `id`.
    fn parent_cell<S>(&self, ctx: &Context<'_, S>, id: u64) -> Option<Arc<span::SpanCell>>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let span = ctx.span(&Id::from_u64(id))?;
        let parent = span.parent()?;
        self.spans.get(parent.id().into_u64())
    }
}

/// Copies the `needed` label fields from `cell`'s span (at `depth`) and then its enclosing
/// spans into `scratch.inherited`; stops once each needed field has a value (nearer spans win).
/// A span's parent link is looked up with `parent_of` the first time it is needed, then kept
/// (a span's parent never changes). One cell is locked at a time, and the walk is a loop, so
/// any nesting depth is fine.
fn inherit(
    cell: &span::SpanCell,
    missing: &mut IdSet,
    depth: u8,
    scratch: &mut Scratch,
    parent_of: &dyn Fn(u64) -> Option<Arc<span::SpanCell>>,
) {
    let mut depth = depth;
    let mut next = inherit_step(cell, missing, depth, scratch, parent_of);
    while let Some(parent) = next {
        depth = depth.saturating_add(1);
        next = inherit_step(&parent, missing, depth, scratch, parent_of);
    }
}

/// One span of [`inherit`]'s walk: its fields, then its parent if something is still missing.
fn inherit_step(
    cell: &span::SpanCell,
    missing: &mut IdSet,
    depth: u8,
    scratch: &mut Scratch,
    parent_of: &dyn Fn(u64) -> Option<Arc<span::SpanCell>>,
) -> Option<Arc<span::SpanCell>> {
    let mut state = cell.lock();
    take_missing(&state.fields, missing, depth, scratch);
    if missing.is_empty() {
        return None;
    }
    if !state.parent_known {
        state.parent = parent_of(state.id);
        state.parent_known = true;
    }
    state.parent.clone()
}

/// Copies every field a span keeps for itself into `scratch.inherited`, at depth 0.
fn push_own(own: &InlineFields, scratch: &mut Scratch) {
    for (fid, v) in own.iter() {
        let r = scratch.push_raw(v);
        scratch.inherited.push((fid, r.0, r.1, 0));
    }
}

/// Copies the fields of `missing` that `fields` has into `scratch.inherited` at `depth`, and
/// takes them out of `missing`.
fn take_missing(fields: &InlineFields, missing: &mut IdSet, depth: u8, scratch: &mut Scratch) {
    let mut i = 0;
    while i < missing.len() {
        let fid = missing.get(i);
        if let Some(v) = fields.get(fid) {
            let r = scratch.push_raw(v);
            scratch.inherited.push((fid, r.0, r.1, depth));
            missing.remove(i);
        } else {
            i += 1;
        }
    }
}

/// The label fields the plan's labels still need from enclosing spans: those of every label
/// with no value among the callsite's own captures nor, for spans, among the fields the span
/// itself keeps (`own`).
///
/// The set is filled in place: built byte by byte and then returned (copied whole), it was read
/// back with one wide load right after the byte stores, a store-forwarding stall on every event.
fn needed_ids(plan: &Plan, scratch: &Scratch, own: Option<&InlineFields>, set: &mut IdSet) {
    for (own_slots, inherit) in plan.inheriting.iter() {
        let has_own = own_slots
            .iter()
            .any(|&slot| scratch.label(slot as usize).is_some())
            || own.is_some_and(|f| inherit.iter().any(|&fid| f.get(fid).is_some()));
        if !has_own {
            for &fid in inherit.iter() {
                set.insert(fid);
            }
        }
    }
}

/// Keeps the label fields a span's plan marks for storing.
fn store_fields(plan: &Plan, scratch: &Scratch, fields: &mut InlineFields) {
    for (slot, usage) in plan.slots.iter().enumerate() {
        if usage.field_id != callsite::NONE {
            if let Some(r) = scratch.label(slot) {
                fields.set(usage.field_id, scratch.str(r));
            }
        }
    }
}

/// Resolves one label: the callsite's own fields (in source order), then the fields kept by
/// spans — the nearest span that has any of the label's sources, and within it the earliest
/// source — then the fallback.
#[inline]
fn label<'s>(plan: &'s LabelPlan, scratch: &'s Scratch) -> &'s str {
    for &slot in plan.own.iter() {
        if let Some(r) = scratch.label(slot as usize) {
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
        ValuePlan::Fields {
            first,
            rest,
            default,
        } => {
            match first
                .iter()
                .chain(rest.iter())
                .find_map(|&(slot, scale)| Some((scratch.num(slot as usize)?, scale)))
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
    let mut values: ArrayVec<&str, MAX_LABELS> = ArrayVec::new();
    for plan in action.labels.iter().take(MAX_LABELS) {
        // At most MAX_LABELS are taken, so every push fits.
        let _ = values.try_push(label(plan, scratch));
    }
    let values = values.as_slice();
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
