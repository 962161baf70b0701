//! Which label-name list of its metric a series follows, and the series' labels as
//! OpenTelemetry attributes (the data type the bound histograms and the readers take).

use opentelemetry::KeyValue;

use super::key::LabelKey;

/// Which label-name list of its metric a series follows ([`Metric::label_set_id`](super::Metric::label_set_id)): a rule's
/// metric has one, the first; a field-prefix metric one per list of allow-listed fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LabelSetId(u32);

impl LabelSetId {
    /// A metric's first label-name list: its definition's.
    pub(crate) const FIRST: LabelSetId = LabelSetId(0);

    /// The `i`th list; `None` from the overflow series' id on.
    pub(crate) fn new(i: usize) -> Option<LabelSetId> {
        u32::try_from(i)
            .ok()
            .filter(|&i| i != OVERFLOW_SET.0)
            .map(LabelSetId)
    }

    /// Its index into the metric's lists (the overflow series' is past them).
    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }

    /// Its bits, for hashing.
    #[inline]
    pub(crate) fn bits(self) -> u32 {
        self.0
    }
}

/// The `set` of the overflow series: no label-name list has this id.
pub(crate) const OVERFLOW_SET: LabelSetId = LabelSetId(u32::MAX);

/// The attributes of a series: its labels by name, or the overflow marker.
pub(crate) fn attributes(names: &[String], set: LabelSetId, key: &LabelKey) -> Vec<KeyValue> {
    if set == OVERFLOW_SET {
        return vec![KeyValue::new("otel.metric.overflow", true)];
    }
    names
        .iter()
        .zip(key.values())
        .map(|(k, v)| KeyValue::new(k.clone(), v.to_owned()))
        .collect()
}
