//! Label inheritance: the label fields spans keep, and the walk from an event (or a span) up
//! its enclosing spans for the labels it has no value of its own for.

use std::sync::Arc;

use super::id_set::IdSet;
use super::scratch::{Inherited, Scratch};
use super::span::{InlineFields, ParentLink, SpanCell};
use crate::plan::{FieldId, Plan, Slot};

/// Copies the `needed` label fields from `cell`'s span (at `depth`) and then its enclosing
/// spans into `scratch.inherited`; stops once each needed field has a value (nearer spans win).
/// A span's parent link is looked up with `parent_of` the first time it is needed, then kept
/// (a span's parent never changes). One cell is locked at a time, and the walk is a loop, so
/// any nesting depth is fine.
pub(super) fn inherit(
    cell: &SpanCell,
    missing: &mut IdSet,
    depth: u8,
    scratch: &mut Scratch,
    parent_of: &dyn Fn(u64) -> Option<Arc<SpanCell>>,
) {
    let mut depth = depth;
    let mut next = inherit_step(cell, missing, depth, scratch, parent_of);
    while let Some(parent) = next {
        depth = depth.saturating_add(1);
        next = inherit_step(&parent, missing, depth, scratch, parent_of);
    }
}

/// One span of [`inherit`]'s walk: its fields, then its parent if something is still missing.
pub(super) fn inherit_step(
    cell: &SpanCell,
    missing: &mut IdSet,
    depth: u8,
    scratch: &mut Scratch,
    parent_of: &dyn Fn(u64) -> Option<Arc<SpanCell>>,
) -> Option<Arc<SpanCell>> {
    let mut state = cell.lock();
    take_missing(&state.fields, missing, depth, scratch);
    if missing.is_empty() {
        return None;
    }
    let id = state.id;
    state.parent.get(id, parent_of).cloned()
}

/// Fills what a span's labels need from its enclosing spans: the label fields that neither its
/// captures nor the fields it keeps itself (`own`, already in `scratch` at depth 0) give,
/// looked up from its parent on (depth 1).
#[inline]
pub(super) fn inherit_for_span(
    plan: &Plan,
    scratch: &mut Scratch,
    own: &InlineFields,
    id: u64,
    parent: &mut ParentLink,
    parent_of: &dyn Fn(u64) -> Option<Arc<SpanCell>>,
) {
    let mut needed = IdSet::EMPTY;
    needed_ids(plan, scratch, Some(own), &mut needed);
    if needed.is_empty() {
        return;
    }
    if let Some(parent) = parent.get(id, parent_of) {
        inherit(parent, &mut needed, 1, scratch, parent_of);
    }
}

/// Copies every field a span keeps for itself into `scratch.inherited`, at depth 0.
pub(super) fn push_own(own: &InlineFields, scratch: &mut Scratch) {
    for (field, v) in own.iter() {
        let range = scratch.push_raw(v);
        scratch.inherited.push(Inherited {
            field,
            range,
            depth: 0,
        });
    }
}

/// Copies the fields of `missing` that `fields` has into `scratch.inherited` at `depth`, and
/// takes them out of `missing`.
pub(super) fn take_missing(
    fields: &InlineFields,
    missing: &mut IdSet,
    depth: u8,
    scratch: &mut Scratch,
) {
    let mut i = 0;
    while i < missing.len() {
        let field = missing.get(i);
        if let Some(v) = fields.get(field) {
            let range = scratch.push_raw(v);
            scratch.inherited.push(Inherited {
                field,
                range,
                depth,
            });
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
pub(super) fn needed_ids(
    plan: &Plan,
    scratch: &Scratch,
    own: Option<&InlineFields>,
    set: &mut IdSet,
) {
    for label in plan.inheriting.iter() {
        let has_own = label.own.iter().any(|&slot| scratch.label(slot).is_some())
            || own.is_some_and(|f| label.fields.iter().any(|&id| f.get(id).is_some()));
        if !has_own {
            for &id in label.fields.iter() {
                set.insert(id);
            }
        }
    }
}

/// Keeps the label fields a span's plan marks for storing.
pub(super) fn store_fields(plan: &Plan, scratch: &Scratch, fields: &mut InlineFields) {
    for (i, usage) in plan.slots.iter().enumerate() {
        if usage.field_id == FieldId::NONE {
            continue;
        }
        // A plan has at most MAX_CAPTURES slots, so every index is a slot.
        let slot = Slot::new(i);
        debug_assert!(slot.is_some(), "more slots than MAX_CAPTURES");
        if let Some(r) = slot.and_then(|slot| scratch.label(slot)) {
            fields.set(usage.field_id, scratch.bytes(r));
        }
    }
}
