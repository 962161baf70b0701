//! What expired counters and histograms held, kept so that a series that comes back continues
//! from there.
//!
//! Prometheus keeps one series per label set across its disappearance and sees only rises and
//! drops: a counter that expired at 1 and came back at 1 would look unchanged, and its new
//! increment would never reach `rate()` or `increase()`. So when expiry removes a counter or a
//! histogram, its final value is remembered here (with the time the series was first created,
//! for OpenMetrics' `_created`), and a new series of the same label set starts from it.
//!
//! Bounded twice: at most [`Gone::bound`] entries per metric (the oldest is forgotten first),
//! each for at most [`REMEMBERED_FOR`](crate::limits::REMEMBERED_FOR). A series that comes back
//! after its entry was forgotten starts from zero again: Prometheus then sees a reset when its
//! new value is below the last one it stored, and misses the new increments when it is not.

use super::label_set::LabelSetId;
use std::time::Duration;

use hashbrown::HashTable;

use super::key::LabelKey;

/// The value of a monotonic series at the moment expiry removed it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Remembered {
    /// An integer counter's count.
    Int(u64),
    /// A float counter's value, as `f64` bits.
    Float(u64),
    /// A histogram: per-bucket (not cumulative) counts, the count and the sum's bits.
    Histogram {
        buckets: Box<[u64]>,
        count: u64,
        sum_bits: u64,
    },
}

impl Remembered {
    /// Bytes one entry holds on the heap besides its label values.
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            Remembered::Histogram { buckets, .. } => size_of_val(&**buckets),
            Remembered::Int(_) | Remembered::Float(_) => 0,
        }
    }
}

/// One expired series, remembered.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) hash: u64,
    pub(crate) set: LabelSetId,
    pub(crate) key: LabelKey,
    pub(crate) value: Remembered,
    /// When the series was first created (Unix milliseconds), kept across its returns.
    pub(crate) created_ms: u64,
    /// When it expired (nanoseconds of the metric's clock).
    pub(crate) gone_at: u64,
}

/// The remembered values of one metric's expired series.
#[derive(Debug)]
pub(crate) struct Gone {
    table: HashTable<Entry>,
    /// At most this many entries.
    bound: usize,
    /// The oldest `gone_at` in the table (`u64::MAX` when empty): forgetting by age only scans
    /// the table once something is old enough.
    oldest: u64,
}

impl Gone {
    pub(crate) fn new(bound: usize) -> Self {
        Gone {
            table: HashTable::new(),
            bound,
            oldest: u64::MAX,
        }
    }

    /// Entries kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Takes the entry of the series `matches` finds under `hash`, if one is remembered.
    pub(crate) fn take(&mut self, hash: u64, matches: impl Fn(&Entry) -> bool) -> Option<Entry> {
        let found = self.table.find_entry(hash, |e| matches(e)).ok()?;
        Some(found.remove().0)
    }

    /// Remembers `entries` (series of this metric that just expired), then forgets the oldest
    /// entries past the bound. Returns how many were forgotten.
    pub(crate) fn remember(&mut self, entries: Vec<Entry>) -> usize {
        for e in entries {
            self.oldest = self.oldest.min(e.gone_at);
            // A new series takes its label set's entry, and a label set is live at most once, so
            // it cannot be remembered twice; were it, the newer value replaces the older.
            if let Ok(old) = self
                .table
                .find_entry(e.hash, |x| x.set == e.set && x.key == e.key)
            {
                debug_assert!(false, "a label set remembered twice: {:?}", e.key);
                old.remove();
            }
            self.table.insert_unique(e.hash, e, |x| x.hash);
        }
        let over = self.table.len().saturating_sub(self.bound);
        if over == 0 {
            return 0;
        }
        // The `over`-th oldest expiry time: everything before it goes, and of the entries at it
        // just enough that exactly `over` are forgotten.
        let mut ages: Vec<u64> = self.table.iter().map(|e| e.gone_at).collect();
        let (_, &mut cut, _) = ages.select_nth_unstable(over - 1);
        let mut at_cut = over - ages.iter().filter(|&&a| a < cut).count();
        self.table.retain(|e| {
            if e.gone_at < cut {
                return false;
            }
            if e.gone_at == cut && at_cut > 0 {
                at_cut -= 1;
                return false;
            }
            true
        });
        self.oldest = self.oldest_gone_at();
        over
    }

    /// When the oldest entry's series went away (`u64::MAX` when there is none).
    fn oldest_gone_at(&self) -> u64 {
        self.table
            .iter()
            .map(|e| e.gone_at)
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Forgets the entries remembered for `horizon` or longer at clock reading `now`; returns
    /// how many.
    pub(crate) fn forget_older(&mut self, now: u64, horizon: Duration) -> usize {
        let horizon = u64::try_from(horizon.as_nanos()).unwrap_or(u64::MAX);
        if self.oldest == u64::MAX || now.saturating_sub(self.oldest) < horizon {
            return 0;
        }
        let before = self.table.len();
        self.table
            .retain(|e| now.saturating_sub(e.gone_at) < horizon);
        self.oldest = self.oldest_gone_at();
        before - self.table.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, gone_at: u64) -> Entry {
        Entry {
            hash: name.len() as u64, // collisions on purpose: matching is by key
            set: LabelSetId::FIRST,
            key: LabelKey::new(&[name]),
            value: Remembered::Int(gone_at),
            created_ms: 0,
            gone_at,
        }
    }

    fn take(g: &mut Gone, name: &str) -> Option<Remembered> {
        g.take(name.len() as u64, |e| e.key.eq_values(&[name]))
            .map(|e| e.value)
    }

    #[test]
    fn a_remembered_value_is_taken_once() {
        let mut g = Gone::new(10);
        g.remember(vec![entry("a", 5), entry("b", 6)]);
        assert_eq!(take(&mut g, "a"), Some(Remembered::Int(5)));
        assert_eq!(take(&mut g, "a"), None);
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn past_the_bound_the_oldest_are_forgotten() {
        let mut g = Gone::new(3);
        assert_eq!(g.remember(vec![entry("a", 1), entry("bb", 2)]), 0);
        assert_eq!(
            g.remember(vec![entry("ccc", 3), entry("dddd", 4), entry("eeeee", 0)]),
            2
        );
        assert_eq!(g.len(), 3);
        assert_eq!(take(&mut g, "eeeee"), None, "the oldest went first");
        assert_eq!(take(&mut g, "a"), None);
        assert!(take(&mut g, "bb").is_some());
        assert!(take(&mut g, "dddd").is_some());
    }

    #[test]
    fn ties_at_the_cut_forget_exactly_the_excess() {
        let mut g = Gone::new(2);
        let n = g.remember(vec![
            entry("a", 7),
            entry("bb", 7),
            entry("ccc", 7),
            entry("d", 9),
        ]);
        assert_eq!(n, 2);
        assert_eq!(g.len(), 2);
        assert!(take(&mut g, "d").is_some(), "the newest stays");
    }

    /// The memory the README states per remembered series: one entry in a hash table (plus
    /// its control byte, and up to as much again in free slots right after the table grew),
    /// and a histogram's buckets on the heap.
    #[test]
    fn a_remembered_series_is_small() {
        let entry = size_of::<Entry>();
        assert_eq!(entry, 136, "the README states 136 B per remembered series");
        assert!(entry <= 144, "{entry} B");
        let h = Remembered::Histogram {
            buckets: vec![0; 14].into(),
            count: 0,
            sum_bits: 0,
        };
        assert_eq!(h.heap_bytes(), 14 * 8);
    }

    #[test]
    fn entries_past_the_horizon_are_forgotten() {
        let mut g = Gone::new(10);
        g.remember(vec![entry("a", 1_000), entry("bb", 5_000)]);
        let h = Duration::from_nanos(3_000);
        assert_eq!(g.forget_older(3_999, h), 0);
        assert_eq!(g.forget_older(4_000, h), 1);
        assert_eq!(take(&mut g, "a"), None);
        assert_eq!(g.forget_older(7_999, h), 0);
        assert_eq!(g.forget_older(8_000, h), 1);
        assert_eq!(g.len(), 0);
    }
}
