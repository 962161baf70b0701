//! The Prometheus text exposition (format 0.0.4) of the metric families `opentelemetry-prometheus`
//! gathers.
//!
//! What the `prometheus` crate's `TextEncoder` writes, with each sample's labels sorted by name
//! (the registry appends its common labels in hash order; sorted, the exposition is the same
//! from one process to the next) — byte for byte the same for labels already in order, which a
//! property test holds — and without its per-sample allocations: it formats every value through
//! `to_string()` and escapes every label value into a fresh string.

use std::fmt::Write as _;

use arrayvec::ArrayVec;

use prometheus::proto::{LabelPair, Metric, MetricFamily, MetricType};

/// Appends the text exposition of `families` to `out`.
pub(crate) fn encode(families: &[MetricFamily], out: &mut String) {
    for mf in families {
        let name = mf.name();
        let help = mf.help();
        if !help.is_empty() {
            out.push_str("# HELP ");
            out.push_str(name);
            out.push(' ');
            push_escaped(out, help, false);
            out.push('\n');
        }
        let kind = mf.get_field_type();
        out.push_str("# TYPE ");
        out.push_str(name);
        out.push(' ');
        out.push_str(match kind {
            MetricType::COUNTER => "counter",
            MetricType::GAUGE => "gauge",
            MetricType::SUMMARY => "summary",
            MetricType::UNTYPED => "untyped",
            MetricType::HISTOGRAM => "histogram",
        });
        out.push('\n');
        for m in mf.get_metric() {
            let line = Line::new(name, m);
            match kind {
                MetricType::COUNTER => line.sample(out, "", None, m.get_counter().get_value()),
                MetricType::GAUGE => line.sample(out, "", None, m.get_gauge().get_value()),
                // opentelemetry-prometheus never makes untyped metrics (the `prometheus` crate's
                // encoder panics on them, and their accessor is deprecated): announced only.
                MetricType::UNTYPED => {}
                MetricType::HISTOGRAM => {
                    let h = m.get_histogram();
                    let mut inf_seen = false;
                    for b in h.get_bucket() {
                        let bound = b.upper_bound();
                        let le = Extra::Le(bound);
                        line.sample(out, "_bucket", Some(le), b.cumulative_count() as f64);
                        inf_seen |= bound.is_sign_positive() && bound.is_infinite();
                    }
                    if !inf_seen {
                        let count = h.get_sample_count() as f64;
                        line.sample(out, "_bucket", Some(Extra::Inf), count);
                    }
                    line.sample(out, "_sum", None, h.get_sample_sum());
                    line.sample(out, "_count", None, h.get_sample_count() as f64);
                }
                MetricType::SUMMARY => {
                    let s = m.get_summary();
                    for q in s.get_quantile() {
                        let extra = Extra::Quantile(q.quantile());
                        line.sample(out, "", Some(extra), q.value());
                    }
                    line.sample(out, "_sum", None, s.sample_sum());
                    line.sample(out, "_count", None, s.sample_count() as f64);
                }
            }
        }
    }
}

/// The label added to one line of a metric: a bucket's bound (written as any value, an infinite
/// one too, as the `prometheus` crate does), the `+Inf` bucket added when none is infinite, or a
/// quantile.
#[derive(Clone, Copy)]
enum Extra {
    Le(f64),
    Inf,
    Quantile(f64),
}

/// What every line of one metric shares: its name, labels and timestamp.
struct Line<'a> {
    name: &'a str,
    labels: Sorted<'a>,
    timestamp: i64,
}

/// Labels a sample carries at most before sorting them needs the heap.
const INLINE_LABELS: usize = 16;

/// A metric's labels sorted by name: inline for the usual few, on the heap past that.
enum Sorted<'a> {
    Inline(ArrayVec<&'a LabelPair, INLINE_LABELS>),
    Heap(Vec<&'a LabelPair>),
}

impl<'a> Sorted<'a> {
    fn new(labels: &'a [LabelPair]) -> Self {
        // Stable: of two labels with one name, the sample's own (listed first) stays first.
        let by_name = |a: &&LabelPair, b: &&LabelPair| a.name().cmp(b.name());
        if labels.len() <= INLINE_LABELS {
            // At most the capacity, so every label fits.
            let mut v: ArrayVec<&LabelPair, INLINE_LABELS> = ArrayVec::new();
            for lp in labels {
                let _ = v.try_push(lp);
            }
            v.sort_by(by_name);
            Sorted::Inline(v)
        } else {
            let mut v: Vec<&LabelPair> = labels.iter().collect();
            v.sort_by(by_name);
            Sorted::Heap(v)
        }
    }

    fn as_slice(&self) -> &[&'a LabelPair] {
        match self {
            Sorted::Inline(v) => v,
            Sorted::Heap(v) => v,
        }
    }
}

impl<'a> Line<'a> {
    fn new(name: &'a str, m: &'a Metric) -> Self {
        Line {
            name,
            labels: Sorted::new(m.get_label()),
            timestamp: m.timestamp_ms(),
        }
    }

    fn sample(&self, out: &mut String, suffix: &str, extra: Option<Extra>, value: f64) {
        out.push_str(self.name);
        out.push_str(suffix);
        let mut sep = '{';
        let mut last: Option<&str> = None;
        for lp in self.labels.as_slice() {
            // A name given twice (a common label the sample already has) is written once, the
            // sample's own value first after the stable sort: a repeated name would make
            // Prometheus reject the whole scrape.
            if last == Some(lp.name()) {
                continue;
            }
            last = Some(lp.name());
            out.push(sep);
            out.push_str(lp.name());
            out.push_str("=\"");
            push_escaped(out, lp.value(), true);
            out.push('"');
            sep = ',';
        }
        if let Some(extra) = extra {
            out.push(sep);
            match extra {
                Extra::Le(v) => {
                    out.push_str("le=\"");
                    push_value(out, v);
                }
                Extra::Inf => out.push_str("le=\"+Inf"),
                Extra::Quantile(v) => {
                    out.push_str("quantile=\"");
                    push_value(out, v);
                }
            }
            out.push('"');
            sep = ',';
        }
        if sep == ',' {
            out.push('}');
        }
        out.push(' ');
        push_value(out, value);
        if self.timestamp != 0 {
            out.push(' ');
            // Writing to a `String` cannot fail.
            let _ = write!(out, "{}", self.timestamp);
        }
        out.push('\n');
    }
}

/// A value as Rust's `f64` `Display` writes it (what the `prometheus` crate writes): integers
/// below 2^53 take the integer path, which prints the same digits.
fn push_value(out: &mut String, v: f64) {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if v.fract() == 0.0 && v.abs() < EXACT && !(v == 0.0 && v.is_sign_negative()) {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Appends `v` with `\` and newlines escaped, and `"` too in label values.
fn push_escaped(out: &mut String, v: &str, quotes: bool) {
    let needs = |b: u8| b == b'\\' || b == b'\n' || (quotes && b == b'"');
    if !v.bytes().any(needs) {
        out.push_str(v);
        return;
    }
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Encoder as _, TextEncoder};
    use proptest::prelude::*;

    /// One metric: its labels, value and timestamp.
    type Sample = (Vec<(String, String)>, f64, i64);

    fn reference(families: &[MetricFamily]) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(families, &mut out)
            .expect("reference encoder");
        String::from_utf8(out).expect("utf-8")
    }

    fn labels(pairs: &[(String, String)]) -> Vec<LabelPair> {
        pairs
            .iter()
            .map(|(k, v)| {
                let mut lp = LabelPair::default();
                lp.set_name(k.clone());
                lp.set_value(v.clone());
                lp
            })
            .collect()
    }

    fn family(kind: u8, help: &str, metrics: &[Sample], bounds: &[f64]) -> MetricFamily {
        let mut mf = MetricFamily::default();
        mf.set_name("x_metric".into());
        mf.set_help(help.into());
        let kind = match kind % 4 {
            0 => MetricType::COUNTER,
            1 => MetricType::GAUGE,
            2 => MetricType::HISTOGRAM,
            _ => MetricType::SUMMARY,
        };
        mf.set_field_type(kind);
        let ms = metrics
            .iter()
            .map(|(pairs, v, ts)| {
                let mut m = Metric::from_label(labels(pairs));
                m.set_timestamp_ms(*ts);
                match kind {
                    MetricType::COUNTER => {
                        let mut c = prometheus::proto::Counter::default();
                        c.set_value(*v);
                        m.set_counter(c);
                    }
                    MetricType::GAUGE => {
                        let mut g = prometheus::proto::Gauge::default();
                        g.set_value(*v);
                        m.set_gauge(g);
                    }
                    MetricType::HISTOGRAM => {
                        let mut h = prometheus::proto::Histogram::default();
                        h.set_sample_count(v.abs() as u64);
                        h.set_sample_sum(*v);
                        let buckets = bounds
                            .iter()
                            .enumerate()
                            .map(|(i, b)| {
                                let mut bucket = prometheus::proto::Bucket::default();
                                bucket.set_upper_bound(*b);
                                bucket.set_cumulative_count(i as u64);
                                bucket
                            })
                            .collect();
                        h.set_bucket(buckets);
                        m.set_histogram(h);
                    }
                    _ => {
                        let mut s = prometheus::proto::Summary::default();
                        s.set_sample_count(3);
                        s.set_sample_sum(*v);
                        let qs = bounds
                            .iter()
                            .map(|b| {
                                let mut q = prometheus::proto::Quantile::default();
                                q.set_quantile(*b);
                                q.set_value(*v);
                                q
                            })
                            .collect();
                        s.set_quantile(qs);
                        m.set_summary(s);
                    }
                }
                m
            })
            .collect();
        mf.set_metric(ms);
        mf
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            (-1_000_000i64..1_000_000).prop_map(|v| v as f64),
            Just(-0.0),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(9_007_199_254_740_992.0),
            Just(1e300),
            Just(0.1),
        ]
    }

    #[test]
    fn a_repeated_label_name_is_written_once_with_the_samples_own_value() {
        let pairs: Vec<(String, String)> = [("check", "db"), ("check", "common"), ("a", "1")]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut out = String::new();
        encode(&[family(0, "h", &[(pairs, 1.0, 0)], &[])], &mut out);
        assert_eq!(out.lines().nth(2), Some(r#"x_metric{a="1",check="db"} 1"#));
    }

    #[test]
    fn labels_are_written_sorted_by_name() {
        let pairs: Vec<(String, String)> = [("node_id", "n"), ("channel", "c"), ("service", "s")]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let many: Vec<(String, String)> = (0..20)
            .rev()
            .map(|i| (format!("l{i:02}"), i.to_string()))
            .collect();
        let mut out = String::new();
        encode(
            &[family(0, "h", &[(pairs, 3.0, 0), (many, 1.0, 0)], &[])],
            &mut out,
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[2],
            r#"x_metric{channel="c",node_id="n",service="s"} 3"#
        );
        assert!(
            lines[3].starts_with(r#"x_metric{l00="0",l01="1","#),
            "{}",
            lines[3]
        );
        assert!(lines[3].ends_with(r#"l19="19"} 1"#), "{}", lines[3]);
    }

    proptest! {
        #[test]
        fn writes_what_the_prometheus_crate_writes(
            kind in any::<u8>(),
            help in "[a-z\\\\\n\" ]{0,12}",
            metrics in proptest::collection::vec(
                // Distinct names in order: what the encoder sorts to.
                (proptest::collection::btree_map("[a-z_]{1,6}", "[a-z\\\\\n\"é ]{0,8}", 0..3)
                    .prop_map(|m| m.into_iter().collect::<Vec<_>>()),
                 value(),
                 prop_oneof![Just(0i64), any::<i64>()]),
                1..4),
            bounds in proptest::collection::vec(value(), 0..4),
        ) {
            let families = [family(kind, &help, &metrics, &bounds)];
            let mut ours = String::new();
            encode(&families, &mut ours);
            prop_assert_eq!(ours, reference(&families));
        }
    }
}
