//! Per-span state: when the span opened, the label fields it keeps for itself and its children,
//! and the series its open/close gauges moved. Kept in a sharded table keyed by span id whose
//! maps keep their capacity, so a span allocates nothing in steady state (span extensions would
//! box every value).

use crate::sync::Recover;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::labels::MAX_LABEL_VALUE_LEN;
use crate::meters::Series;

/// Label fields a span keeps.
pub(crate) const SPAN_FIELDS: usize = 8;
/// Bytes of label values a span keeps; a value that does not fit is cut.
const SPAN_BYTES: usize = 256;
/// Open/close gauges per span.
pub(crate) const SPAN_ACTIVE: usize = 2;

/// Label-field values kept inline (no heap).
#[derive(Debug, Clone, Default)]
pub(crate) struct InlineFields {
    ids: [u8; SPAN_FIELDS],
    ends: [u16; SPAN_FIELDS],
    len: u8,
    buf: arrayvec::ArrayString<SPAN_BYTES>,
}

impl InlineFields {
    fn range(&self, i: usize) -> (usize, usize) {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        (start, self.ends[i] as usize)
    }

    /// The value kept for label-field `id`.
    pub(crate) fn get(&self, id: u8) -> Option<&str> {
        let i = self.ids[..self.len as usize]
            .iter()
            .position(|&x| x == id)?;
        let (s, e) = self.range(i);
        self.buf.get(s..e)
    }

    /// Every kept `(id, value)`.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u8, &str)> {
        (0..self.len as usize).map(|i| {
            let (s, e) = self.range(i);
            (self.ids[i], self.buf.get(s..e).unwrap_or(""))
        })
    }

    /// Sets label-field `id` (a late `Span::record` replaces the earlier value). `value` is
    /// already sanitised and capped; it is cut further (on a char boundary) if the span's
    /// buffer is short of room, and dropped when nothing of it fits or the span keeps
    /// [`SPAN_FIELDS`] fields already (an enclosing span's value or the fallback then applies).
    pub(crate) fn set(&mut self, id: u8, value: &str) {
        if let Some(i) = self.ids[..self.len as usize].iter().position(|&x| x == id) {
            self.remove(i);
        }
        let n = self.len as usize;
        if n >= SPAN_FIELDS {
            return;
        }
        let mut take = value
            .len()
            .min(self.buf.remaining_capacity())
            .min(MAX_LABEL_VALUE_LEN);
        while !value.is_char_boundary(take) {
            take -= 1;
        }
        if take == 0 && !value.is_empty() {
            return; // no room left: keep nothing rather than an empty value
        }
        // `take` is within the remaining capacity, so this cannot fail.
        let _ = self.buf.try_push_str(&value[..take]);
        self.ids[n] = id;
        self.ends[n] = self.buf.len() as u16;
        self.len += 1;
    }

    fn remove(&mut self, i: usize) {
        let n = self.len as usize;
        let (s, e) = self.range(i);
        let mut rebuilt = arrayvec::ArrayString::<SPAN_BYTES>::new();
        // Both halves are slices of the buffer, so they fit.
        let _ = rebuilt.try_push_str(self.buf.get(..s).unwrap_or(""));
        let _ = rebuilt.try_push_str(self.buf.get(e..).unwrap_or(""));
        self.buf = rebuilt;
        let width = (e - s) as u16;
        for j in i..n - 1 {
            self.ids[j] = self.ids[j + 1];
            self.ends[j] = self.ends[j + 1] - width;
        }
        self.len -= 1;
    }
}

/// What the layer keeps for one open span.
#[derive(Debug)]
pub(crate) struct SpanState {
    /// The span's callsite, so closing needs no registry lookup for its plan.
    pub(crate) meta: &'static tracing_core::Metadata<'static>,
    pub(crate) start: Instant,
    pub(crate) fields: InlineFields,
    /// Series the span added 1 to when it opened (per `SpanActive` action, in plan order).
    pub(crate) active: [Option<Arc<Series>>; SPAN_ACTIVE],
}

const SHARDS: usize = 64;

/// Span states by span id.
#[derive(Debug)]
pub(crate) struct SpanTable {
    shards: Box<[Mutex<hashbrown::HashMap<u64, SpanState>>]>,
}

impl SpanTable {
    pub(crate) fn new() -> Self {
        SpanTable {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(hashbrown::HashMap::with_capacity(16)))
                .collect(),
        }
    }

    /// The shard holding span `id`, locked. A poisoned shard is used as is: its data is plain
    /// values that a panic cannot leave half-updated in a harmful way.
    pub(crate) fn shard(&self, id: u64) -> MutexGuard<'_, hashbrown::HashMap<u64, SpanState>> {
        let i = (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % SHARDS;
        self.shards[i].lock().recover()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_fields_set_replace_and_cap() {
        let mut f = InlineFields::default();
        f.set(1, "general");
        f.set(2, "relay-7");
        assert_eq!(f.get(1), Some("general"));
        f.set(1, "random");
        assert_eq!(f.get(1), Some("random"));
        assert_eq!(f.get(2), Some("relay-7"));
        assert_eq!(f.get(3), None);
        for id in 3..20 {
            f.set(id, &"é".repeat(100));
        }
        assert_eq!(f.get(1), Some("random"));
        assert!(f.get(3).is_some_and(|v| v.len() <= MAX_LABEL_VALUE_LEN));
        assert_eq!(f.get(19), None, "only SPAN_FIELDS fields are kept");
    }
}
