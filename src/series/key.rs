//! A series' label values kept together — the values back to back and where each ends — inside
//! the series itself when they are short (most are), else in one allocation, so that comparing
//! an event's values with a series follows no pointer, or one.

use arrayvec::ArrayString;

use crate::limits::MAX_LABELS as MAX_KEY_VALUES;

/// Bytes of label values kept inline.
const INLINE: usize = 30;

/// The joined values: inline, or on the heap when longer.
#[derive(Clone)]
enum Joined {
    Inline(ArrayString<INLINE>),
    Heap(Box<str>),
}

/// The label values of one series, in label-name order.
#[derive(Clone)]
pub(crate) struct LabelKey {
    joined: Joined,
    ends: [u16; MAX_KEY_VALUES],
    len: u8,
}

impl LabelKey {
    /// The key of `values`; values past [`MAX_KEY_VALUES`] are not kept (callers pass at most
    /// that many), nor bytes past 64 KiB in all (label values are capped far below that).
    pub(crate) fn new<V: AsRef<[u8]>>(values: &[V]) -> Self {
        let mut joined = Vec::new();
        let mut ends = [0u16; MAX_KEY_VALUES];
        let mut len = 0u8;
        for (end, v) in ends.iter_mut().zip(values) {
            let v = v.as_ref();
            if joined.len() + v.len() > usize::from(u16::MAX) {
                break;
            }
            joined.extend_from_slice(v);
            // Within u16::MAX by the check above.
            *end = joined.len() as u16;
            len += 1;
        }
        // The layer's label values are whole UTF-8 strings (sanitised `&str`s), so this keeps
        // them as they are; were one not, its bytes would be replaced, and that label set would
        // never match again (new series until the limit, then the overflow series): bounded.
        let joined = match String::from_utf8(joined) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        let joined = match ArrayString::from(&joined) {
            Ok(inline) => Joined::Inline(inline),
            Err(_) => Joined::Heap(joined.into_boxed_str()),
        };
        LabelKey { joined, ends, len }
    }

    #[inline]
    fn joined(&self) -> &str {
        match &self.joined {
            Joined::Inline(s) => s,
            Joined::Heap(s) => s,
        }
    }

    /// The value at `i` (empty past the end).
    pub(crate) fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        let end = self.ends.get(i).copied().unwrap_or(start);
        self.joined()
            .get(usize::from(start)..usize::from(end))
            .unwrap_or("")
    }

    /// Whether this key holds exactly `values`.
    #[inline]
    pub(crate) fn eq_values<V: AsRef<[u8]>>(&self, values: &[V]) -> bool {
        if usize::from(self.len) != values.len() {
            return false;
        }
        let bytes = self.joined().as_bytes();
        let mut start = 0usize;
        for (end, v) in self.ends.iter().zip(values) {
            let end = usize::from(*end);
            match bytes.get(start..end) {
                Some(kept) if crate::labels::bytes_eq(kept, v.as_ref()) => {}
                _ => return false,
            }
            start = end;
        }
        true
    }

    /// The values, in order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &str> {
        (0..usize::from(self.len)).map(|i| self.get(i))
    }
}

impl PartialEq for LabelKey {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.ends == other.ends && self.joined() == other.joined()
    }
}

impl Eq for LabelKey {}

impl std::fmt::Debug for LabelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.values()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn holds_and_compares_its_values(values in proptest::collection::vec("[a-c]{0,3}", 0..=MAX_KEY_VALUES),
                                         other in proptest::collection::vec("[a-c]{0,3}", 0..=MAX_KEY_VALUES)) {
            let v: Vec<&str> = values.iter().map(String::as_str).collect();
            let o: Vec<&str> = other.iter().map(String::as_str).collect();
            let key = LabelKey::new(&v);
            prop_assert_eq!(key.values().collect::<Vec<_>>(), v.clone());
            prop_assert!(key.eq_values(&v));
            prop_assert_eq!(key.eq_values(&o), v == o);
        }
    }
}
