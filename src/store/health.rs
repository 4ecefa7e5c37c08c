//! Whether a SQLite store still writes to the file its path names:
//! [`StoreHealth`], and the [`FileWatch`] the upkeep task (`upkeep.rs`)
//! asks every few seconds and after a failed checkpoint.
//!
//! SQLite keeps writing to the file it opened. If that file is deleted, or
//! another file is put in its place, nothing fails: every write succeeds
//! into a file that nobody will find again, and settings and history are
//! gone at the next start. So the file the store opened is known by its
//! device and inode, and compared with what the path holds now. The change
//! is logged once, as an error naming the path, and kept in the store's
//! health (which a readiness check can report).

use std::fmt;
use std::path::{Path, PathBuf};

use tokio::sync::watch;

use super::StoreError;

/// What the store's upkeep last found about its database file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreHealth {
    /// Nothing wrong seen. Postgres and in-memory SQLite, which have no
    /// file to watch, are always this.
    Ok,
    /// The database file was deleted (`replaced: false`) or another file
    /// put at its path (`replaced: true`) while the store had it open.
    /// What is written now is lost at the next start. Only a restart
    /// clears this.
    FileLost {
        /// The database file's path.
        path: PathBuf,
        /// Whether another file is at the path now.
        replaced: bool,
    },
    /// The last background checkpoint failed (a full disk, an I/O error).
    /// The next checkpoint that succeeds clears this.
    CheckpointFailed {
        /// The database file's path.
        path: PathBuf,
        /// Why it failed.
        error: String,
    },
}

impl StoreHealth {
    /// Whether nothing is wrong.
    pub fn is_ok(&self) -> bool {
        *self == StoreHealth::Ok
    }
}

impl fmt::Display for StoreHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreHealth::Ok => f.write_str("ok"),
            StoreHealth::FileLost {
                path,
                replaced: false,
            } => write!(
                f,
                "the database file {} was deleted while Baton was running; \
                 what Baton writes now is lost when it stops",
                path.display()
            ),
            StoreHealth::FileLost {
                path,
                replaced: true,
            } => write!(
                f,
                "the database file {} was replaced by another file while Baton was running; \
                 Baton still writes to the old one, which is lost when it stops",
                path.display()
            ),
            StoreHealth::CheckpointFailed { path, error } => write!(
                f,
                "checkpointing the database {} failed: {error}",
                path.display()
            ),
        }
    }
}

/// A file's identity: its device and inode (on Unix; elsewhere only
/// whether it exists is known).
type FileId = Option<(u64, u64)>;

fn file_id(metadata: &std::fs::Metadata) -> FileId {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((metadata.dev(), metadata.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        None
    }
}

/// Watches one database file for the upkeep task, and publishes what it
/// finds to the store's [`StoreHealth`].
#[derive(Debug)]
pub(super) struct FileWatch {
    /// The database file, as an absolute path.
    path: PathBuf,
    /// The identity of the file the store opened (`None` if it could not
    /// be read at connect: then the first check takes it).
    opened: Option<FileId>,
    /// Where the finding goes; the store holds the receiver.
    health: watch::Sender<StoreHealth>,
}

impl FileWatch {
    /// Remembers the file at `path` (just opened by the store) as the one
    /// to watch, and returns the receiver of its health.
    pub(super) fn new(path: &Path) -> (FileWatch, watch::Receiver<StoreHealth>) {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let opened = std::fs::metadata(&path).ok().map(|m| file_id(&m));
        let (health, receiver) = watch::channel(StoreHealth::Ok);
        (
            FileWatch {
                path,
                opened,
                health,
            },
            receiver,
        )
    }

    /// Compares the file at the path with the one the store opened; a file
    /// gone or replaced is logged (once) and kept in the health.
    pub(super) async fn check_file(&mut self) {
        if matches!(*self.health.borrow(), StoreHealth::FileLost { .. }) {
            return;
        }
        let replaced = match tokio::fs::metadata(&self.path).await {
            Ok(metadata) => {
                let now = file_id(&metadata);
                match self.opened {
                    None => {
                        self.opened = Some(now);
                        return;
                    }
                    Some(opened) if opened == now => return,
                    Some(_) => true,
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => false,
            // Cannot tell (a folder made unreadable, say): say nothing yet.
            Err(_) => return,
        };
        let lost = StoreHealth::FileLost {
            path: self.path.clone(),
            replaced,
        };
        tracing::error!(
            path = %self.path.display(),
            "{lost}. Stop Baton, put the database file back (or accept an empty one) and start it again"
        );
        self.health.send_replace(lost);
    }

    /// A background checkpoint failed with `error`: logged when the health
    /// was fine until now, and kept in the health.
    pub(super) fn checkpoint_failed(&self, error: &StoreError) {
        let failed = StoreHealth::CheckpointFailed {
            path: self.path.clone(),
            error: error.to_string(),
        };
        self.health.send_if_modified(|health| match health {
            StoreHealth::Ok => {
                tracing::error!(path = %self.path.display(), error = %error, "checkpointing the database failed; it is tried again");
                *health = failed;
                true
            }
            StoreHealth::CheckpointFailed { .. } => {
                tracing::debug!(error = %error, "checkpointing the database failed again");
                false
            }
            StoreHealth::FileLost { .. } => false,
        });
    }

    /// A background checkpoint succeeded: clears an earlier failure.
    pub(super) fn checkpoint_succeeded(&self) {
        self.health.send_if_modified(|health| {
            if matches!(health, StoreHealth::CheckpointFailed { .. }) {
                tracing::info!(path = %self.path.display(), "checkpointing the database works again");
                *health = StoreHealth::Ok;
                true
            } else {
                false
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_deleted_or_replaced_file_is_lost_for_good_and_checkpoint_failures_pass() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("baton.db");
        std::fs::write(&path, b"one").unwrap();
        let (mut watch, health) = FileWatch::new(&path);
        watch.check_file().await;
        assert!(health.borrow().is_ok());

        watch.checkpoint_failed(&StoreError::Closed);
        assert!(matches!(
            *health.borrow(),
            StoreHealth::CheckpointFailed { .. }
        ));
        watch.checkpoint_succeeded();
        assert!(health.borrow().is_ok());

        // Replaced: a new file (a new inode) at the same path.
        let other = dir.path().join("other.db");
        std::fs::write(&other, b"two").unwrap();
        std::fs::rename(&other, &path).unwrap();
        watch.check_file().await;
        let lost = health.borrow().clone();
        assert!(
            matches!(&lost, StoreHealth::FileLost { replaced: true, path: p } if *p == path),
            "{lost:?}"
        );
        // It stays lost: a later success or check does not clear it.
        watch.checkpoint_succeeded();
        watch.checkpoint_failed(&StoreError::Closed);
        watch.check_file().await;
        assert_eq!(*health.borrow(), lost);
        assert!(lost.to_string().contains(&path.display().to_string()));

        let (mut watch, health) = FileWatch::new(&path);
        std::fs::remove_file(&path).unwrap();
        watch.check_file().await;
        assert!(matches!(
            *health.borrow(),
            StoreHealth::FileLost {
                replaced: false,
                ..
            }
        ));
    }
}
