//! Content negotiation: OpenMetrics when the `Accept` header prefers it, else the text format.

use mediatype::{names, MediaTypeList, ReadParams};

use super::Format;
use crate::limits::MAX_ACCEPT_LEN;

/// The format to serve for an `Accept` header value: the acceptable one (quality above 0) with
/// the highest quality, OpenMetrics winning a tie; the text format for a missing, oversized or
/// unparsable header, or one that accepts neither (a scraper always reads text).
///
/// ```text
/// application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.2  -> OpenMetrics
/// text/plain;version=0.0.4                                                          -> Text
/// ```
#[must_use]
pub(crate) fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept.filter(|a| a.len() <= MAX_ACCEPT_LEN) else {
        return Format::Text;
    };
    let mut best: Option<(u16, Format)> = None;
    for item in MediaTypeList::new(accept) {
        let Ok(mt) = item else { continue };
        let q = match mt.get_param(names::Q) {
            Some(v) => match quality(&v.unquoted_str()) {
                Some(q) => q,
                None => continue,
            },
            None => 1000,
        };
        if q == 0 {
            continue;
        }
        let (ty, subty) = (mt.ty.as_str(), mt.subty.as_str());
        let format = if ty.eq_ignore_ascii_case("application")
            && subty.eq_ignore_ascii_case("openmetrics-text")
        {
            let version = mediatype::Name::new("version").and_then(|n| mt.get_param(n));
            match version.as_ref().map(|v| v.unquoted_str()) {
                None => Format::OpenMetrics,
                Some(v) if v == "1.0.0" || v == "0.0.1" => Format::OpenMetrics,
                Some(_) => continue, // a version we do not write
            }
        } else if (ty.eq_ignore_ascii_case("text") && subty.eq_ignore_ascii_case("plain"))
            || (ty == "*" && subty == "*")
            || (ty.eq_ignore_ascii_case("text") && subty == "*")
        {
            Format::Text
        } else {
            continue;
        };
        let better = match best {
            None => true,
            Some((bq, bf)) => q > bq || (q == bq && format == Format::OpenMetrics && bf != format),
        };
        if better {
            best = Some((q, format));
        }
    }
    best.map_or(Format::Text, |(_, f)| f)
}

/// An HTTP quality value (`0` .. `1`, at most three decimals) in thousandths.
fn quality(v: &str) -> Option<u16> {
    let v = v.trim();
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_val: u16 = format!("{frac:0<3}").parse().ok()?;
    match int {
        "0" => Some(frac_val),
        "1" if frac_val == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PROMETHEUS_3: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";

    #[test]
    fn scrapers_get_what_they_prefer() {
        assert_eq!(negotiate(Some(PROMETHEUS_3)), Format::OpenMetrics);
        // Prometheus 2's header.
        assert_eq!(
            negotiate(Some("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")),
            Format::OpenMetrics
        );
        assert_eq!(negotiate(None), Format::Text);
        assert_eq!(negotiate(Some("text/plain;version=0.0.4")), Format::Text);
        assert_eq!(negotiate(Some("*/*")), Format::Text);
        assert_eq!(
            negotiate(Some("text/plain;q=0.9,application/openmetrics-text;q=0.5")),
            Format::Text
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text;q=0,text/plain;q=0.1")),
            Format::Text,
            "q=0 means not acceptable"
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text;version=2.0.0")),
            Format::Text,
            "a version we do not write"
        );
    }

    #[test]
    fn malformed_headers_get_text() {
        for h in [
            "",
            ",,,",
            "application/openmetrics-text;q=2",
            "application/openmetrics-text;q=abc",
            "garbage",
            "text/plain;;;q=",
            "\u{1F600}/x",
            &"a/b,".repeat(1000),
        ] {
            assert_eq!(negotiate(Some(h)), Format::Text, "{h:?}");
        }
        assert_eq!(
            negotiate(Some("garbage,,application/openmetrics-text")),
            Format::OpenMetrics,
            "a bad entry does not spoil the good ones"
        );
    }

    #[test]
    fn qualities() {
        assert_eq!(quality("1"), Some(1000));
        assert_eq!(quality("1.000"), Some(1000));
        assert_eq!(quality("0.5"), Some(500));
        assert_eq!(quality("0.05"), Some(50));
        assert_eq!(quality("0"), Some(0));
        assert_eq!(quality("1.5"), None);
        assert_eq!(quality("0.1234"), None);
        assert_eq!(quality("-0.1"), None);
    }

    proptest! {
        #[test]
        fn never_panics(h in any::<String>()) {
            let _ = negotiate(Some(&h));
        }
    }
}
