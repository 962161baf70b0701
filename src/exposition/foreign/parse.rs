//! Reading another registry's exposition (the Prometheus text format 0.0.4, as the `prometheus`
//! crate writes it, or OpenMetrics 1.0, as `prometheus-client` does) back into families, so that
//! they are written again by this crate's own writer, in whichever format the scrape asked for.
//!
//! Strict where a mistake would break the page: names and label names must be valid, label
//! values correctly quoted and escaped, values numbers, and every sample must belong to its
//! family. A family with a line that is not is returned as an error (and left out by the
//! caller), the other families are kept. Timestamps and exemplars are dropped; unknown comment
//! lines are ignored.

use super::super::Format;
use crate::labels::{is_valid_label_name, is_valid_metric_name};

/// A family's type (the text format's `untyped` is `Unknown`).
pub(crate) use crate::catalog::FamilyType as Kind;

/// The sample-name suffixes a family of `kind` has.
fn suffixes(kind: Kind) -> &'static [Suffix] {
    match kind {
        Kind::Counter => &[Suffix::Total, Suffix::Created, Suffix::None],
        Kind::Histogram => &[Suffix::Bucket, Suffix::Sum, Suffix::Count, Suffix::Created],
        Kind::Summary => &[Suffix::Sum, Suffix::Count, Suffix::Created, Suffix::None],
        Kind::Info => &[Suffix::Info],
        Kind::Gauge | Kind::StateSet | Kind::Unknown => &[Suffix::None],
    }
}

pub(crate) use super::super::writer::Suffix;

/// A sample value: integers exactly (counts above 2^53 stay exact), anything else as a float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Number {
    Int(i128),
    Float(f64),
}

/// Label pairs, as written.
type Labels = Vec<(String, String)>;

/// One sample of a family.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub(crate) suffix: Suffix,
    /// Labels sorted by name, `le` excluded.
    pub(crate) labels: Vec<(String, String)>,
    /// A bucket's bound (`+Inf` as infinity).
    pub(crate) le: Option<f64>,
    pub(crate) value: Number,
}

/// One family, its name as OpenMetrics has it: a counter's without `_total`, an info's without
/// `_info`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Family {
    pub(crate) name: String,
    pub(crate) kind: Kind,
    pub(crate) help: String,
    pub(crate) unit: String,
    /// A counter whose value samples are named `name_total` (else `name`, as the text format
    /// allows).
    pub(crate) total: bool,
    pub(crate) samples: Vec<Sample>,
}

impl Family {
    /// The family's name in the text format (a counter's with `_total` when its samples have
    /// it, an info's with `_info`).
    pub(crate) fn text_name(&self) -> String {
        match self.kind {
            Kind::Counter if self.total => format!("{}{}", self.name, Suffix::Total.as_str()),
            Kind::Info => format!("{}{}", self.name, Suffix::Info.as_str()),
            _ => self.name.clone(),
        }
    }
}

/// A family that could not be read, by name, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub(crate) name: String,
    pub(crate) reason: String,
}

/// Families under construction, in order of appearance, and the HELP and UNIT lines by the name
/// they gave (applied at the end: a text-format HELP comes before its TYPE and names a counter
/// with its `_total`).
struct Builder {
    families: Vec<Result<Family, Invalid>>,
    helps: Vec<(String, String)>,
    units: Vec<(String, String)>,
}

impl Builder {
    fn find(&mut self, name: &str) -> Option<&mut Result<Family, Invalid>> {
        self.families.iter_mut().find(|f| match f {
            Ok(f) => f.name == name,
            Err(i) => i.name == name,
        })
    }

    /// The family `name` (made on first mention, as `Unknown`).
    fn family(&mut self, name: &str) -> &mut Result<Family, Invalid> {
        if self.find(name).is_none() {
            self.families.push(Ok(Family {
                name: name.to_owned(),
                kind: Kind::Unknown,
                help: String::new(),
                unit: String::new(),
                total: false,
                samples: Vec::new(),
            }));
        }
        // UNWRAP: found or pushed just above.
        self.find(name).unwrap()
    }

    fn fail(&mut self, name: &str, reason: String) {
        let f = self.family(name);
        if f.is_ok() {
            *f = Err(Invalid {
                name: name.to_owned(),
                reason,
            });
        }
    }
}

/// Reads `text`, in `format`, into families (or why each could not be read). `Err` when a line
/// cannot be told apart as belonging to any family (then nothing of the text is used).
pub(crate) fn parse(text: &str, format: Format) -> Result<Vec<Result<Family, Invalid>>, String> {
    let om = format == Format::OpenMetrics;
    let mut b = Builder {
        families: Vec::new(),
        helps: Vec::new(),
        units: Vec::new(),
    };
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() {
            if om {
                return Err(format!("line {}: empty line in OpenMetrics", n + 1));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            metadata(&mut b, rest, om).map_err(|e| format!("line {}: {e}", n + 1))?;
            continue;
        }
        let (name, rest) =
            split_name(line).ok_or_else(|| format!("line {}: no metric name", n + 1))?;
        let (family, suffix) = resolve(&mut b, name);
        match sample(suffix, rest, om) {
            Ok(s) => {
                if let Ok(f) = b.family(&family) {
                    if f.kind == Kind::Counter && s.suffix == Suffix::Total {
                        f.total = true;
                    }
                    f.samples.push(s);
                }
            }
            Err(e) => b.fail(&family, format!("line {}: {e}", n + 1)),
        }
    }
    let find = |list: &[(String, String)], f: &Family| {
        list.iter()
            .rev()
            .find(|(n, _)| *n == f.name || *n == f.text_name())
            .map(|(_, v)| v.clone())
    };
    let families = b
        .families
        .into_iter()
        .map(|f| {
            f.map(|mut f| {
                f.help = find(&b.helps, &f).unwrap_or_default();
                f.unit = find(&b.units, &f).unwrap_or_default();
                f
            })
            .and_then(check)
        })
        .collect();
    Ok(families)
}

/// A `#` line: `HELP`, `TYPE` or `UNIT` (OpenMetrics' `EOF` and other comments are ignored).
fn metadata(b: &mut Builder, rest: &str, om: bool) -> Result<(), String> {
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let (word, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if !matches!(word, "HELP" | "TYPE" | "UNIT") {
        return Ok(()); // # EOF, or a comment
    }
    let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
    if !is_valid_metric_name(name) {
        return Err(format!("{word} of an invalid name {name:?}"));
    }
    match word {
        "TYPE" => {
            let Some(kind) = Kind::from_word(value.trim()) else {
                b.fail(name, format!("unsupported type {:?}", value.trim()));
                return Ok(());
            };
            // The text format names a counter's family with its `_total`.
            let family = match (kind, name.strip_suffix(crate::labels::COUNTER_SUFFIX)) {
                (Kind::Counter, Some(base)) if !om => base,
                _ => name,
            };
            if let Ok(f) = b.family(family) {
                if !f.samples.is_empty() || f.kind != Kind::Unknown {
                    b.fail(family, "a second TYPE, or a TYPE after samples".into());
                } else {
                    f.kind = kind;
                }
            }
        }
        "HELP" => b.helps.push((name.to_owned(), unescape_help(value, om))),
        _ => b.units.push((name.to_owned(), value.trim().to_owned())),
    }
    Ok(())
}

/// The family and suffix of a sample named `name`: the family declared with a type whose
/// suffixes include the one `name` ends in, else a family named `name` itself.
fn resolve(b: &mut Builder, name: &str) -> (String, Suffix) {
    for &suffix in &[
        Suffix::Total,
        Suffix::Created,
        Suffix::Bucket,
        Suffix::Sum,
        Suffix::Count,
        Suffix::Info,
    ] {
        if let Some(base) = name.strip_suffix(suffix.as_str()) {
            if let Some(Ok(f)) = b.find(base) {
                if suffixes(f.kind).contains(&suffix) {
                    return (base.to_owned(), suffix);
                }
            }
        }
    }
    // A text-format counter declared as `x_total` is the family `x`, whose value samples are
    // named `x_total` (handled above); one declared without it has samples named as itself.
    (name.to_owned(), Suffix::None)
}

/// `name` and the rest of a sample line.
fn split_name(line: &str) -> Option<(&str, &str)> {
    let end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = &line[..end];
    is_valid_metric_name(name).then_some((name, &line[end..]))
}

/// Parses the labels, value (and ignores the timestamp and exemplar) of a sample.
fn sample(suffix: Suffix, rest: &str, om: bool) -> Result<Sample, String> {
    let (mut labels, rest) = if let Some(r) = rest.strip_prefix('{') {
        parse_labels(r)?
    } else {
        (Vec::new(), rest)
    };
    let rest = rest.strip_prefix(' ').ok_or("no space before the value")?;
    // OpenMetrics: `value [timestamp] [# exemplar]`; text: `value [timestamp]`.
    let rest = if om {
        rest.split_once(" # ").map_or(rest, |(v, _)| v)
    } else {
        rest
    };
    let mut words = rest.split(' ');
    let value = parse_number(words.next().unwrap_or(""))
        .ok_or_else(|| format!("value {rest:?} is not a number"))?;
    if let Some(ts) = words.next() {
        if ts.parse::<f64>().is_err() {
            return Err(format!("timestamp {ts:?} is not a number"));
        }
    }
    if words.next().is_some() {
        return Err("more than a value and a timestamp".into());
    }
    let mut le = None;
    if suffix == Suffix::Bucket {
        let i = labels
            .iter()
            .position(|(k, _)| k == "le")
            .ok_or("a bucket without le")?;
        let (_, bound) = labels.remove(i);
        le = Some(parse_float(&bound).ok_or_else(|| format!("le {bound:?} is not a number"))?);
    }
    labels.sort();
    if labels.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err("a label name twice".into());
    }
    Ok(Sample {
        suffix,
        labels,
        le,
        value,
    })
}

/// `name="value",...}` and what follows.
fn parse_labels(mut s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    loop {
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let eq = s.find('=').ok_or("a label without =")?;
        let name = &s[..eq];
        if !(is_valid_label_name(name) || name == "le" || name == "quantile") {
            return Err(format!("invalid label name {name:?}"));
        }
        let body = s[eq + 1..]
            .strip_prefix('"')
            .ok_or("an unquoted label value")?;
        let mut value = String::new();
        let mut chars = body.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("an unterminated label value".into()),
                Some((i, '"')) => break i + 1,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => {
                        return Err(format!("an unknown escape {:?}", other.map(|c| c.1)));
                    }
                },
                Some((_, '\n')) => return Err("a line break in a label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((name.to_owned(), value));
        s = &body[end..];
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return Err("labels not separated by commas".into());
        }
    }
}

fn parse_number(v: &str) -> Option<Number> {
    if let Ok(i) = v.parse::<i128>() {
        return Some(Number::Int(i));
    }
    parse_float(v).map(Number::Float)
}

/// A float as the two formats write them (`+Inf`, `-Inf`, `NaN`, `1e-3`, `0.5`).
fn parse_float(v: &str) -> Option<f64> {
    match v {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ if v
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
            && !v.is_empty() =>
        {
            v.parse().ok()
        }
        _ => None,
    }
}

/// HELP text unescaped: `\\` and `\n`, and `\"` in OpenMetrics.
fn unescape_help(v: &str, om: bool) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if om => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Whether `s` has a label named `name`.
fn has(s: &Sample, name: &str) -> bool {
    s.labels.iter().any(|(k, _)| k == name)
}

/// Whether a family's samples make sense for its kind: histograms' buckets have `+Inf`, summary
/// quantiles a `quantile` label, a state set's samples its own name as a label.
fn check(f: Family) -> Result<Family, Invalid> {
    let bad = |reason: &str| Invalid {
        name: f.name.clone(),
        reason: reason.to_owned(),
    };
    match f.kind {
        Kind::Histogram => {
            let series: Vec<&Vec<(String, String)>> = f
                .samples
                .iter()
                .filter(|s| s.suffix == Suffix::Bucket)
                .map(|s| &s.labels)
                .collect();
            for labels in &series {
                let has_inf = f.samples.iter().any(|s| {
                    s.suffix == Suffix::Bucket
                        && s.labels == **labels
                        && s.le == Some(f64::INFINITY)
                });
                if !has_inf {
                    return Err(bad("a histogram series without its +Inf bucket"));
                }
            }
        }
        Kind::Summary
            if f.samples
                .iter()
                .any(|s| s.suffix == Suffix::None && !has(s, "quantile")) =>
        {
            return Err(bad("a summary sample without quantile"));
        }
        Kind::StateSet if f.samples.iter().any(|s| !has(s, &f.name)) => {
            return Err(bad("a state set sample without its state label"));
        }
        _ => {}
    }
    if f.kind != Kind::Summary
        && f.samples
            .iter()
            .any(|s| s.labels.iter().any(|(k, _)| k == "quantile"))
    {
        return Err(bad("a quantile label outside a summary"));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str, format: Format) -> Vec<Family> {
        parse(text, format)
            .unwrap()
            .into_iter()
            .map(|f| f.unwrap_or_else(|e| panic!("{e:?}")))
            .collect()
    }

    #[test]
    fn openmetrics_from_prometheus_client() {
        let text = "# HELP libp2p_swarm_connections Connections.\n\
                    # TYPE libp2p_swarm_connections counter\n\
                    libp2p_swarm_connections_total{protocols=\"/ip4/tcp\"} 3\n\
                    libp2p_swarm_connections_created{protocols=\"/ip4/tcp\"} 1700000000.5\n\
                    # HELP gossip_peers Mesh peers.\n# TYPE gossip_peers gauge\n\
                    gossip_peers{topic=\"a\\\"b\"} 2\n\
                    # HELP ping_rtt_seconds Ping.\n# TYPE ping_rtt_seconds histogram\n# UNIT ping_rtt_seconds seconds\n\
                    ping_rtt_seconds_sum 0.5\nping_rtt_seconds_count 2\n\
                    ping_rtt_seconds_bucket{le=\"0.1\"} 1\nping_rtt_seconds_bucket{le=\"+Inf\"} 2 # {trace_id=\"1\"} 0.2\n\
                    # HELP libp2p_build Build.\n# TYPE libp2p_build info\nlibp2p_build_info{version=\"0.54\"} 1\n\
                    # EOF\n";
        let f = ok(text, Format::OpenMetrics);
        assert_eq!(f.len(), 4);
        assert_eq!(
            (f[0].kind, f[0].total, f[0].name.as_str()),
            (Kind::Counter, true, "libp2p_swarm_connections")
        );
        assert_eq!(f[0].samples[0].value, Number::Int(3));
        assert_eq!(f[0].samples[1].suffix, Suffix::Created);
        assert_eq!(
            f[1].samples[0].labels,
            vec![("topic".into(), "a\"b".into())]
        );
        assert_eq!(f[2].unit, "seconds");
        assert_eq!(f[2].samples[3].le, Some(f64::INFINITY));
        assert_eq!(f[3].text_name(), "libp2p_build_info");
    }

    #[test]
    fn text_from_the_prometheus_crate() {
        let text = "# HELP app_requests_total Requests \\\\ \"all\"\\n.\n\
                    # TYPE app_requests_total counter\n\
                    app_requests_total{code=\"200\",} 5\n\
                    # TYPE app_legacy counter\napp_legacy 2\n\
                    untyped_thing 1.5 1700000000000\n\
                    # HELP app_latency_seconds L.\n# TYPE app_latency_seconds summary\n\
                    app_latency_seconds{quantile=\"0.5\"} 0.1\napp_latency_seconds_sum 1\napp_latency_seconds_count 3\n";
        let f = ok(text, Format::Text);
        assert_eq!(f[0].name, "app_requests");
        assert_eq!(f[0].help, "Requests \\ \"all\"\n.");
        assert_eq!(f[0].text_name(), "app_requests_total");
        assert_eq!(f[1].text_name(), "app_legacy");
        assert!(!f[1].total);
        assert_eq!(f[2].kind, Kind::Unknown);
        assert_eq!(f[2].samples[0].value, Number::Float(1.5));
        assert_eq!(f[3].kind, Kind::Summary);
        assert_eq!(f[3].samples.len(), 3);
    }

    #[test]
    fn a_broken_family_is_left_out_alone() {
        let text =
            "# TYPE good gauge\ngood 1\n# TYPE bad gauge\nbad{a=\"x\"y\"} 1\nbad{a=\"z\"} NaNx\n\
                    # TYPE hist histogram\nhist_bucket{le=\"1\"} 1\nhist_count 1\nhist_sum 1\n\
                    # TYPE weird gaugehistogram\nweird_bucket{le=\"+Inf\"} 1\n";
        let f = parse(text, Format::Text).unwrap();
        assert!(f[0].is_ok());
        assert!(f[1].is_err());
        assert!(
            matches!(&f[2], Err(e) if e.reason.contains("+Inf")),
            "{:?}",
            f[2]
        );
        assert!(f.iter().any(|r| matches!(r, Err(e) if e.name == "weird")));
        assert!(parse("{a=\"b\"} 1\n", Format::Text).is_err());
        assert!(parse("# TYPE x gauge\n\nx 1\n", Format::OpenMetrics).is_err());
    }

    #[test]
    fn values_and_labels() {
        assert_eq!(
            parse_number("18446744073709551616"),
            Some(Number::Int(1 << 64))
        );
        assert_eq!(parse_number("-Inf"), Some(Number::Float(f64::NEG_INFINITY)));
        assert_eq!(parse_number("infinity"), None);
        assert!(parse_labels("a=\"1\"b=\"2\"} 1").is_err());
        assert!(parse_labels("a=\"\\t\"} 1").is_err());
        assert!(parse_labels("1a=\"x\"} 1").is_err());
        assert_eq!(
            parse_labels("b=\"2\",a=\"\\\\n\"} 1").unwrap(),
            (
                vec![("b".into(), "2".into()), ("a".into(), "\\n".into())],
                " 1"
            )
        );
    }
}
