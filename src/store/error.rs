//! [`StoreError`]: what can go wrong talking to the database, and whether a
//! retry may help.

use std::path::PathBuf;

use sqlx::error::DatabaseError;

/// A store operation failed. Each variant says whether it is transient (the
/// same call may succeed if retried a little later) or permanent; callers ask
/// [`StoreError::is_transient`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Every pooled connection stayed busy past the acquire timeout.
    /// Transient.
    #[error("timed out waiting for a database connection")]
    PoolTimeout,
    /// The database was busy or locked (SQLite `SQLITE_BUSY`/`SQLITE_LOCKED`
    /// past the busy timeout; a Postgres serialization failure, deadlock or
    /// lock timeout). Transient.
    #[error("database busy: {0}")]
    Busy(#[source] sqlx::Error),
    /// Reading or writing the database failed at the I/O or connection level
    /// (a dropped Postgres connection, a server that is starting or full).
    /// Transient.
    #[error("database I/O: {0}")]
    Io(#[source] sqlx::Error),
    /// The store was closed. Permanent.
    #[error("the store is closed")]
    Closed,
    /// The URL is neither `sqlite:` nor `postgres://`. Permanent.
    #[error("unsupported database URL {0:?}: use sqlite://path, sqlite::memory: or postgres://...")]
    UnsupportedUrl(String),
    /// The folder for a SQLite file could not be created. Permanent.
    #[error("cannot create the database folder {path}: {source}")]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Applying the migrations failed. Permanent.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The row a call refers to does not exist (an unknown turn or worker).
    /// Permanent.
    #[error("not found: {0}")]
    NotFound(String),
    /// Any other database error: a constraint, bad SQL, a value of an
    /// unexpected type. Permanent.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl StoreError {
    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::PoolTimeout | StoreError::Busy(_) | StoreError::Io(_)
        )
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut => StoreError::PoolTimeout,
            sqlx::Error::PoolClosed => StoreError::Closed,
            sqlx::Error::Io(_) => StoreError::Io(error),
            sqlx::Error::Database(ref db) if is_busy(db.as_ref()) => StoreError::Busy(error),
            sqlx::Error::Database(ref db) if is_connection_trouble(db.as_ref()) => {
                StoreError::Io(error)
            }
            other => StoreError::Database(other),
        }
    }
}

/// SQLite's `BUSY`/`LOCKED` (any extended code), or a Postgres
/// serialization failure, deadlock or lock-not-available.
fn is_busy(db: &dyn DatabaseError) -> bool {
    if let Some(sqlite) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
        const SQLITE_BUSY: i64 = 5;
        const SQLITE_LOCKED: i64 = 6;
        let primary = sqlite
            .code()
            .and_then(|code| code.parse::<i64>().ok())
            .map(|code| code & 0xff);
        return matches!(primary, Some(SQLITE_BUSY | SQLITE_LOCKED));
    }
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        return matches!(pg.code(), "40001" | "40P01" | "55P03");
    }
    false
}

/// Postgres errors that mean the server or the connection is in trouble
/// rather than the statement: connection exceptions (class 08), too many
/// connections, a server shutting down or starting up.
fn is_connection_trouble(db: &dyn DatabaseError) -> bool {
    match db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        Some(pg) => {
            let code = pg.code();
            code.starts_with("08") || matches!(code, "53300" | "57P01" | "57P02" | "57P03")
        }
        None => false,
    }
}
