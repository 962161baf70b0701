//! `Content-Encoding` for `/metrics`: gzip when the client accepts it, done with the render on a
//! blocking thread (never on the application's async workers).

use std::io::Write as _;

use axum::http::{header, HeaderMap};
use flate2::write::GzEncoder;
use flate2::Compression;

use crate::limits::MAX_ACCEPT_ENCODING_LEN;

/// Whether the `Accept-Encoding` headers accept gzip: `gzip` (or `x-gzip`) with a non-zero
/// quality, or `*` with one when gzip is not named. Malformed or over-long: no.
pub(crate) fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut named = None;
    let mut any = None;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        if value.len() > MAX_ACCEPT_ENCODING_LEN {
            return false;
        }
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let mut q = 1.0f32;
            for p in parts {
                if let Some((k, v)) = p.split_once('=') {
                    if k.trim().eq_ignore_ascii_case("q") {
                        q = v.trim().parse().unwrap_or(0.0);
                    }
                }
            }
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                named = Some(named.unwrap_or(false) || q > 0.0);
            } else if coding == "*" {
                any = Some(q > 0.0);
            }
        }
    }
    named.or(any).unwrap_or(false)
}

/// `body` gzip-compressed (fast level: a scrape page compresses well even so).
pub(crate) fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4 + 64), Compression::fast());
    encoder.write_all(body)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accepts(values: &[&str]) -> bool {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        accepts_gzip(&h)
    }

    #[test]
    fn negotiation() {
        assert!(accepts(&["gzip"]));
        assert!(accepts(&["deflate, gzip;q=0.5"]));
        assert!(accepts(&["br", "GZIP"]));
        assert!(accepts(&["*"]));
        assert!(!accepts(&[]));
        assert!(!accepts(&["identity"]));
        assert!(!accepts(&["gzip;q=0"]));
        assert!(!accepts(&["gzip;q=0, *"]), "gzip refused by name");
        assert!(!accepts(&["*;q=0"]));
        assert!(!accepts(&[&"x".repeat(300)]));
    }

    #[test]
    fn round_trip() {
        let body = "dchat_messages_sent_total 1\n".repeat(100);
        let z = gzip(body.as_bytes()).unwrap();
        assert_eq!(&z[..2], &[0x1f, 0x8b]);
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&z[..]), &mut out).unwrap();
        assert_eq!(out, body);
    }
}
