//! The field visitor: copies the fields a plan uses into a reusable per-thread scratch buffer,
//! by field index (no name matching per event), without allocating once the buffer has grown.
//! An event that one string field settles (dchat's `message.sent` and its `channel`:
//! [`Plan::settled_by`]) is recorded from the caller's string the moment the field arrives,
//! when sanitising would leave it as it is: no copy, and nothing left to do after the visit.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::panic::{catch_unwind, AssertUnwindSafe};

use tracing_core::field::{Field, Visit};

use super::apply;
use crate::labels::{kept_as_is, push_sanitized, CappedWriter};
use crate::limits::{MAX_CAPTURES, MAX_LABEL_VALUE_LEN};
use crate::plan::{FieldUse, Plan, NONE};
use crate::value::{DropReason, Num};

// The capture bit sets are `u16`s.
const _: () = assert!(MAX_CAPTURES <= 16);

/// What one span or event's fields gave, by capture slot. Label strings live in `buf`. Which
/// slots hold a value is kept in two bit sets, so clearing is three stores.
#[derive(Debug)]
pub(crate) struct Scratch {
    /// Label values back to back; only whole UTF-8 strings are ever pushed, so every range the
    /// layer records is UTF-8.
    pub(crate) buf: Vec<u8>,
    labels: [(u32, u32); MAX_CAPTURES],
    nums: [Result<Num, DropReason>; MAX_CAPTURES],
    has_label: u16,
    has_num: u16,
    /// Values found in spans: `(label-field id, start, end in buf, depth)`, depth 0 being the
    /// nearest span (for a span's own labels, the span itself).
    pub(crate) inherited: Vec<(u8, u32, u32, u8)>,
}

impl Scratch {
    /// An empty scratch (its buffers grow on first use, then keep their capacity).
    const fn new() -> Self {
        Scratch {
            buf: Vec::new(),
            labels: [(0, 0); MAX_CAPTURES],
            nums: [Ok(Num::U64(0)); MAX_CAPTURES],
            has_label: 0,
            has_num: 0,
            inherited: Vec::new(),
        }
    }

    /// Forgets every capture and empties the buffers.
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.has_label = 0;
        self.has_num = 0;
        self.inherited.clear();
    }

    /// Whether every slot of `mask` holds a label value.
    #[inline]
    pub(crate) fn has_labels(&self, mask: u16) -> bool {
        self.has_label & mask == mask
    }

    /// The range in `buf` of the label value captured in `slot`.
    #[inline]
    pub(crate) fn label(&self, slot: usize) -> Option<(u32, u32)> {
        if slot < MAX_CAPTURES && self.has_label & (1 << slot) != 0 {
            Some(self.labels[slot])
        } else {
            None
        }
    }

    #[inline]
    fn set_label(&mut self, slot: usize, r: (u32, u32)) {
        if slot < MAX_CAPTURES {
            self.labels[slot] = r;
            self.has_label |= 1 << slot;
        }
    }

    /// The number captured in `slot` (or why it is not one).
    #[inline]
    pub(crate) fn num(&self, slot: usize) -> Option<Result<Num, DropReason>> {
        if slot < MAX_CAPTURES && self.has_num & (1 << slot) != 0 {
            Some(self.nums[slot])
        } else {
            None
        }
    }

    #[inline]
    fn set_num(&mut self, slot: usize, n: Result<Num, DropReason>) {
        if slot < MAX_CAPTURES {
            self.nums[slot] = n;
            self.has_num |= 1 << slot;
        }
    }

    /// An empty scratch of its own (tests).
    #[cfg(test)]
    pub(crate) fn new_for_test() -> Self {
        Scratch::new()
    }

    /// Captures `v` as the label value of `slot` (tests).
    #[cfg(test)]
    pub(crate) fn set_label_for_test(&mut self, slot: usize, v: &str) {
        let r = self.push(v);
        self.set_label(slot, r);
    }

    /// The bytes of a recorded range (a label value).
    #[inline]
    pub(crate) fn bytes(&self, (start, end): (u32, u32)) -> &[u8] {
        self.buf.get(start as usize..end as usize).unwrap_or(b"")
    }

    /// Appends `v` as is (already sanitised UTF-8, e.g. kept by a span) and returns its range.
    pub(crate) fn push_raw(&mut self, v: &[u8]) -> (u32, u32) {
        let start = self.buf.len();
        crate::labels::push_bytes(&mut self.buf, v);
        (start as u32, self.buf.len() as u32)
    }

    /// Appends a sanitised copy of `v` and returns its range.
    #[inline]
    pub(crate) fn push(&mut self, v: &str) -> (u32, u32) {
        let start = self.buf.len();
        push_sanitized(&mut self.buf, v, MAX_LABEL_VALUE_LEN);
        (start as u32, self.buf.len() as u32)
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const { RefCell::new(Scratch::new()) };
}

/// Runs `f` with this thread's scratch buffer, cleared. Re-entrant use (a `Debug` impl that
/// itself logs a metric event) and use during thread teardown get a fresh buffer instead.
///
/// `f` is `FnMut` so that the fallback can still call it; taking it by value through an
/// `Option` instead costs a store-forwarding stall on every event.
#[inline]
pub(crate) fn with_scratch<R>(mut f: impl FnMut(&mut Scratch) -> R) -> R {
    let done = SCRATCH.try_with(|cell| {
        let mut s = cell.try_borrow_mut().ok()?;
        s.clear();
        Some(f(&mut s))
    });
    match done {
        Ok(Some(r)) => r,
        _ => f(&mut Scratch::new()),
    }
}

/// Copies the fields `plan` uses into `scratch`, or records an event whose one string field
/// settles it ([`Plan::settled_by`]) straight from that field.
pub(crate) struct Visitor<'a> {
    plan: &'a Plan,
    scratch: &'a mut Scratch,
    settled: bool,
}

impl<'a> Visitor<'a> {
    pub(crate) fn new(plan: &'a Plan, scratch: &'a mut Scratch) -> Self {
        Visitor {
            plan,
            scratch,
            settled: false,
        }
    }

    /// Keeps a string field: as a label (sanitised), a number (parsed), or both.
    #[inline]
    fn capture_str(&mut self, slot: usize, usage: FieldUse, value: &str) {
        if usage.label {
            let r = self.scratch.push(value);
            self.scratch.set_label(slot, r);
        }
        if usage.value {
            self.scratch.set_num(slot, Num::parse(value));
        }
    }

    /// The string of the slot that settles the event: records `v` for the event from `value` when
    /// sanitising would leave it as it is, else keeps it like any other field (sanitised). An
    /// event already settled takes nothing more: a value set built by hand may name the same
    /// field twice, and the event must still count once.
    #[inline(never)]
    fn settle(&mut self, slot: usize, usage: FieldUse, value: &str, v: Num) {
        if self.settled {
            return;
        }
        let bytes = value.as_bytes();
        if kept_as_is(bytes, MAX_LABEL_VALUE_LEN) {
            if let Some(action) = self.plan.actions.first() {
                apply::record_settled(action, v, bytes);
                self.settled = true;
                return;
            }
        }
        self.capture_str(slot, usage, value);
    }

    /// Whether the event was recorded while its fields were visited: nothing is left to do.
    #[inline]
    pub(crate) fn settled(&self) -> bool {
        self.settled
    }

    /// The capture slot of `field` and what it keeps; `None` for fields the plan ignores.
    #[inline]
    fn slot(&self, field: &Field) -> Option<(usize, FieldUse)> {
        match self.plan.fields.get(field.index()) {
            Some(&u) if u.slot != NONE => Some((u.slot as usize, u)),
            _ => None,
        }
    }

    fn label_fmt(&mut self, slot: usize, args: fmt::Arguments<'_>) {
        let start = self.scratch.buf.len();
        // An error only means the value was cut at the length cap. A panicking `Debug` or
        // `Display` impl is the caller's bug; it must not unwind out of the layer, so the label
        // is left without a value (its fallback applies).
        let buf = &mut self.scratch.buf;
        let formatted = catch_unwind(AssertUnwindSafe(|| {
            let _ = CappedWriter::new(buf, MAX_LABEL_VALUE_LEN).write_fmt(args);
        }));
        if formatted.is_err() {
            self.scratch.buf.truncate(start);
            return;
        }
        let end = self.scratch.buf.len() as u32;
        self.scratch.set_label(slot, (start as u32, end));
    }

    fn number(&mut self, field: &Field, n: Num, display: &dyn fmt::Display) {
        if let Some((slot, usage)) = self.slot(field) {
            if usage.label {
                self.label_fmt(slot, format_args!("{display}"));
            }
            if usage.value {
                self.scratch.set_num(slot, Ok(n));
            }
        }
    }

    /// Captures a `Debug` field the plan uses: as a label, a number, or both.
    #[inline(never)]
    fn debug_into(&mut self, slot: usize, usage: FieldUse, value: &dyn fmt::Debug) {
        if usage.label {
            self.label_fmt(slot, format_args!("{value:?}"));
        }
        if usage.value {
            // Parse what the value prints (`count = %n`), through the buffer's tail.
            let start = self.scratch.buf.len();
            let buf = &mut self.scratch.buf;
            let fits = catch_unwind(AssertUnwindSafe(|| {
                CappedWriter::new(buf, 64)
                    .write_fmt(format_args!("{value:?}"))
                    .is_ok()
            }));
            let parsed = if matches!(fits, Ok(true)) {
                let printed = self.scratch.buf.get(start..).unwrap_or(b"");
                Num::parse(std::str::from_utf8(printed).unwrap_or(""))
            } else {
                Err(DropReason::WrongType)
            };
            self.scratch.buf.truncate(start);
            self.scratch.set_num(slot, parsed);
        }
    }
}

impl Visit for Visitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.number(field, Num::F64(value), &value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.number(field, Num::I64(value), &value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.number(field, Num::U64(value), &value);
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.number(field, Num::from_i128(value), &value);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.number(field, Num::from_u128(value), &value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if let Some((slot, usage)) = self.slot(field) {
            if usage.label {
                let r = self.scratch.push(if value { "true" } else { "false" });
                self.scratch.set_label(slot, r);
            }
            if usage.value {
                self.scratch.set_num(slot, Err(DropReason::WrongType));
            }
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if let Some((slot, usage)) = self.slot(field) {
            if let Some((settles, v)) = self.plan.settled_by {
                if usize::from(settles) == slot {
                    // Out of line (a tail call): the other fields' path does not carry it.
                    return self.settle(slot, usage, value, v);
                }
            }
            self.capture_str(slot, usage, value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record_debug(field, &format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // Most `Debug` fields an event carries (its message first) are ones the plan ignores:
        // they are turned away before the frame that formatting needs is set up.
        if let Some((slot, usage)) = self.slot(field) {
            self.debug_into(slot, usage, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Compiled;
    use crate::rules::Rules;
    use crate::series::cell::Reading;
    use tracing::callsite::Callsite as _;
    use tracing_core::field::Value;

    /// What visiting one `message.sent` event gave: whether the visit settled it, the label
    /// value copied into the scratch buffer (none when settled), and every series' channel
    /// and count.
    #[derive(Debug, PartialEq)]
    struct Visited {
        settled: bool,
        copied: Option<String>,
        series: Vec<(String, u64)>,
    }

    /// Visits a `message.sent` event whose value set gives `channel` each of `channels` (more
    /// than one only in a value set built by hand).
    fn visit_sent(channels: &[&str]) -> Visited {
        let c = Compiled::for_test(&Rules::dchat_defaults());
        let cs = tracing::callsite!(name: "message.sent", kind: tracing::metadata::Kind::EVENT,
            fields: message, channel);
        let meta = cs.metadata();
        let plan = c.plan(meta);
        let fields = meta.fields();
        let Some(field) = fields.field("channel") else {
            panic!("the callsite declares channel")
        };
        let given: Vec<(&Field, Option<&dyn Value>)> = channels
            .iter()
            .map(|v| (&field, Some(v as &dyn Value)))
            .collect();
        let (one, two);
        let value_set = match &given[..] {
            [a] => {
                one = [*a];
                fields.value_set(&one)
            }
            [a, b] => {
                two = [*a, *b];
                fields.value_set(&two)
            }
            _ => panic!("one or two values"),
        };
        let event = tracing_core::Event::new(meta, &value_set);
        let mut scratch = Scratch::new();
        let mut visitor = Visitor::new(&plan, &mut scratch);
        event.record(&mut visitor);
        let settled = visitor.settled();
        if !settled {
            let mut trace = crate::series::exemplar::TraceContext::new();
            apply::record(&plan.actions[0], &scratch, 0.0, &mut trace);
        }
        let copied = scratch
            .label(0)
            .map(|r| String::from_utf8_lossy(scratch.bytes(r)).into_owned());
        let series = plan.actions[0].metric.with_sorted_series(|all| {
            all.iter()
                .map(|s| {
                    let count = match s.cell.read() {
                        Reading::CounterInt(n) => n,
                        _ => u64::MAX,
                    };
                    (s.key.values().collect::<Vec<_>>().join(","), count)
                })
                .collect()
        });
        Visited {
            settled,
            copied,
            series,
        }
    }

    fn visited(settled: bool, copied: Option<&str>, series: &[(&str, u64)]) -> Visited {
        Visited {
            settled,
            copied: copied.map(Into::into),
            series: series.iter().map(|&(v, n)| (v.into(), n)).collect(),
        }
    }

    #[test]
    fn a_clean_channel_settles_the_event_uncopied_and_any_other_is_copied_sanitised() {
        let general = visit_sent(&["general"]);
        assert_eq!(general, visited(true, None, &[("general", 1)]));
        let bell = visit_sent(&["bell\u{7}"]);
        let sanitised = "bell\u{FFFD}";
        assert_eq!(bell, visited(false, Some(sanitised), &[(sanitised, 1)]));
        let tab = visit_sent(&["tab\there"]);
        assert_eq!(tab, visited(false, Some("tab\there"), &[("tab\there", 1)]));
        let long = "c".repeat(128);
        let cut = visit_sent(&[&"c".repeat(200)]);
        assert_eq!(
            cut,
            visited(false, Some(&long), &[(&long, 1)]),
            "cut at the cap"
        );
    }

    #[test]
    fn a_field_given_twice_still_counts_the_event_once() {
        let twice = visit_sent(&["first", "second"]);
        assert_eq!(twice, visited(true, None, &[("first", 1)]));
    }
}
