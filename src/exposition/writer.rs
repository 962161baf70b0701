//! Writing families and samples in the Prometheus text format 0.0.4 or OpenMetrics 1.0.
//!
//! The two differ in a few places only: OpenMetrics names a counter family without `_total`
//! (its samples keep it), states the unit (`# UNIT`) when the name ends in it, escapes `"` in
//! HELP, writes bucket bounds as canonical floats (`1.0`), may carry exemplars, and ends with
//! `# EOF`. Labels are written sorted by name, the constant labels merged in; a sample's own
//! label wins over a constant label of the same name (configuration forbids that clash, but a
//! repeated name would make Prometheus reject the whole scrape).

use std::fmt::Write as _;

use super::Format;
use crate::series::exemplar::Exemplar;

/// A family's `# TYPE` (the catalogue's kinds and other registries' types).
pub(crate) use crate::catalog::FamilyType as Type;

/// What a sample's name adds to its family's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Suffix {
    None,
    Bucket,
    Total,
    Info,
    Sum,
    Count,
    Created,
}

impl Suffix {
    /// The suffix as it ends the sample's name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Suffix::None => "",
            Suffix::Bucket => "_bucket",
            Suffix::Total => crate::labels::COUNTER_SUFFIX,
            Suffix::Info => crate::labels::INFO_SUFFIX,
            Suffix::Sum => "_sum",
            Suffix::Count => "_count",
            Suffix::Created => "_created",
        }
    }
}

/// One label of a sample, value unescaped.
pub(crate) type Label<'a> = (&'a str, &'a str);

/// The extra label of a bucket line.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Le {
    Bound(f64),
    Inf,
}

/// A sample value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value {
    Int(i128),
    Float(f64),
}

/// Appends families and samples to `out`.
pub(crate) struct Writer<'a> {
    out: &'a mut String,
    format: Format,
    /// Constant labels, sorted by name.
    consts: &'a [(String, String)],
}

impl<'a> Writer<'a> {
    pub(crate) fn new(out: &'a mut String, format: Format, consts: &'a [(String, String)]) -> Self {
        Writer {
            out,
            format,
            consts,
        }
    }

    fn om(&self) -> bool {
        self.format == Format::OpenMetrics
    }

    /// Writes a family's metadata lines.
    pub(crate) fn family(&mut self, name: &str, kind: Type, unit: &str, help: &str) {
        let family = match kind {
            Type::Counter if self.om() => crate::labels::counter_family(name),
            Type::Info if self.om() => crate::labels::info_family(name),
            _ => name,
        };
        let kind_word = kind.word(self.om());
        if !help.is_empty() {
            self.out.push_str("# HELP ");
            self.out.push_str(family);
            self.out.push(' ');
            push_escaped(self.out, help, self.om());
            self.out.push('\n');
        }
        self.out.push_str("# TYPE ");
        self.out.push_str(family);
        self.out.push(' ');
        self.out.push_str(kind_word);
        self.out.push('\n');
        if self.om() && has_unit(family, unit) {
            self.out.push_str("# UNIT ");
            self.out.push_str(family);
            self.out.push(' ');
            self.out.push_str(unit);
            self.out.push('\n');
        }
    }

    /// Writes one sample line: `name` + `suffix`, the labels (own ones sorted by name) with the
    /// constant labels merged in, a bucket bound, the value and (OpenMetrics only) an exemplar.
    pub(crate) fn sample(
        &mut self,
        name: &str,
        suffix: &str,
        own: &[Label<'_>],
        le: Option<Le>,
        value: Value,
        exemplar: Option<&Exemplar>,
    ) {
        let out = &mut *self.out;
        out.push_str(name);
        out.push_str(suffix);
        let mut sep = '{';
        let mut consts = self.consts.iter().peekable();
        let mut push = |out: &mut String, k: &str, v: &str| {
            out.push(sep);
            out.push_str(k);
            out.push_str("=\"");
            push_escaped(out, v, true);
            out.push('"');
            sep = ',';
        };
        for &(k, v) in own {
            while let Some((ck, cv)) = consts.peek() {
                if ck.as_str() < k {
                    push(out, ck, cv);
                    consts.next();
                } else {
                    if ck.as_str() == k {
                        consts.next(); // the sample's own value wins
                    }
                    break;
                }
            }
            push(out, k, v);
        }
        for (ck, cv) in consts {
            push(out, ck, cv);
        }
        if let Some(le) = le {
            out.push(sep);
            out.push_str("le=\"");
            match le {
                Le::Inf => out.push_str("+Inf"),
                Le::Bound(b) if self.format == Format::OpenMetrics => push_canonical(out, b),
                Le::Bound(b) => push_value(out, Value::Float(b)),
            }
            out.push('"');
            sep = ',';
        }
        if sep == ',' {
            out.push('}');
        }
        out.push(' ');
        push_value(out, value);
        if let (Some(e), Format::OpenMetrics) = (exemplar, self.format) {
            // 8 + 32 + 7 + 16 characters of labels: within OpenMetrics' 128.
            let _ = write!(
                out,
                " # {{trace_id=\"{:032x}\",span_id=\"{:016x}\"}} ",
                e.trace_id, e.span_id
            );
            push_value(out, Value::Float(e.value));
            out.push(' ');
            push_timestamp(out, e.timestamp);
        }
        out.push('\n');
    }

    /// Ends the exposition (`# EOF` for OpenMetrics).
    pub(crate) fn finish(&mut self) {
        if self.om() {
            self.out.push_str("# EOF\n");
        }
    }
}

/// The base units OpenMetrics' `# UNIT` is for (Prometheus' naming conventions); a count of
/// things (`messages`, `errors`) is not a unit.
const BASE_UNITS: &[&str] = &[
    "seconds", "bytes", "ratio", "meters", "grams", "volts", "celsius",
];

/// Whether OpenMetrics may state `unit` for `family`: a base unit the name ends in.
fn has_unit(family: &str, unit: &str) -> bool {
    BASE_UNITS.contains(&unit)
        && family
            .strip_suffix(unit)
            .is_some_and(|head| head.ends_with('_'))
}

/// A value as Rust's `f64` `Display` writes it (what the `prometheus` crate writes): integers
/// below 2^53 take the integer path, which prints the same digits; infinities as `+Inf`/`-Inf`.
pub(crate) fn push_value(out: &mut String, v: Value) {
    // A power of two: the conversion is exact.
    const EXACT: f64 = crate::limits::F64_EXACT_INTEGERS as f64;
    match v {
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) if f.is_nan() => out.push_str("NaN"),
        Value::Float(f) if f.is_infinite() => out.push_str(if f > 0.0 { "+Inf" } else { "-Inf" }),
        Value::Float(f)
            if f.fract() == 0.0 && f.abs() < EXACT && !(f == 0.0 && f.is_sign_negative()) =>
        {
            let _ = write!(out, "{}", f as i64);
        }
        Value::Float(f) => {
            let _ = write!(out, "{f}");
        }
    }
}

/// A bucket bound in the canonical form OpenMetrics asks for (`1.0`, `0.005`, `1e-7`).
fn push_canonical(out: &mut String, v: f64) {
    let _ = write!(out, "{v:?}");
}

/// An exemplar's timestamp: seconds with millisecond precision.
fn push_timestamp(out: &mut String, secs: f64) {
    let _ = write!(out, "{secs:.3}");
}

/// Appends `v` with `\` and newlines escaped, and `"` too in label values (and in OpenMetrics
/// HELP).
pub(crate) fn push_escaped(out: &mut String, v: &str, quotes: bool) {
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

    fn consts() -> Vec<(String, String)> {
        vec![
            ("node_id".into(), "n\"1".into()),
            ("service".into(), "dchat".into()),
        ]
    }

    #[test]
    fn labels_are_merged_sorted_with_constants_and_escaped() {
        let c = consts();
        let mut out = String::new();
        let mut w = Writer::new(&mut out, Format::Text, &c);
        w.sample(
            "m",
            "_total",
            &[("a", "x\\y"), ("relay", "r\n")],
            None,
            Value::Int(3),
            None,
        );
        w.sample(
            "m",
            "",
            &[("service", "own")],
            None,
            Value::Float(0.5),
            None,
        );
        w.sample("m", "", &[], Some(Le::Inf), Value::Float(2.0), None);
        assert_eq!(
            out,
            "m_total{a=\"x\\\\y\",node_id=\"n\\\"1\",relay=\"r\\n\",service=\"dchat\"} 3\n\
             m{node_id=\"n\\\"1\",service=\"own\"} 0.5\n\
             m{node_id=\"n\\\"1\",service=\"dchat\",le=\"+Inf\"} 2\n"
        );
    }

    #[test]
    fn openmetrics_families_units_bounds_and_exemplars() {
        let mut out = String::new();
        let mut w = Writer::new(&mut out, Format::OpenMetrics, &[]);
        w.family("x_seconds", Type::Histogram, "seconds", "Say \"hi\"");
        w.sample(
            "x_seconds",
            "_bucket",
            &[],
            Some(Le::Bound(1.0)),
            Value::Int(1),
            None,
        );
        w.family("y_total", Type::Counter, "messages", "Ys.");
        let e = Exemplar {
            trace_id: 0xabc,
            span_id: 0x12,
            value: 1.0,
            timestamp: 1_700_000_000.5,
        };
        w.sample("y_total", "", &[], None, Value::Int(7), Some(&e));
        w.finish();
        assert_eq!(
            out,
            "# HELP x_seconds Say \\\"hi\\\"\n# TYPE x_seconds histogram\n# UNIT x_seconds seconds\n\
             x_seconds_bucket{le=\"1.0\"} 1\n\
             # HELP y Ys.\n# TYPE y counter\n\
             y_total 7 # {trace_id=\"00000000000000000000000000000abc\",span_id=\"0000000000000012\"} 1 1700000000.500\n\
             # EOF\n"
        );
    }

    #[test]
    fn text_keeps_quotes_in_help_and_integers_in_bounds() {
        let mut out = String::new();
        let mut w = Writer::new(&mut out, Format::Text, &[]);
        w.family("y_total", Type::Counter, "", "a \"b\"\nc");
        w.sample(
            "y",
            "_bucket",
            &[],
            Some(Le::Bound(1.0)),
            Value::Int(1),
            None,
        );
        w.finish();
        assert_eq!(
            out,
            "# HELP y_total a \"b\"\\nc\n# TYPE y_total counter\ny_bucket{le=\"1\"} 1\n"
        );
    }

    #[test]
    fn units_only_where_the_name_ends_in_them() {
        assert!(has_unit("a_seconds", "seconds"));
        assert!(!has_unit("a_messages_sent", "messages"));
        assert!(!has_unit("seconds", "seconds"));
        assert!(!has_unit("a_errors per second", "errors per second"));
        assert!(!has_unit("dchat_errors", "errors"), "a count is not a unit");
        assert!(has_unit("process_resident_memory_bytes", "bytes"));
    }

    #[test]
    fn values() {
        let s = |v| {
            let mut o = String::new();
            push_value(&mut o, v);
            o
        };
        assert_eq!(s(Value::Float(3.0)), "3");
        assert_eq!(s(Value::Float(-0.0)), "-0");
        assert_eq!(s(Value::Float(0.012)), "0.012");
        assert_eq!(s(Value::Float(f64::INFINITY)), "+Inf");
        assert_eq!(s(Value::Float(f64::NAN)), "NaN");
        assert_eq!(s(Value::Int(-5)), "-5");
    }
}
