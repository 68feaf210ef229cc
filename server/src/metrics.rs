//! Prometheus metrics over HTTP (`GET /metrics`), on a port of their own.

use std::net::SocketAddr;

use axum::routing::get;
use switchboard_shared::metrics::metrics;
use switchboard_shared::shutdown::Shutdown;
use tokio::net::TcpListener;

async fn scrape() -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics().encode(),
    )
}

/// Serves metrics at `listen` ("off" for none) until shutdown.
pub async fn serve(listen: &str, shutdown: Shutdown) -> anyhow::Result<()> {
    if listen == "off" {
        return Ok(());
    }
    let addr: SocketAddr = listen
        .parse()
        .map_err(|e| anyhow::anyhow!("--metrics-listen {listen:?}: {e}"))?;
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "metrics listening");
    let app = axum::Router::new().route("/metrics", get(scrape));
    shutdown.tracker.spawn(async move {
        let stopped = shutdown.token.clone();
        if let Err(err) = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stopped.cancelled().await })
            .await
        {
            tracing::error!(%err, "metrics server stopped");
        }
    });
    Ok(())
}
