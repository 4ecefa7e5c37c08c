//! The operator's side of the HTTP server: readiness (`/readyz`),
//! Prometheus metrics (`/metrics`), and, when `[server]
//! dashboard_token_env` names a set variable, the dashboard (`/`, `/live`,
//! `/conversation`, `/turn/{id}`) and its JSON API (`/api/...`, with the
//! live event stream at `/api/events/stream`).
//!
//! - `health.rs`: `/readyz` and `/metrics`;
//! - `auth.rs`: the token check (bearer or cookie, constant time) and the
//!   one-time login form that sets the cookie;
//! - `api.rs`: the JSON API (paged by cursor) and the SSE stream;
//! - `pages.rs`: the server-rendered pages; `assets/`: their CSS and JS,
//!   compiled into the binary.
//!
//! Nothing here shows a secret: the store holds none, and the config is
//! never rendered.

mod api;
mod auth;
mod health;
mod pages;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use baton_channel::Connection;
use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::SecretString;

use crate::conversation::Registry;
use crate::services::Services;

/// What the operator's routes read.
pub struct Web {
    /// The shared services (the store, the MCP servers, the config).
    pub services: Arc<Services>,
    /// The live conversations (for the queue gauges).
    pub registry: Arc<Registry>,
    /// Each enabled platform's link, by name (`telegram`, `discord`).
    pub platforms: Vec<(&'static str, Arc<Connection>)>,
    /// The Prometheus recorder's handle (`None`: no `/metrics` data).
    pub metrics: Option<PrometheusHandle>,
    /// The dashboard's token; the dashboard and `/api` are off without one.
    pub token: Option<SecretString>,
    /// Cancelled when the server stops: live streams end then, so the
    /// server's graceful stop does not wait on open browsers.
    pub stop: tokio_util::sync::CancellationToken,
}

/// `/readyz` and `/metrics`, and the dashboard and `/api` when a token is set.
pub fn router(web: Arc<Web>) -> Router {
    let open = Router::new()
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics));
    let open = if web.token.is_some() {
        let guarded = Router::new()
            .route("/", get(pages::conversations))
            .route("/conversation", get(pages::conversation))
            .route("/turn/{id}", get(pages::turn))
            .route("/live", get(pages::live))
            .route("/api/conversations", get(api::conversations))
            .route("/api/turns", get(api::turns))
            .route("/api/turns/{id}", get(api::turn))
            .route("/api/projects", get(api::projects))
            .route("/api/events", get(api::events))
            .route("/api/events/stream", get(api::stream))
            .route_layer(axum::middleware::from_fn_with_state(
                web.clone(),
                auth::require,
            ));
        open.merge(guarded)
            .route("/login", post(auth::login))
            .route("/assets/{name}", get(pages::asset))
    } else {
        open
    };
    open.with_state(web)
}
