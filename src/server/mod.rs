//! The HTTP endpoint: `/metrics`, `/health`, `/ready`, and a server with a graceful drain.
//!
//! What a client can and cannot do to it: the web config ([`web_config`], [`web`]) decides who
//! may read (TLS, client certificates, bcrypt basic auth in [`auth`]); [`limit`] decides who gets
//! a connection; `/metrics` refuses scrapes beyond [`MAX_SCRAPES_IN_FLIGHT`] at once with a 503,
//! and renders and compresses ([`encoding`]) on a blocking thread. Every refusal is counted in
//! `dchat_telemetry_http_rejected_total{reason}`.

mod auth;
mod encoding;
mod limit;
mod tls;
mod web;
mod web_config;
mod yaml;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::config::TelemetryBuilder;
use crate::exposition::negotiate;
use crate::health::{Health, Report, HEALTH_CONTENT_TYPE};
use crate::limits::{
    CLOSE_GRACE, CONNECTION_LIFETIME, HEADER_TIMEOUT, MAX_BODY, MAX_HEAD, MAX_SCRAPES_IN_FLIGHT,
    REQUEST_TIMEOUT,
};
use crate::series::Metric;
use crate::value::Num;
use crate::{Error, Telemetry};

use auth::Verdict;
use web::WebState;

/// Why the endpoint refused a request or a connection: the `reason` label of
/// `dchat_telemetry_http_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// A scrape beyond the in-flight limit, or no credential-verification slot free: 503.
    InFlight,
    /// The server's connection cap (or the part of it kept for new clients).
    Connections,
    /// One client's connection cap.
    PerClient,
    /// Missing or wrong credentials: 401.
    Unauthorized,
    /// A TLS handshake that failed (plain HTTP on the TLS port, an old TLS version, no or a bad
    /// client certificate) or did not finish in time.
    Tls,
}

impl Rejected {
    /// Every reason, for pre-creating the series at 0.
    pub(crate) const ALL: [Rejected; 5] = [
        Rejected::InFlight,
        Rejected::Connections,
        Rejected::PerClient,
        Rejected::Unauthorized,
        Rejected::Tls,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Rejected::InFlight => "in_flight",
            Rejected::Connections => "connections",
            Rejected::PerClient => "per_client",
            Rejected::Unauthorized => "unauthorized",
            Rejected::Tls => "tls",
        }
    }
}

/// The endpoint's own state, one per telemetry.
#[derive(Debug)]
pub(crate) struct ServerState {
    web: Option<Arc<WebState>>,
    scrapes_in_flight: Semaphore,
    rejected: Arc<Metric>,
    probe_auth: bool,
    limits: limit::Limits,
}

impl ServerState {
    /// Loads the web config, if any (a problem reloading it later makes `/health` warn).
    ///
    /// # Errors
    /// [`Error::WebConfig`] when the web config or a file it names cannot be used.
    pub(crate) fn new(
        config: &TelemetryBuilder,
        rejected: Arc<Metric>,
        health: &Health,
    ) -> Result<Self, Error> {
        for reason in Rejected::ALL {
            rejected.record(&[reason.label()], Num::U64(0));
        }
        let web = match &config.web_config {
            None => None,
            Some(path) => Some(Arc::new(WebState::load(path)?)),
        };
        if let Some(web) = &web {
            let web = Arc::clone(web);
            health.add_warning("web-config", move || web.problem());
        }
        Ok(ServerState {
            web,
            scrapes_in_flight: Semaphore::new(MAX_SCRAPES_IN_FLIGHT),
            rejected,
            probe_auth: config.probe_auth,
            limits: limit::Limits::default(),
        })
    }

    fn reject(&self, reason: Rejected) {
        self.rejected.record(&[reason.label()], Num::U64(1));
    }

    /// Whether a client must prove who it is (basic auth or a required client certificate).
    fn authenticates(&self) -> bool {
        self.web.as_ref().is_some_and(|w| {
            let loaded = w.current();
            !loaded.users.is_empty() || loaded.requires_client_cert
        })
    }
}

impl Telemetry {
    /// The telemetry routes as an `axum::Router` to serve alone or merge into dchat's app:
    /// `GET|HEAD /metrics`, `GET /health`, `GET /ready`. Other paths answer 404, other methods
    /// 405; bodies over 4 KiB 413; requests over 10 s 408. `/metrics` is OpenMetrics 1.0 when
    /// the `Accept` header prefers it (Prometheus does), else the text format 0.0.4; gzip-encoded
    /// when the client accepts it, rendered and compressed on a blocking thread; a scrape
    /// beyond [`MAX_SCRAPES_IN_FLIGHT`] at once is answered 503 at once. With a web config
    /// that has `basic_auth_users`, every route needs the credentials (401 with
    /// `WWW-Authenticate` otherwise), except `/health` and `/ready` unless
    /// [`with_probe_auth`](TelemetryBuilder::with_probe_auth) is on.
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
            .layer(middleware::from_fn_with_state(self.clone(), guard))
            .with_state(self.clone())
            .layer(RequestBodyLimitLayer::new(MAX_BODY))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                REQUEST_TIMEOUT,
            ))
    }

    /// Serves the routes on the configured address (`DCHAT_TELEMETRY_ADDR`, default
    /// `0.0.0.0:9090`) until SIGTERM or Ctrl-C, then drains (see
    /// [`serve_on`](Telemetry::serve_on)).
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

    /// Serves the routes on `listener` (over TLS when the web config says so) until `signal`
    /// completes. Then: `/ready` answers 503 at once, `/metrics` keeps answering for the drain
    /// period (so the last scrape sees the final counts), the listener closes, open connections
    /// get [`CLOSE_GRACE`] to finish, the OpenTelemetry readers (an OTLP push) export the final
    /// counts (waiting at most [`FLUSH_WAIT`](crate::limits::FLUSH_WAIT)), and this returns. A
    /// SIGTERM or Ctrl-C arriving during the drain or the close grace (a second one, when the
    /// first began the shutdown) ends them at once, without that last export.
    ///
    /// At start it logs one WARN line (target `dchat_telemetry`) when the listener is not on a
    /// loopback address and no client has to authenticate.
    ///
    /// # Errors
    /// None today besides those of binding; the `Result` leaves room for fatal listener errors.
    pub async fn serve_on(
        self,
        listener: TcpListener,
        signal: impl Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        self.warn_if_open(&listener);
        let router = self.router();
        let graceful = GracefulShutdown::new();
        let mut signal = std::pin::pin!(signal);
        loop {
            tokio::select! {
                () = &mut signal => break,
                accepted = listener.accept() => self.accept(accepted, &router, &graceful).await,
            }
        }
        // Listening for the next signal starts before /ready turns 503, so a signal sent after
        // that is never missed.
        let mut again = std::pin::pin!(next_signal());
        self.health().begin_shutdown();
        let drain = tokio::time::sleep(self.inner.config.drain);
        let mut drain = std::pin::pin!(drain);
        loop {
            tokio::select! {
                () = &mut drain => break,
                () = &mut again => return Ok(()),
                accepted = listener.accept() => self.accept(accepted, &router, &graceful).await,
            }
        }
        drop(listener);
        tokio::select! {
            _ = tokio::time::timeout(CLOSE_GRACE, graceful.shutdown()) => {},
            () = &mut again => return Ok(()),
        }
        // The final counts to the OpenTelemetry readers too (an OTLP push), bounded.
        self.flush_readers().await;
        Ok(())
    }

    fn warn_if_open(&self, listener: &TcpListener) {
        let Ok(local) = listener.local_addr() else {
            return;
        };
        if local.ip().is_loopback() || self.inner.server.authenticates() {
            return;
        }
        tracing::warn!(
            target: "dchat_telemetry",
            addr = %local,
            "/metrics is served without authentication on a non-loopback address: whoever reaches \
             it reads channel names and peer ids; set a web config (DCHAT_TELEMETRY_WEB_CONFIG) \
             with basic_auth_users or client certificates, listen on 127.0.0.1, or let only \
             Prometheus reach the port (a NetworkPolicy)"
        );
    }

    /// Starts serving one accepted connection (a task of its own: the TLS handshake and the
    /// requests never hold up the accept loop).
    async fn accept(
        &self,
        accepted: std::io::Result<(tokio::net::TcpStream, SocketAddr)>,
        router: &Router,
        graceful: &GracefulShutdown,
    ) {
        let server = &self.inner.server;
        let Ok((stream, peer)) = accepted else {
            // Out of file descriptors, or a connection reset before accept: the next accept
            // gets a moment before it tries again.
            tokio::time::sleep(Duration::from_millis(20)).await;
            return;
        };
        let admitted = match server.limits.admit(peer.ip()) {
            Ok(a) => a,
            Err(refused) => {
                server.reject(match refused {
                    limit::Refused::Connections => Rejected::Connections,
                    limit::Refused::PerClient => Rejected::PerClient,
                });
                return; // dropping the stream closes it
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let http = {
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEAD);
            b
        };
        let tls = server.web.as_ref().and_then(|w| w.current().tls.clone());
        let watcher = graceful.watcher();
        let t = self.clone();
        tokio::spawn(async move {
            match tls {
                None => {
                    let conn = watcher.watch(http.serve_connection(TokioIo::new(stream), service));
                    let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
                }
                Some(config) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(config);
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await
                    else {
                        t.inner.server.reject(Rejected::Tls);
                        return;
                    };
                    let conn = watcher.watch(http.serve_connection(TokioIo::new(stream), service));
                    let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
                }
            }
            drop(admitted);
        });
    }
}

/// Basic auth and the web config's headers, in front of every route of the router.
async fn guard(State(t): State<Telemetry>, req: Request, next: Next) -> Response {
    let server = &t.inner.server;
    let Some(web) = &server.web else {
        return next.run(req).await;
    };
    let loaded = web.current();
    let probe = matches!(req.uri().path(), "/health" | "/ready");
    let mut resp = if loaded.users.is_empty() || (probe && !server.probe_auth) {
        next.run(req).await
    } else {
        match web
            .verifier
            .check(&loaded.users, req.headers().get(header::AUTHORIZATION))
            .await
        {
            Verdict::Allowed => next.run(req).await,
            Verdict::Denied => {
                server.reject(Rejected::Unauthorized);
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Basic realm=\"dchat-telemetry\"")],
                    "Unauthorized\n",
                )
                    .into_response()
            }
            Verdict::Busy => {
                server.reject(Rejected::InFlight);
                busy("credential checks are all busy; try again\n")
            }
        }
    };
    for (name, value) in &loaded.headers {
        resp.headers_mut().insert(name.clone(), value.clone());
    }
    resp
}

/// 503 with `Retry-After: 1`.
fn busy(text: &'static str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, HeaderValue::from_static("1"))],
        text,
    )
        .into_response()
}

async fn metrics(State(t): State<Telemetry>, headers: HeaderMap) -> Response {
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let format = negotiate((!accept.is_empty()).then_some(accept.as_str()));
    let gzip = encoding::accepts_gzip(&headers);
    // Beyond the in-flight limit a scrape is refused at once rather than queued: a queue of
    // renders only makes every scraper time out together.
    let Ok(_in_flight) = t.inner.server.scrapes_in_flight.try_acquire() else {
        t.inner.server.reject(Rejected::InFlight);
        return busy("too many scrapes of /metrics in flight; try again\n");
    };
    // At most a couple of renders at once: they take CPU and memory in proportion to the series.
    let Ok(_permit) = t.inner.render_permits.acquire().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    };
    let renderer = t.clone();
    let rendered = tokio::task::spawn_blocking(move || {
        let text = renderer.render_format(format)?.into_bytes();
        Ok::<_, Error>(if gzip {
            match encoding::gzip(&text) {
                Ok(z) => (z, true),
                Err(_) => (text, false),
            }
        } else {
            (text, false)
        })
    })
    .await;
    match rendered {
        Ok(Ok((body, gzipped))) => {
            let mut resp = (
                [
                    (header::CONTENT_TYPE, format.content_type()),
                    (header::VARY, "Accept, Accept-Encoding"),
                ],
                body,
            )
                .into_response();
            if gzipped {
                resp.headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            resp
        }
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        Err(_) => {
            // A panic inside the render: the client learns nothing of it, `/health` fails the
            // `exporter` check until a render succeeds.
            t.render_panicked();
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error while rendering /metrics\n",
            )
                .into_response()
        }
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

/// Completes on the next SIGTERM or SIGINT delivered after this call (on Unix the handlers are
/// installed here, not on the first poll); elsewhere on the next Ctrl-C.
fn next_signal() -> impl Future<Output = ()> + Send {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(term) => {},
                () = wait(int) => {},
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
