//! The field visitor: copies the fields a plan uses into a reusable per-thread scratch buffer,
//! by field index (no name matching per event), without allocating once the buffer has grown.
//! An event that one string field settles (dchat's `message.sent` and its `channel`:
//! [`Plan::settled_by`]) is recorded from the caller's string the moment the field arrives,
//! when sanitising would leave it as it is: no copy, and nothing left to do after the visit.

use std::fmt::{self, Write as _};
use std::panic::{catch_unwind, AssertUnwindSafe};

use tracing_core::field::{Field, Visit};

use super::apply;
use super::scratch::Scratch;
use crate::labels::{kept_as_is, CappedWriter};
use crate::limits::MAX_LABEL_VALUE_LEN;
use crate::plan::{FieldUse, Plan, Slot};
use crate::value::{DropReason, Num};

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
    fn capture_str(&mut self, slot: Slot, usage: FieldUse, value: &str) {
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
    fn settle(&mut self, slot: Slot, usage: FieldUse, value: &str, v: Num) {
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
    fn slot(&self, field: &Field) -> Option<(Slot, FieldUse)> {
        match self.plan.fields.get(field.index()) {
            Some(&u) if u.slot != Slot::NONE => Some((u.slot, u)),
            _ => None,
        }
    }

    fn label_fmt(&mut self, slot: Slot, args: fmt::Arguments<'_>) {
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
        let r = self.scratch.range_from(start);
        self.scratch.set_label(slot, r);
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
    fn debug_into(&mut self, slot: Slot, usage: FieldUse, value: &dyn fmt::Debug) {
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
                let printed = self.scratch.buf.get(start..);
                debug_assert!(printed.is_some(), "the buffer only grew since `start`");
                // The writer cuts only on character boundaries, so what it printed is UTF-8.
                let printed = std::str::from_utf8(printed.unwrap_or(b""));
                debug_assert!(printed.is_ok(), "a cut on a character boundary");
                Num::parse(printed.unwrap_or(""))
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
            if let Some(settled) = self.plan.settled_by {
                if settled.slot == slot {
                    // Out of line (a tail call): the other fields' path does not carry it.
                    return self.settle(slot, usage, value, settled.value);
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
            .label(plan.actions[0].labels[0].own[0])
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
