//! The sqlx repository: conversations and their settings, the transcript,
//! turns, workers, and the event log.
//!
//! One [`Store`] over sqlx's `Any` driver serves SQLite (the default, in WAL
//! mode) and Postgres. The SQL is portable: `$N` placeholders, only
//! i64/f64/String/bool columns (booleans are read back through
//! `CASE WHEN .. THEN 1 ELSE 0 END`, since SQLite hands `Any` an integer),
//! timestamps as unix milliseconds computed in Rust, and column names that
//! are reserved words in neither (`verbose`, reserved in Postgres, is always
//! written quoted: `"verbose"`). The versioned migrations in
//! `migrations/sqlite` and `migrations/postgres` (equivalent schemas) are
//! embedded in the binary and applied on [`Store::connect`]. The store tests
//! run every scenario on both (Postgres on a throwaway server).
//!
//! This file owns the [`Store`] handle and connecting; the queries live in
//! one module per area:
//!
//! - `conversations.rs`: settings and the context start (`/reset`);
//! - `transcript.rs`: users' messages (deduplicated) and replies;
//! - `turns.rs`: turns, their workers, usage, crash recovery;
//! - `recovery.rs`: messages a stop left unanswered, and a busy
//!   conversation's messages waiting in the store;
//! - `projects.rs`: long-running projects (each with its boss's turn);
//! - `usage.rs`: token totals per model (costs, budgets, `/status`);
//! - `upkeep.rs`: the cache of known conversations, WAL checkpoints;
//! - `titles.rs`: conversations' readable titles, written when they change;
//! - `health.rs`: [`StoreHealth`], whether the SQLite file is still there;
//! - `events.rs` and `event_writer.rs`: the event log, written in batches;
//! - `browse.rs`: paged read-only queries for the dashboard and `/api`;
//! - `db.rs`: the connections statements run on (SQLite: one connection
//!   owned by a task; Postgres: a pool);
//! - `error.rs`: [`StoreError`]; `model.rs`: the record types.
//!
//! Usage accounting: a turn row holds the orchestrator's own tokens only and
//! each worker row its worker's cumulative tokens, so [`Store::usage_since`]
//! adds both.

mod attachments;
mod browse;
mod conversations;
mod db;
mod error;
mod event_writer;
mod events;
mod health;
mod leases;
mod model;
mod outbox;
mod projects;
mod recovery;
mod titles;
mod transcript;
mod turn_end;
mod turns;
mod upkeep;
mod usage;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, Connection, Executor};

use db::Db;

pub use browse::{ConversationRow, EventRow, ProjectRow, TurnRow, TurnTree, WorkerRow};
pub use error::StoreError;
pub use health::StoreHealth;
pub use leases::{CONVERSATION_LEASE, HeldLease, conversation_lease};
pub use model::{
    EventKind, MessageId, NewWorker, ProjectId, ProjectStatus, Role, StoredEvent, StoredMessage,
    StoredProject, StoredTurn, StoredWorker, TurnId, TurnStatus,
};
pub use outbox::{OutboxId, StoredReply, UnsentReply};
pub use projects::NewProject;
pub use recovery::UnansweredMessage;
pub use turn_end::{EndingTurn, ReplyToStore, UnderLease};
pub use turns::TurnEnd;
pub use usage::ModelUsage;

/// The SQLite schema, embedded at compile time.
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
/// The Postgres schema, embedded at compile time; equivalent to SQLite's.
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// Per-connection settings for SQLite: WAL lets readers run beside the one
/// writer, NORMAL is durable enough with WAL (a power cut may lose the last
/// commits, never corrupt), and writers wait up to 5 s for the lock.
/// (`journal_mode = WAL` is persistent in the file and a no-op once set; the
/// store's connection sets it before the checkpointer's opens.)
/// Commits never checkpoint the log: a background task does (`upkeep.rs`),
/// and when the log starts over its file is cut back to 64 MiB.
const SQLITE_PRAGMAS: [&str; 6] = [
    "PRAGMA busy_timeout = 5000",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA wal_autocheckpoint = 0",
    "PRAGMA journal_size_limit = 67108864",
];

/// How long a call waits for a pooled Postgres connection before [`StoreError::PoolTimeout`].
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The database kind behind a [`Store`], chosen by the URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite://path` or `sqlite::memory:`.
    Sqlite,
    /// `postgres://` or `postgresql://`.
    Postgres,
}

/// The repository: a cheap-to-clone handle on the database's connections.
#[derive(Debug, Clone)]
pub struct Store {
    /// Where every query runs.
    db: Db,
    /// Which database the store talks to.
    backend: Backend,
    /// Conversation rows known to exist.
    known: Arc<upkeep::KnownConversations>,
    /// The titles last written (`note_title` skips the unchanged).
    titles: Arc<titles::KnownTitles>,
    /// Writes the event log in batches, off the callers' path.
    events: event_writer::EventWriter,
    /// Stops the background WAL checkpoints (SQLite files) with the last clone.
    _checkpointer: Option<Arc<tokio_util::sync::DropGuard>>,
    /// What the upkeep task last found about the SQLite file (always
    /// [`StoreHealth::Ok`] without one).
    health: tokio::sync::watch::Receiver<StoreHealth>,
}

impl Store {
    /// Connects and applies the migrations.
    ///
    /// `sqlite://path/to/file.db` (relative to the working directory;
    /// `sqlite:///abs/path.db` for an absolute path) creates the parent
    /// folders and the file if missing and runs in WAL mode with
    /// `synchronous=NORMAL`, a 5 s busy timeout and foreign keys on.
    /// `sqlite::memory:` is a private in-memory database for tests (one
    /// connection, kept open until [`Store::close`]). `postgres://...`
    /// connects to a server whose database already exists.
    ///
    /// A SQLite file that cannot be opened, created or written (a missing
    /// or read-only folder, a read-only file) is one
    /// [`StoreError::Open`] naming the file and what to check; the store
    /// tries a write before it answers, so this shows here and not at the
    /// first message.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        install_drivers();
        let (backend, url, file) = prepare_url(url)?;
        let db = match backend {
            Backend::Sqlite => {
                // One connection serves every statement (see `db.rs`); an
                // in-memory database lives exactly as long as it.
                let open_error = |error| error::open_error(file.as_deref(), error);
                let mut conn = connect_sqlite(&url).await.map_err(open_error)?;
                if let Err(error) = prepare_sqlite(&mut conn).await {
                    let _ = conn.close().await;
                    return Err(open_error(error));
                }
                Db::own(conn)
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect(&url)
                    .await?;
                if let Err(error) = POSTGRES_MIGRATIONS.run(&pool).await {
                    pool.close().await;
                    return Err(error.into());
                }
                Db::Pool(pool)
            }
        };
        let (checkpointer, health) = match file {
            Some(file) => {
                let (watch, health) = health::FileWatch::new(&file);
                // Opened now, while the file is surely the store's: opened
                // later, after the file was deleted, it would create an
                // empty one.
                let side = match connect_sqlite(&url).await {
                    Ok(conn) => Some(conn),
                    Err(e) => {
                        tracing::warn!(error = %e, "no connection for background WAL checkpoints");
                        None
                    }
                };
                let guard = upkeep::start_checkpointer(side, db.clone(), watch);
                (Some(Arc::new(guard)), health)
            }
            None => (None, tokio::sync::watch::channel(StoreHealth::Ok).1),
        };
        let known = Arc::new(upkeep::KnownConversations::default());
        let events = event_writer::EventWriter::start(db.clone(), known.clone());
        Ok(Store {
            db,
            backend,
            known,
            titles: Arc::default(),
            events,
            _checkpointer: checkpointer,
            health,
        })
    }

    /// Whether the database file is still the one the store opened, and
    /// its last background checkpoint worked (checked every few seconds;
    /// always [`StoreHealth::Ok`] for Postgres and in-memory SQLite). For a
    /// readiness check.
    pub fn health(&self) -> StoreHealth {
        self.health.borrow().clone()
    }

    /// Writes the queued event log entries, then closes the connections
    /// once the statements already queued have run (SQLite checkpoints its
    /// WAL on the last close). Later calls fail with [`StoreError::Closed`].
    pub async fn close(&self) {
        self.flush_events().await;
        self.db.close().await;
    }

    /// Which database this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// This store on a small Postgres pool of its own (`url` is the one it
    /// was opened with), for statements that must not wait behind the
    /// turns' (a cluster's heartbeat and leases); on SQLite, a plain clone.
    pub async fn with_own_pool(&self, url: &str, connections: u32) -> Result<Store, StoreError> {
        match self.db {
            Db::Pool(_) => {
                let pool = AnyPoolOptions::new()
                    .max_connections(connections)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect(url)
                    .await?;
                let mut side = self.clone();
                side.db = Db::Pool(pool);
                Ok(side)
            }
            _ => Ok(self.clone()),
        }
    }

    /// Runs `job` on one of the store's connections, for checks and tests
    /// that need SQL the store has no method for (such as
    /// `PRAGMA journal_mode`).
    pub async fn with_connection<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, sqlx::Error>>
            + Send
            + 'static,
    {
        self.db.run(job).await
    }
}

/// Migrates a freshly opened SQLite database, then makes a write that it
/// rolls back, so that a database that can be read but not written (a
/// read-only file, or folder) fails here rather than at the first message.
/// (A statement that would change no row is not enough: SQLite runs it
/// without taking the write lock.)
async fn prepare_sqlite(conn: &mut AnyConnection) -> Result<(), StoreError> {
    migrate_sqlite(conn).await?;
    conn.execute("BEGIN").await?;
    let written = conn
        .execute("CREATE TABLE baton_write_check (x INTEGER)")
        .await;
    let rolled_back = conn.execute("ROLLBACK").await;
    written?;
    rolled_back?;
    Ok(())
}

/// Applies the SQLite migrations with foreign keys off, SQLite's way to
/// rebuild a table that others reference (`0004_plain_row_ids.sql`), then
/// checks every foreign key and turns them on.
async fn migrate_sqlite(conn: &mut AnyConnection) -> Result<(), StoreError> {
    conn.execute("PRAGMA foreign_keys = OFF").await?;
    SQLITE_MIGRATIONS.run_direct(&mut *conn).await?;
    let broken = sqlx::query("PRAGMA foreign_key_check")
        .fetch_all(&mut *conn)
        .await?;
    if !broken.is_empty() {
        let error = sqlx::Error::Protocol(format!(
            "{} rows break foreign keys after migrating",
            broken.len()
        ));
        return Err(sqlx::migrate::MigrateError::Execute(error).into());
    }
    conn.execute("PRAGMA foreign_keys = ON").await?;
    Ok(())
}

/// Opens a SQLite connection set up with [`SQLITE_PRAGMAS`].
async fn connect_sqlite(url: &str) -> Result<AnyConnection, StoreError> {
    let mut conn = AnyConnection::connect(url).await?;
    for pragma in SQLITE_PRAGMAS {
        if let Err(error) = conn.execute(pragma).await {
            let _ = conn.close().await;
            return Err(error.into());
        }
    }
    Ok(conn)
}

/// Registers sqlx's SQLite and Postgres drivers with `Any`, once a process.
fn install_drivers() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(sqlx::any::install_default_drivers);
}

/// Picks the backend from the URL and, for a SQLite file, creates its folder
/// and asks SQLite to create the file (`mode=rwc`) unless the URL sets a
/// mode. Returns the backend, the URL to connect with, and the SQLite
/// database's file (`None` for Postgres and in-memory SQLite).
fn prepare_url(url: &str) -> Result<(Backend, String, Option<PathBuf>), StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Backend::Postgres, url.to_owned(), None));
    }
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return Err(StoreError::UnsupportedUrl(url.to_owned()));
    };
    let (path, params) = match rest.split_once('?') {
        Some((path, params)) => (path, Some(params)),
        None => (rest, None),
    };
    let has_param = |name: &str| {
        params.is_some_and(|params| {
            params
                .split('&')
                .any(|pair| pair.split('=').next() == Some(name))
        })
    };
    let in_memory = path == ":memory:" || params.is_some_and(|p| p.contains("mode=memory"));
    if in_memory {
        return Ok((Backend::Sqlite, url.to_owned(), None));
    }
    if has_param("mode") {
        return Ok((Backend::Sqlite, url.to_owned(), Some(PathBuf::from(path))));
    }
    if path.is_empty() {
        return Err(StoreError::UnsupportedUrl(url.to_owned()));
    }
    if let Some(parent) = Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let separator = if params.is_some() { '&' } else { '?' };
    Ok((
        Backend::Sqlite,
        format!("{url}{separator}mode=rwc"),
        Some(PathBuf::from(path)),
    ))
}

/// Now, in unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A token count as stored (saturating at `i64::MAX`).
fn tokens_to_db(tokens: u64) -> i64 {
    i64::try_from(tokens).unwrap_or(i64::MAX)
}

/// The first row an `INSERT … RETURNING` gave back, read with
/// `fetch_all`: sqlx's `fetch_one` and `fetch_optional` stop after the
/// first row, before SQLite commits the statement at its last step, and so
/// never see a commit that failed (a full disk returned an id for a row
/// that was never written). Every write that returns a row goes through
/// this or through an explicit transaction.
fn first_row<T>(rows: Vec<T>) -> Option<T> {
    rows.into_iter().next()
}

/// Like [`first_row`], for a statement that always returns one.
fn one_row<T>(rows: Vec<T>) -> Result<T, sqlx::Error> {
    first_row(rows).ok_or(sqlx::Error::RowNotFound)
}

/// A stored token count (a negative one, which the service never writes,
/// reads as 0).
fn tokens_from_db(tokens: i64) -> u64 {
    u64::try_from(tokens).unwrap_or(0)
}

/// A [`Usage`](crate::domain::Usage) from its four stored columns: input,
/// output, cached input and cache-write tokens.
fn usage_from_db(input: i64, output: i64, cached: i64, written: i64) -> crate::domain::Usage {
    crate::domain::Usage {
        input_tokens: tokens_from_db(input),
        output_tokens: tokens_from_db(output),
        cached_input_tokens: tokens_from_db(cached),
        cache_write_tokens: tokens_from_db(written),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_the_backend_and_add_create_mode() {
        let (backend, url, file) = prepare_url("sqlite::memory:").unwrap();
        assert_eq!(
            (backend, url.as_str(), file),
            (Backend::Sqlite, "sqlite::memory:", None)
        );

        let dir = std::env::temp_dir().join(format!("baton-store-url-{}", std::process::id()));
        let file = dir.join("sub/baton.db");
        let (_, url, path) = prepare_url(&format!("sqlite://{}", file.display())).unwrap();
        assert_eq!(url, format!("sqlite://{}?mode=rwc", file.display()));
        assert_eq!(path, Some(file.clone()));
        assert!(dir.join("sub").is_dir());
        std::fs::remove_dir_all(&dir).unwrap();

        let (_, url, path) = prepare_url("sqlite://x.db?mode=ro").unwrap();
        assert_eq!(url, "sqlite://x.db?mode=ro");
        assert_eq!(path, Some(PathBuf::from("x.db")));

        let (backend, _, _) = prepare_url("postgresql://u@localhost/baton").unwrap();
        assert_eq!(backend, Backend::Postgres);
        assert!(matches!(
            prepare_url("mysql://localhost/x"),
            Err(StoreError::UnsupportedUrl(_))
        ));
    }
}
