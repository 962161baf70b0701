//! The spans each thread has entered, per layer, kept by the layer itself: an event inherits
//! labels from the nearest entered span that has them, found here with a thread-local read
//! instead of two registry lookups (the current span, then its data) and a span-table lookup per
//! event. An entry finds its span's cell in the span table on the first event that needs it and
//! keeps it while the span stays entered.
//!
//! Bounded: at most [`MAX_ENTERED`] entries per thread. Past that (or when enter/exit pairs were
//! broken, e.g. a guard forgotten with `mem::forget`), the stack reports itself unusable until it
//! empties again and the layer falls back to the registry's view — the same answer, slower.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::span::SpanCell;

use crate::limits::MAX_ENTERED;

/// One entered span of one layer.
#[derive(Debug)]
pub(crate) struct Entered {
    pub(crate) layer: u64,
    pub(crate) id: u64,
    /// Found on first use; `None` until then (and for a span the layer keeps no state for).
    pub(crate) cell: Option<Arc<SpanCell>>,
    pub(crate) looked_up: bool,
}

#[derive(Debug, Default)]
struct Stack {
    entries: Vec<Entered>,
    /// Enters past [`MAX_ENTERED`], not recorded; the exits that follow (last in, first out)
    /// use them up before they touch a recorded entry.
    dropped: usize,
    /// Set when an enter could not be recorded or an exit matched nothing; cleared when the
    /// stack is empty with no dropped enters outstanding.
    lost: bool,
}

thread_local! {
    static STACK: RefCell<Stack> = RefCell::new(Stack {
        entries: Vec::with_capacity(16),
        dropped: 0,
        lost: false,
    });
}

static NEXT_LAYER: AtomicU64 = AtomicU64::new(1);

/// A process-unique id for one layer's entries.
pub(crate) fn layer_id() -> u64 {
    NEXT_LAYER.fetch_add(1, Ordering::Relaxed)
}

/// Records that `layer` entered span `id` on this thread.
pub(crate) fn enter(layer: u64, id: u64) {
    let _ = STACK.try_with(|s| {
        let Ok(mut s) = s.try_borrow_mut() else {
            return;
        };
        if s.entries.len() >= MAX_ENTERED {
            s.lost = true;
            s.dropped = s.dropped.saturating_add(1);
            return;
        }
        s.entries.push(Entered {
            layer,
            id,
            cell: None,
            looked_up: false,
        });
    });
}

/// Records that `layer` exited span `id` on this thread.
pub(crate) fn exit(layer: u64, id: u64) {
    let _ = STACK.try_with(|s| {
        let Ok(mut s) = s.try_borrow_mut() else {
            return;
        };
        // Usually the top entry; spans may also be exited out of order.
        let is = |e: &Entered| e.layer == layer && e.id == id;
        if s.dropped > 0 {
            s.dropped -= 1;
        } else if s.entries.last().is_some_and(is) {
            s.entries.pop();
        } else {
            match s.entries.iter().rposition(is) {
                Some(i) => {
                    let _ = s.entries.remove(i);
                }
                None => s.lost = true,
            }
        }
        if s.entries.is_empty() && s.dropped == 0 {
            s.lost = false;
        }
    });
}

/// Runs `f` over this thread's entries, innermost last; `None` when the stack cannot be trusted
/// (see the module docs) or is in use (a re-entrant call): the caller asks the registry instead.
pub(crate) fn with_entered<R>(f: impl FnOnce(&mut [Entered]) -> R) -> Option<R> {
    STACK
        .try_with(|s| {
            let mut s = s.try_borrow_mut().ok()?;
            if s.lost {
                return None;
            }
            Some(f(&mut s.entries))
        })
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(layer: u64) -> Vec<u64> {
        with_entered(|e| {
            e.iter()
                .filter(|e| e.layer == layer)
                .map(|e| e.id)
                .collect()
        })
        .unwrap_or_default()
    }

    #[test]
    fn nested_and_out_of_order_exits() {
        let l = layer_id();
        enter(l, 1);
        enter(l, 2);
        enter(l + 1_000_000, 3);
        assert_eq!(ids(l), [1, 2]);
        exit(l, 1);
        assert_eq!(ids(l), [2]);
        exit(l, 2);
        exit(l + 1_000_000, 3);
        assert_eq!(ids(l), Vec::<u64>::new());
    }

    #[test]
    fn a_span_reentered_past_the_limit_stays_recorded_until_its_own_exit() {
        let l = layer_id();
        enter(l, 1);
        for id in 2..MAX_ENTERED as u64 + 1 {
            enter(l, id);
        }
        // The stack is full: the same span entered again twice is not recorded.
        enter(l, 1);
        enter(l, 1);
        exit(l, 1);
        exit(l, 1);
        for id in (2..MAX_ENTERED as u64 + 1).rev() {
            exit(l, id);
        }
        assert!(
            with_entered(|_| ()).is_none(),
            "span 1 is still entered: not yet trusted"
        );
        exit(l, 1);
        assert!(with_entered(|_| ()).is_some());
    }

    #[test]
    fn overflow_and_unbalanced_exits_fall_back_until_empty() {
        let l = layer_id();
        for id in 0..MAX_ENTERED as u64 + 5 {
            enter(l, id);
        }
        assert!(with_entered(|_| ()).is_none(), "overflowed: not trusted");
        for id in (0..MAX_ENTERED as u64 + 5).rev() {
            exit(l, id);
        }
        assert!(with_entered(|_| ()).is_some(), "empty again: trusted");
        exit(l, 99);
        assert!(
            with_entered(|_| ()).is_some(),
            "an empty stack stays trusted"
        );
        enter(l, 7);
        exit(l, 8);
        assert!(with_entered(|_| ()).is_none(), "unknown exit: not trusted");
        exit(l, 7);
        assert!(with_entered(|_| ()).is_some());
    }
}
