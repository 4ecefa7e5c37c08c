//! [`StoreError`]: what can go wrong talking to the database, and whether a
//! retry may help.

use std::path::{Path, PathBuf};

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
    /// A SQLite database file could not be opened, created or written:
    /// the folder is missing or read-only, or the file is read-only.
    /// Permanent. The message names the file once and says what to check
    /// (it carries SQLite's reason as text, not as a source, so that it is
    /// not repeated when the causes are printed).
    #[error(
        "SQLite database {}: {reason}; check that the folder {} exists and that \
         the user Baton runs as may create and write files in it and write the \
         database file (SQLite keeps -wal and -shm files beside it)",
        path.display(),
        folder(path).display()
    )]
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's (or the system's) reason.
        reason: String,
    },
    /// Applying the migrations failed. Permanent.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The row a call refers to does not exist (an unknown turn or worker).
    /// Permanent.
    #[error("not found: {0}")]
    NotFound(String),
    /// A write that names the lease it is made under found the lease gone
    /// or taken over by another instance (a cluster). Permanent: the
    /// writer no longer runs the conversation.
    #[error("the conversation's lease is no longer held")]
    LeaseLost,
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

/// The folder a database file is in, as the message names it.
fn folder(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// `error`, met while opening the SQLite database `file`, as
/// [`StoreError::Open`] when it says the file or its folder cannot be
/// opened or written (SQLite's `CANTOPEN`, `READONLY` or `PERM`, or the
/// system's "permission denied" or "not found"); otherwise unchanged.
pub(super) fn open_error(file: Option<&Path>, error: StoreError) -> StoreError {
    let Some(path) = file else {
        return error;
    };
    const SQLITE_PERM: i64 = 3;
    const SQLITE_READONLY: i64 = 8;
    const SQLITE_CANTOPEN: i64 = 14;
    // The sqlx error among the causes: it holds SQLite's code or the
    // system's I/O error.
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    let mut reason = None;
    while let Some(current) = cause {
        if let Some(sqlx_error) = current.downcast_ref::<sqlx::Error>() {
            reason = match sqlx_error {
                sqlx::Error::Io(io)
                    if matches!(
                        io.kind(),
                        std::io::ErrorKind::PermissionDenied
                            | std::io::ErrorKind::NotFound
                            | std::io::ErrorKind::ReadOnlyFilesystem
                    ) =>
                {
                    Some(io.to_string())
                }
                sqlx::Error::Database(db) => db
                    .try_downcast_ref::<sqlx::sqlite::SqliteError>()
                    .and_then(|sqlite| {
                        let code = sqlite.code()?.parse::<i64>().ok()?;
                        matches!(code & 0xff, SQLITE_PERM | SQLITE_READONLY | SQLITE_CANTOPEN)
                            .then(|| format!("{} (SQLite code {code})", sqlite.message()))
                    }),
                _ => None,
            };
            break;
        }
        cause = current.source();
    }
    match reason {
        Some(reason) => StoreError::Open {
            path: path.to_path_buf(),
            reason,
        },
        None => error,
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

/// Errors that mean the disk, the server or the connection is in trouble
/// rather than the statement: SQLite's full disk (`SQLITE_FULL`) and I/O
/// errors (`SQLITE_IOERR`); Postgres connection exceptions (class 08), a
/// full disk, out of memory, too many connections, a server shutting down
/// or starting up. All may pass, so a message that hit one is not
/// confirmed to its platform and comes again.
fn is_connection_trouble(db: &dyn DatabaseError) -> bool {
    if let Some(sqlite) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
        const SQLITE_IOERR: i64 = 10;
        const SQLITE_FULL: i64 = 13;
        let primary = sqlite
            .code()
            .and_then(|code| code.parse::<i64>().ok())
            .map(|code| code & 0xff);
        return matches!(primary, Some(SQLITE_IOERR | SQLITE_FULL));
    }
    match db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        Some(pg) => {
            let code = pg.code();
            code.starts_with("08")
                || matches!(
                    code,
                    "53100" | "53200" | "53300" | "57P01" | "57P02" | "57P03"
                )
        }
        None => false,
    }
}
