//! The `messages` table: the transcript the orchestrator sees. Users'
//! messages are deduplicated by their platform message id so a redelivered
//! update is handled once; `history` reads back the current context.

use baton_channel::{Attachment, Author, ConversationKey};

use super::{MessageId, Role, Store, StoreError, StoredMessage, first_row, now_ms};

/// A `history_through` row: id, role, author name, content, attachments.
type HistoryRow = (i64, String, Option<String>, String, Option<String>);

impl Store {
    /// Records a user's message. Returns `None` when `platform_message_id`
    /// was already recorded in this conversation (a redelivered update),
    /// which the caller then drops. Messages without a platform id are
    /// never deduplicated.
    pub async fn record_inbound(
        &self,
        key: &ConversationKey,
        author: &Author,
        text: &str,
        platform_message_id: Option<&str>,
    ) -> Result<Option<MessageId>, StoreError> {
        self.record_inbound_with(key, author, text, platform_message_id, &[])
            .await
    }

    /// [`Store::record_inbound`] for a message with files: their metadata
    /// is stored with it (as JSON, in the same statement).
    pub async fn record_inbound_with(
        &self,
        key: &ConversationKey,
        author: &Author,
        text: &str,
        platform_message_id: Option<&str>,
        attachments: &[Attachment],
    ) -> Result<Option<MessageId>, StoreError> {
        let now = now_ms();
        let author = author.clone();
        let text = text.to_owned();
        let platform_message_id = platform_message_id.map(str::to_owned);
        let attachments = super::attachments::to_column(attachments);
        let id: Option<i64> = self
            .run_in_conversation(key, now, move |conn, key| {
                Box::pin(async move {
                    sqlx::query_scalar(
                        "INSERT INTO messages (conversation, role, author_id, author_name, \
                         content, platform_message_id, created_at, attachments) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                         ON CONFLICT (conversation, platform_message_id) \
                         WHERE platform_message_id IS NOT NULL DO NOTHING \
                         RETURNING id",
                    )
                    .bind(key)
                    .bind(Role::User.as_str())
                    .bind(author.id)
                    .bind(author.name)
                    .bind(text)
                    .bind(platform_message_id)
                    .bind(now)
                    .bind(attachments)
                    .fetch_all(conn)
                    .await
                    .map(first_row)
                })
            })
            .await?;
        Ok(id.map(MessageId))
    }

    /// The transcript since the last reset, the newest `limit` messages,
    /// oldest first.
    pub async fn history(
        &self,
        key: &ConversationKey,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.history_through(key, None, limit).await
    }

    /// Like [`Store::history`], but ending at message `through` (a turn's
    /// own message), so messages stored after it wait for their own turns.
    /// Each reply comes right after the message it answered.
    /// A stored role this version does not know reads as a user's message.
    pub async fn history_through(
        &self,
        key: &ConversationKey,
        through: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let through = through.map_or(i64::MAX, |id| id.0);
        // A reply sits right after the message it answers (its turn's
        // inbound message), wherever its own id fell: messages that queued
        // up during a turn are stored before that turn's reply.
        let key = key.to_string();
        let rows: Vec<HistoryRow> = self
            .db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query_as(
                        "SELECT m.id, m.role, m.author_name, m.content, m.attachments FROM ( \
                             SELECT m.*, COALESCE(t.inbound_message_id, m.id) AS position \
                             FROM messages m LEFT JOIN turns t ON t.id = m.turn_id \
                             WHERE m.conversation = $1 \
                         ) AS m \
                         WHERE m.position <= $3 AND m.position > COALESCE( \
                             (SELECT context_start_message_id FROM conversations WHERE key = $1), \
                             0) \
                         ORDER BY m.position DESC, m.id DESC LIMIT $2",
                    )
                    .bind(key)
                    .bind(limit)
                    .bind(through)
                    .fetch_all(conn)
                    .await
                })
            })
            .await?;
        let mut messages: Vec<StoredMessage> = rows
            .into_iter()
            .map(|(id, role, author, content, attachments)| {
                let role = Role::parse(&role).unwrap_or(Role::User);
                StoredMessage {
                    id: MessageId(id),
                    role,
                    author: match role {
                        Role::User => author,
                        Role::Assistant => None,
                    },
                    content,
                    attachments: super::attachments::from_column(attachments.as_deref()),
                }
            })
            .collect();
        messages.reverse();
        Ok(messages)
    }
}
