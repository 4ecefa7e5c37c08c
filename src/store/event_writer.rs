//! The background writer: event log entries, and the outbox's "sent"
//! marks, arrive over a bounded channel and one task writes them in
//! batches (one multi-row `INSERT`, one `UPDATE` for the marks, in one
//! transaction), so a turn does not wait for them and many conversations
//! share each write. A batch gathers for up to [`LINGER`] (a flush cuts
//! that short). Order is kept: entries are written in the order they were
//! sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::Connection;
use tokio::sync::{mpsc, oneshot, watch};

use super::db::Db;
use super::upkeep::{KnownConversations, ensure_conversation};

/// Entries waiting before senders wait too (backpressure, not loss).
const QUEUE: usize = 1024;
/// Rows in one `INSERT` (6 parameters each; SQLite allows 32,766).
const MAX_BATCH: usize = 128;
/// How long the first entry of a batch waits for others. Nothing waits on
/// the log but its readers, and they flush it first.
const LINGER: Duration = Duration::from_millis(10);

/// One entry of the event log.
#[derive(Debug)]
pub(super) struct NewEvent {
    pub conversation: String,
    pub turn: Option<i64>,
    pub kind: &'static str,
    pub source: String,
    pub body: String,
    pub created_at: i64,
}

/// An outbox row to mark as sent.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mark {
    pub outbox: i64,
    pub sent_at: i64,
}

enum Command {
    Append(NewEvent),
    Mark(Mark),
    /// Answered once every entry sent before it is written.
    Flush(oneshot::Sender<()>),
}

/// The sending side; the writer task ends when the last clone is dropped.
#[derive(Debug, Clone)]
pub(super) struct EventWriter {
    commands: mpsc::Sender<Command>,
    /// Entries whose write failed (they are lost; the log says so).
    lost: Arc<AtomicU64>,
    /// Counts entries queued, to wake live readers (`/api/events/stream`).
    appended: Arc<watch::Sender<u64>>,
}

impl EventWriter {
    /// Starts the writer task on `db`.
    pub(super) fn start(db: Db, known: Arc<KnownConversations>) -> EventWriter {
        let (commands, queue) = mpsc::channel(QUEUE);
        let lost = Arc::new(AtomicU64::new(0));
        tokio::spawn(write_batches(db, known, queue, lost.clone()));
        EventWriter {
            commands,
            lost,
            appended: Arc::new(watch::channel(0).0),
        }
    }

    /// Changes after every entry queued (flush, then read, to see it).
    pub(super) fn subscribe(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// How many entries could not be written since the store started.
    pub(super) fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Queues an entry; `false` if the writer is gone.
    pub(super) async fn append(&self, event: NewEvent) -> bool {
        let sent = self.commands.send(Command::Append(event)).await.is_ok();
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
        sent
    }

    /// Queues an outbox mark; `false` if the writer is gone.
    pub(super) async fn mark(&self, mark: Mark) -> bool {
        self.commands.send(Command::Mark(mark)).await.is_ok()
    }

    /// Waits until everything queued so far is written (or failed).
    pub(super) async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.commands.send(Command::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

async fn write_batches(
    db: Db,
    known: Arc<KnownConversations>,
    mut queue: mpsc::Receiver<Command>,
    lost: Arc<AtomicU64>,
) {
    let mut flushes = Vec::new();
    while let Some(command) = queue.recv().await {
        let mut batch = Vec::new();
        let mut marks = Vec::new();
        // Gather until the batch is full, a flush is asked for, or the
        // first entry has waited LINGER: fewer, larger writes put fewer
        // pages in SQLite's log (and take fewer trips to the connection).
        let linger = tokio::time::sleep(LINGER);
        tokio::pin!(linger);
        let mut next = Some(command);
        while let Some(command) = next.take() {
            match command {
                Command::Append(event) => batch.push(event),
                Command::Mark(mark) => marks.push(mark),
                Command::Flush(done) => flushes.push(done),
            }
            if batch.len() + marks.len() >= MAX_BATCH || !flushes.is_empty() {
                break;
            }
            next = tokio::select! {
                biased;
                command = queue.recv() => command,
                () = &mut linger => None,
            };
        }
        if !batch.is_empty() || !marks.is_empty() {
            let entries = batch.len();
            let marked = marks.len();
            let known = known.clone();
            let written = db
                .run(move |conn| Box::pin(async move { write(conn, &known, &batch, &marks).await }))
                .await;
            if let Err(e) = written {
                let total = lost.fetch_add(entries as u64, Ordering::Relaxed) + entries as u64;
                // An unmarked reply is posted again after a restart.
                tracing::warn!(error = %e, entries, lost = total, outbox_marks = marked, "could not write to the event log");
            }
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Writes one batch in one transaction: the entries, then the marks.
async fn write(
    conn: &mut sqlx::AnyConnection,
    known: &KnownConversations,
    batch: &[NewEvent],
    marks: &[Mark],
) -> Result<(), sqlx::Error> {
    // Outside the transaction: `known` must not remember a row that a
    // rollback took back.
    for event in batch {
        ensure_conversation(conn, known, &event.conversation, event.created_at).await?;
    }
    if marks.is_empty() {
        return insert(conn, batch).await;
    }
    let mut tx = conn.begin().await?;
    insert(&mut tx, batch).await?;
    mark_sent(&mut tx, marks).await?;
    tx.commit().await
}

/// Marks outbox rows sent: one statement (rows of one batch are marked
/// within milliseconds of each other, so they share the newest time).
async fn mark_sent(conn: &mut sqlx::AnyConnection, marks: &[Mark]) -> Result<(), sqlx::Error> {
    let sent_at = marks.iter().map(|m| m.sent_at).max().unwrap_or_default();
    let mut sql = String::from("UPDATE outbox SET sent_at = $1 WHERE id IN (");
    for row in 0..marks.len() {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("${}", row + 2));
    }
    sql.push(')');
    let mut query = sqlx::query(&sql).bind(sent_at);
    for mark in marks {
        query = query.bind(mark.outbox);
    }
    query.execute(conn).await?;
    Ok(())
}

/// Writes the entries: one statement.
async fn insert(conn: &mut sqlx::AnyConnection, batch: &[NewEvent]) -> Result<(), sqlx::Error> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut sql = String::from(
        "INSERT INTO events (conversation, turn_id, kind, source, body, created_at) VALUES ",
    );
    for row in 0..batch.len() {
        let first = row * 6 + 1;
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${})",
            first,
            first + 1,
            first + 2,
            first + 3,
            first + 4,
            first + 5
        ));
    }
    let mut query = sqlx::query(&sql);
    for event in batch {
        query = query
            .bind(event.conversation.as_str())
            .bind(event.turn)
            .bind(event.kind)
            .bind(event.source.as_str())
            .bind(event.body.as_str())
            .bind(event.created_at);
    }
    query.execute(conn).await?;
    Ok(())
}
