//! The public router, exercised without a server (`Router::oneshot`): routes, methods,
//! content types, gzip, health JSON.
mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

async fn call(
    router: axum::Router,
    method: Method,
    path: &str,
    accept_gzip: bool,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(path);
    if accept_gzip {
        req = req.header(header::ACCEPT_ENCODING, "gzip");
    }
    let resp = router
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

#[tokio::test]
async fn metrics_get_head_and_gzip() {
    let t = common::telemetry();
    common::with_layer(
        &t,
        || tracing::info!(name: "message.sent", channel = "general", "sent"),
    );
    let (status, headers, body) = call(t.router(), Method::GET, "/metrics", false).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("dchat_messages_sent_total{channel=\"general\""));

    let (status, headers, body) = call(t.router(), Method::HEAD, "/metrics", false).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(body.is_empty());

    let (status, headers, body) = call(t.router(), Method::GET, "/metrics", true).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
    let mut plain = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut plain)
        .unwrap();
    assert!(plain.contains("dchat_messages_sent_total{channel=\"general\""));
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods() {
    let t = common::telemetry();
    assert_eq!(
        call(t.router(), Method::GET, "/nope", false).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(t.router(), Method::POST, "/metrics", false).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        call(t.router(), Method::DELETE, "/ready", false).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn health_and_ready_answer_health_json() {
    let t = common::telemetry();
    // The layer is part of a dispatcher, as in dchat (else /health warns that it is not).
    let _dispatch = common::dispatch(&t);
    let db = t.health().readiness_gate("database");
    let relay = t.health().readiness_gate("relay");
    let (status, headers, body) = call(t.router(), Method::GET, "/ready", false).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::CONTENT_TYPE], "application/health+json");
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["status"], "fail");
    assert_eq!(json["checks"]["database:ready"][0]["status"], "fail");
    assert_eq!(json["checks"]["relay:ready"][0]["status"], "fail");
    db.set_ready(true);
    let json: serde_json::Value =
        serde_json::from_slice(&call(t.router(), Method::GET, "/ready", false).await.2).unwrap();
    assert_eq!(json["checks"]["database:ready"][0]["status"], "pass");
    assert_eq!(json["checks"]["relay:ready"][0]["status"], "fail");
    relay.set_ready(true);
    let (status, _, body) = call(t.router(), Method::GET, "/ready", false).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));

    let (status, headers, body) = call(t.router(), Method::GET, "/health", false).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/health+json");
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["status"], "pass");
    assert_eq!(json["checks"]["exporter:liveness"][0]["status"], "pass");

    t.health()
        .add_liveness_check("relay-pool", || Err("no relay reachable".into()));
    let (status, _, body) = call(t.router(), Method::GET, "/health", false).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        json["checks"]["relay-pool:liveness"][0]["output"],
        "no relay reachable"
    );
}

#[tokio::test]
async fn scrapes_are_counted_and_timed() {
    let t = common::telemetry();
    for _ in 0..3 {
        call(t.router(), Method::GET, "/metrics", false).await;
    }
    let text = String::from_utf8(call(t.router(), Method::GET, "/metrics", false).await.2).unwrap();
    // The fourth scrape counts itself after rendering: three are in its body.
    assert_eq!(
        common::sample(
            &text,
            "dchat_telemetry_scrapes_total",
            &[("format", "text")]
        ),
        Some(3.0)
    );
    assert_eq!(
        common::sample(&text, "dchat_telemetry_scrape_duration_seconds_count", &[]),
        Some(3.0)
    );
}
