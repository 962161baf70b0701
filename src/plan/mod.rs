//! Plans: what a span or event of one callsite feeds, worked out once per callsite.
//!
//! [`compile`] turns [`Rules`](crate::Rules) into a [`Compiled`] set (every metric resolved,
//! every label field numbered) and works out a callsite's [`Plan`] from its static metadata;
//! [`prefix`] adds tracing-opentelemetry's field-prefix convention; [`table`] keeps the plans
//! by callsite for lock-free lookup per event. Nothing here runs per event.

pub(crate) mod compile;
pub(crate) mod prefix;
pub(crate) mod table;

use std::sync::Arc;

use arrayvec::ArrayVec;

use crate::limits::MAX_CAPTURES;
use crate::rules::ValueRange;
use crate::series::Metric;
use crate::value::Num;

pub(crate) use compile::Compiled;
pub(crate) use table::{PlanRef, PlanTable};

/// No capture slot / no label-field id.
pub(crate) const NONE: u8 = u8::MAX;

/// How a captured field is used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SlotUse {
    /// Kept as a (sanitised) string: it feeds a label.
    pub(crate) label: bool,
    /// Kept as a number: it feeds a value.
    pub(crate) value: bool,
    /// For spans: the label-field id under which the span keeps it for inheritance.
    pub(crate) field_id: u8,
}

/// How one field of a callsite is used: its capture slot ([`NONE`] when not captured) and what
/// the slot keeps (a copy of [`SlotUse`]'s bits, so visiting a field is one load).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldUse {
    pub(crate) slot: u8,
    pub(crate) label: bool,
    pub(crate) value: bool,
}

/// Capture slots, inline (a callsite has at most [`MAX_CAPTURES`]): read on every event without
/// following a pointer.
pub(crate) type Slots = ArrayVec<u8, MAX_CAPTURES>;

/// Where an action's value comes from.
#[derive(Debug, PartialEq)]
pub(crate) enum ValuePlan {
    One,
    Fields {
        /// `(capture slot, scale)`, in order of preference: the first inline (most values have
        /// one source), then the rest.
        first: Option<(u8, f64)>,
        rest: Box<[(u8, f64)]>,
        /// The value when no source field is present, converted once (an exact integer when
        /// the default is one).
        default: Option<Num>,
        /// The plausible range of a value read from a field (after scaling): one outside it is
        /// dropped and counted, not recorded.
        range: Option<ValueRange>,
    },
    SpanDuration,
    SpanActive,
}

impl ValuePlan {
    /// The value of an event or span count that needs no field: `One`, or a default with no
    /// source field. `None` for values read from fields and for span measures (a duration, an
    /// open-span gauge).
    pub(crate) fn constant(&self) -> Option<Num> {
        match self {
            ValuePlan::One => Some(Num::U64(1)),
            ValuePlan::Fields {
                first: None,
                rest,
                default,
                ..
            } if rest.is_empty() => *default,
            ValuePlan::Fields { .. } | ValuePlan::SpanDuration | ValuePlan::SpanActive => None,
        }
    }
}

/// Where one label's value comes from.
#[derive(Debug, PartialEq)]
pub(crate) struct LabelPlan {
    /// Capture slots of the callsite's own fields, in order of preference.
    pub(crate) own: Slots,
    /// Label-field ids to look for in enclosing spans, in order of preference.
    pub(crate) inherit: Box<[u8]>,
    /// Used when no field yields a value: the target, a fixed value or `unknown`.
    pub(crate) fallback: Box<str>,
    /// The values the label is bounded to, if it is.
    pub(crate) known: Option<Arc<KnownSet>>,
}

impl LabelPlan {
    /// `value` as the label records it: itself, or the bounded label's `other` value when it
    /// is not one of the known values.
    #[inline]
    pub(crate) fn bounded<'a>(&'a self, value: &'a [u8]) -> &'a [u8] {
        match &self.known {
            None => value,
            Some(k) => k.bounded(value),
        }
    }
}

/// A label's known values, sorted for a binary search per event.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct KnownSet {
    values: Box<[Box<[u8]>]>,
    other: Box<[u8]>,
}

impl KnownSet {
    pub(crate) fn new(known: &crate::rules::KnownValues) -> Self {
        let mut values: Vec<Box<[u8]>> =
            known.values().iter().map(|v| v.as_bytes().into()).collect();
        values.sort_unstable();
        KnownSet {
            values: values.into_boxed_slice(),
            other: known.other().as_bytes().into(),
        }
    }

    /// `value` if it is known, else `other`. Out of line: only bounded labels pay for the
    /// search, and the label path of every other stays small enough to inline.
    #[inline(never)]
    pub(crate) fn bounded<'a>(&'a self, value: &'a [u8]) -> &'a [u8] {
        if self.values.binary_search_by(|v| (**v).cmp(value)).is_ok() {
            value
        } else {
            &self.other
        }
    }
}

/// One metric update a callsite makes.
#[derive(Debug)]
pub(crate) struct Action {
    pub(crate) metric: Arc<Metric>,
    /// The metric's label-name list this action's labels follow.
    pub(crate) set: u32,
    pub(crate) value: ValuePlan,
    pub(crate) labels: Box<[LabelPlan]>,
    /// The field names an instrument that exists with another kind: count, do not record.
    pub(crate) conflict: bool,
    /// The series this action used last (the first of the caches in front of the metric).
    pub(crate) cache: crate::series::cache::CallsiteCache,
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
    /// Events: the capture slot whose string value alone settles everything the event does,
    /// and the value it records (one action, a value that needs no field, one label whose only
    /// own source is this slot). When that field's string is one sanitising leaves as it is,
    /// the visitor records the event the moment the field arrives, from the caller's string,
    /// without copying it; any other value is copied and sanitised as usual.
    pub(crate) settled_by: Option<(u8, Num)>,
}

impl Plan {
    /// Whether this callsite does anything at all.
    pub(crate) fn is_active(&self) -> bool {
        !self.actions.is_empty() || self.stores_fields
    }
}
