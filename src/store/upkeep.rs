//! Keeping the store fast: remembering which conversation rows exist, and
//! checkpointing SQLite's write-ahead log off the commit path.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use sqlx::{AnyPool, Executor};

/// Creates the conversation's row (without settings) if it does not exist
/// yet, so rows that reference it can be inserted. Rows are never deleted,
/// so a key seen once is remembered and costs no query again.
pub(super) async fn ensure_conversation(
    pool: &AnyPool,
    known: &KnownConversations,
    key: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    if known.contains(key) {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO conversations (key, created_at, updated_at) VALUES ($1, $2, $2) \
         ON CONFLICT (key) DO NOTHING",
    )
    .bind(key)
    .bind(now)
    .execute(pool)
    .await?;
    known.insert(key);
    Ok(())
}
use tokio_util::sync::{CancellationToken, DropGuard};

/// How many keys are remembered before the set starts over (it is a cache).
const KNOWN_LIMIT: usize = 100_000;
/// How often the write-ahead log is checkpointed in the background.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Conversation keys known to have a row. Rows are never deleted, so a key
/// seen once needs no `INSERT .. ON CONFLICT DO NOTHING` again.
#[derive(Debug, Default)]
pub(super) struct KnownConversations {
    /// A std mutex: never held across an `.await`.
    keys: Mutex<HashSet<String>>,
}

impl KnownConversations {
    pub(super) fn contains(&self, key: &str) -> bool {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(key)
    }

    pub(super) fn insert(&self, key: &str) {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if keys.len() >= KNOWN_LIMIT {
            keys.clear();
        }
        keys.insert(key.to_owned());
    }
}

/// Checkpoints a SQLite file database's write-ahead log every second from a
/// background task, instead of inline in whichever commit crosses SQLite's
/// threshold (its connections run with `wal_autocheckpoint = 0`). A PASSIVE
/// checkpoint never blocks writers, so commits no longer wait on an fsync.
/// The task stops when the returned guard (held by every `Store` clone) is
/// dropped, or when the pool closes.
pub(super) fn start_checkpointer(pool: AnyPool) -> DropGuard {
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(CHECKPOINT_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stopped.cancelled() => break,
                _ = ticks.tick() => {}
            }
            if pool.is_closed() {
                break;
            }
            if let Err(e) = pool.execute("PRAGMA wal_checkpoint(PASSIVE)").await {
                tracing::debug!(error = %e, "background WAL checkpoint failed");
            }
        }
    });
    stop.drop_guard()
}
