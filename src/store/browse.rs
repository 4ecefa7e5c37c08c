//! Read-only, paged queries for the dashboard and `/api` (`src/web`):
//! conversations, a conversation's turns, a turn's tree, projects, the
//! event log after an id, and a wake-up when the log grows. Lists are paged
//! by cursor (the last row's id; for conversations, its activity and key);
//! nothing here writes. Each row type but [`ConversationRow`] is read
//! straight from its query's columns (`sqlx::FromRow`: the query names each
//! column as the field it fills).

use serde::Serialize;
use tokio::sync::watch;

use super::turns::worker_rows;
use super::{Store, StoreError};

/// One conversation in the list.
#[derive(Debug, Clone, Serialize)]
pub struct ConversationRow {
    /// The conversation key (`telegram/-100123/7`).
    pub key: String,
    /// The platform (the key's first part).
    pub platform: String,
    /// A readable name: the chat's title (group, channel) or the user of a
    /// direct chat, as the platform last gave it; for conversations stored
    /// before titles were, the last user who wrote there.
    pub name: Option<String>,
    /// `single` or `orchestrator` (`None`: the defaults).
    pub mode: Option<String>,
    /// Whether verbose is on (`None`: the defaults).
    pub verbose: Option<bool>,
    /// The newest message's time (unix ms).
    pub last_activity: Option<i64>,
    /// Turns started since `since` (today).
    pub turns_today: i64,
    /// Tokens in and out since `since` (orchestrator and workers).
    pub tokens_today: i64,
    /// Of those, input tokens read from the providers' prompt caches.
    pub cached_tokens_today: i64,
    /// The page cursor after this row: `<newest message id>:<key>`.
    pub cursor: String,
}

/// One turn in a conversation's list.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TurnRow {
    pub id: i64,
    pub conversation: String,
    pub mode: String,
    pub model: String,
    pub status: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// Of `input_tokens`, read from the provider's prompt cache.
    pub cached_input_tokens: i64,
    /// Of `input_tokens`, written to the prompt cache (Anthropic).
    pub cache_write_tokens: i64,
    pub error: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// The user's message that started it.
    pub message: Option<String>,
    /// The one reply posted.
    pub reply: Option<String>,
}

/// One worker of a turn.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct WorkerRow {
    pub worker_id: String,
    pub label: String,
    pub brief: String,
    pub effort: String,
    pub model: String,
    pub status: String,
    pub result: Option<String>,
    pub error: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// Of `input_tokens`, read from the provider's prompt cache.
    pub cached_input_tokens: i64,
    /// Of `input_tokens`, written to the prompt cache (Anthropic).
    pub cache_write_tokens: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One entry of the event log.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct EventRow {
    pub id: i64,
    pub conversation: String,
    pub turn: Option<i64>,
    pub kind: String,
    pub source: String,
    pub body: String,
    pub created_at: i64,
}

/// One project.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ProjectRow {
    pub id: i64,
    pub conversation: String,
    pub turn: i64,
    pub goal: String,
    pub status: String,
    pub result: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

/// A turn's whole tree: the turn, its workers, and its log entries.
#[derive(Debug, Clone, Serialize)]
pub struct TurnTree {
    pub turn: TurnRow,
    pub workers: Vec<WorkerRow>,
    pub events: Vec<EventRow>,
}

/// The columns of a turn (`t`), as [`TurnRow`] reads them.
const TURN_COLUMNS: &str = "t.id, t.conversation, t.mode, t.model, t.status, t.input_tokens, \
     t.output_tokens, t.cached_input_tokens, t.cache_write_tokens, t.error, t.started_at, \
     t.finished_at, \
     (SELECT m.content FROM messages m WHERE m.id = t.inbound_message_id) AS message, \
     (SELECT r.content FROM messages r WHERE r.turn_id = t.id AND r.role = 'assistant' \
      ORDER BY r.id DESC LIMIT 1) AS reply";

/// The columns of an event log entry, as [`EventRow`] reads them.
const EVENT_COLUMNS: &str = "id, conversation, turn_id AS turn, kind, source, body, created_at";

/// Reads a conversation cursor, `<newest message id>:<key>`.
fn parse_conversation_cursor(cursor: &str) -> Option<(i64, String)> {
    let (id, key) = cursor.split_once(':')?;
    Some((id.parse().ok()?, key.to_owned()))
}

fn limit(limit: usize) -> i64 {
    i64::try_from(limit.clamp(1, 500)).unwrap_or(500)
}

impl Store {
    /// Conversations by last activity, most recent first, after the cursor
    /// `after` (a row's [`ConversationRow::cursor`]), at most `max`; the
    /// day's counts are of turns started at or after `since` (unix ms).
    ///
    /// Activity is the conversation's newest message id (ids grow with
    /// time), read through the `messages (conversation, id)` index at page
    /// time: nothing is written per message for it, and a page costs one
    /// index probe per conversation.
    pub async fn browse_conversations(
        &self,
        after: Option<String>,
        max: usize,
        since: i64,
    ) -> Result<Vec<ConversationRow>, StoreError> {
        type Row = (
            String,
            Option<String>,
            Option<String>,
            Option<i64>,
            i64,
            Option<i64>,
            i64,
            i64,
            i64,
        );
        let (before_id, after_key) = after
            .as_deref()
            .and_then(parse_conversation_cursor)
            .unwrap_or((i64::MAX, String::new()));
        let max = limit(max);
        let rows: Vec<Row> = self
            .db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query_as(
                        "SELECT c.key, \
                         COALESCE(c.title, (SELECT m.author_name FROM messages m \
                          WHERE m.conversation = c.key AND m.role = 'user' \
                          ORDER BY m.id DESC LIMIT 1)), \
                         c.mode, \
                         CASE WHEN c.\"verbose\" IS NULL THEN NULL WHEN c.\"verbose\" THEN 1 ELSE 0 END, \
                         x.last_id, \
                         (SELECT m.created_at FROM messages m WHERE m.id = x.last_id), \
                         (SELECT COUNT(*) FROM turns t WHERE t.conversation = c.key AND t.started_at >= $3), \
                         CAST(COALESCE((SELECT SUM(t.input_tokens + t.output_tokens) FROM turns t \
                           WHERE t.conversation = c.key AND t.started_at >= $3), 0) \
                          + COALESCE((SELECT SUM(w.input_tokens + w.output_tokens) FROM workers w \
                           JOIN turns t ON t.id = w.turn_id \
                           WHERE t.conversation = c.key AND t.started_at >= $3), 0) AS BIGINT), \
                         CAST(COALESCE((SELECT SUM(t.cached_input_tokens) FROM turns t \
                           WHERE t.conversation = c.key AND t.started_at >= $3), 0) \
                          + COALESCE((SELECT SUM(w.cached_input_tokens) FROM workers w \
                           JOIN turns t ON t.id = w.turn_id \
                           WHERE t.conversation = c.key AND t.started_at >= $3), 0) AS BIGINT) \
                         FROM (SELECT k.key AS key, COALESCE((SELECT MAX(m.id) FROM messages m \
                                WHERE m.conversation = k.key), 0) AS last_id \
                               FROM conversations k) AS x \
                         JOIN conversations c ON c.key = x.key \
                         WHERE x.last_id < $1 OR (x.last_id = $1 AND x.key > $2) \
                         ORDER BY x.last_id DESC, x.key LIMIT $4",
                    )
                    .bind(before_id)
                    .bind(after_key)
                    .bind(since)
                    .bind(max)
                    .fetch_all(conn)
                    .await
                })
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(key, name, mode, verbose, last_id, last, turns, tokens, cached)| {
                    ConversationRow {
                        platform: key.split('/').next().unwrap_or_default().to_owned(),
                        cursor: format!("{last_id}:{key}"),
                        key,
                        name,
                        mode,
                        verbose: verbose.map(|v| v != 0),
                        last_activity: last,
                        turns_today: turns,
                        tokens_today: tokens,
                        cached_tokens_today: cached,
                    }
                },
            )
            .collect())
    }

    /// A conversation's turns, newest first, with ids below `before`.
    pub async fn browse_turns(
        &self,
        key: &str,
        before: Option<i64>,
        max: usize,
    ) -> Result<Vec<TurnRow>, StoreError> {
        let key = key.to_owned();
        let before = before.unwrap_or(i64::MAX);
        let max = limit(max);
        let sql = format!(
            "SELECT {TURN_COLUMNS} FROM turns t WHERE t.conversation = $1 AND t.id < $2 \
             ORDER BY t.id DESC LIMIT $3"
        );
        self.db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query_as(&sql)
                        .bind(key)
                        .bind(before)
                        .bind(max)
                        .fetch_all(conn)
                        .await
                })
            })
            .await
    }

    /// A turn with its workers and its event log entries; `None` if there
    /// is no such turn.
    pub async fn browse_turn(&self, turn: i64) -> Result<Option<TurnTree>, StoreError> {
        self.flush_events().await;
        let sql = format!("SELECT {TURN_COLUMNS} FROM turns t WHERE t.id = $1");
        self.db
            .run(move |conn| {
                Box::pin(async move {
                    let Some(turn_row) = sqlx::query_as::<_, TurnRow>(&sql)
                        .bind(turn)
                        .fetch_optional(&mut *conn)
                        .await?
                    else {
                        return Ok(None);
                    };
                    let workers = worker_rows(&mut *conn, turn).await?;
                    let events = sqlx::query_as(&format!(
                        "SELECT {EVENT_COLUMNS} FROM events WHERE turn_id = $1 \
                         ORDER BY id LIMIT 2000"
                    ))
                    .bind(turn)
                    .fetch_all(&mut *conn)
                    .await?;
                    Ok(Some(TurnTree {
                        turn: turn_row,
                        workers,
                        events,
                    }))
                })
            })
            .await
    }

    /// Projects, newest first, with ids below `before`; of one conversation
    /// or all.
    pub async fn browse_projects(
        &self,
        key: Option<String>,
        before: Option<i64>,
        max: usize,
    ) -> Result<Vec<ProjectRow>, StoreError> {
        let before = before.unwrap_or(i64::MAX);
        let max = limit(max);
        self.db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query_as(
                        "SELECT id, conversation, turn_id AS turn, goal, status, result, created_at, \
                         finished_at FROM projects WHERE id < $1 \
                         AND ($2 = '' OR conversation = $2) ORDER BY id DESC LIMIT $3",
                    )
                    .bind(before)
                    .bind(key.unwrap_or_default())
                    .bind(max)
                    .fetch_all(conn)
                    .await
                })
            })
            .await
    }

    /// Projects counted by status (for `/metrics`).
    pub async fn project_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query_as("SELECT status, COUNT(*) FROM projects GROUP BY status")
                        .fetch_all(conn)
                        .await
                })
            })
            .await
    }

    /// Event log entries with ids above `after`, oldest first; of one
    /// conversation or all. Waits for the log's writer first.
    pub async fn events_after(
        &self,
        after: i64,
        key: Option<String>,
        max: usize,
    ) -> Result<Vec<EventRow>, StoreError> {
        self.flush_events().await;
        let max = limit(max);
        self.db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query_as(&format!(
                        "SELECT {EVENT_COLUMNS} FROM events \
                         WHERE id > $1 AND ($2 = '' OR conversation = $2) ORDER BY id LIMIT $3"
                    ))
                    .bind(after)
                    .bind(key.unwrap_or_default())
                    .bind(max)
                    .fetch_all(conn)
                    .await
                })
            })
            .await
    }

    /// The newest event id (0 when the log is empty).
    pub async fn last_event_id(&self) -> Result<i64, StoreError> {
        self.flush_events().await;
        self.db
            .run(move |conn| {
                Box::pin(async move {
                    let (id,): (i64,) =
                        sqlx::query_as("SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM events")
                            .fetch_one(conn)
                            .await?;
                    Ok(id)
                })
            })
            .await
    }

    /// Changes whenever an entry is queued for the event log; read with
    /// [`Store::events_after`] (which waits for the writer).
    pub fn watch_events(&self) -> watch::Receiver<u64> {
        self.events.subscribe()
    }

    /// Answers a trivial query (for readiness checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db
            .run(move |conn| {
                Box::pin(async move {
                    let _: (i64,) = sqlx::query_as("SELECT 1").fetch_one(conn).await?;
                    Ok(())
                })
            })
            .await
    }
}
