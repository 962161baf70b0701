//! The `tracing_subscriber::Layer` that turns spans and events into metrics.
//!
//! Per event: the callsite's plan (worked out once, [`crate::plan`]), the fields it uses
//! ([`visit`], into this thread's [`scratch`] buffer), labels from enclosing spans when the event lacks them ([`inherit`], through the
//! thread's entered spans, [`entered`], and each span's kept fields, [`span`]), then
//! [`apply`] records into the series (for an event one string field settles, the visitor has
//! it record while visiting). The layer comes wrapped in its per-layer
//! [`CallsiteFilter`] ([`filter`]); [`diagnose`] notices filters outside it that hide events.

mod apply;
pub(crate) mod diagnose;
mod entered;
mod filter;
mod id_set;
mod inherit;
mod scratch;
mod span;
mod visit;

use std::sync::Arc;

use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Dispatch, Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

pub use filter::CallsiteFilter;
use id_set::IdSet;
use inherit::{inherit, inherit_for_span, needed_ids, push_own, store_fields};
use scratch::{with_scratch, Scratch};
use span::{InlineFields, ParentLink, SpanTable};
use visit::Visitor;

use crate::limits::MAX_SPAN_ACTIVE;
use crate::plan::{Compiled, Plan, PlanRef, PlanTable, ValuePlan};
use crate::series::exemplar::TraceContext;
use crate::series::parked::GaugeKey;
use crate::series::Series;

/// State shared by the layer and its filter.
#[derive(Debug)]
pub(crate) struct Shared {
    compiled: Compiled,
    plans: PlanTable,
    pub(crate) diagnose: diagnose::Diagnose,
    /// Span durations: the CPU's time-stamp counter where it is invariant (cheaper to read than
    /// `Instant::now()`), else the OS monotonic clock.
    clock: quanta::Clock,
}

impl Shared {
    pub(crate) fn new(compiled: Compiled, diagnose: diagnose::Diagnose) -> Arc<Self> {
        Arc::new(Shared {
            compiled,
            plans: PlanTable::new(),
            diagnose,
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
        if self.plans.insert(meta, plan) && active {
            self.diagnose.callsite(meta);
        }
        active
    }

    /// The plan of an active callsite, worked out now if tracing has not registered the callsite
    /// with this layer yet (another thread may still be registering it with every dispatcher).
    #[inline(always)]
    fn active_plan(&self, meta: &'static Metadata<'static>) -> Option<PlanRef<'_>> {
        let plan = match self.plans.get(meta) {
            Some(plan) => plan,
            None => self.register_now(meta)?,
        };
        plan.is_active().then_some(plan)
    }

    /// [`Shared::active_plan`]'s rare path, kept out of line so that the common one saves and
    /// restores no registers for it.
    #[cold]
    #[inline(never)]
    fn register_now(&self, meta: &'static Metadata<'static>) -> Option<PlanRef<'_>> {
        self.register(meta);
        self.plans.get(meta)
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

impl<S> Layer<S> for MetricsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, dispatch: &Dispatch) {
        self.shared.diagnose.dispatch(dispatch);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(plan_ref) = self.shared.active_plan(event.metadata()) else {
            return;
        };
        let plan: &Plan = &plan_ref;
        if plan.actions.is_empty() {
            return;
        }
        with_scratch(|scratch| {
            let mut visitor = Visitor::new(plan, scratch);
            event.record(&mut visitor);
            if visitor.settled() {
                return;
            }
            if !plan.inheriting.is_empty() && !plan.own_mask.is_some_and(|m| scratch.has_labels(m))
            {
                self.inherit_for_event(plan, event, &ctx, scratch);
            }
            let mut trace = TraceContext::new();
            for action in plan.actions.iter() {
                apply::record(action, scratch, 0.0, &mut trace);
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
        let mut parent = if attrs.is_root() {
            ParentLink::none()
        } else {
            ParentLink::default()
        };
        with_scratch(|scratch| {
            attrs.record(&mut Visitor::new(&plan, scratch));
            let mut active: [Option<Arc<Series>>; MAX_SPAN_ACTIVE] = Default::default();
            // A span that opens gauges works out their labels from its own fields first (kept in
            // `own` meanwhile); any other span stores its fields straight into its cell.
            let mut own: Option<InlineFields> = None;
            if plan.opens_gauges {
                let own = own.insert(InlineFields::default());
                store_fields(&plan, scratch, own);
                scratch.clear();
                push_own(own, scratch);
                inherit_for_span(&plan, scratch, own, id.into_u64(), &mut parent, &parent_of);
                let gauges = plan
                    .actions
                    .iter()
                    .filter(|a| matches!(a.value, ValuePlan::SpanActive));
                for (i, (slot, action)) in active.iter_mut().zip(gauges).enumerate() {
                    let at = || self.gauge_key(id.into_u64(), i);
                    *slot = apply::open_gauge(action, scratch, at);
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
                state.parent = std::mem::take(&mut parent);
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
            let mut gauges: [Option<Arc<Series>>; MAX_SPAN_ACTIVE] = Default::default();
            let closed = self.spans.close(id.into_u64(), |state| {
                gauges = std::mem::take(&mut state.active);
                let plan = state.meta.and_then(|m| self.shared.plans.get(m))?;
                let seconds = plan
                    .closes
                    .then(|| self.read_closing(&plan, state, scratch, &parent_of));
                Some((plan, seconds))
            });
            let Some(Some((plan, seconds))) = closed else {
                // No plan (cannot happen for a span that has state): the gauges still go down.
                debug_assert!(false, "a span with state but no plan");
                for series in gauges.iter().flatten() {
                    let _ = series.close_gauge();
                }
                return;
            };
            self.close_gauges(&plan, &gauges, id.into_u64());
            if let Some(seconds) = seconds {
                record_closed(&plan, scratch, seconds);
            }
        });
    }
}

/// Records what a closing span measures besides its gauges, from the labels in `scratch`.
#[inline]
fn record_closed(plan: &Plan, scratch: &Scratch, seconds: f64) {
    // The context current when the span closes: the enclosing span's (a span is exited
    // before it closes), so its trace.
    let mut trace = TraceContext::new();
    for action in plan
        .actions
        .iter()
        .filter(|a| !matches!(a.value, ValuePlan::SpanActive))
    {
        apply::record(action, scratch, seconds, &mut trace);
    }
}

impl MetricsLayer {
    /// What a closing span's records need from its state: its duration in seconds (0 unless the
    /// plan times it), and its labels' values, own and inherited, in `scratch`.
    #[inline]
    fn read_closing(
        &self,
        plan: &Plan,
        state: &mut span::SpanState,
        scratch: &mut Scratch,
        parent_of: &dyn Fn(u64) -> Option<Arc<span::SpanCell>>,
    ) -> f64 {
        let clock = &self.shared.clock;
        let seconds = if plan.timed {
            clock.delta_as_nanos(state.start, clock.raw()) as f64 * 1e-9
        } else {
            0.0
        };
        scratch.clear();
        push_own(&state.fields, scratch);
        inherit_for_span(
            plan,
            scratch,
            &state.fields,
            state.id,
            &mut state.parent,
            parent_of,
        );
        seconds
    }

    /// Takes back down the gauges a span's plan opened (its gauge actions, in order).
    #[inline]
    fn close_gauges(&self, plan: &Plan, gauges: &[Option<Arc<Series>>], span: u64) {
        let gauge_actions = plan
            .actions
            .iter()
            .filter(|a| matches!(a.value, ValuePlan::SpanActive));
        for (i, (series, action)) in gauges.iter().zip(gauge_actions).enumerate() {
            if let Some(series) = series {
                let at = || self.gauge_key(span, i);
                action.metric.close_gauge(series, at);
            }
        }
    }

    /// Fills what an event's labels need from its enclosing spans (depth 0 on). A contextual
    /// event's enclosing spans start at this thread's current span; an explicit parent (or an
    /// unusable stack) is asked of the registry.
    #[inline]
    fn inherit_for_event<S>(
        &self,
        plan: &Plan,
        event: &Event<'_>,
        ctx: &Context<'_, S>,
        scratch: &mut Scratch,
    ) where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let mut needed = IdSet::EMPTY;
        needed_ids(plan, scratch, None, &mut needed);
        if needed.is_empty() {
            return;
        }
        let parent_of = |id: u64| self.parent_cell(ctx, id);
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
            if let Some(cell) = parent.and_then(|s| self.spans.get(s.id().into_u64())) {
                inherit(&cell, &mut needed, 0, scratch, &parent_of);
            }
        }
    }

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

    /// Which gauge of which open span: the key under which a gauge parked in the overflow
    /// series is found again when the span closes.
    fn gauge_key(&self, span: u64, gauge: usize) -> GaugeKey {
        GaugeKey {
            layer: self.id,
            span,
            // At most MAX_SPAN_ACTIVE gauges per span.
            gauge: u8::try_from(gauge).unwrap_or_else(|_| {
                debug_assert!(false, "more gauges than MAX_SPAN_ACTIVE");
                u8::MAX
            }),
        }
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
