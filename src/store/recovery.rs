//! What is still unanswered: users' messages that were stored (so their
//! platform was told they arrived) but that no turn finished answering,
//! after a stop (all conversations) or while one conversation's queue was
//! full (that conversation's backlog).

use baton_channel::{Author, ConversationKey};

use super::{MessageId, Store, StoreError};

/// A stored user's message still waiting for its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnansweredMessage {
    /// Its row id.
    pub id: MessageId,
    /// Its conversation.
    pub key: ConversationKey,
    /// Who wrote it.
    pub author: Author,
    /// What they wrote.
    pub text: String,
    /// The platform's id of the message, for the reply to reference.
    pub platform_message_id: Option<String>,
    /// Files sent with it.
    pub attachments: Vec<baton_channel::Attachment>,
}

type Row = (
    i64,
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
);

impl Store {
    /// Users' messages received at or after `since_ms` with no turn, or only
    /// a turn a crash left `running`, oldest first (at most `limit`).
    ///
    /// Call it before [`Store::fail_abandoned_turns`]. Like that method, it
    /// assumes one Baton instance per database.
    pub async fn unanswered_messages(
        &self,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<UnansweredMessage>, StoreError> {
        self.unanswered(None, since_ms, limit).await
    }

    /// [`Store::unanswered_messages`] of one conversation: what its new
    /// owner answers when it takes the conversation over (a cluster).
    pub async fn unanswered_messages_of(
        &self,
        key: &ConversationKey,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<UnansweredMessage>, StoreError> {
        self.unanswered(Some(key.to_string()), since_ms, limit)
            .await
    }

    async fn unanswered(
        &self,
        conversation: Option<String>,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<UnansweredMessage>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<Row> = self
            .db
            .run(move |conn| {
                Box::pin(async move {
                    let sql = format!(
                        "SELECT m.id, m.conversation, m.author_id, m.author_name, m.content, \
                                m.platform_message_id, m.attachments \
                         FROM messages m \
                         WHERE m.role = 'user' AND m.created_at >= $1 {} \
                           AND NOT EXISTS (SELECT 1 FROM turns t \
                               WHERE t.inbound_message_id = m.id AND t.status <> 'running') \
                         ORDER BY m.id LIMIT $2",
                        if conversation.is_some() {
                            "AND m.conversation = $3"
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
        Ok(read_rows(rows))
    }

    /// One conversation's users' messages with an id of `from` or more
    /// that have no turn at all, oldest first (at most `limit`): the
    /// messages its actor has not taken yet while its queue was full.
    pub async fn unanswered_in(
        &self,
        key: &ConversationKey,
        from: MessageId,
        limit: usize,
    ) -> Result<Vec<UnansweredMessage>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let key = key.to_string();
        let rows: Vec<Row> = self
            .db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query_as(
                        "SELECT m.id, m.conversation, m.author_id, m.author_name, m.content, \
                                m.platform_message_id, m.attachments \
                         FROM messages m \
                         WHERE m.conversation = $1 AND m.id >= $2 AND m.role = 'user' \
                           AND NOT EXISTS (SELECT 1 FROM turns t \
                               WHERE t.conversation = $1 AND t.inbound_message_id = m.id) \
                         ORDER BY m.id LIMIT $3",
                    )
                    .bind(key)
                    .bind(from.0)
                    .bind(limit)
                    .fetch_all(conn)
                    .await
                })
            })
            .await?;
        Ok(read_rows(rows))
    }
}

/// The rows of an unanswered-messages query as messages; a row of a
/// conversation key this version cannot read is skipped.
fn read_rows(rows: Vec<Row>) -> Vec<UnansweredMessage> {
    let mut messages = Vec::with_capacity(rows.len());
    for (id, conversation, author_id, author_name, text, platform_message_id, attachments) in rows {
        let Ok(key) = conversation.parse::<ConversationKey>() else {
            tracing::warn!(
                conversation,
                "skipping a message of an unreadable conversation key"
            );
            continue;
        };
        let author_id = author_id.unwrap_or_default();
        messages.push(UnansweredMessage {
            id: MessageId(id),
            key,
            author: Author {
                name: author_name.unwrap_or_else(|| author_id.clone()),
                id: author_id,
            },
            text,
            platform_message_id,
            attachments: super::attachments::from_column(attachments.as_deref()),
        });
    }
    messages
}
