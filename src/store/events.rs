//! The `events` table: the event log (message bus) of a conversation —
//! delegations, worker progress and results, errors, messages in and out —
//! for auditing and the read-only API. Nothing is executed from it.
//! Appends go through the batching writer in `event_writer.rs`.

use baton_channel::ConversationKey;

use super::event_writer::NewEvent;
use super::{EventKind, Store, StoreError, StoredEvent, TurnId, now_ms};

impl Store {
    /// Appends an event: its kind, its source (`orchestrator`, a worker id,
    /// `user` or `system`) and a text body, optionally tied to a turn.
    ///
    /// The entry is queued for the event log's writer, which writes entries
    /// in order and in batches; [`Store::flush_events`] waits for it. A
    /// write that fails later is logged, never reported here.
    pub async fn record_event(
        &self,
        key: &ConversationKey,
        turn: Option<TurnId>,
        kind: EventKind,
        source: &str,
        body: &str,
    ) -> Result<(), StoreError> {
        let event = NewEvent {
            conversation: key.to_string(),
            turn: turn.map(|turn| turn.0),
            kind: kind.as_str(),
            source: source.to_owned(),
            body: body.to_owned(),
            created_at: now_ms(),
        };
        if self.events.append(event).await {
            Ok(())
        } else {
            Err(StoreError::Closed)
        }
    }

    /// Waits until every event recorded so far is written.
    /// Event log entries that could not be written since the store
    /// started (a full disk, say); each failure is also logged.
    pub fn events_lost(&self) -> u64 {
        self.events.lost()
    }

    pub async fn flush_events(&self) {
        self.events.flush().await;
    }

    /// The conversation's newest `limit` events, oldest first.
    pub async fn recent_events(
        &self,
        key: &ConversationKey,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.flush_events().await;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let key = key.to_string();
        let rows: Vec<(i64, Option<i64>, String, String, String, i64)> = self
            .db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query_as(
                        "SELECT id, turn_id, kind, source, body, created_at FROM events \
                         WHERE conversation = $1 ORDER BY id DESC LIMIT $2",
                    )
                    .bind(key)
                    .bind(limit)
                    .fetch_all(conn)
                    .await
                })
            })
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
