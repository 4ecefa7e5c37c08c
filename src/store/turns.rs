//! The `turns` and `workers` tables: one row per turn and one per worker a
//! turn started, with status, errors and token usage; the usage totals for
//! `/status`; and recovery of turns a crash left running.
//!
//! Usage is split, never double-counted: a turn row holds the orchestrator's
//! own tokens, a worker row its worker's cumulative tokens.

use baton_channel::{ConversationKey, Effort, WorkerId, WorkerStatus};

use sqlx::{AnyConnection, Connection};

use super::{
    MessageId, NewWorker, Store, StoreError, StoredTurn, StoredWorker, TurnId, TurnStatus,
    WorkerRow, now_ms, one_row, tokens_to_db, usage_from_db,
};
use crate::domain::{Mode, Usage};

/// How a turn ended, for [`Store::record_turn`].
#[derive(Debug, Clone, Copy)]
pub struct TurnEnd<'a> {
    /// Its final status.
    pub status: TurnStatus,
    /// The orchestrator's own tokens.
    pub usage: Usage,
    /// What went wrong, if it failed.
    pub error: Option<&'a str>,
}

/// The error recorded on turns (and their workers) that a crash left running.
const ABANDONED: &str = "abandoned: the service stopped during the turn";

impl Store {
    /// Records the start of a turn (status `running`) and returns its id.
    pub async fn start_turn(
        &self,
        key: &ConversationKey,
        inbound: Option<MessageId>,
        mode: Mode,
        model: &str,
    ) -> Result<TurnId, StoreError> {
        let now = now_ms();
        let model = model.to_owned();
        let id: i64 = self
            .run_in_conversation(key, now, move |conn, key| {
                Box::pin(async move {
                    sqlx::query_scalar(
                        "INSERT INTO turns \
                         (conversation, inbound_message_id, mode, model, status, started_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                    )
                    .bind(key)
                    .bind(inbound.map(|message| message.0))
                    .bind(mode.as_str())
                    .bind(model)
                    .bind(TurnStatus::Running.as_str())
                    .bind(now)
                    .fetch_all(conn)
                    .await
                    .and_then(one_row)
                })
            })
            .await?;
        Ok(TurnId(id))
    }

    /// Records a whole turn at its end in one statement: a single-mode turn
    /// (it has no workers to point at it) is written once, not started and
    /// then finished. `started_at` is in unix milliseconds.
    pub async fn record_turn(
        &self,
        key: &ConversationKey,
        inbound: Option<MessageId>,
        mode: Mode,
        model: &str,
        started_at: i64,
        ended: TurnEnd<'_>,
    ) -> Result<TurnId, StoreError> {
        let now = now_ms();
        let model = model.to_owned();
        let error = ended.error.map(str::to_owned);
        let (status, usage) = (ended.status, ended.usage);
        let id: i64 = self
            .run_in_conversation(key, now, move |conn, key| {
                Box::pin(async move {
                    let whole = WholeTurn {
                        key: &key,
                        inbound,
                        mode,
                        model: &model,
                        started_at,
                    };
                    insert_whole_turn(conn, &whole, status, usage, error.as_deref(), now).await
                })
            })
            .await?;
        Ok(TurnId(id))
    }

    /// Records how a turn ended. `usage` is the orchestrator's own usage for
    /// the whole turn (workers' usage goes to their rows through
    /// [`Store::update_worker`]).
    pub async fn finish_turn(
        &self,
        turn: TurnId,
        status: TurnStatus,
        usage: Usage,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let error = error.map(str::to_owned);
        let updated = self
            .db
            .run(move |conn| {
                Box::pin(async move {
                    update_turn_end(conn, turn, status, usage, error.as_deref()).await
                })
            })
            .await?;
        if updated == 0 {
            return Err(StoreError::NotFound(format!("turn {}", turn.0)));
        }
        Ok(())
    }

    /// Records a worker the orchestrator started (status `running`).
    pub async fn insert_worker(&self, turn: TurnId, worker: &NewWorker) -> Result<(), StoreError> {
        let now = now_ms();
        let worker = worker.clone();
        self.db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO workers (turn_id, worker_id, label, brief, effort, model, \
                         status, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                    )
                    .bind(turn.0)
                    .bind(worker.worker_id.0)
                    .bind(worker.label)
                    .bind(worker.brief)
                    .bind(worker.effort.as_str())
                    .bind(worker.model)
                    .bind(WorkerStatus::Running.as_str())
                    .bind(now)
                    .execute(conn)
                    .await
                })
            })
            .await?;
        Ok(())
    }

    /// Records a worker's new status: when a run ends, or `running` again
    /// when it is re-briefed. `usage` is the worker's cumulative usage (it
    /// replaces the stored numbers); `result` and `error` replace theirs.
    pub async fn update_worker(
        &self,
        turn: TurnId,
        worker_id: &WorkerId,
        status: WorkerStatus,
        result: Option<&str>,
        error: Option<&str>,
        usage: Usage,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let id = worker_id.0.clone();
        let result = result.map(str::to_owned);
        let error = error.map(str::to_owned);
        let done = self
            .db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "UPDATE workers SET status = $1, result = $2, error = $3, \
                         input_tokens = $4, output_tokens = $5, cached_input_tokens = $6, \
                         cache_write_tokens = $7, updated_at = $8 \
                         WHERE turn_id = $9 AND worker_id = $10",
                    )
                    .bind(status.as_str())
                    .bind(result)
                    .bind(error)
                    .bind(tokens_to_db(usage.input_tokens))
                    .bind(tokens_to_db(usage.output_tokens))
                    .bind(tokens_to_db(usage.cached_input_tokens))
                    .bind(tokens_to_db(usage.cache_write_tokens))
                    .bind(now)
                    .bind(turn.0)
                    .bind(id)
                    .execute(conn)
                    .await
                })
            })
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "worker {worker_id} of turn {}",
                turn.0
            )));
        }
        Ok(())
    }

    /// Marks every turn still `running` as `failed` (and its running workers
    /// as `cancelled`), with an error saying the service stopped. A
    /// project's turn stays `running` (the project resumes), but its
    /// running workers are cancelled the same way. Called on
    /// start, when no turn can be running yet; returns how many turns.
    ///
    /// With several instances on one Postgres database this would also fail
    /// the other instances' live turns: a cluster uses
    /// [`Store::fail_abandoned_turns_of`] for the conversations it takes over.
    pub async fn fail_abandoned_turns(&self) -> Result<u64, StoreError> {
        self.fail_abandoned(None).await
    }

    /// [`Store::fail_abandoned_turns`] of one conversation: what a new owner
    /// closes when it takes over a conversation a dead instance held.
    pub async fn fail_abandoned_turns_of(&self, key: &ConversationKey) -> Result<u64, StoreError> {
        self.fail_abandoned(Some(key.to_string())).await
    }

    async fn fail_abandoned(&self, conversation: Option<String>) -> Result<u64, StoreError> {
        let now = now_ms();
        let turns = self
            .db
            .run(move |conn| {
                Box::pin(async move {
                    // `status = 'running'` is written out: the partial index
                    // `turns_running` serves only that literal.
                    let of_conversation = if conversation.is_some() {
                        "AND conversation = $5"
                    } else {
                        ""
                    };
                    let mut tx = conn.begin().await?;
                    let workers = format!(
                        "UPDATE workers SET status = $1, error = COALESCE(error, $2), \
                         updated_at = $3 WHERE status = $4 \
                         AND turn_id IN (SELECT id FROM turns WHERE status = 'running' {of_conversation})"
                    );
                    let query = sqlx::query(&workers)
                        .bind(WorkerStatus::Cancelled.as_str())
                        .bind(ABANDONED)
                        .bind(now)
                        .bind(WorkerStatus::Running.as_str());
                    let query = match &conversation {
                        Some(conversation) => query.bind(conversation.clone()),
                        None => query,
                    };
                    query.execute(&mut *tx).await?;
                    // A project's turn stays running: the project resumes.
                    let of_conversation = if conversation.is_some() {
                        "AND conversation = $4"
                    } else {
                        ""
                    };
                    let turns = format!(
                        "UPDATE turns SET status = $1, error = COALESCE(error, $2), \
                         finished_at = $3 WHERE status = 'running' {of_conversation} \
                         AND id NOT IN (SELECT turn_id FROM projects)"
                    );
                    let query = sqlx::query(&turns)
                        .bind(TurnStatus::Failed.as_str())
                        .bind(ABANDONED)
                        .bind(now);
                    let query = match conversation {
                        Some(conversation) => query.bind(conversation),
                        None => query,
                    };
                    let turns = query.execute(&mut *tx).await?;
                    tx.commit().await?;
                    Ok(turns)
                })
            })
            .await?;
        Ok(turns.rows_affected())
    }

    /// One turn, or `None` if there is no such turn.
    pub async fn load_turn(&self, turn: TurnId) -> Result<Option<StoredTurn>, StoreError> {
        type Row = (
            i64,
            Option<i64>,
            String,
            String,
            String,
            i64,
            i64,
            i64,
            i64,
            Option<String>,
            i64,
            Option<i64>,
        );
        let row: Option<Row> = self
            .db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query_as(
                        "SELECT id, inbound_message_id, mode, model, status, input_tokens, \
                         output_tokens, cached_input_tokens, cache_write_tokens, error, \
                         started_at, finished_at FROM turns WHERE id = $1",
                    )
                    .bind(turn.0)
                    .fetch_optional(conn)
                    .await
                })
            })
            .await?;
        Ok(row.map(
            |(
                id,
                inbound,
                mode,
                model,
                status,
                input,
                output,
                cached,
                written,
                error,
                started_at,
                finished_at,
            )| {
                StoredTurn {
                    id: TurnId(id),
                    inbound: inbound.map(MessageId),
                    mode: Mode::parse(&mode).unwrap_or_default(),
                    model,
                    status: TurnStatus::parse(&status).unwrap_or(TurnStatus::Failed),
                    usage: usage_from_db(input, output, cached, written),
                    error,
                    started_at,
                    finished_at,
                }
            },
        ))
    }

    /// The workers a turn started, in the order they were recorded.
    pub async fn workers(&self, turn: TurnId) -> Result<Vec<StoredWorker>, StoreError> {
        let rows = self
            .db
            .run(move |conn| Box::pin(worker_rows(conn, turn.0)))
            .await?;
        Ok(rows.into_iter().map(stored_worker).collect())
    }
}

/// The workers of turn `turn` as stored, in the order they were recorded:
/// the one query for [`Store::workers`] and the dashboard's turn tree.
pub(super) async fn worker_rows(
    conn: &mut AnyConnection,
    turn: i64,
) -> Result<Vec<WorkerRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT worker_id, label, brief, effort, model, status, result, error, \
         input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, \
         created_at, updated_at FROM workers WHERE turn_id = $1 \
         ORDER BY created_at, worker_id",
    )
    .bind(turn)
    .fetch_all(conn)
    .await
}

/// A stored worker row as the engine reads it.
fn stored_worker(row: WorkerRow) -> StoredWorker {
    StoredWorker {
        worker_id: WorkerId(row.worker_id),
        label: row.label,
        brief: row.brief,
        effort: row.effort.parse::<Effort>().unwrap_or_default(),
        model: row.model,
        status: parse_worker_status(&row.status),
        result: row.result,
        error: row.error,
        usage: usage_from_db(
            row.input_tokens,
            row.output_tokens,
            row.cached_input_tokens,
            row.cache_write_tokens,
        ),
    }
}

/// Reads a stored worker status; an unknown word reads as `Error`.
fn parse_worker_status(word: &str) -> WorkerStatus {
    [
        WorkerStatus::Running,
        WorkerStatus::Done,
        WorkerStatus::Error,
        WorkerStatus::Cancelled,
        WorkerStatus::TimedOut,
        WorkerStatus::Closed,
    ]
    .into_iter()
    .find(|status| status.as_str() == word)
    .unwrap_or(WorkerStatus::Error)
}

/// A turn written whole at its end (a single-mode turn).
pub(super) struct WholeTurn<'a> {
    pub key: &'a str,
    pub inbound: Option<MessageId>,
    pub mode: Mode,
    pub model: &'a str,
    pub started_at: i64,
}

/// Inserts a whole turn that ended at `now`; returns its id.
pub(super) async fn insert_whole_turn(
    conn: &mut sqlx::AnyConnection,
    turn: &WholeTurn<'_>,
    status: TurnStatus,
    usage: Usage,
    error: Option<&str>,
    now: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO turns (conversation, inbound_message_id, mode, model, \
         status, input_tokens, output_tokens, cached_input_tokens, \
         cache_write_tokens, error, started_at, finished_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(turn.key)
    .bind(turn.inbound.map(|message| message.0))
    .bind(turn.mode.as_str())
    .bind(turn.model)
    .bind(status.as_str())
    .bind(tokens_to_db(usage.input_tokens))
    .bind(tokens_to_db(usage.output_tokens))
    .bind(tokens_to_db(usage.cached_input_tokens))
    .bind(tokens_to_db(usage.cache_write_tokens))
    .bind(error)
    .bind(turn.started_at)
    .bind(now)
    .fetch_all(conn)
    .await
    .and_then(one_row)
}

/// Writes how a started turn ended; returns how many rows changed (0: no
/// such turn).
pub(super) async fn update_turn_end(
    conn: &mut sqlx::AnyConnection,
    turn: TurnId,
    status: TurnStatus,
    usage: Usage,
    error: Option<&str>,
) -> Result<u64, sqlx::Error> {
    let finished_at = (status != TurnStatus::Running).then(now_ms);
    sqlx::query(
        "UPDATE turns SET status = $1, input_tokens = $2, output_tokens = $3, \
         cached_input_tokens = $4, cache_write_tokens = $5, \
         error = $6, finished_at = $7 WHERE id = $8",
    )
    .bind(status.as_str())
    .bind(tokens_to_db(usage.input_tokens))
    .bind(tokens_to_db(usage.output_tokens))
    .bind(tokens_to_db(usage.cached_input_tokens))
    .bind(tokens_to_db(usage.cache_write_tokens))
    .bind(error)
    .bind(finished_at)
    .bind(turn.0)
    .execute(conn)
    .await
    .map(|done| done.rows_affected())
}
