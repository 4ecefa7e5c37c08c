//! Keeping the store fast and watched: remembering which conversation rows
//! exist, checkpointing SQLite's write-ahead log off the commit path, and
//! on the same tick noticing a database file deleted or replaced under the
//! store (`health.rs`).

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use sqlx::{AnyConnection, Connection};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::db::Db;
use super::health::FileWatch;

/// Creates the conversation's row (without settings) if it does not exist
/// yet, so rows that reference it can be inserted. Rows are never deleted,
/// so a key seen once is remembered and costs no query again.
pub(super) async fn ensure_conversation(
    conn: &mut AnyConnection,
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
    .execute(conn)
    .await?;
    known.insert(key);
    Ok(())
}

/// How many keys are remembered before the set starts over (it is a cache).
const KNOWN_LIMIT: usize = 100_000;
/// How often the write-ahead log is checkpointed in the background: often
/// enough that each pass has little to copy and sync (under the engine
/// benchmark's load, once a second meant syncs of about 100 MB).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// How often the upkeep task checks that the database file is still the one
/// the store opened (a cheap `stat`; after a failed checkpoint at once).
const FILE_CHECK_EVERY: Duration = Duration::from_secs(2);

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

/// Checkpoints a SQLite file database's write-ahead log every
/// [`CHECKPOINT_EVERY`] from a background task, instead of inline in
/// whichever commit crosses SQLite's threshold (its connections run with
/// `wal_autocheckpoint = 0`), and watches the database file (`watch`)
/// every [`FILE_CHECK_EVERY`] and after a failed checkpoint.
///
/// In two steps, so that the store's statements wait for little of it:
/// 1. PASSIVE checkpoints on the task's own connection, beside the store's
///    writes (they never block a writer): they copy the log into the
///    database and sync both, the slow part. A pass starts again while the
///    writer added more than [`CATCH_UP_FRAMES`] during the last one.
/// 2. One more PASSIVE checkpoint between the store's statements, on its
///    connection: it copies only what was written since, and with no write
///    running beside it, it reaches the end of the log, so the next write
///    starts the log over. (Under steady writes a checkpoint beside the
///    writer never reaches the end, and the log would grow without bound.)
///
/// While nothing is written, a tick costs one side pass that finds the log
/// as the last final pass left it.
///
/// The task stops when the returned guard (held by every `Store` clone) is
/// dropped, or when the store's `db` closes. `side` is the task's own
/// connection for the passes beside the writer (without one, only the file
/// is watched).
pub(super) fn start_checkpointer(
    mut side: Option<AnyConnection>,
    db: Db,
    mut watch: FileWatch,
) -> DropGuard {
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    tokio::spawn(async move {
        let mut settled = None;
        let mut ticks = tokio::time::interval(CHECKPOINT_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_file_check = tokio::time::Instant::now();
        loop {
            tokio::select! {
                biased;
                () = stopped.cancelled() => break,
                _ = ticks.tick() => {}
            }
            if db.is_closed() {
                break;
            }
            let mut check_file = last_file_check.elapsed() >= FILE_CHECK_EVERY;
            if let Some(side) = &mut side {
                match checkpoint(side, &db, &mut settled).await {
                    Ok(()) => watch.checkpoint_succeeded(),
                    // Closing (or closed) under the checkpoint: not a fault.
                    Err(_) if db.is_closed() => break,
                    Err(e @ (super::StoreError::Busy(_) | super::StoreError::Closed)) => {
                        tracing::debug!(error = %e, "background WAL checkpoint failed");
                    }
                    Err(e) => {
                        watch.checkpoint_failed(&e);
                        check_file = true;
                    }
                }
            }
            if check_file {
                watch.check_file().await;
                last_file_check = tokio::time::Instant::now();
            }
        }
        if let Some(side) = side {
            let _ = side.close().await;
        }
    });
    stop.drop_guard()
}

/// Frames the writer may add during a pass beside it before the final pass
/// runs between its statements (about 8 MB of log at 4 KiB pages).
const CATCH_UP_FRAMES: i64 = 2_000;
/// Passes beside the writer, at most, before the final one.
const SIDE_PASSES: usize = 4;

/// One checkpoint in the two steps of [`start_checkpointer`]. `settled` is
/// the log's length after the last final pass: if the log still has that
/// length, nothing was written since and there is nothing to do.
async fn checkpoint(
    side: &mut AnyConnection,
    db: &Db,
    settled: &mut Option<i64>,
) -> Result<(), super::StoreError> {
    let mut frames_before = None;
    for _ in 0..SIDE_PASSES {
        let frames = passive_checkpoint(&mut *side).await?;
        if frames == 0 || (frames_before.is_none() && Some(frames) == *settled) {
            return Ok(());
        }
        let added = frames_before.map_or(frames, |before| frames - before);
        frames_before = Some(frames);
        if added <= CATCH_UP_FRAMES {
            break;
        }
    }
    *settled = Some(db.run(|conn| Box::pin(passive_checkpoint(conn))).await?);
    Ok(())
}

/// Runs `PRAGMA wal_checkpoint(PASSIVE)`; returns the frames in the log.
async fn passive_checkpoint(conn: &mut AnyConnection) -> Result<i64, sqlx::Error> {
    let (_busy, frames, _copied): (i64, i64, i64) =
        sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(conn)
            .await?;
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use baton_channel::{Author, ConversationKey};

    use super::{checkpoint, passive_checkpoint};
    use sqlx::Connection;

    use crate::store::{Store, connect_sqlite, prepare_url};

    #[tokio::test]
    async fn a_checkpoint_lets_the_log_start_over() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("wal.db").display());
        let mut store = Store::connect(&url).await.unwrap();
        // Stop the background checkpoints before their first (the task
        // has not run yet): a checkpoint beside this test's would find the
        // log busy.
        store._checkpointer = None;
        let (_, url, _) = prepare_url(&url).unwrap();
        let mut side = connect_sqlite(&url).await.unwrap();
        let key = ConversationKey::telegram(1, None);
        let author = Author {
            id: "1".into(),
            name: "Ann".into(),
        };
        for _ in 0..50 {
            store
                .record_inbound(&key, &author, "hello", None)
                .await
                .unwrap();
        }
        checkpoint(&mut side, &store.db, &mut None).await.unwrap();
        store
            .record_inbound(&key, &author, "after", None)
            .await
            .unwrap();
        // The log holds the last write only: the first 50 were copied into
        // the database and the log started over.
        let frames = passive_checkpoint(&mut side).await.unwrap();
        assert!((1..10).contains(&frames), "{frames} frames in the log");
        assert_eq!(store.history(&key, 100).await.unwrap().len(), 51);
        side.close().await.unwrap();
        store.close().await;
    }
}
