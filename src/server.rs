//! The HTTP endpoint: `/metrics`, `/health`, `/ready`, and a server with a graceful drain.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::exposition::negotiate;
use crate::health::{Report, HEALTH_CONTENT_TYPE};
use crate::limits::{
    CLOSE_GRACE, CONNECTION_LIFETIME, HEADER_TIMEOUT, MAX_BODY, MAX_CONNECTIONS, MAX_HEAD,
    REQUEST_TIMEOUT,
};
use crate::{Error, Telemetry};

impl Telemetry {
    /// The telemetry routes as an `axum::Router` to serve alone or merge into dchat's app:
    /// `GET|HEAD /metrics`, `GET /health`, `GET /ready`. Other paths answer 404, other methods
    /// 405; bodies over 4 KiB 413; requests over 10 s 408. `/metrics` is OpenMetrics 1.0 when
    /// the `Accept` header prefers it (Prometheus does), else the text format 0.0.4; gzip-encoded
    /// when the client accepts it, and rendered on a blocking thread.
    ///
    /// ```
    /// # async fn demo() -> Result<(), dchat_telemetry::Error> {
    /// let telemetry = dchat_telemetry::Telemetry::builder().without_env().build()?;
    /// let app = axum::Router::new()
    ///     .route("/", axum::routing::get(|| async { "dchat" }))
    ///     .merge(telemetry.router());
    /// # let _ = app; Ok(()) }
    /// ```
    pub fn router(&self) -> Router {
        Router::new()
            .route("/metrics", get(metrics))
            .route("/health", get(health))
            .route("/ready", get(ready))
            .with_state(self.clone())
            .layer(
                CompressionLayer::new()
                    .gzip(true)
                    .no_br()
                    .no_deflate()
                    .no_zstd(),
            )
            .layer(RequestBodyLimitLayer::new(MAX_BODY))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                REQUEST_TIMEOUT,
            ))
    }

    /// Serves the routes on the configured address (`DCHAT_TELEMETRY_ADDR`, default
    /// `0.0.0.0:9090`) until SIGTERM or Ctrl-C, then drains (see
    /// [`serve_with_shutdown`](Telemetry::serve_with_shutdown)).
    ///
    /// # Errors
    /// [`Error::Bind`] when the address cannot be bound.
    pub async fn serve(self) -> Result<(), Error> {
        self.serve_with_shutdown(shutdown_signal()).await
    }

    /// Serves the routes on the configured address until `signal` completes, then drains.
    ///
    /// # Errors
    /// [`Error::Bind`] when the address cannot be bound.
    pub async fn serve_with_shutdown(
        self,
        signal: impl Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        let addr = self.addr();
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        self.serve_on(listener, signal).await
    }

    /// Serves the routes on `listener` until `signal` completes. Then: `/ready` answers 503 at
    /// once, `/metrics` keeps answering for the drain period (so the last scrape sees the final
    /// counts), the listener closes, open connections get a few seconds to finish, and this
    /// returns.
    ///
    /// # Errors
    /// None today besides those of binding; the `Result` leaves room for fatal listener errors.
    pub async fn serve_on(
        self,
        listener: TcpListener,
        signal: impl Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        let router = self.router();
        let graceful = GracefulShutdown::new();
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut signal = std::pin::pin!(signal);
        loop {
            tokio::select! {
                () = &mut signal => break,
                accepted = listener.accept() => accept(accepted, &router, &graceful, &permits).await,
            }
        }
        self.health().begin_shutdown();
        let drain = tokio::time::sleep(self.inner.config.drain);
        let mut drain = std::pin::pin!(drain);
        loop {
            tokio::select! {
                () = &mut drain => break,
                accepted = listener.accept() => accept(accepted, &router, &graceful, &permits).await,
            }
        }
        drop(listener);
        let _ = tokio::time::timeout(CLOSE_GRACE, graceful.shutdown()).await;
        Ok(())
    }
}

async fn accept(
    accepted: std::io::Result<(tokio::net::TcpStream, SocketAddr)>,
    router: &Router,
    graceful: &GracefulShutdown,
    permits: &Arc<Semaphore>,
) {
    let Ok((stream, _)) = accepted else {
        // Out of file descriptors or a connection reset before accept: back off briefly.
        tokio::time::sleep(Duration::from_millis(20)).await;
        return;
    };
    let Ok(permit) = Arc::clone(permits).try_acquire_owned() else {
        return; // too many connections: close this one
    };
    let _ = stream.set_nodelay(true);
    let service = TowerToHyperService::new(router.clone());
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(stream), service);
    let conn = graceful.watch(conn);
    tokio::spawn(async move {
        let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
        drop(permit);
    });
}

async fn metrics(State(t): State<Telemetry>, headers: HeaderMap) -> Response {
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let format = negotiate((!accept.is_empty()).then_some(accept.as_str()));
    // At most a couple of renders at once: concurrent scrapes queue instead of multiplying the
    // CPU and memory a render takes.
    let Ok(_permit) = t.inner.render_permits.acquire().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    };
    let renderer = t.clone();
    match tokio::task::spawn_blocking(move || renderer.render_format(format)).await {
        Ok(Ok(body)) => (
            [
                (header::CONTENT_TYPE, format.content_type()),
                (header::VARY, "Accept, Accept-Encoding"),
            ],
            body,
        )
            .into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("render task failed: {e}"),
        )
            .into_response(),
    }
}

fn report(r: &Report) -> Response {
    let code = if r.is_pass() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    match serde_json::to_vec(r) {
        Ok(body) => (code, [(header::CONTENT_TYPE, HEALTH_CONTENT_TYPE)], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn health(State(t): State<Telemetry>) -> Response {
    report(&t.health().liveness().await)
}

async fn ready(State(t): State<Telemetry>) -> Response {
    report(&t.health().readiness())
}

/// Completes on Ctrl-C or (on Unix) SIGTERM. If a handler cannot be installed, that signal is
/// simply not awaited.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
