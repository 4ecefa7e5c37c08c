//! The `events` table: the event log (message bus) of a conversation —
//! delegations, worker progress and results, errors, messages in and out —
//! for auditing and the read-only API. Nothing is executed from it.

use baton_channel::ConversationKey;

use super::{EventKind, Store, StoreError, StoredEvent, TurnId, now_ms};

impl Store {
    /// Appends an event: its kind, its source (`orchestrator`, a worker id,
    /// `user` or `system`) and a text body, optionally tied to a turn.
    pub async fn record_event(
        &self,
        key: &ConversationKey,
        turn: Option<TurnId>,
        kind: EventKind,
        source: &str,
        body: &str,
    ) -> Result<(), StoreError> {
        let key = key.to_string();
        let now = now_ms();
        self.ensure_conversation(&key, now).await?;
        sqlx::query(
            "INSERT INTO events (conversation, turn_id, kind, source, body, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key)
        .bind(turn.map(|turn| turn.0))
        .bind(kind.as_str())
        .bind(source)
        .bind(body)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The conversation's newest `limit` events, oldest first.
    pub async fn recent_events(
        &self,
        key: &ConversationKey,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<(i64, Option<i64>, String, String, String, i64)> = sqlx::query_as(
            "SELECT id, turn_id, kind, source, body, created_at FROM events \
             WHERE conversation = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(key.to_string())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut events: Vec<StoredEvent> = rows
            .into_iter()
            .map(|(id, turn, kind, source, body, created_at)| StoredEvent {
                id,
                turn: turn.map(TurnId),
                kind: EventKind::parse(&kind),
                source,
                body,
                created_at,
            })
            .collect();
        events.reverse();
        Ok(events)
    }
}
