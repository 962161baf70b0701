//! Per-span state: when the span opened, the label fields it keeps for itself and its children,
//! and the series its open/close gauges moved. Each span's state lives in a [`SpanCell`] found by
//! span id in a sharded table; closed spans' cells go to a per-thread pool and the maps keep
//! their capacity, so a span allocates nothing in steady state (span extensions would box every
//! value).

use crate::sync::Recover;
use std::cell::RefCell;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::limits::{
    MAX_LABEL_VALUE_LEN, MAX_SPAN_ACTIVE, SPAN_BYTES, SPAN_CELLS_PER_THREAD, SPAN_CELLS_SHARED,
    SPAN_FIELDS, SPAN_TABLE_SHARDS,
};
use crate::plan::FieldId;
use crate::series::Series;

/// Label-field values kept inline (no heap), as the bytes the layer's scratch buffer holds:
/// whole sanitised UTF-8 strings, cut only on character boundaries, so they stay UTF-8 without
/// being checked again on every span.
#[derive(Debug, Default)]
pub(crate) struct InlineFields {
    ids: [FieldId; SPAN_FIELDS],
    ends: [u16; SPAN_FIELDS],
    len: u8,
    buf: arrayvec::ArrayVec<u8, SPAN_BYTES>,
}

/// Whether `i` is a character boundary of the UTF-8 text `b` (its end included).
fn is_char_boundary(b: &[u8], i: usize) -> bool {
    // A UTF-8 continuation byte is 0b10xx_xxxx; every other byte starts a character.
    b.get(i).is_none_or(|&x| x & 0xC0 != 0x80)
}

impl Clone for InlineFields {
    fn clone(&self) -> Self {
        let mut c = InlineFields::default();
        c.clone_from(self);
        c
    }

    /// In place, copying only the bytes in use: the derived one built a whole copy (the
    /// 256-byte buffer through `memcpy`) and moved it in, on every span that opens a gauge.
    fn clone_from(&mut self, source: &Self) {
        self.ids = source.ids;
        self.ends = source.ends;
        self.len = source.len;
        // Not `ArrayVec::clone_from`: it copies element by element, where one slice copy will
        // do on every span that opens a gauge. Both have the same capacity, so this cannot fail.
        self.buf.clear();
        let copied = self.buf.try_extend_from_slice(&source.buf);
        debug_assert!(copied.is_ok(), "two buffers of one capacity");
    }
}

impl InlineFields {
    fn range(&self, i: usize) -> (usize, usize) {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        (start, self.ends[i] as usize)
    }

    /// The value kept for label-field `id`.
    pub(crate) fn get(&self, id: FieldId) -> Option<&[u8]> {
        let i = self.ids[..self.len as usize]
            .iter()
            .position(|&x| x == id)?;
        let (s, e) = self.range(i);
        self.buf.get(s..e)
    }

    /// Every kept `(id, value)`.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (FieldId, &[u8])> {
        (0..self.len as usize).map(|i| {
            let (s, e) = self.range(i);
            let value = self.buf.get(s..e);
            debug_assert!(value.is_some(), "a kept value's range lies in the buffer");
            (self.ids[i], value.unwrap_or(b""))
        })
    }

    /// Sets label-field `id` (a late `Span::record` replaces the earlier value). `value` is
    /// already sanitised and capped UTF-8; it is cut further (on a character boundary) if the
    /// span's buffer is short of room, and dropped when nothing of it fits or the span keeps
    /// [`SPAN_FIELDS`] fields already (an enclosing span's value or the fallback then applies).
    pub(crate) fn set(&mut self, id: FieldId, value: &[u8]) {
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
        while !is_char_boundary(value, take) {
            take -= 1;
        }
        if take == 0 && !value.is_empty() {
            return; // no room left: keep nothing rather than an empty value
        }
        // `take` is within the remaining capacity, so this cannot fail.
        let kept = self.buf.try_extend_from_slice(&value[..take]);
        debug_assert!(kept.is_ok(), "within the remaining capacity");
        self.ids[n] = id;
        self.ends[n] = self.buf.len() as u16;
        self.len += 1;
    }

    /// Forgets every value (a reused cell).
    #[inline]
    pub(crate) fn clear(&mut self) {
        self.len = 0;
        self.buf.clear();
    }

    fn remove(&mut self, i: usize) {
        let n = self.len as usize;
        let (s, e) = self.range(i);
        // Close the gap: the values after it move down by its width.
        self.buf.drain(s..e);
        let width = (e - s) as u16;
        for j in i..n - 1 {
            self.ids[j] = self.ids[j + 1];
            self.ends[j] = self.ends[j + 1] - width;
        }
        self.len -= 1;
    }
}

/// What the layer keeps for one open span, in a [`SpanCell`] that is reused once the span closes.
#[derive(Debug)]
pub(crate) struct SpanState {
    /// The span's callsite, so closing needs no registry lookup for its plan (`None` while the
    /// cell waits in a pool).
    pub(crate) meta: Option<&'static tracing_core::Metadata<'static>>,
    /// When the span opened, as a raw reading of the layer's clock.
    pub(crate) start: u64,
    pub(crate) fields: InlineFields,
    /// Series the span added 1 to when it opened (per `SpanActive` action, in plan order).
    pub(crate) active: [Option<Arc<Series>>; MAX_SPAN_ACTIVE],
    /// The span's id (to look its parent up in the registry).
    pub(crate) id: u64,
    pub(crate) parent: ParentLink,
}

/// The nearest enclosing span a span's labels may draw on: its parent in the span tree as the
/// registry sees it through this layer's filter, that this layer keeps state for. Looked up on
/// first need and then kept (a span's parent never changes), so spans whose labels never need
/// a parent never pay for the lookup.
#[derive(Debug, Default)]
pub(crate) struct ParentLink {
    known: bool,
    cell: Option<Arc<SpanCell>>,
}

impl ParentLink {
    /// The link of a span known to have no parent.
    pub(crate) fn none() -> Self {
        ParentLink {
            known: true,
            cell: None,
        }
    }

    /// The parent's cell of span `id`, asked of `parent_of` the first time.
    #[inline]
    pub(crate) fn get(
        &mut self,
        id: u64,
        parent_of: &dyn Fn(u64) -> Option<Arc<SpanCell>>,
    ) -> Option<&Arc<SpanCell>> {
        if !self.known {
            self.cell = parent_of(id);
            self.known = true;
        }
        self.cell.as_ref()
    }
}

/// One span's state behind its own lock: the span table, events inside the span (through the
/// thread's entered-span stack) and `Span::record` from any thread reach it in place, so the
/// ~300-byte state is never moved in or out of a map.
#[derive(Debug)]
pub(crate) struct SpanCell {
    state: Mutex<SpanState>,
}

impl SpanCell {
    fn new() -> Self {
        SpanCell {
            state: Mutex::new(SpanState {
                meta: None,
                start: 0,
                fields: InlineFields::default(),
                active: Default::default(),
                id: 0,
                parent: ParentLink::default(),
            }),
        }
    }

    /// The state, locked (a poisoned lock is recovered: the state is plain values). Locks are
    /// only ever nested from a span to its parent, so they cannot deadlock.
    pub(crate) fn lock(&self) -> MutexGuard<'_, SpanState> {
        self.state.lock().recover()
    }
}

thread_local! {
    static POOL: RefCell<Vec<Arc<SpanCell>>> = const { RefCell::new(Vec::new()) };
}

// The shared pool is for threads that close more spans than they open (spans opened on one
// worker thread and closed on another).

static SHARED_POOL: Mutex<Vec<Arc<SpanCell>>> = Mutex::new(Vec::new());

/// A cell from this thread's pool, else from the shared pool, else a new one.
#[inline]
fn take_cell() -> Arc<SpanCell> {
    POOL.try_with(|p| p.try_borrow_mut().ok()?.pop())
        .ok()
        .flatten()
        .or_else(|| SHARED_POOL.lock().recover().pop())
        .unwrap_or_else(|| Arc::new(SpanCell::new()))
}

/// Gives a closed (and reset) span's cell back to this thread's pool (or, when that is full,
/// the shared one), unless something — the entered-span stack entry of a guard that was
/// forgotten — still holds it.
fn recycle(cell: Arc<SpanCell>) {
    if Arc::strong_count(&cell) != 1 {
        return;
    }
    let cell = POOL
        .try_with(|p| match p.try_borrow_mut() {
            Ok(mut pool) if pool.len() < SPAN_CELLS_PER_THREAD => {
                if pool.capacity() == 0 {
                    pool.reserve_exact(SPAN_CELLS_PER_THREAD);
                }
                pool.push(cell);
                None
            }
            _ => Some(cell),
        })
        .unwrap_or(None);
    if let Some(cell) = cell {
        let mut shared = SHARED_POOL.lock().recover();
        if shared.len() < SPAN_CELLS_SHARED {
            shared.push(cell);
        }
    }
}

type Shard = Mutex<hashbrown::HashMap<u64, Arc<SpanCell>>>;

/// Span cells by span id.
#[derive(Debug)]
pub(crate) struct SpanTable {
    shards: Box<[Shard]>,
}

impl SpanTable {
    pub(crate) fn new() -> Self {
        SpanTable {
            shards: (0..SPAN_TABLE_SHARDS)
                .map(|_| Mutex::new(hashbrown::HashMap::with_capacity(16)))
                .collect(),
        }
    }

    /// The shard holding span `id`, locked. A poisoned shard is used as is: its data is plain
    /// values that a panic cannot leave half-updated in a harmful way.
    #[inline]
    fn shard(&self, id: u64) -> MutexGuard<'_, hashbrown::HashMap<u64, Arc<SpanCell>>> {
        let i = (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % SPAN_TABLE_SHARDS;
        self.shards[i].lock().recover()
    }

    /// Opens span `id`: a (pooled) cell is filled by `fill`, then registered under the id.
    pub(crate) fn open(&self, id: u64, fill: impl FnOnce(&mut SpanState)) {
        let mut cell = take_cell();
        // A pooled or new cell is ours alone: filled without taking its lock.
        match Arc::get_mut(&mut cell) {
            Some(own) => fill(own.state.get_mut().recover()),
            None => fill(&mut cell.lock()),
        }
        if let Some(old) = self.shard(id).insert(id, cell) {
            // Ids are unique among open spans; a left-over cell (a close this layer never saw)
            // is simply dropped.
            drop(old);
        }
    }

    /// The cell of open span `id`.
    pub(crate) fn get(&self, id: u64) -> Option<Arc<SpanCell>> {
        self.shard(id).get(&id).cloned()
    }

    /// Closes span `id`: `f` gets its state (still in its cell, not moved), which is then reset
    /// under the same lock, and the cell goes back to the pool.
    pub(crate) fn close<R>(&self, id: u64, f: impl FnOnce(&mut SpanState) -> R) -> Option<R> {
        let mut cell = self.shard(id).remove(&id)?;
        let close = |state: &mut SpanState| {
            let r = f(state);
            state.meta = None;
            state.fields.clear();
            state.active = Default::default();
            // A cell something still holds (a forgotten guard's stack entry) must not look a
            // parent up by this id again: the registry may have given the id to another span.
            state.id = 0;
            state.parent = ParentLink::none();
            r
        };
        // Usually nothing else holds the cell any more (children and entered-span entries are
        // gone): then its state is reached without its lock.
        let r = match Arc::get_mut(&mut cell) {
            Some(own) => close(own.state.get_mut().recover()),
            None => close(&mut cell.lock()),
        };
        recycle(cell);
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: usize) -> FieldId {
        FieldId::new(i).expect("a label field id")
    }

    #[test]
    fn inline_fields_set_replace_and_cap() {
        let mut f = InlineFields::default();
        f.set(id(1), b"general");
        f.set(id(2), b"relay-7");
        assert_eq!(f.get(id(1)), Some(&b"general"[..]));
        f.set(id(1), b"random");
        assert_eq!(f.get(id(1)), Some(&b"random"[..]));
        assert_eq!(f.get(id(2)), Some(&b"relay-7"[..]));
        assert_eq!(f.get(id(3)), None);
        for i in 3..20 {
            f.set(id(i), "é".repeat(100).as_bytes());
        }
        assert_eq!(f.get(id(1)), Some(&b"random"[..]));
        assert!(f.get(id(3)).is_some_and(|v| v.len() <= MAX_LABEL_VALUE_LEN));
        for (_, v) in f.iter() {
            assert!(
                std::str::from_utf8(v).is_ok(),
                "cut on a character boundary"
            );
        }
        assert_eq!(f.get(id(19)), None, "only SPAN_FIELDS fields are kept");
        let mut copy = InlineFields::default();
        copy.set(id(9), b"left over");
        copy.clone_from(&f);
        assert_eq!(
            copy.iter().collect::<Vec<_>>(),
            f.iter().collect::<Vec<_>>()
        );
        assert_eq!(copy.get(id(9)), None, "nothing of the old value is left");
        assert_eq!(
            f.clone().iter().collect::<Vec<_>>(),
            f.iter().collect::<Vec<_>>()
        );
    }
}
