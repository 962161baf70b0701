//! From a plan's action and the captured fields to a series: the value, the labels, the record.
//! This is the one way from the layer into the series.

use arrayvec::ArrayVec;

use super::scratch::{BufRange, Scratch};
use crate::limits::MAX_LABELS;
use crate::plan::{Action, LabelPlan, ValuePlan};
use crate::series::exemplar::TraceContext;
use std::sync::Arc;

use crate::series::parked::GaugeKey;
use crate::series::Series;
use crate::value::{DropReason, Num};

/// The value `action` records: a constant, the span's duration, or the first value field the
/// callsite carries (else the rule's default). `None` when nothing is recorded: no value and no
/// default, or a value that cannot be recorded (counted).
#[inline]
fn value(action: &Action, scratch: &Scratch, span_seconds: f64) -> Option<Num> {
    match &action.value {
        ValuePlan::One => Some(Num::U64(1)),
        ValuePlan::SpanActive => Some(Num::I64(1)),
        ValuePlan::SpanDuration => Some(Num::F64(span_seconds)),
        ValuePlan::Fields {
            first,
            rest,
            default,
            range,
        } => {
            let found = first
                .iter()
                .chain(rest.iter())
                .find_map(|src| Some((scratch.num(src.slot)?, src.scale)));
            match found {
                Some((Ok(n), scale)) => {
                    let n = n.scaled(scale);
                    // A value that is not finite is left to the instrument, which counts it
                    // as `not_finite`: that names the fault better than `out_of_range`.
                    match (range, n.to_f64()) {
                        (Some(r), Ok(f)) if !r.contains(f) => {
                            action.metric.dropped(DropReason::OutOfRange);
                            None
                        }
                        _ => Some(n),
                    }
                }
                Some((Err(reason), _)) => {
                    action.metric.dropped(reason);
                    None
                }
                None => *default,
            }
        }
    }
}

/// Resolves one label: the callsite's own fields (in source order), then the fields kept by
/// spans — the nearest span that has any of the label's sources, and within it the earliest
/// source — then the fallback; a bounded label's value outside its known values becomes its
/// `other` value.
#[inline]
fn label<'s>(plan: &'s LabelPlan, scratch: &'s Scratch) -> &'s [u8] {
    plan.bounded(found_label(plan, scratch))
}

#[inline]
fn found_label<'s>(plan: &'s LabelPlan, scratch: &'s Scratch) -> &'s [u8] {
    for &slot in plan.own.iter() {
        if let Some(r) = scratch.label(slot) {
            return scratch.bytes(r);
        }
    }
    // The nearest span first, then the earliest source.
    let mut best: Option<((u8, usize), BufRange)> = None;
    for found in &scratch.inherited {
        if let Some(rank) = plan.inherit.iter().position(|&x| x == found.field) {
            if best.is_none_or(|(key, _)| (found.depth, rank) < key) {
                best = Some(((found.depth, rank), found.range));
            }
        }
    }
    match best {
        Some((_, r)) => scratch.bytes(r),
        None => plan.fallback.as_bytes(),
    }
}

/// Runs `f` with the label values of `action`, in its label-name order (kept on the stack:
/// returned by value, the array would be copied on every event).
#[inline]
fn with_labels<R>(action: &Action, scratch: &Scratch, f: impl FnOnce(&[&[u8]]) -> R) -> R {
    match &action.labels[..] {
        [] => f(&[]),
        [one] => f(&[label(one, scratch)]),
        many => {
            let mut values: ArrayVec<&[u8], MAX_LABELS> = ArrayVec::new();
            // Rules are rejected past MAX_LABELS labels (and prefix metrics past as many
            // allow-listed fields), so every push fits.
            for plan in many.iter().take(MAX_LABELS) {
                let pushed = values.try_push(label(plan, scratch));
                debug_assert!(pushed.is_ok(), "more labels than MAX_LABELS");
            }
            f(&values)
        }
    }
}

/// Whether the action names an instrument of another kind: counted, nothing recorded.
#[inline]
fn conflicts(action: &Action) -> bool {
    if action.conflict {
        action.metric.dropped(DropReason::KindConflict);
    }
    action.conflict
}

/// Records what `action` measures (not an open-span gauge: see [`open_gauge`]); `trace` is the
/// event's trace context, read once for all its actions if one keeps exemplars.
#[inline]
pub(super) fn record(
    action: &Action,
    scratch: &Scratch,
    span_seconds: f64,
    trace: &mut TraceContext,
) {
    if conflicts(action) {
        return;
    }
    let Some(v) = value(action, scratch, span_seconds) else {
        return;
    };
    with_labels(action, scratch, |values| {
        action
            .metric
            .record_at(&action.cache, action.set, values, v, trace)
    });
}

/// Records `v` for a one-label action whose label value is `label` (printable ASCII within the
/// length cap: as sanitising would leave it), while the event's fields are still being
/// visited: the action's value needs no field ([`Plan::settled_by`](crate::plan::Plan)).
#[inline]
pub(super) fn record_settled(action: &Action, v: Num, label: &[u8]) {
    if conflicts(action) {
        return;
    }
    let label = match action.labels.first() {
        Some(plan) => plan.bounded(label),
        None => {
            debug_assert!(false, "a settled action has one label");
            label
        }
    };
    let mut trace = TraceContext::new();
    action
        .metric
        .record_at(&action.cache, action.set, &[label], v, &mut trace);
}

/// Adds 1 to the gauge of an opening span; where it went, pinned, for the span to take back
/// down.
pub(super) fn open_gauge(
    action: &Action,
    scratch: &Scratch,
    at: impl FnOnce() -> GaugeKey,
) -> Option<Arc<Series>> {
    if conflicts(action) {
        return None;
    }
    with_labels(action, scratch, |values| {
        action.metric.open_gauge(action.set, values, at)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::scratch::Inherited;
    use crate::plan::{FieldId, Slot, Slots};

    fn slot(i: usize) -> Slot {
        Slot::new(i).expect("a slot under MAX_CAPTURES")
    }

    fn field(i: usize) -> FieldId {
        FieldId::new(i).expect("a label field id")
    }

    fn plan(own: &[usize], inherit: &[usize]) -> LabelPlan {
        LabelPlan {
            own: own.iter().map(|&i| slot(i)).collect::<Slots>(),
            inherit: inherit.iter().map(|&i| field(i)).collect(),
            fallback: "fallback".into(),
            known: None,
        }
    }

    fn inherited(s: &mut Scratch, id: usize, value: &[u8], depth: u8) {
        let range = s.push_raw(value);
        s.inherited.push(Inherited {
            field: field(id),
            range,
            depth,
        });
    }

    #[test]
    fn own_fields_then_the_nearest_span_then_the_earliest_source_then_the_fallback() {
        let mut s = Scratch::new();
        let p = plan(&[3, 5], &[7, 8]);
        let label = |p: &LabelPlan, s: &Scratch| String::from_utf8(label(p, s).to_vec()).unwrap();
        assert_eq!(label(&p, &s), "fallback");
        // Inherited: field 8 from the nearest span (depth 0), field 7 from its parent.
        inherited(&mut s, 7, b"seven-far", 1);
        inherited(&mut s, 8, b"eight-near", 0);
        assert_eq!(
            label(&p, &s),
            "eight-near",
            "the nearest span wins over source order"
        );
        inherited(&mut s, 7, b"seven-near", 0);
        assert_eq!(
            label(&p, &s),
            "seven-near",
            "within a span, the earliest source wins"
        );
        s.set_label_for_test(slot(5), "own-five");
        assert_eq!(label(&p, &s), "own-five", "an own field beats every span");
        s.set_label_for_test(slot(3), "own-three");
        assert_eq!(label(&p, &s), "own-three", "own fields in source order");
    }
}
