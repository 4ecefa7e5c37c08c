//! The durable outbox: a turn's reply is stored in the transcript together
//! with an `outbox` row, in one transaction, before it is posted. Once the
//! platform accepted it (or refused it for good) the row is marked sent,
//! through the batched background writer so the mark costs the turn no
//! wait. After a stop, rows still unsent are read back and posted again:
//! a reply is delivered at least once, and the window in which it may go
//! out twice is the one between the platform's answer and the mark.

use baton_channel::ConversationKey;
use sqlx::Connection;

use super::event_writer::Mark;
use super::{MessageId, Role, Store, StoreError, TurnId, now_ms, one_row};

/// An outbox row's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OutboxId(pub i64);

/// A reply stored and waiting to be posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredReply {
    /// Its transcript message.
    pub message: MessageId,
    /// Its outbox row, to mark sent once posted.
    pub outbox: OutboxId,
}

/// A stored reply that was not marked sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsentReply {
    /// Its outbox row.
    pub id: OutboxId,
    /// The conversation it goes to.
    pub key: ConversationKey,
    /// The reply's text.
    pub text: String,
    /// The platform id of the message it answers.
    pub reply_to: Option<String>,
}

impl Store {
    /// Appends the orchestrator's reply to the transcript, linked to the
    /// turn that wrote it, and queues it in the outbox (one transaction).
    /// `reply_to` is the platform id of the message it answers.
    pub async fn record_reply(
        &self,
        key: &ConversationKey,
        turn: TurnId,
        text: &str,
        reply_to: Option<&str>,
    ) -> Result<StoredReply, StoreError> {
        let now = now_ms();
        let text = text.to_owned();
        let reply_to = reply_to.map(str::to_owned);
        let (message, outbox) = self
            .run_in_conversation(key, now, move |conn, key| {
                Box::pin(async move {
                    let mut tx = conn.begin().await?;
                    let stored =
                        insert_reply(&mut tx, &key, turn, &text, reply_to.as_deref(), now).await?;
                    tx.commit().await?;
                    Ok(stored)
                })
            })
            .await?;
        Ok(StoredReply {
            message: MessageId(message),
            outbox: OutboxId(outbox),
        })
    }

    /// Marks a reply as posted (or given up for good), off the caller's
    /// path: the mark is written with the next batch of the event log.
    pub async fn mark_sent(&self, outbox: OutboxId) -> Result<(), StoreError> {
        let mark = Mark {
            outbox: outbox.0,
            sent_at: now_ms(),
        };
        if self.events.mark(mark).await {
            Ok(())
        } else {
            Err(StoreError::Closed)
        }
    }

    /// Replies stored at or after `since_ms` and never marked sent, oldest
    /// first (at most `limit`).
    ///
    /// Like [`Store::unanswered_messages`], it assumes one Baton instance
    /// per database.
    pub async fn unsent_replies(
        &self,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<UnsentReply>, StoreError> {
        self.unsent(None, since_ms, limit).await
    }

    /// [`Store::unsent_replies`] of one conversation (its new owner posts
    /// them when it takes the conversation over).
    pub async fn unsent_replies_of(
        &self,
        key: &ConversationKey,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<UnsentReply>, StoreError> {
        self.unsent(Some(key.to_string()), since_ms, limit).await
    }

    async fn unsent(
        &self,
        conversation: Option<String>,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<UnsentReply>, StoreError> {
        self.flush_events().await;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<(i64, String, String, Option<String>)> = self
            .db
            .run(move |conn| {
                Box::pin(async move {
                    let sql = format!(
                        "SELECT o.id, o.conversation, m.content, o.reply_to \
                         FROM outbox o JOIN messages m ON m.id = o.message_id \
                         WHERE o.sent_at IS NULL AND o.created_at >= $1 {} \
                         ORDER BY o.id LIMIT $2",
                        if conversation.is_some() {
                            "AND o.conversation = $3"
                        } else {
                            ""
                        }
                    );
                    let query = sqlx::query_as(&sql).bind(since_ms).bind(limit);
                    let query = match conversation {
                        Some(conversation) => query.bind(conversation),
                        None => query,
                    };
                    query.fetch_all(conn).await
                })
            })
            .await?;
        let mut unsent = Vec::with_capacity(rows.len());
        for (id, key, text, reply_to) in rows {
            match key.parse() {
                Ok(key) => unsent.push(UnsentReply {
                    id: OutboxId(id),
                    key,
                    text,
                    reply_to,
                }),
                Err(e) => {
                    tracing::warn!(outbox = id, key, error = %e, "an unsent reply's conversation key does not parse; skipped");
                }
            }
        }
        Ok(unsent)
    }
}

/// Inserts a reply into the transcript and the outbox (in the caller's
/// transaction); returns the message's and the outbox row's ids.
pub(super) async fn insert_reply(
    conn: &mut sqlx::AnyConnection,
    key: &str,
    turn: TurnId,
    text: &str,
    reply_to: Option<&str>,
    now: i64,
) -> Result<(i64, i64), sqlx::Error> {
    let message: i64 = sqlx::query_scalar(
        "INSERT INTO messages (conversation, role, content, turn_id, created_at) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(key)
    .bind(Role::Assistant.as_str())
    .bind(text)
    .bind(turn.0)
    .bind(now)
    .fetch_all(&mut *conn)
    .await
    .and_then(one_row)?;
    let outbox: i64 = sqlx::query_scalar(
        "INSERT INTO outbox (conversation, message_id, reply_to, created_at) \
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(key)
    .bind(message)
    .bind(reply_to)
    .bind(now)
    .fetch_all(conn)
    .await
    .and_then(one_row)?;
    Ok((message, outbox))
}
