//! Other metric registries in the same `/metrics`: families that another library keeps (libp2p's
//! `prometheus-client` registry, an application's `prometheus` registry) read at each scrape
//! from that library's own text encoder ([`parse`]) and written again by this crate's writer,
//! so that they come out in the format the scrape asked for, with the constant labels, escaped
//! the one correct way.
//!
//! What can go wrong is left out of the page family by family, never breaking it, and counted
//! in `dchat_telemetry_registry_families_skipped_total{reason}` with `/health` warning and
//! naming it: a family whose sample names another family already has (`duplicate`: this
//! crate's own families come first, then the registries in the order they were added), one
//! whose samples do not fit the node-wide sample budget (`sample_budget`: the registries' samples
//! are held in the same budget as the rules' series, taken again at each scrape), and one whose
//! output cannot be read, or a registry whose encoder fails or panics (`invalid`).

pub(crate) mod parse;

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use super::writer::{Label, Le, Value, Writer};
use super::Format;
use crate::catalog::MetricKind;
use crate::series::budget::SampleBudget;
use crate::series::Metric;
use crate::sync::Recover;
use crate::value::Num;
use crate::Error;
use parse::{Family, Kind, Number, Suffix};

/// What writes a registry's families as text (its library's encoder).
pub(crate) type Encode = dyn Fn(&mut String) -> std::fmt::Result + Send + Sync;

/// One registry: a name (for messages), the format its encoder writes and the encoder.
#[derive(Clone)]
pub(crate) struct Source {
    pub(crate) name: String,
    pub(crate) format: Format,
    pub(crate) encode: Arc<Encode>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("name", &self.name)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// Why a family was left out: the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skip {
    Duplicate,
    SampleBudget,
    Invalid,
}

impl Skip {
    pub(crate) const ALL: [Skip; 3] = [Skip::Duplicate, Skip::SampleBudget, Skip::Invalid];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Skip::Duplicate => "duplicate",
            Skip::SampleBudget => "sample_budget",
            Skip::Invalid => "invalid",
        }
    }
}

/// The sample names families of the page have taken, and which family took each.
#[derive(Debug, Default)]
pub(crate) struct Taken(HashMap<String, String>);

impl Taken {
    /// Takes every sample name of a family named `name` (its text-format name) of `kind`;
    /// `Err` with the family that has one of them already.
    fn take(&mut self, names: Vec<String>, owner: &str) -> Result<(), String> {
        if let Some(other) = names.iter().find_map(|n| self.0.get(n)) {
            return Err(other.clone());
        }
        for n in names {
            self.0.insert(n, owner.to_owned());
        }
        Ok(())
    }

    /// Takes the names of one of this crate's own families (never refused: they come first).
    pub(crate) fn own(&mut self, name: &str, kind: MetricKind, info: bool) {
        let kind = if info { Kind::Info } else { Kind::of(kind) };
        let base = match kind {
            Kind::Counter => crate::labels::counter_family(name),
            Kind::Info => crate::labels::info_family(name),
            _ => name,
        };
        for n in sample_names(base, kind) {
            self.0.entry(n).or_insert_with(|| name.to_owned());
        }
    }
}

/// Every name a family `name` of `kind` may show: its family names in both formats and its
/// samples' names. Two families clash when these meet (Prometheus would take one's samples for
/// the other's).
fn sample_names(name: &str, kind: Kind) -> Vec<String> {
    let mut out = vec![name.to_owned()];
    for s in kind.suffixes_all() {
        out.push(format!("{name}{}", s.as_str()));
    }
    out
}

impl Kind {
    /// The suffixes whose names a family of this kind claims.
    fn suffixes_all(self) -> &'static [Suffix] {
        match self {
            Kind::Counter => &[Suffix::Total, Suffix::Created],
            Kind::Histogram => &[Suffix::Bucket, Suffix::Sum, Suffix::Count, Suffix::Created],
            Kind::Summary => &[Suffix::Sum, Suffix::Count, Suffix::Created],
            Kind::Info => &[Suffix::Info],
            Kind::Gauge | Kind::StateSet | Kind::Unknown => &[],
        }
    }
}

/// A family read from a registry, ready to write.
#[derive(Debug, Clone)]
pub(crate) struct Foreign {
    pub(crate) family: Family,
    /// Its text-format name (what the page is sorted by).
    pub(crate) text_name: String,
}

/// What the last scrape had to leave out, for `/health`.
#[derive(Debug, Default)]
struct State {
    /// Samples the registries' families hold in the sample budget.
    held: usize,
    problems: Vec<String>,
}

/// Every registry of one telemetry.
#[derive(Debug)]
pub(crate) struct Sources {
    sources: Vec<Source>,
    skipped: Arc<Metric>,
    state: Mutex<State>,
}

impl Sources {
    /// `skipped` counts what is left out (its series exist at 0 from the start).
    pub(crate) fn new(sources: Vec<Source>, skipped: Arc<Metric>) -> Self {
        for reason in Skip::ALL {
            skipped.record(&[reason.label()], Num::U64(0));
        }
        Sources {
            sources,
            skipped,
            state: Mutex::new(State::default()),
        }
    }

    /// Whether any other registry was given.
    pub(crate) fn has_any(&self) -> bool {
        !self.sources.is_empty()
    }

    /// Reads every registry once and refuses a family that clashes with one of `taken` or of
    /// another registry (a mistake to fix before the node runs).
    ///
    /// # Errors
    /// [`Error::DuplicateFamily`] naming the family, its registry and the family it clashes with.
    pub(crate) fn check(&self, mut taken: Taken) -> Result<(), Error> {
        for source in &self.sources {
            let Ok(families) = read(source) else { continue };
            for family in families.into_iter().flatten() {
                let names = sample_names(&family.name, family.kind);
                if let Err(other) = taken.take(names, &family.text_name()) {
                    return Err(Error::DuplicateFamily {
                        family: family.text_name(),
                        registry: source.name.clone(),
                        clashes_with: other,
                    });
                }
            }
        }
        Ok(())
    }

    /// Reads every registry for one scrape: the families to write, in registry order. Those that
    /// clash with the names `taken` gives (or with an earlier registry's), do not fit `budget`
    /// or cannot be read are left out and counted.
    pub(crate) fn collect(
        &self,
        taken: impl FnOnce() -> Taken,
        budget: Option<&SampleBudget>,
        created: bool,
    ) -> Vec<Foreign> {
        if self.sources.is_empty() {
            return Vec::new();
        }
        let mut taken = taken();
        let mut state = self.state.lock().recover();
        if let Some(b) = budget {
            b.give_quietly(state.held);
        }
        state.held = 0;
        let mut problems = Vec::new();
        let mut out = Vec::new();
        let skip = |reason: Skip, what: String, problems: &mut Vec<String>| {
            self.skipped.record(&[reason.label()], Num::U64(1));
            problems.push(what);
        };
        for source in &self.sources {
            let families = match read(source) {
                Ok(f) => f,
                Err(e) => {
                    let what = format!("registry {:?} could not be read: {e}", source.name);
                    skip(Skip::Invalid, what, &mut problems);
                    continue;
                }
            };
            for family in families {
                let family = match family {
                    Ok(f) => f,
                    Err(bad) => {
                        let what = format!(
                            "family {} of registry {:?} could not be read: {}",
                            bad.name, source.name, bad.reason
                        );
                        skip(Skip::Invalid, what, &mut problems);
                        continue;
                    }
                };
                if family.samples.is_empty() {
                    continue; // declared, nothing to show yet: as this crate's own families
                }
                let text_name = family.text_name();
                let names = sample_names(&family.name, family.kind);
                if let Err(other) = taken.take(names, &text_name) {
                    let what = format!(
                        "family {text_name} of registry {:?} has a name of {other}, which is \
                         shown instead",
                        source.name
                    );
                    skip(Skip::Duplicate, what, &mut problems);
                    continue;
                }
                let n = samples(&family, created);
                if let Some(b) = budget {
                    if !b.try_take_quietly(n) {
                        let what = format!(
                            "family {text_name} of registry {:?} ({n} samples) does not fit the \
                             sample budget of {} (raise DCHAT_TELEMETRY_SAMPLE_BUDGET and the \
                             scrape's sampleLimit, or register fewer series)",
                            source.name,
                            b.limit()
                        );
                        skip(Skip::SampleBudget, what, &mut problems);
                        continue;
                    }
                    state.held += n;
                }
                out.push(Foreign { family, text_name });
            }
        }
        state.problems = problems;
        out
    }

    /// What the last scrape left out, if anything (a `/health` warning).
    pub(crate) fn problem(&self) -> Option<String> {
        let state = self.state.lock().recover();
        (!state.problems.is_empty()).then(|| {
            format!(
                "families of other registries left out of /metrics \
                 (dchat_telemetry_registry_families_skipped_total counts them): {}",
                state.problems.join("; ")
            )
        })
    }
}

/// Runs a registry's encoder (a panic inside it is caught) and reads what it wrote.
fn read(source: &Source) -> Result<Vec<Result<Family, parse::Invalid>>, String> {
    let mut text = String::new();
    match catch_unwind(AssertUnwindSafe(|| (source.encode)(&mut text))) {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return Err("its encoder failed".into()),
        Err(_) => return Err("its encoder panicked".into()),
    }
    parse::parse(&text, source.format)
}

/// Samples `family` shows in a scrape (`_created` only when they are written).
fn samples(family: &Family, created: bool) -> usize {
    family
        .samples
        .iter()
        .filter(|s| created || s.suffix != Suffix::Created)
        .count()
}

/// Writes one family in `w`'s format: samples grouped by label set, a histogram's buckets in
/// order of their bounds, then `_sum`, `_count` (and `_created`, in OpenMetrics when `created`).
/// A label named like one of the constant labels `consts` is renamed `exported_<name>`, as
/// Prometheus renames a scraped label that clashes with a target label: the node's constant
/// labels stay on every sample of the page.
pub(super) fn write(
    w: &mut Writer<'_>,
    f: &Family,
    format: Format,
    created: bool,
    consts: &[(String, String)],
) {
    let om = format == Format::OpenMetrics;
    let text_name = f.text_name();
    // A counter's and an info's family are named in the text format's way (with `_total`,
    // `_info`); the writer names them for OpenMetrics.
    let family_name = match f.kind {
        Kind::Counter | Kind::Info => text_name.as_str(),
        _ => f.name.as_str(),
    };
    w.family(family_name, f.kind, &f.unit, &f.help);
    // Label sets in order of first appearance; within one, samples in the order OpenMetrics
    // wants them.
    let mut order: Vec<&Vec<(String, String)>> = Vec::new();
    for s in &f.samples {
        if !order.contains(&&s.labels) {
            order.push(&s.labels);
        }
    }
    for labels in order {
        let mut group: Vec<&parse::Sample> =
            f.samples.iter().filter(|s| s.labels == *labels).collect();
        group.sort_by(|a, b| {
            a.suffix.cmp(&b.suffix).then(
                a.le.unwrap_or(f64::NAN)
                    .partial_cmp(&b.le.unwrap_or(f64::NAN))
                    .unwrap_or(std::cmp::Ordering::Equal),
            )
        });
        let renamed: Vec<(String, &str)> = labels
            .iter()
            .map(|(k, v)| {
                if consts.iter().any(|(c, _)| c == k) {
                    (format!("exported_{k}"), v.as_str())
                } else {
                    (k.clone(), v.as_str())
                }
            })
            .collect();
        let mut own: Vec<Label<'_>> = renamed.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        own.sort_by(|a, b| a.0.cmp(b.0));
        for s in group {
            let value = match s.value {
                Number::Int(i) => Value::Int(i),
                Number::Float(x) => Value::Float(x),
            };
            let le = s.le.map(|b| {
                if b == f64::INFINITY {
                    Le::Inf
                } else {
                    Le::Bound(b)
                }
            });
            let (name, suffix) = match (f.kind, s.suffix) {
                (Kind::Counter, Suffix::Created)
                | (Kind::Counter, Suffix::Total)
                | (Kind::Counter, Suffix::None) => {
                    if s.suffix == Suffix::Created && !(om && created) {
                        continue;
                    }
                    // OpenMetrics names every counter sample `_total`; the text format keeps the
                    // registry's name.
                    let suffix = match s.suffix {
                        Suffix::Created => Suffix::Created.as_str(),
                        _ if om || f.total => Suffix::Total.as_str(),
                        _ => "",
                    };
                    (f.name.as_str(), suffix)
                }
                (_, Suffix::Created) if !(om && created) => continue,
                (_, suffix) => (f.name.as_str(), suffix.as_str()),
            };
            w.sample(name, suffix, &own, le, value, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(name: &str, format: Format, text: &'static str) -> Source {
        Source {
            name: name.into(),
            format,
            encode: Arc::new(move |out: &mut String| {
                out.push_str(text);
                Ok(())
            }),
        }
    }

    fn metric() -> Arc<Metric> {
        let otel = Arc::new(crate::series::NoObserver);
        let settings = crate::series::Settings {
            limit: 10,
            ttl: None,
            rate_window_secs: 60,
            clock: Arc::new(crate::clock::ManualClock::new()),
            exemplars: false,
            budget: None,
            created: false,
        };
        let metrics = crate::series::Metrics::new(settings, otel);
        metrics
            .get_or_create(
                &crate::catalog::MetricDef::from_info(&crate::catalog::REGISTRY_FAMILIES_SKIPPED),
                true,
            )
            .unwrap()
    }

    #[test]
    fn duplicates_budget_and_broken_output_are_left_out_and_counted() {
        let a = source(
            "a",
            Format::OpenMetrics,
            "# TYPE up_a counter\nup_a_total 1\n# TYPE dchat_errors counter\ndchat_errors_total 1\n# EOF\n",
        );
        let b = source(
            "b",
            Format::Text,
            "# TYPE up_a_total counter\nup_a_total 2\n# TYPE big histogram\nbig_bucket{le=\"+Inf\"} 1\nbig_sum 1\nbig_count 1\n# TYPE broken gauge\nbroken{x=\"} 1\n",
        );
        let skipped = metric();
        let sources = Sources::new(vec![a, b], Arc::clone(&skipped));
        let budget = SampleBudget::new(2);
        let mut taken = Taken::default();
        taken.own("dchat_errors_total", MetricKind::Counter, false);
        let got = sources.collect(|| taken, Some(&budget), false);
        let names: Vec<&str> = got.iter().map(|f| f.text_name.as_str()).collect();
        assert_eq!(names, ["up_a_total"]);
        assert_eq!(budget.used(), 1);
        let problem = sources.problem().unwrap();
        assert!(
            problem.contains("dchat_errors_total of registry \"a\""),
            "{problem}"
        );
        assert!(
            problem.contains("up_a_total of registry \"b\""),
            "{problem}"
        );
        assert!(problem.contains("big"), "{problem}");
        assert!(problem.contains("broken"), "{problem}");
        // The next scrape gives the held samples back before taking them again.
        let mut taken = Taken::default();
        taken.own("dchat_errors_total", MetricKind::Counter, false);
        let _ = sources.collect(|| taken, Some(&budget), false);
        assert_eq!(budget.used(), 1);
        assert!(
            !budget.is_full(),
            "a registry's family does not mark the budget full"
        );
        let mut taken = Taken::default();
        taken.own("dchat_errors_total", MetricKind::Counter, false);
        assert!(matches!(
            sources.check(taken),
            Err(Error::DuplicateFamily { ref family, ref registry, .. })
                if family == "dchat_errors_total" && registry == "a"
        ));
    }

    #[test]
    fn a_panicking_encoder_is_invalid() {
        let s = Source {
            name: "p".into(),
            format: Format::Text,
            encode: Arc::new(|_: &mut String| panic!("inside the registry")),
        };
        let sources = Sources::new(vec![s], metric());
        assert!(sources.collect(Taken::default, None, false).is_empty());
        assert!(sources.problem().unwrap().contains("panicked"));
    }
}
