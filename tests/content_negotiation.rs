//! `/metrics` negotiates its format from the `Accept` header: OpenMetrics 1.0 for Prometheus 3's
//! literal header (and Prometheus 2's), the text format 0.0.4 for a bare request, an explicit
//! `text/plain;version=0.0.4` and malformed headers; gzip for both; the scrape is counted by
//! format.
mod common;

use std::io::Read as _;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

const PROMETHEUS_3: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
const PROMETHEUS_2: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

async fn scrape(
    t: &dchat_telemetry::Telemetry,
    accept: Option<&str>,
    gzip: bool,
) -> (String, String) {
    let mut req = Request::builder().uri("/metrics");
    if let Some(a) = accept {
        req = req.header(header::ACCEPT, a);
    }
    if gzip {
        req = req.header(header::ACCEPT_ENCODING, "gzip");
    }
    let resp = t
        .router()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let content_type = resp.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    let gzipped = resp
        .headers()
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v == "gzip");
    assert_eq!(gzipped, gzip, "gzip when asked for, for either format");
    let bytes = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    let body = if gzip {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut s)
            .unwrap();
        s
    } else {
        String::from_utf8(bytes).unwrap()
    };
    (content_type, body)
}

#[tokio::test]
async fn the_format_follows_the_accept_header() {
    let t = common::telemetry();
    common::with_layer(&t, || {
        tracing::info!(name: "message.sent", channel = "general", "sent");
    });
    for (accept, gzip) in [
        (Some(PROMETHEUS_3), false),
        (Some(PROMETHEUS_3), true),
        (Some(PROMETHEUS_2), false),
    ] {
        let (ct, body) = scrape(&t, accept, gzip).await;
        assert_eq!(ct, OPENMETRICS, "{accept:?}");
        assert!(body.ends_with("# EOF\n"), "{body}");
        assert!(
            body.contains("# TYPE dchat_messages_sent counter\n"),
            "{body}"
        );
        assert!(body.contains("dchat_messages_sent_total{"), "{body}");
        common::python_parse_openmetrics(&body).unwrap();
    }
    for (accept, gzip) in [
        (None, false),
        (None, true),
        (Some("text/plain;version=0.0.4"), false),
        (Some("text/plain;version=0.0.4"), true),
        (Some("*/*"), false),
        (Some("application/openmetrics-text;q=abc"), false),
        (Some(";;;,,garbage/"), false),
        (Some("application/json"), false),
    ] {
        let (ct, body) = scrape(&t, accept, gzip).await;
        assert_eq!(ct, TEXT, "{accept:?}");
        assert!(!body.contains("# EOF"), "{accept:?}");
        assert!(
            body.contains("# TYPE dchat_messages_sent_total counter\n"),
            "{accept:?}"
        );
        assert_eq!(common::promtool_findings(&body), None, "{accept:?}");
    }
    let text = t.render().unwrap();
    assert_eq!(
        common::sample(
            &text,
            "dchat_telemetry_scrapes_total",
            &[("format", "openmetrics")]
        ),
        Some(3.0)
    );
    assert_eq!(
        common::sample(
            &text,
            "dchat_telemetry_scrapes_total",
            &[("format", "text")]
        ),
        Some(8.0)
    );
}
