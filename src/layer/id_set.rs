//! A small set of label-field ids, kept on the stack.

use crate::limits::INHERITED_FIELDS;
use crate::plan::FieldId;

/// Up to [`INHERITED_FIELDS`] label-field ids, in insertion order; further ids are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdSet {
    ids: [FieldId; INHERITED_FIELDS],
    len: usize,
}

impl IdSet {
    pub(crate) const EMPTY: IdSet = IdSet {
        ids: [FieldId::NONE; INHERITED_FIELDS],
        len: 0,
    };

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The id at `i` (`i < len`).
    pub(crate) fn get(&self, i: usize) -> FieldId {
        self.ids[i]
    }

    pub(crate) fn insert(&mut self, id: FieldId) {
        if self.len < self.ids.len() && !self.ids[..self.len].contains(&id) {
            self.ids[self.len] = id;
            self.len += 1;
        }
    }

    /// Removes the id at `i` (`i < len`); the last id takes its place.
    pub(crate) fn remove(&mut self, i: usize) {
        self.ids[i] = self.ids[self.len - 1];
        self.len -= 1;
    }
}

impl FromIterator<FieldId> for IdSet {
    fn from_iter<I: IntoIterator<Item = FieldId>>(iter: I) -> Self {
        let mut set = IdSet::EMPTY;
        for id in iter {
            set.insert(id);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(of: impl IntoIterator<Item = usize>) -> IdSet {
        of.into_iter()
            .map(|i| FieldId::new(i).expect("a label field id"))
            .collect()
    }

    fn id(i: usize) -> FieldId {
        FieldId::new(i).expect("a label field id")
    }

    #[test]
    fn keeps_distinct_ids_in_order_up_to_the_limit() {
        let set = ids([3, 1, 3, 2]);
        assert_eq!(
            (set.len(), set.get(0), set.get(1), set.get(2)),
            (3, id(3), id(1), id(2))
        );
        let full = ids(0..40);
        assert_eq!(
            (full.len(), full.get(INHERITED_FIELDS - 1)),
            (INHERITED_FIELDS, id(INHERITED_FIELDS - 1))
        );
    }

    #[test]
    fn remove_moves_the_last_id_in() {
        let mut set = ids([5, 6, 7]);
        set.remove(0);
        assert_eq!((set.len(), set.get(0), set.get(1)), (2, id(7), id(6)));
        set.remove(1);
        set.remove(0);
        assert!(set.is_empty());
    }
}
