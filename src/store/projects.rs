//! The `projects` table: long-running work of a conversation's
//! orchestrator, with its status, the boss's saved context, its question
//! to the user and its result, and whether that outcome was posted.
//!
//! A project's boss runs as a turn of its own: [`Store::create_project`]
//! writes that turn (status `running`, no inbound message) and the project
//! in one trip, and the project's workers point at the turn, so usage,
//! budgets and the event log count a project like any other turn.

use baton_channel::{ConversationKey, WorkerStatus};
use sqlx::Connection;

use super::{
    ProjectId, ProjectStatus, Store, StoreError, StoredProject, TurnId, TurnStatus, now_ms,
    tokens_to_db,
};
use crate::domain::{Mode, Usage};

/// What a new project starts with.
#[derive(Debug, Clone)]
pub struct NewProject<'a> {
    /// What it is for.
    pub goal: &'a str,
    /// An optional plan.
    pub plan: Option<&'a str>,
    /// The boss's `provider:model`.
    pub model: &'a str,
    /// The platform message id its posts reply to.
    pub reply_to: Option<&'a str>,
}

const COLUMNS: &str = "id, conversation, turn_id, goal, plan, status, reason, result, question, \
                       transcript, rounds, reply_to, posted_at, created_at, finished_at";

type Row = (
    i64,
    String,
    i64,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    i64,
    Option<String>,
    Option<i64>,
    i64,
    Option<i64>,
);

fn read(row: Row) -> Option<StoredProject> {
    let (id, key, turn, goal, plan, status, reason, result, question) = (
        row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8,
    );
    let Ok(key) = key.parse::<ConversationKey>() else {
        tracing::warn!(
            project = id,
            "skipping a project of an unreadable conversation key"
        );
        return None;
    };
    Some(StoredProject {
        id: ProjectId(id),
        key,
        turn: TurnId(turn),
        goal,
        plan,
        status: ProjectStatus::parse(&status).unwrap_or(ProjectStatus::Failed),
        reason,
        result,
        question,
        transcript: row.9,
        rounds: u64::try_from(row.10).unwrap_or(0),
        reply_to: row.11,
        posted_at: row.12,
        created_at: row.13,
        finished_at: row.14,
    })
}

impl Store {
    /// Creates a project (status `running`) and its boss's turn, in one trip.
    pub async fn create_project(
        &self,
        key: &ConversationKey,
        project: NewProject<'_>,
    ) -> Result<StoredProject, StoreError> {
        let now = now_ms();
        let goal = project.goal.to_owned();
        let plan = project.plan.map(str::to_owned);
        let model = project.model.to_owned();
        let reply_to = project.reply_to.map(str::to_owned);
        let row: Row = self
            .run_in_conversation(key, now, move |conn, key| {
                Box::pin(async move {
                    let mut tx = conn.begin().await?;
                    let turn: i64 = sqlx::query_scalar(
                        "INSERT INTO turns (conversation, mode, model, status, started_at) \
                         VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    )
                    .bind(&key)
                    .bind(Mode::Orchestrator.as_str())
                    .bind(model)
                    .bind(TurnStatus::Running.as_str())
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                    let row = sqlx::query_as(&format!(
                        "INSERT INTO projects (conversation, turn_id, goal, plan, status, \
                         transcript, reply_to, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, '[]', $6, $7, $7) RETURNING {COLUMNS}"
                    ))
                    .bind(&key)
                    .bind(turn)
                    .bind(goal)
                    .bind(plan)
                    .bind(ProjectStatus::Running.as_str())
                    .bind(reply_to)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(row)
                })
            })
            .await?;
        read(row).ok_or_else(|| StoreError::NotFound("the new project".into()))
    }

    /// One project, or `None`.
    pub async fn load_project(&self, id: ProjectId) -> Result<Option<StoredProject>, StoreError> {
        let row: Option<Row> = self
            .db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query_as(&format!("SELECT {COLUMNS} FROM projects WHERE id = $1"))
                        .bind(id.0)
                        .fetch_optional(conn)
                        .await
                })
            })
            .await?;
        Ok(row.and_then(read))
    }

    /// A conversation's newest `limit` projects, newest first.
    pub async fn projects_of(
        &self,
        key: &ConversationKey,
        limit: usize,
    ) -> Result<Vec<StoredProject>, StoreError> {
        let key = key.to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<Row> = self
            .db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query_as(&format!(
                        "SELECT {COLUMNS} FROM projects WHERE conversation = $1 \
                         ORDER BY id DESC LIMIT $2"
                    ))
                    .bind(key)
                    .bind(limit)
                    .fetch_all(conn)
                    .await
                })
            })
            .await?;
        Ok(rows.into_iter().filter_map(read).collect())
    }

    /// Projects a restart must take up again: those `running`, and those
    /// that ended (or asked a question) without their post going out.
    pub async fn projects_to_resume(&self) -> Result<Vec<StoredProject>, StoreError> {
        self.to_resume(None).await
    }

    /// [`Store::projects_to_resume`] of one conversation (its new owner
    /// takes them up when it takes the conversation over).
    pub async fn projects_to_resume_of(
        &self,
        key: &ConversationKey,
    ) -> Result<Vec<StoredProject>, StoreError> {
        self.to_resume(Some(key.to_string())).await
    }

    async fn to_resume(
        &self,
        conversation: Option<String>,
    ) -> Result<Vec<StoredProject>, StoreError> {
        let rows: Vec<Row> = self
            .db
            .run(move |conn| {
                Box::pin(async move {
                    let sql = format!(
                        "SELECT {COLUMNS} FROM projects WHERE (status = 'running' \
                         OR (posted_at IS NULL AND status IN ('completed', 'failed', 'cancelled'))) {} \
                         ORDER BY id",
                        if conversation.is_some() {
                            "AND conversation = $1"
                        } else {
                            ""
                        }
                    );
                    let query = sqlx::query_as(&sql);
                    let query = match conversation {
                        Some(conversation) => query.bind(conversation),
                        None => query,
                    };
                    query.fetch_all(conn).await
                })
            })
            .await?;
        Ok(rows.into_iter().filter_map(read).collect())
    }

    /// Saves the boss's context and its tokens so far (on its turn).
    pub async fn save_project_transcript(
        &self,
        id: ProjectId,
        transcript: &str,
        rounds: u64,
        usage: Usage,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let transcript = transcript.to_owned();
        let rounds = i64::try_from(rounds).unwrap_or(i64::MAX);
        self.db
            .run(move |conn| {
                Box::pin(async move {
                    let mut tx = conn.begin().await?;
                    sqlx::query(
                        "UPDATE projects SET transcript = $1, rounds = $2, updated_at = $3 \
                         WHERE id = $4",
                    )
                    .bind(transcript)
                    .bind(rounds)
                    .bind(now)
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "UPDATE turns SET input_tokens = $1, output_tokens = $2, \
                         cached_input_tokens = $3, cache_write_tokens = $4 \
                         WHERE id = (SELECT turn_id FROM projects WHERE id = $5)",
                    )
                    .bind(tokens_to_db(usage.input_tokens))
                    .bind(tokens_to_db(usage.output_tokens))
                    .bind(tokens_to_db(usage.cached_input_tokens))
                    .bind(tokens_to_db(usage.cache_write_tokens))
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await
                })
            })
            .await?;
        Ok(())
    }

    /// Moves a project to `status`, with a reason (and a question, for a
    /// project paused to ask the user). A final status also ends the
    /// boss's turn. The new outcome is not posted yet.
    pub async fn set_project_status(
        &self,
        id: ProjectId,
        status: ProjectStatus,
        reason: Option<&str>,
        question: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let reason = reason.map(str::to_owned);
        let question = question.map(str::to_owned);
        let finished = status.is_final().then_some(now);
        let turn_status = match status {
            ProjectStatus::Completed => TurnStatus::Done,
            ProjectStatus::Failed => TurnStatus::Failed,
            ProjectStatus::Cancelled => TurnStatus::Cancelled,
            ProjectStatus::Planning | ProjectStatus::Running | ProjectStatus::Paused => {
                TurnStatus::Running
            }
        };
        let changed = self
            .db
            .run(move |conn| {
                Box::pin(async move {
                    let mut tx = conn.begin().await?;
                    let changed = sqlx::query(
                        "UPDATE projects SET status = $1, reason = $2, question = $3, \
                         updated_at = $4, finished_at = $5, posted_at = NULL WHERE id = $6",
                    )
                    .bind(status.as_str())
                    .bind(reason.clone())
                    .bind(question)
                    .bind(now)
                    .bind(finished)
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "UPDATE turns SET status = $1, error = $2, finished_at = $3 \
                         WHERE id = (SELECT turn_id FROM projects WHERE id = $4)",
                    )
                    .bind(turn_status.as_str())
                    .bind(reason)
                    .bind(finished)
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(changed.rows_affected())
                })
            })
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("project {id}")));
        }
        Ok(())
    }

    /// Records the boss's summary and completes the project.
    pub async fn complete_project(&self, id: ProjectId, summary: &str) -> Result<(), StoreError> {
        let summary = summary.to_owned();
        self.db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query("UPDATE projects SET result = $1 WHERE id = $2")
                        .bind(summary)
                        .bind(id.0)
                        .execute(conn)
                        .await
                })
            })
            .await?;
        self.set_project_status(id, ProjectStatus::Completed, None, None)
            .await
    }

    /// Records that a project's outcome (its result, failure or question)
    /// was posted.
    pub async fn mark_project_posted(&self, id: ProjectId) -> Result<(), StoreError> {
        let now = now_ms();
        self.db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query("UPDATE projects SET posted_at = $1 WHERE id = $2")
                        .bind(now)
                        .bind(id.0)
                        .execute(conn)
                        .await
                })
            })
            .await?;
        Ok(())
    }

    /// Marks a project's workers still `running` as cancelled with
    /// `reason` (a pause or a restart interrupted them); returns how many.
    pub async fn interrupt_project_workers(
        &self,
        turn: TurnId,
        reason: &str,
    ) -> Result<u64, StoreError> {
        let now = now_ms();
        let reason = reason.to_owned();
        let result = self
            .db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "UPDATE workers SET status = $1, error = COALESCE(error, $2), \
                         updated_at = $3 WHERE turn_id = $4 AND status = $5",
                    )
                    .bind(WorkerStatus::Cancelled.as_str())
                    .bind(reason)
                    .bind(now)
                    .bind(turn.0)
                    .bind(WorkerStatus::Running.as_str())
                    .execute(conn)
                    .await
                })
            })
            .await?;
        Ok(result.rows_affected())
    }
}
