//! The dashboard's JSON API. Lists are paged by cursor: each answer has
//! `items` and `next` (the cursor for the next page, `null` at the end).
//! `/api/events/stream` is the live event log as server-sent events, each
//! with the entry's id, so a reconnecting browser resumes after it
//! (`Last-Event-ID`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Web;
use crate::store::{EventRow, Store, StoreError};

/// Rows a page holds unless `limit` says fewer.
const PAGE: usize = 50;
/// How long the stream lets appends gather before reading them (the log's
/// writer batches for about as long).
const GATHER: Duration = Duration::from_millis(20);

/// Cursor and filter parameters.
#[derive(Debug, Default, Deserialize)]
pub struct Params {
    /// The cursor: a page's `next` (conversations: `<newest message
    /// id>:<key>`) or an id (turns, projects: rows below it; events: rows
    /// above it).
    pub cursor: Option<String>,
    /// Rows in a page (at most 500).
    pub limit: Option<usize>,
    /// A conversation key, to filter by.
    pub conversation: Option<String>,
    /// Events: the id to start after.
    pub after: Option<i64>,
    /// Pages: the conversation shown.
    pub key: Option<String>,
}

/// A page of a list.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

fn page<T>(items: Vec<T>, max: usize, cursor: impl Fn(&T) -> String) -> Page<T> {
    let next = (items.len() >= max)
        .then(|| items.last().map(cursor))
        .flatten();
    Page { items, next }
}

fn failed(error: StoreError) -> Response {
    tracing::warn!(error = %error, "dashboard query failed");
    let body = Json(json!({ "error": "the store could not answer" }));
    (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
}

/// Midnight UTC today, in unix ms (the "today" of the list's counts).
pub fn today_start() -> i64 {
    let now = crate::store::now_ms();
    now - now.rem_euclid(86_400_000)
}

/// `GET /api/conversations?cursor=C&limit=N`: most recently active first;
/// `C` is the `next` of the page before (`<newest message id>:<key>`).
pub async fn conversations(State(web): State<Arc<Web>>, Query(p): Query<Params>) -> Response {
    let max = p.limit.unwrap_or(PAGE).clamp(1, 500);
    match web
        .services
        .store
        .browse_conversations(p.cursor, max, today_start())
        .await
    {
        Ok(rows) => Json(page(rows, max, |r| r.cursor.clone())).into_response(),
        Err(e) => failed(e),
    }
}

/// `GET /api/turns?conversation=KEY&cursor=ID&limit=N`: newest first.
pub async fn turns(State(web): State<Arc<Web>>, Query(p): Query<Params>) -> Response {
    let Some(key) = p.conversation else {
        let body = Json(json!({ "error": "conversation= is needed" }));
        return (StatusCode::BAD_REQUEST, body).into_response();
    };
    let max = p.limit.unwrap_or(PAGE).clamp(1, 500);
    let before = p.cursor.and_then(|c| c.parse().ok());
    match web.services.store.browse_turns(&key, before, max).await {
        Ok(rows) => Json(page(rows, max, |r| r.id.to_string())).into_response(),
        Err(e) => failed(e),
    }
}

/// `GET /api/turns/{id}`: the turn's tree.
pub async fn turn(State(web): State<Arc<Web>>, Path(id): Path<i64>) -> Response {
    match web.services.store.browse_turn(id).await {
        Ok(Some(tree)) => Json(tree).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no such turn" })),
        )
            .into_response(),
        Err(e) => failed(e),
    }
}

/// `GET /api/projects?conversation=KEY&cursor=ID&limit=N`: newest first.
pub async fn projects(State(web): State<Arc<Web>>, Query(p): Query<Params>) -> Response {
    let max = p.limit.unwrap_or(PAGE).clamp(1, 500);
    let before = p.cursor.and_then(|c| c.parse().ok());
    match web
        .services
        .store
        .browse_projects(p.conversation, before, max)
        .await
    {
        Ok(rows) => Json(page(rows, max, |r| r.id.to_string())).into_response(),
        Err(e) => failed(e),
    }
}

/// `GET /api/events?after=ID&conversation=KEY&limit=N`: oldest first.
pub async fn events(State(web): State<Arc<Web>>, Query(p): Query<Params>) -> Response {
    let max = p.limit.unwrap_or(PAGE).clamp(1, 500);
    let after = p
        .after
        .or_else(|| p.cursor.and_then(|c| c.parse().ok()))
        .unwrap_or(0);
    match web
        .services
        .store
        .events_after(after, p.conversation, max)
        .await
    {
        Ok(rows) => Json(page(rows, max, |r| r.id.to_string())).into_response(),
        Err(e) => failed(e),
    }
}

/// `GET /api/events/stream?after=ID&conversation=KEY`: every event after
/// `after` (or `Last-Event-ID`; else from now), then each new one as it is
/// logged. Each SSE message is one entry as JSON, with its id.
pub async fn stream(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    let store = web.services.store.clone();
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let after = match resume.or(p.after) {
        Some(after) => after,
        None => match store.last_event_id().await {
            Ok(id) => id,
            Err(e) => return failed(e),
        },
    };
    let stop = web.stop.clone();
    let entries = live(store, after, p.conversation).take_until(stop.cancelled_owned());
    Sse::new(entries)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The stream of log entries after `after`, woken by the log's appends.
fn live(
    store: Store,
    after: i64,
    conversation: Option<String>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let wake = store.watch_events();
    let state = (
        store,
        after,
        conversation,
        wake,
        Vec::<EventRow>::new().into_iter(),
    );
    futures::stream::unfold(
        state,
        |(store, mut after, conversation, mut wake, mut ready)| async move {
            loop {
                if let Some(row) = ready.next() {
                    let event = Event::default()
                        .id(row.id.to_string())
                        .event("entry")
                        .json_data(&row)
                        .unwrap_or_else(|_| Event::default().comment("unencodable entry"));
                    return Some((Ok(event), (store, after, conversation, wake, ready)));
                }
                // Mark what is there now as seen before reading, so an append
                // during the read wakes the next round.
                wake.borrow_and_update();
                match store.events_after(after, conversation.clone(), 100).await {
                    Ok(rows) if !rows.is_empty() => {
                        after = rows.last().map_or(after, |r| r.id);
                        ready = rows.into_iter();
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "live stream cannot read the log"),
                }
                if wake.changed().await.is_err() {
                    return None;
                }
                tokio::time::sleep(GATHER).await;
            }
        },
    )
}
