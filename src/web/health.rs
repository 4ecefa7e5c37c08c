//! `/readyz`: the store answers a query within 1 s and its file is sound,
//! each enabled platform is connected, and every enabled MCP server is up;
//! otherwise 503 with a JSON body naming what is not. `/metrics`: the
//! Prometheus text, with the gauges read from state set just before.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Web;

/// How long the store may take to answer the readiness query.
const STORE_DEADLINE: Duration = Duration::from_secs(1);
/// How recent a Telegram `getUpdates` success must be (a long poll lasts
/// `poll_timeout_secs`; a few missed are tolerated).
const POLL_FRESHNESS: Duration = Duration::from_secs(120);

/// `/readyz`.
pub async fn readyz(State(web): State<Arc<Web>>) -> Response {
    let mut checks = serde_json::Map::new();
    let mut not_ready = Vec::new();
    let store = &web.services.store;
    let store_state = match tokio::time::timeout(STORE_DEADLINE, store.ping()).await {
        Err(_) => Some("the store did not answer within 1 s".to_owned()),
        Ok(Err(e)) => Some(format!("the store failed a query: {e}")),
        Ok(Ok(())) => {
            let health = store.health();
            (!health.is_ok()).then(|| health.to_string())
        }
    };
    record(&mut checks, &mut not_ready, "store", store_state);
    for (name, connection) in &web.platforms {
        let state =
            (!connection.is_ready(POLL_FRESHNESS)).then(|| format!("{name} is not connected"));
        record(&mut checks, &mut not_ready, name, state);
    }
    for server in web.services.mcp.down(&web.services.config.mcp) {
        let state = Some(format!("MCP server {server} is not running"));
        record(&mut checks, &mut not_ready, &format!("mcp:{server}"), state);
    }
    let ready = not_ready.is_empty();
    let body = json!({ "ready": ready, "not_ready": not_ready, "checks": checks });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

fn record(
    checks: &mut serde_json::Map<String, Value>,
    not_ready: &mut Vec<String>,
    name: &str,
    problem: Option<String>,
) {
    match problem {
        None => {
            checks.insert(name.to_owned(), json!("ok"));
        }
        Some(problem) => {
            checks.insert(name.to_owned(), json!(problem));
            not_ready.push(name.to_owned());
        }
    }
}

/// `/metrics`.
pub async fn metrics(State(web): State<Arc<Web>>) -> Response {
    let Some(handle) = &web.metrics else {
        return (
            StatusCode::NOT_FOUND,
            "metrics are not recorded in this process",
        )
            .into_response();
    };
    metrics::gauge!(crate::metrics::CONVERSATIONS_LIVE)
        .set(web.registry.live_conversations() as f64);
    metrics::gauge!(crate::metrics::QUEUE_WAITING).set(web.registry.queued_messages() as f64);
    metrics::gauge!(crate::metrics::EVENTS_LOST).set(web.services.store.events_lost() as f64);
    for load in &web.services.limiter.load().providers {
        crate::metrics::provider_load(&load.provider, load.limit, load.in_flight, load.waiting);
    }
    match web.services.store.project_counts().await {
        Ok(counts) => {
            for (status, count) in counts {
                metrics::gauge!(crate::metrics::PROJECTS, "status" => status).set(count as f64);
            }
        }
        Err(e) => tracing::debug!(error = %e, "cannot count projects for /metrics"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}
