//! The exposition: every series rendered in the Prometheus text format 0.0.4 or OpenMetrics
//! 1.0, chosen from the scraper's `Accept` header, plus the process and tokio runtime metrics
//! read at scrape time.

pub(crate) mod foreign;
mod negotiate;
pub(crate) mod process;
pub(crate) mod runtime;
mod writer;

use crate::series::LabelSetId;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arrayvec::ArrayVec;

use crate::catalog::{self, MetricDef, MetricKind};
use crate::limits::MAX_LABELS;
use crate::series::cell::Reading;
use crate::series::exemplar::Exemplar;
use crate::series::{Metric, Series, OVERFLOW_LABEL, OVERFLOW_SET};
pub(crate) use negotiate::negotiate;
use writer::{Label, Le, Suffix, Type, Value, Writer};

/// The `Content-Type` of the text exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The `Content-Type` of the OpenMetrics exposition.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// The Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0 (with exemplars).
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` this format is served with.
    #[must_use]
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }

    /// The value of the `format` label of `dchat_telemetry_scrapes_total`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::OpenMetrics => "openmetrics",
        }
    }
}

/// A family read at scrape time (process and runtime metrics): its samples, each with at most
/// one label.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Collected {
    pub(crate) info: &'static catalog::MetricInfo,
    pub(crate) samples: Vec<(Option<(&'static str, String)>, f64)>,
}

/// Renders metrics, and remembers how long the last exposition was (to size the next buffer).
#[derive(Debug)]
pub(crate) struct Exposition {
    /// Constant labels, sorted by name.
    consts: Vec<(String, String)>,
    /// The labels of `target_info` (the resource's attributes), sorted by name.
    target_info: Vec<(String, String)>,
    /// Whether OpenMetrics renders carry `_created` lines for counters and histograms.
    created: bool,
    last_len: AtomicUsize,
}

/// One family to write: a metric of the store, one read at scrape time, `target_info`, or
/// another registry's.
enum Family<'a> {
    Stored(&'a Metric),
    Collected(&'a Collected),
    TargetInfo,
    Foreign(&'a foreign::Foreign),
}

impl Family<'_> {
    fn name(&self) -> &str {
        match self {
            Family::Stored(m) => &m.def.name,
            Family::Collected(c) => c.info.name,
            Family::TargetInfo => catalog::TARGET_INFO.name,
            Family::Foreign(f) => &f.text_name,
        }
    }
}

impl Exposition {
    pub(crate) fn new(
        mut consts: Vec<(String, String)>,
        target_info: Vec<(String, String)>,
        created: bool,
    ) -> Self {
        consts.sort_by(|a, b| a.0.cmp(&b.0));
        Exposition {
            consts,
            target_info,
            created,
            last_len: AtomicUsize::new(16 * 1024),
        }
    }

    /// The names this crate's own families of the page take (a registry's family must not
    /// take them too).
    pub(crate) fn taken(&self, metrics: &[Arc<Metric>], collected: &[Collected]) -> foreign::Taken {
        let mut taken = foreign::Taken::default();
        for m in metrics {
            taken.own(
                &m.def.name,
                m.def.kind,
                m.def.name == catalog::BUILD_INFO.name,
            );
        }
        for c in collected {
            taken.own(c.info.name, c.info.kind, false);
        }
        taken.own(catalog::TARGET_INFO.name, MetricKind::Gauge, true);
        taken
    }

    /// Renders `metrics` (their series in label order), `collected`, `target_info` and other
    /// registries' families, sorted by name.
    pub(crate) fn render(
        &self,
        metrics: &[Arc<Metric>],
        collected: &[Collected],
        foreign: &[foreign::Foreign],
        format: Format,
    ) -> String {
        let mut families: Vec<Family<'_>> = metrics
            .iter()
            .map(|m| Family::Stored(m))
            .chain(collected.iter().map(Family::Collected))
            .chain(std::iter::once(Family::TargetInfo))
            .chain(foreign.iter().map(Family::Foreign))
            .collect();
        families.sort_by(|a, b| a.name().cmp(b.name()));
        // Sized from the last exposition, so the buffer is not regrown (and copied) on the way.
        let hint = self.last_len.load(Ordering::Relaxed);
        let mut out = String::with_capacity(hint + hint / 8 + 1024);
        let mut w = Writer::new(&mut out, format, &self.consts);
        for f in &families {
            match f {
                Family::Stored(m) => {
                    let created = self.created && format == Format::OpenMetrics;
                    m.with_sorted_series(|series| write_stored(&mut w, m, series, format, created))
                }
                Family::Collected(c) => write_collected(&mut w, c),
                Family::TargetInfo => {
                    let info = &catalog::TARGET_INFO;
                    w.family(info.name, Type::Info, info.unit, info.help);
                    let labels: Vec<Label<'_>> = self
                        .target_info
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    w.sample(info.name, "", &labels, None, Value::Int(1), None);
                }
                Family::Foreign(f) => {
                    foreign::write(&mut w, &f.family, format, self.created, &self.consts);
                }
            }
        }
        w.finish();
        self.last_len.store(out.len(), Ordering::Relaxed);
        out
    }
}

/// A series' labels by name (sorted), values unescaped.
fn own_labels<'s>(
    names: &'s [String],
    order: &[usize],
    s: &'s Series,
) -> ArrayVec<Label<'s>, MAX_LABELS> {
    let mut out = ArrayVec::new();
    if s.set == OVERFLOW_SET {
        out.push((OVERFLOW_LABEL, "true"));
        return out;
    }
    // A metric has at most MAX_LABELS labels, so every push fits.
    for &i in order.iter().take(MAX_LABELS) {
        if let Some(n) = names.get(i) {
            let pushed = out.try_push((n.as_str(), s.key.get(i)));
            debug_assert!(pushed.is_ok(), "more labels than MAX_LABELS");
        }
    }
    out
}

fn write_stored(
    w: &mut Writer<'_>,
    m: &Metric,
    series: &[Arc<Series>],
    format: Format,
    created: bool,
) {
    if series.is_empty() {
        return; // a metric with no series yet has no family
    }
    let def = &m.def;
    // `dchat_build_info` is an info family where the format has them.
    let ty = if def.name == catalog::BUILD_INFO.name {
        Type::Info
    } else {
        Type::of(def.kind)
    };
    w.family(&def.name, ty, &def.unit, &def.help);
    let created = created && matches!(def.kind, MetricKind::Counter | MetricKind::Histogram);
    let exemplars = format == Format::OpenMetrics;
    let mut orders = LabelOrders::default();
    for s in series {
        let (names, order) = orders.of(m, s.set);
        let labels = own_labels(names, order, s);
        let exemplar = |i: usize| {
            if exemplars {
                s.exemplars.as_ref().and_then(|x| x.load(i))
            } else {
                None
            }
        };
        write_reading(w, def, &labels, s.cell.read(), exemplar);
        if created {
            // OpenMetrics' `_created` sample is named after the family (a counter's without
            // `_total`).
            let family = crate::labels::counter_family(&def.name);
            let at = Value::Float(s.created_unix());
            w.sample(family, Suffix::Created.as_str(), &labels, None, at, None);
        }
    }
}

/// Each label set's names and their sorted order, worked out once per render (rule metrics
/// have one label set).
#[derive(Default)]
struct LabelOrders {
    sets: Vec<(LabelSetId, Arc<[String]>, Vec<usize>)>,
}

impl LabelOrders {
    /// The label names of `set` of `m` and the order that sorts them.
    fn of(&mut self, m: &Metric, set: LabelSetId) -> (&Arc<[String]>, &[usize]) {
        let i = match self.sets.iter().position(|(id, _, _)| *id == set) {
            Some(i) => i,
            None => {
                let names = m.label_names(set);
                let mut order: Vec<usize> = (0..names.len()).collect();
                order.sort_by(|&a, &b| names[a].cmp(&names[b]));
                self.sets.push((set, names, order));
                self.sets.len() - 1
            }
        };
        let (_, names, order) = &self.sets[i];
        (names, order)
    }
}

/// The samples of one series' reading: one for a counter or gauge; a histogram's buckets,
/// `+Inf`, `_sum` and `_count`. `exemplar(i)` is bucket `i`'s (a counter's is 0).
#[inline]
fn write_reading(
    w: &mut Writer<'_>,
    def: &MetricDef,
    labels: &[Label<'_>],
    reading: Reading,
    exemplar: impl Fn(usize) -> Option<Exemplar>,
) {
    let name = def.name.as_str();
    match reading {
        Reading::CounterInt(n) => {
            let v = Value::Int(i128::from(n));
            w.sample(name, "", labels, None, v, exemplar(0).as_ref());
        }
        Reading::Counter(x) => {
            let v = Value::Float(x);
            w.sample(name, "", labels, None, v, exemplar(0).as_ref());
        }
        Reading::GaugeInt(n) => w.sample(name, "", labels, None, Value::Int(i128::from(n)), None),
        Reading::Gauge(x) => w.sample(name, "", labels, None, Value::Float(x), None),
        Reading::Histogram(h) => {
            for (i, (bound, count)) in def.buckets.iter().zip(&h.cumulative).enumerate() {
                let v = Value::Int(i128::from(*count));
                let le = Some(Le::Bound(*bound));
                w.sample(
                    name,
                    Suffix::Bucket.as_str(),
                    labels,
                    le,
                    v,
                    exemplar(i).as_ref(),
                );
            }
            let count = Value::Int(i128::from(h.count));
            let inf = exemplar(def.buckets.len());
            w.sample(
                name,
                Suffix::Bucket.as_str(),
                labels,
                Some(Le::Inf),
                count,
                inf.as_ref(),
            );
            w.sample(
                name,
                Suffix::Sum.as_str(),
                labels,
                None,
                Value::Float(h.sum),
                None,
            );
            w.sample(name, Suffix::Count.as_str(), labels, None, count, None);
        }
    }
}

fn write_collected(w: &mut Writer<'_>, c: &Collected) {
    let info = c.info;
    w.family(info.name, Type::of(info.kind), info.unit, info.help);
    for (label, v) in &c.samples {
        let labels: Vec<Label<'_>> = label.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let value = if v.fract() == 0.0 && v.abs() < crate::limits::F64_EXACT_INTEGERS as f64 {
            Value::Int(*v as i128)
        } else {
            Value::Float(*v)
        };
        w.sample(info.name, "", &labels, None, value, None);
    }
}
