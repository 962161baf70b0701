//! The rule model: which spans and events feed which metric, with which value and labels.
//!
//! Rules are data: one [`Rule`] (made and checked by its [`RuleBuilder`], here), a set of them
//! checked together ([`Rules`], in [`set`]), and the set that implements dchat's tracing
//! conventions ([`Rules::dchat_defaults`], in [`defaults`]). Users add their own with
//! [`Rule::builder`].

mod defaults;
mod known;
mod set;

pub(crate) use known::bind as bind_known;
pub use known::KnownValues;
pub use set::Rules;

use tracing_core::{Level, Metadata};

use crate::catalog::{valid_buckets, MetricDef, MetricInfo, MetricKind};
use crate::labels::{is_valid_label_name, is_valid_metric_name};
use crate::limits::{MAX_CAPTURES, MAX_LABELS};
use crate::Error;

/// Where a label's value comes from. A label lists several sources; the first that yields a
/// value wins (the event's own fields first, then the enclosing spans', nearest first).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LabelSource {
    /// A field of the event or span, or of an enclosing span, by its exact name
    /// (e.g. `"db.operation"`).
    Field(String),
    /// The callsite's target (module path by default), e.g. `dchat::storage`.
    Target,
    /// A fixed value.
    Fixed(String),
}

impl LabelSource {
    /// Shorthand for [`LabelSource::Field`].
    #[must_use]
    pub fn field(name: impl Into<String>) -> Self {
        LabelSource::Field(name.into())
    }
}

/// How a matched span or event feeds its instrument.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Measure {
    /// Add 1 per event (or per closed span).
    One,
    /// The first of these numeric fields that is present, times its scale (e.g. `latency_ms`
    /// with scale 0.001 into a seconds histogram). When none is present, `default` is used, or
    /// the event is not measured when there is no default.
    Fields {
        /// `(field name, scale)` in order of preference.
        sources: Vec<(String, f64)>,
        /// Value used when no source field is present.
        default: Option<f64>,
    },
    /// Span rules only: the span's lifetime in seconds, recorded when it closes.
    SpanDuration,
    /// Span rules only: +1 when the span opens, -1 when it closes (an up-down counter).
    SpanActive,
}

/// The inclusive range of values a rule records (`RuleBuilder::with_value_range`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ValueRange {
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl ValueRange {
    /// Whether `v` is within the range (`NaN` is not).
    #[inline]
    pub(crate) fn contains(self, v: f64) -> bool {
        self.min <= v && v <= self.max
    }
}

/// Whether a rule applies to events or to spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Event,
    Span,
}

/// One rule: a matcher on callsite metadata, a metric, a measure and labels.
#[derive(Debug, Clone)]
pub struct Rule {
    pub(crate) applies_to_spans: bool,
    pub(crate) name: Option<String>,
    pub(crate) target_prefix: Option<String>,
    pub(crate) level: Option<Level>,
    pub(crate) metric: MetricDef,
    pub(crate) measure: Measure,
    pub(crate) labels: Vec<(String, Vec<LabelSource>)>,
    /// Labels bounded to known values.
    pub(crate) known: Vec<(String, KnownValues)>,
    /// The plausible range of values read from fields.
    pub(crate) value_range: Option<ValueRange>,
}

impl Rule {
    /// Starts a rule that feeds the metric `name` (as scraped: counters end in `_total`) of the
    /// given kind. By default it matches every event; narrow it with the `with_*` matchers.
    pub fn builder(kind: MetricKind, name: impl Into<String>) -> RuleBuilder {
        RuleBuilder {
            kind: Kind::Event,
            name: None,
            target_prefix: None,
            level: None,
            metric: MetricDef {
                name: name.into(),
                kind,
                unit: String::new(),
                help: String::new(),
                buckets: Vec::new(),
                label_names: Vec::new(),
            },
            measure: None,
            labels: Vec::new(),
            known: Vec::new(),
            value_range: None,
        }
    }

    /// Starts a rule for a metric of the [catalogue](crate::catalog), taking its name, kind,
    /// unit, help and buckets from there. Labels still have to be given with `with_label*`.
    pub fn for_metric(info: &MetricInfo) -> RuleBuilder {
        let mut b = Rule::builder(info.kind, info.name);
        b.metric = MetricDef::from_info(info);
        b.metric.label_names.clear();
        b
    }

    /// The name of the metric this rule feeds.
    #[must_use]
    pub fn metric_name(&self) -> &str {
        &self.metric.name
    }

    /// The known values label `label` is bounded to by this rule, if any.
    pub(crate) fn known(&self, label: &str) -> Option<&KnownValues> {
        self.known.iter().find(|(l, _)| l == label).map(|(_, k)| k)
    }

    /// Whether this rule matches the callsite. Called once per callsite, never per event.
    pub(crate) fn matches(&self, meta: &Metadata<'_>) -> bool {
        if self.applies_to_spans != meta.is_span() {
            return false;
        }
        if let Some(name) = &self.name {
            if meta.name() != name {
                return false;
            }
        }
        if let Some(prefix) = &self.target_prefix {
            if !meta.target().starts_with(prefix.as_str()) {
                return false;
            }
        }
        if let Some(level) = self.level {
            // Level ordering in tracing: TRACE > DEBUG > INFO > WARN > ERROR ("more verbose is
            // greater"), so "at least as severe as `level`" is `<=`.
            if *meta.level() > level {
                return false;
            }
        }
        true
    }
}

/// Builder for a [`Rule`]; [`RuleBuilder::build`] validates it.
#[derive(Debug, Clone)]
#[must_use]
pub struct RuleBuilder {
    kind: Kind,
    name: Option<String>,
    target_prefix: Option<String>,
    level: Option<Level>,
    metric: MetricDef,
    measure: Option<Measure>,
    labels: Vec<(String, Vec<LabelSource>)>,
    known: Vec<(String, KnownValues)>,
    value_range: Option<ValueRange>,
}

impl RuleBuilder {
    /// Match events with this name (`info!(name: "message.sent", ..)`).
    pub fn with_event_name(mut self, name: impl Into<String>) -> Self {
        self.kind = Kind::Event;
        self.name = Some(name.into());
        self
    }

    /// Match spans with this name (`info_span!("db.query", ..)`).
    pub fn with_span_name(mut self, name: impl Into<String>) -> Self {
        self.kind = Kind::Span;
        self.name = Some(name.into());
        self
    }

    /// Match spans instead of events (any name unless [`RuleBuilder::with_span_name`] is used).
    pub fn on_spans(mut self) -> Self {
        self.kind = Kind::Span;
        self
    }

    /// Match callsites whose target starts with `prefix` (e.g. `dchat::relay`).
    pub fn with_target_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.target_prefix = Some(prefix.into());
        self
    }

    /// Match callsites at least as severe as `level` (`Level::ERROR` matches only errors).
    pub fn with_level(mut self, level: Level) -> Self {
        self.level = Some(level);
        self
    }

    /// How the instrument is fed (default: [`Measure::One`] for events).
    pub fn with_measure(mut self, measure: Measure) -> Self {
        self.measure = Some(measure);
        self
    }

    /// Feed the instrument from this numeric field; call again for fallbacks.
    pub fn with_value_field(self, field: impl Into<String>) -> Self {
        self.with_scaled_value_field(field, 1.0)
    }

    /// Feed the instrument from this numeric field multiplied by `scale` (e.g. `latency_ms`
    /// with `0.001` into seconds); call again for fallbacks.
    pub fn with_scaled_value_field(mut self, field: impl Into<String>, scale: f64) -> Self {
        let field = field.into();
        match &mut self.measure {
            Some(Measure::Fields { sources, .. }) => sources.push((field, scale)),
            _ => {
                self.measure = Some(Measure::Fields {
                    sources: vec![(field, scale)],
                    default: None,
                })
            }
        }
        self
    }

    /// The value used when none of the value fields is present (e.g. `1` for `count`).
    pub fn with_value_default(mut self, default: f64) -> Self {
        match &mut self.measure {
            Some(Measure::Fields { default: d, .. }) => *d = Some(default),
            _ => {
                self.measure = Some(Measure::Fields {
                    sources: Vec::new(),
                    default: Some(default),
                })
            }
        }
        self
    }

    /// A label named like the field it comes from.
    pub fn with_label(self, name: impl Into<String>) -> Self {
        let name = name.into();
        let source = LabelSource::Field(name.clone());
        self.with_label_from(name, [source])
    }

    /// A label filled from the first source that has a value; `"unknown"` when none has.
    pub fn with_label_from(
        mut self,
        name: impl Into<String>,
        sources: impl IntoIterator<Item = LabelSource>,
    ) -> Self {
        self.labels
            .push((name.into(), sources.into_iter().collect()));
        self
    }

    /// Bounds label `label` (given with `with_label*`) to `known`: any other value is recorded
    /// as `known.other()`, so that values arriving from the network cannot choose the series.
    /// Given again for the same label, the last one counts.
    pub fn with_known_values(mut self, label: impl Into<String>, known: KnownValues) -> Self {
        known::bind(&mut self.known, label.into(), known);
        self
    }

    /// The plausible values read from the value fields (after scaling), bounds included: one
    /// outside (a latency computed from a peer's wrong clock, say) is not recorded, and is
    /// counted in `dchat_telemetry_values_dropped_total{reason="out_of_range"}`. A rule's
    /// default value is not checked.
    pub fn with_value_range(mut self, range: std::ops::RangeInclusive<f64>) -> Self {
        self.value_range = Some(ValueRange {
            min: *range.start(),
            max: *range.end(),
        });
        self
    }

    /// Unit in words (`seconds`, `messages`), shown to OpenTelemetry consumers.
    pub fn with_unit(mut self, unit: impl Into<String>) -> Self {
        self.metric.unit = unit.into();
        self
    }

    /// The `# HELP` text (required: Prometheus lints a metric without one).
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.metric.help = description.into();
        self
    }

    /// Histogram bucket upper bounds (required for histograms; strictly increasing, finite).
    pub fn with_buckets(mut self, buckets: impl Into<Vec<f64>>) -> Self {
        self.metric.buckets = buckets.into();
        self
    }

    /// Validates the rule.
    ///
    /// # Errors
    /// [`Error::InvalidRule`] when the metric name, a label name, the buckets or the measure do
    /// not fit the metric kind or Prometheus' rules.
    pub fn build(self) -> Result<Rule, Error> {
        let checked = check_metric(&self.metric)
            .and_then(|()| self.check_counts())
            .and_then(|()| self.label_names())
            .and_then(|names| self.check_known(&names).map(|()| names))
            .and_then(|names| self.check_value_range().map(|()| names))
            .and_then(|names| self.measure().map(|measure| (names, measure)));
        let (label_names, measure) = match checked {
            Ok(checked) => checked,
            Err(reason) => {
                return Err(Error::InvalidRule {
                    metric: self.metric.name,
                    reason,
                })
            }
        };
        let mut metric = self.metric;
        metric.label_names = label_names;
        Ok(Rule {
            applies_to_spans: self.kind == Kind::Span,
            name: self.name,
            target_prefix: self.target_prefix,
            level: self.level,
            metric,
            measure,
            labels: self.labels,
            known: self.known,
            value_range: self.value_range,
        })
    }

    /// At most [`MAX_LABELS`] labels, and [`MAX_CAPTURES`] distinct source fields (labels and
    /// value together).
    fn check_counts(&self) -> Result<(), String> {
        if self.labels.len() > MAX_LABELS {
            return Err(format!(
                "{} labels: a metric has at most limits::MAX_LABELS = {MAX_LABELS}",
                self.labels.len()
            ));
        }
        let mut fields: Vec<&str> = self
            .labels
            .iter()
            .flat_map(|(_, sources)| sources)
            .filter_map(|s| match s {
                LabelSource::Field(f) => Some(f.as_str()),
                _ => None,
            })
            .collect();
        if let Some(Measure::Fields { sources, .. }) = &self.measure {
            fields.extend(sources.iter().map(|(f, _)| f.as_str()));
        }
        fields.sort_unstable();
        fields.dedup();
        if fields.len() > MAX_CAPTURES {
            return Err(format!(
                "{} distinct source fields: a callsite captures at most limits::MAX_CAPTURES = \
                 {MAX_CAPTURES}",
                fields.len()
            ));
        }
        Ok(())
    }

    /// The label names, each valid, unreserved, given once and with a source.
    fn label_names(&self) -> Result<Vec<String>, String> {
        let mut label_names = Vec::with_capacity(self.labels.len());
        for (label, sources) in &self.labels {
            if !is_valid_label_name(label) || label == crate::labels::OVERFLOW_LABEL {
                return Err(format!(
                    "label {label:?} is not a valid, unreserved label name"
                ));
            }
            if label_names.contains(label) {
                return Err(format!("label {label:?} given twice"));
            }
            if sources.is_empty() {
                return Err(format!("label {label:?} has no source"));
            }
            label_names.push(label.clone());
        }
        Ok(label_names)
    }

    /// Known values only for labels of this rule, each set valid.
    fn check_known(&self, label_names: &[String]) -> Result<(), String> {
        for (label, known) in &self.known {
            if !label_names.contains(label) {
                return Err(format!(
                    "known values are given for {label:?}, which is not a label of this rule"
                ));
            }
            known
                .check()
                .map_err(|reason| format!("known values of {label:?}: {reason}"))?;
        }
        Ok(())
    }

    /// A value range with finite, ordered bounds, on a value read from fields.
    fn check_value_range(&self) -> Result<(), String> {
        let Some(r) = self.value_range else {
            return Ok(());
        };
        if !(r.min.is_finite() && r.max.is_finite() && r.min <= r.max) {
            return Err("a value range needs finite bounds, the lower one first".into());
        }
        if !matches!(self.measure, Some(Measure::Fields { .. })) {
            return Err("a value range bounds values read from fields (with_value_field)".into());
        }
        Ok(())
    }

    /// The measure, given or the kind's default, checked against the rule's kind.
    fn measure(&self) -> Result<Measure, String> {
        let kind = self.metric.kind;
        let measure = match (&self.measure, self.kind) {
            (Some(m), _) => m.clone(),
            (None, Kind::Event) => Measure::One,
            (None, Kind::Span) if kind == MetricKind::UpDownCounter => Measure::SpanActive,
            (None, Kind::Span) if kind == MetricKind::Histogram => Measure::SpanDuration,
            (None, Kind::Span) => Measure::One,
        };
        match (&measure, self.kind, kind) {
            (Measure::SpanDuration | Measure::SpanActive, Kind::Event, _) => {
                Err("span measures need a span rule (with_span_name or on_spans)".into())
            }
            (Measure::SpanActive, _, k) if k != MetricKind::UpDownCounter => {
                Err("SpanActive feeds an UpDownCounter".into())
            }
            (Measure::Fields { .. }, Kind::Span, _) => Err(
                "span rules measure One, SpanDuration or SpanActive (fields are not kept as numbers on spans)"
                    .into(),
            ),
            (Measure::Fields { sources, default }, _, _)
                if sources.is_empty() && default.is_none() =>
            {
                Err("a field measure needs a field or a default".into())
            }
            (Measure::Fields { sources, default }, _, _)
                if sources.iter().any(|(_, s)| !s.is_finite())
                    || default.is_some_and(|d| !d.is_finite()) =>
            {
                Err("scales and defaults must be finite".into())
            }
            _ => Ok(measure),
        }
    }
}

/// The metric's name, help and buckets fit its kind and Prometheus' rules.
fn check_metric(m: &MetricDef) -> Result<(), String> {
    if !is_valid_metric_name(&m.name) {
        return Err("not a valid Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*, not starting with the reserved __)".into());
    }
    if (m.kind == MetricKind::Counter) != m.name.ends_with(crate::labels::COUNTER_SUFFIX) {
        return Err("counter names, and only counter names, end in _total".into());
    }
    if m.help.trim().is_empty() {
        return Err("a description (HELP text) is required".into());
    }
    if m.kind == MetricKind::Histogram {
        if m.buckets.is_empty() {
            return Err("a histogram needs buckets (with_buckets)".into());
        }
        if !valid_buckets(&m.buckets) {
            return Err(format!(
                "buckets must be finite and strictly increasing, at most {}",
                crate::limits::MAX_BUCKETS
            ));
        }
    } else if !m.buckets.is_empty() {
        return Err("only histograms take buckets".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_rules_are_rejected() {
        let bad = [
            Rule::builder(MetricKind::Counter, "x").with_description("d"),
            Rule::builder(MetricKind::Gauge, "x_total").with_description("d"),
            Rule::builder(MetricKind::Counter, "1x_total").with_description("d"),
            Rule::builder(MetricKind::Counter, "x_total"),
            Rule::builder(MetricKind::Histogram, "h").with_description("d"),
            Rule::builder(MetricKind::Histogram, "h")
                .with_description("d")
                .with_buckets([2.0, 1.0]),
            Rule::builder(MetricKind::Histogram, "h")
                .with_description("d")
                .with_buckets([f64::NAN]),
            Rule::builder(MetricKind::Counter, "x_total")
                .with_description("d")
                .with_label("le"),
            Rule::builder(MetricKind::Counter, "x_total")
                .with_description("d")
                .with_label("a.b"),
            Rule::builder(MetricKind::Counter, "x_total")
                .with_description("d")
                .with_measure(Measure::SpanDuration),
            Rule::builder(MetricKind::Gauge, "g")
                .with_description("d")
                .on_spans()
                .with_measure(Measure::SpanActive),
            Rule::builder(MetricKind::Histogram, "h")
                .with_description("d")
                .with_buckets([1.0])
                .with_span_name("upload")
                .with_value_field("bytes"),
        ];
        for b in bad {
            let dbg = format!("{b:?}");
            assert!(matches!(b.build(), Err(Error::InvalidRule { .. })), "{dbg}");
        }
    }

    fn counter(name: &str) -> RuleBuilder {
        Rule::builder(MetricKind::Counter, name).with_description("d")
    }

    #[test]
    fn a_ninth_label_is_rejected_naming_the_limit() {
        let eight = (0..8).fold(counter("x_total"), |b, i| b.with_label(format!("l{i}")));
        assert!(eight.clone().build().is_ok());
        let Err(Error::InvalidRule { reason, .. }) = eight.with_label("l8").build() else {
            panic!("a 9th label must be rejected")
        };
        assert!(reason.contains("MAX_LABELS"), "{reason}");
    }

    #[test]
    fn more_source_fields_than_captures_are_rejected() {
        let sources = (0..17).map(|i| LabelSource::field(format!("f{i}")));
        let Err(Error::InvalidRule { reason, .. }) =
            counter("x_total").with_label_from("a", sources).build()
        else {
            panic!("17 source fields must be rejected")
        };
        assert!(reason.contains("MAX_CAPTURES"), "{reason}");
    }
}
