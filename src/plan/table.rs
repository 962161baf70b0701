//! Plans by callsite, found without a lock: an open-addressing table keyed by the address of
//! the callsite's `'static` metadata.

use crate::sync::Recover;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use tracing_core::Metadata;

use super::Plan;
use crate::limits::PLAN_SLOTS;

/// A plan found in the [`PlanTable`]: borrowed from the lock-free slots, or shared from the
/// (rarely used) overflow map.
pub(crate) enum PlanRef<'a> {
    Slot(&'a Plan),
    Shared(Arc<Plan>),
}

impl std::ops::Deref for PlanRef<'_> {
    type Target = Plan;
    fn deref(&self) -> &Plan {
        match self {
            PlanRef::Slot(p) => p,
            PlanRef::Shared(p) => p,
        }
    }
}

/// Plans by callsite, found without a lock: an open-addressing table keyed by the address of
/// the callsite's `'static` metadata. Plans (inactive ones too) are only added (in
/// `register_callsite`, or on first use), never removed; past half the table's capacity new
/// plans go to a locked overflow map.
pub(crate) struct PlanTable {
    /// A power of two in length.
    slots: Box<[PlanSlot]>,
    used: Mutex<usize>,
    has_overflow: AtomicBool,
    overflow: RwLock<HashMap<usize, Arc<Plan>>>,
}

#[derive(Default)]
struct PlanSlot {
    key: AtomicUsize,
    plan: OnceLock<Arc<Plan>>,
}

impl std::fmt::Debug for PlanTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanTable").finish_non_exhaustive()
    }
}

fn key_of(meta: &Metadata<'_>) -> usize {
    std::ptr::from_ref(meta) as usize
}

impl PlanTable {
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    fn home(&self, key: usize) -> usize {
        // Fibonacci hashing of the address.
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize) >> 20) & self.mask()
    }

    pub(crate) fn new() -> Self {
        PlanTable::with_slots(PLAN_SLOTS)
    }

    /// A table of `n` lock-free slots (rounded up to a power of two).
    fn with_slots(n: usize) -> Self {
        PlanTable {
            slots: (0..n.next_power_of_two())
                .map(|_| PlanSlot::default())
                .collect(),
            used: Mutex::new(0),
            has_overflow: AtomicBool::new(false),
            overflow: RwLock::new(HashMap::new()),
        }
    }

    /// The plan of a callsite; `None` for callsites not planned yet.
    #[inline]
    pub(crate) fn get(&self, meta: &Metadata<'_>) -> Option<PlanRef<'_>> {
        let key = key_of(meta);
        let mut i = self.home(key);
        loop {
            let slot = &self.slots[i];
            let k = slot.key.load(Ordering::Acquire);
            if k == key {
                return slot.plan.get().map(|p| PlanRef::Slot(p));
            }
            if k == 0 {
                break;
            }
            i = (i + 1) & self.mask();
        }
        if self.has_overflow.load(Ordering::Acquire) {
            return self.get_overflow(key);
        }
        None
    }

    #[cold]
    fn get_overflow(&self, key: usize) -> Option<PlanRef<'_>> {
        let map = self.overflow.read().recover();
        map.get(&key).map(|p| PlanRef::Shared(Arc::clone(p)))
    }

    /// Adds the plan of a callsite, active or not (idempotent: a re-registered callsite keeps
    /// its first plan); whether it was added now.
    pub(crate) fn insert(&self, meta: &'static Metadata<'static>, plan: Plan) -> bool {
        let key = key_of(meta);
        let mut used = self.used.lock().recover();
        if *used < self.slots.len() / 2 {
            let mut i = self.home(key);
            loop {
                let slot = &self.slots[i];
                let k = slot.key.load(Ordering::Acquire);
                if k == key {
                    return false;
                }
                if k == 0 {
                    // Only this (locked) writer sets plans, so the slot is free.
                    let _ = slot.plan.set(Arc::new(plan));
                    slot.key.store(key, Ordering::Release);
                    *used += 1;
                    return true;
                }
                i = (i + 1) & self.mask();
            }
        }
        if self.get(meta).is_some() {
            return false;
        }
        let mut map = self.overflow.write().recover();
        let added = !map.contains_key(&key);
        map.entry(key).or_insert_with(|| Arc::new(plan));
        self.has_overflow.store(true, Ordering::Release);
        added
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::callsite::Callsite as _;

    fn plan() -> Plan {
        Plan {
            fields: Box::new([]),
            slots: Box::new([]),
            actions: Box::new([]),
            stores_fields: false,
            inheriting: Box::new([]),
            own_mask: None,
            opens_gauges: false,
            closes: false,
            timed: false,
            settled_by: None,
        }
    }

    macro_rules! meta {
        ($name:literal) => {
            tracing::callsite!(name: $name, kind: tracing::metadata::Kind::EVENT, fields: ).metadata()
        };
    }

    #[test]
    fn plans_are_found_by_callsite_and_kept_first() {
        let t = PlanTable::with_slots(8);
        let (a, b) = (meta!("a"), meta!("b"));
        assert!(t.get(a).is_none());
        assert!(t.insert(a, plan()));
        let mut second = plan();
        second.stores_fields = true;
        assert!(!t.insert(a, second));
        assert!(
            t.get(a).is_some_and(|p| !p.stores_fields),
            "the first plan is kept"
        );
        assert!(t.get(b).is_none());
    }

    #[test]
    fn past_half_the_slots_plans_go_to_the_overflow_map() {
        let t = PlanTable::with_slots(4);
        let metas = [
            meta!("m0"),
            meta!("m1"),
            meta!("m2"),
            meta!("m3"),
            meta!("m4"),
        ];
        for (i, m) in metas.iter().enumerate() {
            let mut p = plan();
            p.timed = i % 2 == 0;
            t.insert(m, p);
        }
        for (i, m) in metas.iter().enumerate() {
            let p = t.get(m).unwrap_or_else(|| panic!("plan {i}"));
            assert_eq!(p.timed, i % 2 == 0, "plan {i}");
            assert_eq!(matches!(p, PlanRef::Shared(_)), i >= 2, "plan {i}");
        }
    }
}
