//! Baton's own HTTP server (axum): `/healthz`, the operator's routes
//! (`crate::web`: `/readyz`, `/metrics`, the dashboard), and the Telegram
//! webhook route when webhook mode is on. It runs until its stop token is
//! cancelled, then finishes the requests in flight.

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// `/healthz`, plus `extra` routes (the operator's routes, the Telegram webhook).
pub fn router(extra: Option<Router>) -> Router {
    let router = Router::new().route("/healthz", get(|| async { "ok" }));
    match extra {
        Some(extra) => router.merge(extra),
        None => router,
    }
}

/// Binds `listen` (`host:port`).
pub async fn bind(listen: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(listen).await
}

/// Serves `router` on `listener` until `stop` is cancelled.
pub async fn serve(listener: TcpListener, router: Router, stop: CancellationToken) {
    let address = listener.local_addr().ok();
    tracing::info!(address = ?address, "HTTP server listening");
    if let Err(error) = axum::serve(listener, router)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        tracing::error!(error = %error, "HTTP server stopped");
    }
}
