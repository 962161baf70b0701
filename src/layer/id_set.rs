//! A small set of label-field ids, kept on the stack.

/// Up to 16 label-field ids, in insertion order; further ids are ignored (a label draws on at
/// most a handful of fields, and ids beyond the 16th only ever add lookups).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdSet {
    ids: [u8; 16],
    len: usize,
}

impl IdSet {
    pub(crate) const EMPTY: IdSet = IdSet {
        ids: [0; 16],
        len: 0,
    };

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The id at `i` (`i < len`).
    pub(crate) fn get(&self, i: usize) -> u8 {
        self.ids[i]
    }

    pub(crate) fn insert(&mut self, id: u8) {
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

impl FromIterator<u8> for IdSet {
    fn from_iter<I: IntoIterator<Item = u8>>(iter: I) -> Self {
        let mut set = IdSet::EMPTY;
        for id in iter {
            set.insert(id);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::IdSet;

    #[test]
    fn keeps_distinct_ids_in_order_up_to_sixteen() {
        let set: IdSet = [3, 1, 3, 2].into_iter().collect();
        assert_eq!(
            (set.len(), set.get(0), set.get(1), set.get(2)),
            (3, 3, 1, 2)
        );
        let full: IdSet = (0..40).collect();
        assert_eq!((full.len(), full.get(15)), (16, 15));
    }

    #[test]
    fn remove_moves_the_last_id_in() {
        let mut set: IdSet = [5, 6, 7].into_iter().collect();
        set.remove(0);
        assert_eq!((set.len(), set.get(0), set.get(1)), (2, 7, 6));
        set.remove(1);
        set.remove(0);
        assert!(set.is_empty());
    }
}
