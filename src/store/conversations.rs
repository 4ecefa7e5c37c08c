//! The `conversations` table: one row per conversation, holding its settings
//! (`/orchestrator`, `/verbose`, `/effort`, `/model`, `/greedy`,
//! `/autonomy`) and where its current context
//! starts (`/reset`). Rows that belong to a conversation are written
//! through [`Store::run_in_conversation`], which creates its row first.

use baton_channel::{ConversationKey, Effort};
use futures::future::BoxFuture;
use sqlx::AnyConnection;

use super::{MessageId, Store, StoreError, now_ms, upkeep};
use crate::domain::{ConversationSettings, Mode};

impl Store {
    /// The conversation's saved settings, or `None` if none were ever saved
    /// (the caller then uses the configured defaults). A stored mode or
    /// effort this version does not know reads as the default.
    pub async fn load_settings(
        &self,
        key: &ConversationKey,
    ) -> Result<Option<ConversationSettings>, StoreError> {
        type Row = (
            Option<String>,
            i64,
            Option<String>,
            Option<String>,
            i64,
            i64,
        );
        let key = key.to_string();
        let key_text = key.clone();
        let row: Option<Row> = self
            .db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query_as(
                        "SELECT mode, CASE WHEN \"verbose\" THEN 1 ELSE 0 END, effort, model, \
                         CASE WHEN greedy THEN 1 ELSE 0 END, \
                         CASE WHEN autonomy THEN 1 ELSE 0 END \
                         FROM conversations WHERE key = $1",
                    )
                    .bind(key)
                    .fetch_optional(conn)
                    .await
                })
            })
            .await?;
        // The row may exist without settings: `mode` is NULL until a save.
        Ok(
            row.and_then(|(mode, verbose, effort, model, greedy, autonomy)| {
                let mode = mode?;
                // A word this version does not know reads as the default,
                // and the log says which.
                let mode = Mode::parse(&mode).unwrap_or_else(|| {
                    tracing::warn!(conversation = %key_text, mode, "unknown stored mode; using the default");
                    Mode::default()
                });
                let effort = match effort {
                    None => Effort::default(),
                    Some(word) => word.parse::<Effort>().unwrap_or_else(|_| {
                        tracing::warn!(conversation = %key_text, effort = word, "unknown stored effort; using the default");
                        Effort::default()
                    }),
                };
                Some(ConversationSettings {
                    mode,
                    verbose: verbose != 0,
                    effort,
                    model,
                    greedy: greedy != 0,
                    autonomy: autonomy != 0,
                })
            }),
        )
    }

    /// Saves the conversation's settings (insert or update).
    pub async fn save_settings(
        &self,
        key: &ConversationKey,
        settings: &ConversationSettings,
    ) -> Result<(), StoreError> {
        let key = key.to_string();
        let settings = settings.clone();
        let now = now_ms();
        self.db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO conversations (key, mode, \"verbose\", effort, model, greedy, \
                         autonomy, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
                         ON CONFLICT (key) DO UPDATE SET mode = excluded.mode, \
                         \"verbose\" = excluded.\"verbose\", effort = excluded.effort, \
                         model = excluded.model, greedy = excluded.greedy, \
                         autonomy = excluded.autonomy, updated_at = excluded.updated_at",
                    )
                    .bind(key)
                    .bind(settings.mode.as_str())
                    .bind(settings.verbose)
                    .bind(settings.effort.as_str())
                    .bind(settings.model)
                    .bind(settings.greedy)
                    .bind(settings.autonomy)
                    .bind(now)
                    .execute(conn)
                    .await
                })
            })
            .await?;
        Ok(())
    }

    /// Starts a new context: later [`Store::history`] calls see only
    /// messages recorded after this call. The earlier rows are kept.
    pub async fn reset_context(&self, key: &ConversationKey) -> Result<(), StoreError> {
        let key = key.to_string();
        let now = now_ms();
        self.db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO conversations \
                         (key, context_start_message_id, created_at, updated_at) \
                         VALUES ($1, \
                         (SELECT COALESCE(MAX(id), 0) FROM messages WHERE conversation = $1), \
                         $2, $2) \
                         ON CONFLICT (key) DO UPDATE SET \
                         context_start_message_id = excluded.context_start_message_id, \
                         updated_at = excluded.updated_at",
                    )
                    .bind(key)
                    .bind(now)
                    .execute(conn)
                    .await
                })
            })
            .await?;
        Ok(())
    }

    /// Starts a new context after message `through`: later messages stay
    /// in the context (they were sent after the reset was asked for). The
    /// context start never moves back.
    pub async fn reset_context_through(
        &self,
        key: &ConversationKey,
        through: MessageId,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        self.run_in_conversation(key, now, move |conn, key| {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE conversations SET context_start_message_id = $2, updated_at = $3 \
                         WHERE key = $1 AND context_start_message_id < $2",
                )
                .bind(key)
                .bind(through.0)
                .bind(now)
                .execute(conn)
                .await
            })
        })
        .await?;
        Ok(())
    }

    /// The id of the conversation's newest transcript message, if any.
    pub async fn last_message_id(
        &self,
        key: &ConversationKey,
    ) -> Result<Option<MessageId>, StoreError> {
        let key = key.to_string();
        let id: Option<i64> = self
            .db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query_scalar("SELECT MAX(id) FROM messages WHERE conversation = $1")
                        .bind(key)
                        .fetch_one(conn)
                        .await
                })
            })
            .await?;
        Ok(id.map(MessageId))
    }
}

impl Store {
    /// Runs `job` (given the key as stored) once the conversation's row
    /// exists, in the same trip to the connection: rows that reference a
    /// conversation are written through here. `now` stamps a new row.
    pub(super) async fn run_in_conversation<T, F>(
        &self,
        key: &ConversationKey,
        now: i64,
        job: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection, String) -> BoxFuture<'c, Result<T, sqlx::Error>>
            + Send
            + 'static,
    {
        let key = key.to_string();
        let known = self.known.clone();
        self.db
            .run(move |conn| {
                Box::pin(async move {
                    upkeep::ensure_conversation(&mut *conn, &known, &key, now).await?;
                    job(conn, key).await
                })
            })
            .await
    }
}
