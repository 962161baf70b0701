//! A trailing-window rate: events per second over the last N seconds, kept in a ring of
//! per-second counts so that recording is one atomic operation and reading is O(N).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Ring of `(second, count)` pairs packed into one `AtomicU64` each: the upper 32 bits hold the
/// second (since `origin`) the slot belongs to, the lower 32 bits its count.
#[derive(Debug)]
pub(crate) struct RateWindow {
    origin: Instant,
    slots: Box<[AtomicU64]>,
}

const COUNT_MASK: u64 = u32::MAX as u64;

impl RateWindow {
    pub(crate) fn new(window_secs: u32, origin: Instant) -> Self {
        let n = window_secs.max(1) as usize;
        RateWindow {
            origin,
            slots: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn now_sec(&self) -> u64 {
        // Seconds since origin, offset by 1 so that second 0 differs from an empty slot; the
        // packing keeps 32 bits of it (136 years).
        (self.origin.elapsed().as_secs() + 1) & COUNT_MASK
    }

    /// Adds `n` events at the current second.
    pub(crate) fn record(&self, n: u64) {
        self.record_at(self.now_sec(), n);
    }

    fn record_at(&self, sec: u64, n: u64) {
        let n = n.min(COUNT_MASK);
        let slot = &self.slots[(sec as usize) % self.slots.len()];
        let mut cur = slot.load(Ordering::Relaxed);
        loop {
            let new = if cur >> 32 == sec {
                (sec << 32) | ((cur & COUNT_MASK) + n).min(COUNT_MASK)
            } else {
                (sec << 32) | n
            };
            match slot.compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Events per second over the window (the current, partial second included).
    pub(crate) fn per_second(&self) -> f64 {
        self.per_second_at(self.now_sec())
    }

    fn per_second_at(&self, now: u64) -> f64 {
        let len = self.slots.len() as u64;
        let total: u64 = self
            .slots
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .filter(|v| {
                let sec = v >> 32;
                sec != 0 && sec <= now && now - sec < len
            })
            .map(|v| v & COUNT_MASK)
            .sum();
        total as f64 / len as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_inside_the_window_only() {
        let w = RateWindow::new(10, Instant::now());
        w.record_at(1, 5);
        w.record_at(1, 5);
        w.record_at(3, 10);
        assert_eq!(w.per_second_at(3), 2.0);
        assert_eq!(w.per_second_at(10), 2.0);
        // Second 1 falls out of a 10 s window at second 11, second 3 at second 13.
        assert_eq!(w.per_second_at(11), 1.0);
        assert_eq!(w.per_second_at(13), 0.0);
        // A slot reused by a later second starts from zero.
        w.record_at(11, 1);
        assert_eq!(w.per_second_at(11), 1.1);
    }
}
