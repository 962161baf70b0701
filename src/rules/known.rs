//! Labels bounded to known values: a label whose value arrives from the network (a channel
//! name read from a received message, say) keeps a configured set of values and records every
//! other value as one fixed value, so that no peer chooses the node's series.

use crate::labels::label_value;
use crate::limits::MAX_KNOWN_VALUES;

/// The values a label keeps; any other value is recorded as [`KnownValues::other`].
///
/// Counters and histograms whose every label is bounded this way start at 0 for each known
/// value (and for `other`) when the telemetry is built, and those series never expire: the
/// first event of each is counted by Prometheus' `rate()` and `increase()`, which never count
/// the first sample of a new series.
///
/// ```
/// use dchat_telemetry::KnownValues;
///
/// let channels = KnownValues::new(["general", "random"], "other");
/// assert_eq!(channels.values(), ["general", "random"]);
/// assert_eq!(channels.other(), "other");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownValues {
    values: Vec<String>,
    other: String,
}

impl KnownValues {
    /// `values` kept as they are; any other value recorded as `other`.
    pub fn new<I, S>(values: I, other: impl Into<String>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut values: Vec<String> = values.into_iter().map(Into::into).collect();
        values.sort_unstable();
        values.dedup();
        KnownValues {
            values,
            other: other.into(),
        }
    }

    /// The known values, sorted.
    #[must_use]
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// The value every other value is recorded as.
    #[must_use]
    pub fn other(&self) -> &str {
        &self.other
    }

    /// Every value the label can take: the known values, then `other` (unless it is one of
    /// them).
    pub(crate) fn all(&self) -> impl Iterator<Item = &str> {
        let other = (!self.values.contains(&self.other)).then_some(self.other.as_str());
        self.values.iter().map(String::as_str).chain(other)
    }

    /// Why these values cannot bound a label, if they cannot: each must be a label value as
    /// exported (sanitising leaves it unchanged, so it can match), and there are at most
    /// [`MAX_KNOWN_VALUES`].
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.values.len() > MAX_KNOWN_VALUES {
            return Err(format!(
                "{} known values: at most limits::MAX_KNOWN_VALUES = {MAX_KNOWN_VALUES}",
                self.values.len()
            ));
        }
        for v in self.values.iter().chain([&self.other]) {
            if label_value(v).as_deref() != Some(v.as_str()) {
                return Err(format!(
                    "{v:?} is not a label value as exported (non-empty, no surrounding \
                     spaces or control characters, at most limits::MAX_LABEL_VALUE_LEN bytes)"
                ));
            }
        }
        Ok(())
    }
}

/// Binds `label` to `known` in `bounds`, replacing an earlier binding of the same label (the
/// last one given counts).
pub(crate) fn bind(bounds: &mut Vec<(String, KnownValues)>, label: String, known: KnownValues) {
    bounds.retain(|(l, _)| *l != label);
    bounds.push((label, known));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn values_that_could_never_match_are_refused() {
        assert!(KnownValues::new(["a", "b"], "other").check().is_ok());
        for bad in [
            KnownValues::new([""], "other"),
            KnownValues::new([" a"], "other"),
            KnownValues::new(["a\u{7}b"], "other"),
            KnownValues::new(["a"], ""),
            KnownValues::new(["x".repeat(200)], "other"),
            KnownValues::new((0..=MAX_KNOWN_VALUES).map(|i| i.to_string()), "other"),
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn other_is_listed_once() {
        let k = KnownValues::new(["b", "a", "b", "other"], "other");
        assert_eq!(k.all().collect::<Vec<_>>(), ["a", "b", "other"]);
        let k = KnownValues::new(["a"], "rest");
        assert_eq!(k.all().collect::<Vec<_>>(), ["a", "rest"]);
    }

    proptest! {
        #[test]
        fn checking_never_panics(values in proptest::collection::vec(any::<String>(), 0..4), other in any::<String>()) {
            let _ = KnownValues::new(values, other).check();
        }
    }
}
