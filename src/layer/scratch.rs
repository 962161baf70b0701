//! The per-thread scratch buffer: what one span or event's fields gave, by capture slot, and
//! the values found in its enclosing spans. The visitor fills it, inheritance adds to it, and
//! `apply` reads it; none of them shares anything else.

use std::cell::RefCell;

use crate::labels::push_sanitized;
use crate::limits::{MAX_CAPTURES, MAX_LABEL_VALUE_LEN};
use crate::plan::{CaptureMask, FieldId, Slot};
use crate::value::{DropReason, Num};

/// Where a label value lies in [`Scratch::buf`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BufRange {
    start: u32,
    end: u32,
}

/// A label value found in an enclosing span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Inherited {
    /// The label field it is the value of.
    pub(crate) field: FieldId,
    pub(crate) range: BufRange,
    /// 0 for the nearest span (for a span's own labels, the span itself), then 1 per level up.
    pub(crate) depth: u8,
}

/// What one span or event's fields gave, by capture slot. Label strings live in `buf`. Which
/// slots hold a value is kept in two bit sets, so clearing is three stores.
#[derive(Debug)]
pub(crate) struct Scratch {
    /// Label values back to back; only whole UTF-8 strings are ever pushed, so every range the
    /// layer records is UTF-8.
    pub(crate) buf: Vec<u8>,
    labels: [BufRange; MAX_CAPTURES],
    nums: [Result<Num, DropReason>; MAX_CAPTURES],
    has_label: CaptureMask,
    has_num: CaptureMask,
    /// Values found in spans, nearest first.
    pub(crate) inherited: Vec<Inherited>,
}

impl Scratch {
    /// An empty scratch (its buffers grow on first use, then keep their capacity).
    pub(crate) const fn new() -> Self {
        Scratch {
            buf: Vec::new(),
            labels: [BufRange { start: 0, end: 0 }; MAX_CAPTURES],
            nums: [Ok(Num::U64(0)); MAX_CAPTURES],
            has_label: CaptureMask::EMPTY,
            has_num: CaptureMask::EMPTY,
            inherited: Vec::new(),
        }
    }

    /// Forgets every capture and empties the buffers.
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.has_label = CaptureMask::EMPTY;
        self.has_num = CaptureMask::EMPTY;
        self.inherited.clear();
    }

    /// Whether every slot of `mask` holds a label value.
    #[inline]
    pub(crate) fn has_labels(&self, mask: CaptureMask) -> bool {
        self.has_label.contains_all(mask)
    }

    /// The range in `buf` of the label value captured in `slot`.
    #[inline]
    pub(crate) fn label(&self, slot: Slot) -> Option<BufRange> {
        match self.labels.get(slot.index()) {
            Some(&r) if self.has_label.contains(slot) => Some(r),
            _ => None,
        }
    }

    /// Keeps `r` as the label value of `slot`.
    #[inline]
    pub(crate) fn set_label(&mut self, slot: Slot, r: BufRange) {
        if let Some(at) = self.labels.get_mut(slot.index()) {
            *at = r;
            self.has_label = self.has_label.with(slot);
        }
    }

    /// The number captured in `slot` (or why it is not one).
    #[inline]
    pub(crate) fn num(&self, slot: Slot) -> Option<Result<Num, DropReason>> {
        match self.nums.get(slot.index()) {
            Some(&n) if self.has_num.contains(slot) => Some(n),
            _ => None,
        }
    }

    /// Keeps `n` as the number of `slot`.
    #[inline]
    pub(crate) fn set_num(&mut self, slot: Slot, n: Result<Num, DropReason>) {
        if let Some(at) = self.nums.get_mut(slot.index()) {
            *at = n;
            self.has_num = self.has_num.with(slot);
        }
    }

    /// Captures `v` as the label value of `slot` (tests).
    #[cfg(test)]
    pub(crate) fn set_label_for_test(&mut self, slot: Slot, v: &str) {
        let r = self.push(v);
        self.set_label(slot, r);
    }

    /// The bytes of a recorded range (a label value).
    #[inline]
    pub(crate) fn bytes(&self, r: BufRange) -> &[u8] {
        let bytes = self.buf.get(r.start as usize..r.end as usize);
        debug_assert!(bytes.is_some(), "a range this buffer did not give");
        bytes.unwrap_or(b"")
    }

    /// Appends `v` as is (already sanitised UTF-8, e.g. kept by a span) and returns its range.
    pub(crate) fn push_raw(&mut self, v: &[u8]) -> BufRange {
        let start = self.buf.len();
        crate::labels::push_bytes(&mut self.buf, v);
        self.range_from(start)
    }

    /// Appends a sanitised copy of `v` and returns its range.
    #[inline]
    pub(crate) fn push(&mut self, v: &str) -> BufRange {
        let start = self.buf.len();
        push_sanitized(&mut self.buf, v, MAX_LABEL_VALUE_LEN);
        self.range_from(start)
    }

    /// The range from `start` to the end of the buffer. Ranges are `u32`s: one event's label
    /// values are a few capped strings, far below 4 GiB.
    #[inline]
    pub(crate) fn range_from(&self, start: usize) -> BufRange {
        BufRange {
            start: start as u32,
            end: self.buf.len() as u32,
        }
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
