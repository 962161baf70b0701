//! Plans: what a span or event of one callsite feeds, worked out once per callsite.
//!
//! [`compile`] turns [`Rules`](crate::Rules) into a [`Compiled`] set (every metric resolved,
//! every label field numbered) and works out a callsite's [`Plan`] from its static metadata;
//! [`prefix`] adds tracing-opentelemetry's field-prefix convention; [`table`] keeps the plans
//! by callsite for lock-free lookup per event. Nothing here runs per event.

pub(crate) mod compile;
pub(crate) mod prefix;
pub(crate) mod table;

use crate::series::LabelSetId;
use std::sync::Arc;

use arrayvec::ArrayVec;

use crate::limits::{MAX_CAPTURES, MAX_LABEL_FIELDS};
use crate::rules::ValueRange;
use crate::series::Metric;
use crate::value::Num;

pub(crate) use compile::Compiled;
pub(crate) use table::{PlanRef, PlanTable};

/// A capture slot: where one field of a callsite is kept while its span or event is visited.
/// A callsite has at most [`MAX_CAPTURES`], numbered from 0 in the order its rules use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Slot(u8);

impl Slot {
    /// No slot: the field is not captured.
    pub(crate) const NONE: Slot = Slot(u8::MAX);

    /// The `i`th slot; `None` past [`MAX_CAPTURES`].
    pub(crate) fn new(i: usize) -> Option<Slot> {
        // MAX_CAPTURES is at most 16, so the index fits a byte.
        (i < MAX_CAPTURES).then_some(Slot(i as u8))
    }

    /// Its index into the capture arrays (`NONE`'s is past them).
    #[inline]
    pub(crate) fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// A label field's number: every field name some rule draws a label from is numbered once,
/// and spans keep the values of such fields under it for their children to inherit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldId(u8);

impl FieldId {
    /// No id: the field feeds no label.
    pub(crate) const NONE: FieldId = FieldId(u8::MAX);

    /// The `i`th label field; `None` past [`MAX_LABEL_FIELDS`], which keeps `NONE` apart.
    pub(crate) fn new(i: usize) -> Option<FieldId> {
        // MAX_LABEL_FIELDS is below u8::MAX, so the index fits a byte and is never NONE.
        (i < MAX_LABEL_FIELDS).then_some(FieldId(i as u8))
    }
}

/// `NONE`: the filler of arrays whose length says how many ids they hold.
impl Default for FieldId {
    fn default() -> Self {
        FieldId::NONE
    }
}

/// A set of capture slots, one bit each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CaptureMask(u16);

// One bit per capture slot.
const _: () = assert!(MAX_CAPTURES <= u16::BITS as usize);
const _: () = assert!(MAX_LABEL_FIELDS < u8::MAX as usize);

impl CaptureMask {
    /// No slot.
    pub(crate) const EMPTY: CaptureMask = CaptureMask(0);

    /// This set and `slot` (a slot past [`MAX_CAPTURES`] adds nothing).
    #[inline]
    pub(crate) fn with(self, slot: Slot) -> CaptureMask {
        debug_assert!(slot.index() < MAX_CAPTURES, "a slot past the captures");
        CaptureMask(self.0 | 1u16.checked_shl(u32::from(slot.0)).unwrap_or(0))
    }

    /// Whether `slot` is in the set.
    #[inline]
    pub(crate) fn contains(self, slot: Slot) -> bool {
        self.0 & 1u16.checked_shl(u32::from(slot.0)).unwrap_or(0) != 0
    }

    /// Whether every slot of `other` is in the set.
    #[inline]
    pub(crate) fn contains_all(self, other: CaptureMask) -> bool {
        self.0 & other.0 == other.0
    }
}

/// How a captured field is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlotUse {
    /// Kept as a (sanitised) string: it feeds a label.
    pub(crate) label: bool,
    /// Kept as a number: it feeds a value.
    pub(crate) value: bool,
    /// For spans: the label-field id under which the span keeps it for inheritance.
    pub(crate) field_id: FieldId,
}

impl Default for SlotUse {
    fn default() -> Self {
        SlotUse {
            label: false,
            value: false,
            field_id: FieldId::NONE,
        }
    }
}

/// How one field of a callsite is used: its capture slot ([`Slot::NONE`] when not captured)
/// and what the slot keeps (a copy of [`SlotUse`]'s bits, so visiting a field is one load).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldUse {
    pub(crate) slot: Slot,
    pub(crate) label: bool,
    pub(crate) value: bool,
}

/// Capture slots, inline (a callsite has at most [`MAX_CAPTURES`]): read on every event without
/// following a pointer.
pub(crate) type Slots = ArrayVec<Slot, MAX_CAPTURES>;

/// A field a value is read from: its capture slot and the factor that makes it the metric's
/// unit (`latency_ms` has 0.001).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Source {
    pub(crate) slot: Slot,
    pub(crate) scale: f64,
}

/// Where an action's value comes from.
#[derive(Debug, PartialEq)]
pub(crate) enum ValuePlan {
    One,
    Fields {
        /// The source fields, in order of preference: the first inline (most values have one
        /// source), then the rest.
        first: Option<Source>,
        rest: Box<[Source]>,
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
    pub(crate) inherit: Box<[FieldId]>,
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
    pub(crate) set: LabelSetId,
    pub(crate) value: ValuePlan,
    pub(crate) labels: Box<[LabelPlan]>,
    /// The field names an instrument that exists with another kind: count, do not record.
    pub(crate) conflict: bool,
    /// The series this action used last (the first of the caches in front of the metric).
    pub(crate) cache: crate::series::cache::CallsiteCache,
}

/// A label that may come from an enclosing span.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Inheriting {
    /// The capture slots that give it a value of the callsite's own: if any holds one, no span
    /// is consulted.
    pub(crate) own: Slots,
    /// The label-field ids to look for in enclosing spans.
    pub(crate) fields: Box<[FieldId]>,
}

/// An event whose one string field settles everything it does (see [`Plan::settled_by`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Settled {
    /// The capture slot of that field.
    pub(crate) slot: Slot,
    /// The value the event records.
    pub(crate) value: Num,
}

/// Everything a callsite does.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Field index -> how the field is used: one load per field visited.
    pub(crate) fields: Box<[FieldUse]>,
    pub(crate) slots: Box<[SlotUse]>,
    pub(crate) actions: Box<[Action]>,
    /// Spans: whether the span keeps fields for its own labels or its children's.
    pub(crate) stores_fields: bool,
    /// The distinct sources of the labels that may come from an enclosing span, so an event
    /// works out what to look up without walking every label.
    pub(crate) inheriting: Box<[Inheriting]>,
    /// When every inheriting label has capture slots of its own: all those slots, as a bit set.
    /// An event that filled all of them needs nothing from its spans (checked with one AND).
    pub(crate) own_mask: Option<CaptureMask>,
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
    pub(crate) settled_by: Option<Settled>,
}

impl Plan {
    /// Whether this callsite does anything at all.
    pub(crate) fn is_active(&self) -> bool {
        !self.actions.is_empty() || self.stores_fields
    }
}
