//! An existing axum application that merges the telemetry routes into its own router.
//!
//! ```text
//! cargo run --example axum_app     # then: curl localhost:3000/ and localhost:3000/metrics
//! ```

use axum::routing::get;
use axum::Router;
use dchat_telemetry::Telemetry;
use tracing_subscriber::prelude::*;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = Telemetry::builder().with_service_name("dchat").build()?;
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer())
        .with(telemetry.layer())
        .init();

    let app = Router::new()
        .route("/", get(|| async { "dchat says hello" }))
        .route(
            "/send/{channel}",
            get(
                |axum::extract::Path(channel): axum::extract::Path<String>| async move {
                    tracing::info!(name: "message.sent", channel = %channel, "sent");
                    "sent"
                },
            ),
        )
        .merge(telemetry.router());
    telemetry.health().readiness_gate("app").set_ready(true);

    let addr = std::env::var("AXUM_APP_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("axum app on http://{addr}/ (telemetry at /metrics, /health, /ready)");
    axum::serve(listener, app)
        .with_graceful_shutdown(dchat_telemetry::shutdown_signal())
        .await?;
    Ok(())
}
