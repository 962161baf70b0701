//! Names and label values: validation, sanitising and length caps.
//!
//! Label values come from whatever dchat logs, so they are user-controlled strings. They are cut
//! to [`MAX_LABEL_VALUE_LEN`] bytes (on a character boundary) and control characters other than
//! `\n` and `\t` become U+FFFD. Quoting and escaping are the exposition writer's job.
//!
//! [`MAX_LABEL_VALUE_LEN`]: crate::limits::MAX_LABEL_VALUE_LEN

use std::fmt;

/// The label an overflow series carries (the OpenTelemetry SDK's own convention, as Prometheus
/// shows it); no rule or constant label may use the name.
pub(crate) const OVERFLOW_LABEL: &str = "otel_metric_overflow";

/// The suffix of every counter's scraped name.
pub(crate) const COUNTER_SUFFIX: &str = "_total";

/// A counter's family name: its scraped name without [`COUNTER_SUFFIX`] (the name OpenMetrics'
/// `# TYPE` line and OpenTelemetry's instrument use). Other names come back unchanged.
pub(crate) fn counter_family(name: &str) -> &str {
    name.strip_suffix(COUNTER_SUFFIX).unwrap_or(name)
}

/// The suffix of an info metric's name (`dchat_build_info`); OpenMetrics names its family without.
pub(crate) const INFO_SUFFIX: &str = "_info";

/// The OpenMetrics family of info metric `name`: without its `_info`.
pub(crate) fn info_family(name: &str) -> &str {
    name.strip_suffix(INFO_SUFFIX).unwrap_or(name)
}

/// Whether `name` is a valid Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`) that is not
/// reserved (names starting with `__` are for Prometheus' internal use).
#[must_use]
pub(crate) fn is_valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') && !name.starts_with("__")
}

/// Whether `name` is a valid Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`) that is not
/// reserved (`__` prefix, `le`, `quantile`).
#[must_use]
pub(crate) fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
        && name != "le"
        && name != "quantile"
}

/// Turns any string into a valid, non-reserved Prometheus metric name: every character outside
/// `[a-zA-Z0-9_:]` becomes `_`, a leading digit gets a `_` prefix, an empty name becomes `_`, a
/// reserved `__` prefix gets an `x` in front. Non-ASCII letters are replaced too (the exporter's
/// own sanitiser would let them through).
#[must_use]
pub(crate) fn sanitize_metric_name(name: &str) -> String {
    let mut out = sanitize_name_chars(name);
    if out.starts_with("__") {
        out.insert(0, 'x');
    }
    out
}

/// [`sanitize_metric_name`]'s character mapping, before any reserved prefix is dealt with.
fn sanitize_name_chars(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    for (i, c) in name.chars().enumerate() {
        if i == 0 && c.is_ascii_digit() {
            out.push('_');
        }
        out.push(if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            c
        } else {
            '_'
        });
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// Turns any string into a valid, non-reserved label name (like [`sanitize_metric_name`], without
/// `:`; a reserved result gets a `label_` prefix).
#[must_use]
pub(crate) fn sanitize_label_name(name: &str) -> String {
    let mut out = sanitize_name_chars(name).replace(':', "_");
    if !is_valid_label_name(&out) {
        out.insert_str(0, "label_");
    }
    out
}

/// Where sanitised text goes: a `String`, or the layer's byte buffer (whose contents are only
/// ever whole UTF-8 strings, so every range the layer takes of it is UTF-8 too).
pub(crate) trait TextSink {
    fn len(&self) -> usize;
    fn push_str(&mut self, s: &str);
}

impl TextSink for String {
    fn len(&self) -> usize {
        String::len(self)
    }

    fn push_str(&mut self, s: &str) {
        String::push_str(self, s);
    }
}

impl TextSink for Vec<u8> {
    fn len(&self) -> usize {
        Vec::len(self)
    }

    /// Short strings (label values usually are) are copied with fixed-size, overlapping word
    /// copies instead of a `memcpy` call. Always inlined: left to the compiler, a second
    /// caller of [`printable_ascii`] ([`kept_as_is`], the visitor's settling check) moved it
    /// out of line, a call for every label value copied.
    #[inline(always)]
    fn push_str(&mut self, s: &str) {
        push_bytes(self, s.as_bytes());
    }
}

/// Appends `b` to `out`; up to 16 bytes without a library call.
#[inline(always)]
pub(crate) fn push_bytes(out: &mut Vec<u8>, b: &[u8]) {
    let n = b.len();
    let at = out.len();
    match n {
        // Each arm copies fixed-size chunks (inlined moves): the head, then the tail that may
        // overlap it, after cutting the head back so the two join exactly.
        8..=16 => {
            if let (Some(h), Some(t)) = (b.get(..8), b.get(n - 8..)) {
                out.extend_from_slice(<&[u8; 8]>::try_from(h).unwrap_or(&[0; 8]));
                out.truncate(at + n - 8);
                out.extend_from_slice(<&[u8; 8]>::try_from(t).unwrap_or(&[0; 8]));
            }
        }
        4..=7 => {
            if let (Some(h), Some(t)) = (b.get(..4), b.get(n - 4..)) {
                out.extend_from_slice(<&[u8; 4]>::try_from(h).unwrap_or(&[0; 4]));
                out.truncate(at + n - 4);
                out.extend_from_slice(<&[u8; 4]>::try_from(t).unwrap_or(&[0; 4]));
            }
        }
        0..=3 => {
            for &x in b {
                out.push(x);
            }
        }
        _ => out.extend_from_slice(b),
    }
}

/// Whether [`push_sanitized`] with this `cap` appends `value` exactly as it is: printable ASCII
/// (the fast path's test) that fits. A value it says no to may still come out unchanged (a tab,
/// non-ASCII text): the caller then takes the sanitising path, which gives the same bytes.
#[inline]
pub(crate) fn kept_as_is(value: &[u8], cap: usize) -> bool {
    value.len() <= cap && printable_ascii(value)
}

/// Appends `value` to `out`, sanitised: control characters other than `\n`/`\t` become U+FFFD and
/// the appended part stops before it would pass `cap` bytes (on a character boundary). Returns
/// `false` when something was cut.
#[inline]
pub(crate) fn push_sanitized<S: TextSink + ?Sized>(out: &mut S, value: &str, cap: usize) -> bool {
    // Fast path: printable ASCII (the common label value) is copied as is, up to the cap.
    let bytes = value.as_bytes();
    let fits = bytes.len() <= cap;
    let head = if fits { bytes } else { &bytes[..cap] };
    if printable_ascii(head) {
        // `head` is ASCII, so it ends on a char boundary of `value`.
        out.push_str(&value[..head.len()]);
        return fits;
    }
    push_sanitized_slow(out, value, cap)
}

#[cold]
fn push_sanitized_slow<S: TextSink + ?Sized>(out: &mut S, value: &str, cap: usize) -> bool {
    let start = out.len();
    let mut utf8 = [0u8; 4];
    for c in value.chars() {
        let c = if c.is_control() && c != '\n' && c != '\t' {
            '\u{FFFD}'
        } else {
            c
        };
        if out.len() - start + c.len_utf8() > cap {
            return false;
        }
        out.push_str(c.encode_utf8(&mut utf8));
    }
    true
}

/// Whether every byte is printable ASCII (0x20..=0x7e), a word at a time: a byte below 0x20
/// sets its high bit when 0x20 is subtracted, 0x7f sets it when 1 is added, and bytes from 0x80
/// have it already (a borrow or carry between bytes only ever comes from such a byte).
#[inline]
fn printable_ascii(b: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    fn bad(w: u64) -> bool {
        (w.wrapping_sub(0x2020_2020_2020_2020) | w.wrapping_add(0x0101_0101_0101_0101) | w) & HIGH
            != 0
    }
    // Out of range cannot happen (callers stay within `b`); it would read as non-printable.
    let word = |s: &[u8], at| {
        let w = load8(s, at);
        debug_assert!(w.is_some(), "a word past the end of the value");
        w.unwrap_or(u64::MAX)
    };
    // Four bytes, padded with spaces (printable) to a word.
    let half = |s: &[u8], at| {
        let w = load4(s, at);
        debug_assert!(w.is_some(), "a half word past the end of the value");
        w.map_or(u64::MAX, |w| u64::from(w) | 0x2020_2020_0000_0000)
    };
    let n = b.len();
    match n {
        0..=3 => b.iter().all(|&x| (0x20..0x7f).contains(&x)),
        4..=8 => !bad(half(b, 0)) && !bad(half(b, n - 4)),
        _ => {
            let mut i = 0;
            while i + 8 < n {
                if bad(word(b, i)) {
                    return false;
                }
                i += 8;
            }
            !bad(word(b, n - 8))
        }
    }
}

/// The eight bytes of `s` from `at`, little-endian.
#[inline]
fn load8(s: &[u8], at: usize) -> Option<u64> {
    let w = s.get(at..at.checked_add(8)?)?;
    <[u8; 8]>::try_from(w).ok().map(u64::from_le_bytes)
}

/// The four bytes of `s` from `at`, little-endian.
#[inline]
fn load4(s: &[u8], at: usize) -> Option<u32> {
    let w = s.get(at..at.checked_add(4)?)?;
    <[u8; 4]>::try_from(w).ok().map(u32::from_le_bytes)
}

/// A label value as exported: trimmed, control characters replaced, non-empty and within the
/// length cap (nothing cut). Constant labels and known values must be of this form.
pub(crate) fn label_value(v: &str) -> Option<String> {
    let v = v.trim();
    let mut out = String::new();
    (!v.is_empty() && push_sanitized(&mut out, v, crate::limits::MAX_LABEL_VALUE_LEN))
        .then_some(out)
}

/// Byte-string equality without a `memcmp` call for the short strings label values usually are
/// (a library call costs more than the compare itself on the hot path).
#[inline]
pub(crate) fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    // Callers stay within both slices, which have the same length.
    let word = |s: &[u8], at| load8(s, at).unwrap_or(0);
    let half = |s: &[u8], at| load4(s, at).unwrap_or(0);
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0 => true,
        1..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        // Two overlapping 4-byte words cover 4..=8 bytes.
        4..=8 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        // 8-byte words, the last one overlapping.
        9..=32 => {
            let mut i = 0;
            while i + 8 < n {
                if word(a, i) != word(b, i) {
                    return false;
                }
                i += 8;
            }
            word(a, n - 8) == word(b, n - 8)
        }
        _ => a == b,
    }
}

/// A `fmt::Write` sink that appends sanitised text to a `String` and stops (with `fmt::Error`)
/// once the cap is reached, so a huge `Debug` value is never formatted in full.
pub(crate) struct CappedWriter<'a, S: TextSink + ?Sized> {
    out: &'a mut S,
    start: usize,
    cap: usize,
}

impl<'a, S: TextSink + ?Sized> CappedWriter<'a, S> {
    pub(crate) fn new(out: &'a mut S, cap: usize) -> Self {
        let start = out.len();
        CappedWriter { out, start, cap }
    }
}

impl<S: TextSink + ?Sized> fmt::Write for CappedWriter<'_, S> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let used = self.out.len() - self.start;
        if push_sanitized(self.out, s, self.cap.saturating_sub(used)) {
            Ok(())
        } else {
            Err(fmt::Error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::fmt::Write as _;

    #[test]
    fn names() {
        assert!(is_valid_metric_name("dchat_errors_total"));
        assert!(!is_valid_metric_name("1abc"));
        assert!(!is_valid_metric_name("a.b"));
        assert!(!is_valid_metric_name("__reserved"));
        assert_eq!(sanitize_metric_name("__reserved"), "x__reserved");
        assert_eq!(sanitize_metric_name("a.b-c"), "a_b_c");
        assert_eq!(sanitize_metric_name("9lives"), "_9lives");
        assert_eq!(sanitize_metric_name("größe"), "gr__e");
        assert_eq!(sanitize_metric_name(""), "_");
        assert_eq!(sanitize_label_name("le"), "label_le");
        assert_eq!(sanitize_label_name("__x"), "label___x");
        assert_eq!(sanitize_label_name("db.operation"), "db_operation");
    }

    #[test]
    fn values_are_capped_on_char_boundaries() {
        let mut s = String::new();
        assert!(!push_sanitized(&mut s, &"é".repeat(100), 5));
        assert_eq!(s, "éé");
        let mut s = String::new();
        assert!(push_sanitized(&mut s, "a\u{0}b\nc", 64));
        assert_eq!(s, "a\u{FFFD}b\nc");
    }

    proptest! {
        #[test]
        fn push_bytes_appends_exactly(prefix in proptest::collection::vec(any::<u8>(), 0..20),
                                      b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut out = prefix.clone();
            push_bytes(&mut out, &b);
            let mut want = prefix;
            want.extend_from_slice(&b);
            prop_assert_eq!(out, want);
        }

        #[test]
        fn sanitising_into_bytes_matches_sanitising_into_a_string(v in any::<String>(), cap in 0usize..200) {
            let mut s = String::new();
            let mut b = Vec::new();
            prop_assert_eq!(push_sanitized(&mut s, &v, cap), push_sanitized(&mut b, &v, cap));
            prop_assert_eq!(s.into_bytes(), b);
        }
    }

    #[test]
    fn capped_writer_stops_early() {
        let mut s = String::new();
        let r = write!(CappedWriter::new(&mut s, 4), "{}", "x".repeat(1 << 20));
        assert!(r.is_err());
        assert_eq!(s, "xxxx");
    }

    proptest! {
        #[test]
        fn sanitized_metric_names_are_valid(name in any::<String>()) {
            let s = sanitize_metric_name(&name);
            prop_assert!(is_valid_metric_name(&s), "{:?} -> {:?}", name, s);
            if is_valid_metric_name(&name) {
                prop_assert_eq!(s, name);
            }
        }

        #[test]
        fn sanitized_label_names_are_valid(name in any::<String>()) {
            let s = sanitize_label_name(&name);
            prop_assert!(is_valid_label_name(&s), "{:?} -> {:?}", name, s);
        }

        #[test]
        fn what_is_kept_as_is_is_what_sanitising_appends(v in any::<String>(),
                                                          ascii in "[ -~]{0,40}",
                                                          cap in 0usize..48) {
            for v in [v.as_str(), ascii.as_str()] {
                if kept_as_is(v.as_bytes(), cap) {
                    let mut out = Vec::new();
                    prop_assert!(push_sanitized(&mut out, v, cap), "nothing cut");
                    prop_assert_eq!(&out[..], v.as_bytes());
                }
            }
        }

        #[test]
        fn printable_ascii_matches_the_bytewise_test(b in proptest::collection::vec(any::<u8>(), 0..40),
                                                     fill in 0x20u8..0x7f) {
            prop_assert_eq!(printable_ascii(&b), b.iter().all(|&x| (0x20..0x7f).contains(&x)));
            // Mostly printable strings with one odd byte, anywhere.
            let mut p = vec![fill; b.len()];
            if let Some(&odd) = b.first() {
                let at = usize::from(odd) % p.len();
                p[at] = odd;
            }
            prop_assert_eq!(printable_ascii(&p), p.iter().all(|&x| (0x20..0x7f).contains(&x)));
        }

        #[test]
        fn bytes_eq_is_slice_equality(a in proptest::collection::vec(0u8..3, 0..40),
                                      b in proptest::collection::vec(0u8..3, 0..40)) {
            // A tiny alphabet makes equal lengths and near-equal contents common.
            prop_assert_eq!(bytes_eq(&a, &b), a == b);
            prop_assert!(bytes_eq(&a, &a));
        }

        #[test]
        fn sanitized_values_are_bounded_and_clean(value in any::<String>(), cap in 0usize..300) {
            let mut s = String::new();
            let whole = push_sanitized(&mut s, &value, cap);
            prop_assert!(s.len() <= cap);
            prop_assert!(s.chars().all(|c| !c.is_control() || c == '\n' || c == '\t'));
            prop_assert_eq!(whole, s.chars().count() == value.chars().count());
        }
    }
}
