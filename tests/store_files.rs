//! A SQLite store's file and folder going wrong under it: deleted or
//! replaced while it runs (noticed, kept in `Store::health`), and a folder
//! or file it cannot write (one error at connect, naming the file).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use baton::store::{Store, StoreError, StoreHealth};
use baton_channel::{Author, ConversationKey};

use crate::support::eventually::eventually_within;

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

async fn write_something(store: &Store) {
    let author = Author {
        id: "1".into(),
        name: "Ada".into(),
    };
    store
        .record_inbound(&ConversationKey::telegram(1, None), &author, "hello", None)
        .await
        .unwrap();
}

/// The store's health once it is no longer ok: polled, for at most 30 s
/// (the upkeep task looks at the file every 2 s).
async fn health_once_bad(store: &Store) -> StoreHealth {
    eventually_within(Duration::from_secs(30), "the store to notice", || {
        let health = store.health();
        (!health.is_ok()).then_some(health)
    })
    .await
}

#[tokio::test]
async fn a_deleted_sqlite_file_is_noticed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baton.db");
    let store = Store::connect(&sqlite_url(&path)).await.unwrap();
    write_something(&store).await;
    assert_eq!(store.health(), StoreHealth::Ok);

    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let health = health_once_bad(&store).await;
    assert_eq!(
        health,
        StoreHealth::FileLost {
            path: path.clone(),
            replaced: false
        }
    );
    assert!(health.to_string().contains(&path.display().to_string()));
    // Writes still succeed (into the deleted file): nothing else says so.
    write_something(&store).await;
    assert_eq!(store.health(), health);
    store.close().await;
}

#[tokio::test]
async fn a_replaced_sqlite_file_is_noticed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baton.db");
    let store = Store::connect(&sqlite_url(&path)).await.unwrap();
    write_something(&store).await;
    // Another database put at the path (an old copy restored, say).
    let other = dir.path().join("other.db");
    Store::connect(&sqlite_url(&other))
        .await
        .unwrap()
        .close()
        .await;
    std::fs::rename(&other, &path).unwrap();

    assert_eq!(
        health_once_bad(&store).await,
        StoreHealth::FileLost {
            path: path.clone(),
            replaced: true
        }
    );
    store.close().await;
}

#[tokio::test]
async fn memory_and_untouched_stores_are_healthy() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    assert!(store.health().is_ok());
    store.close().await;
}

/// An error with its causes, as `{:#}` prints them: each cause after its
/// error, so a cause repeated in its error's text shows twice.
fn with_causes(error: &StoreError) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(current) = cause {
        text.push_str(&format!(": {current}"));
        cause = current.source();
    }
    text
}

/// Checks an [`StoreError::Open`] for `path`: the path said once, SQLite's
/// `reason` said once, and what to check.
fn assert_one_clear_error(error: &StoreError, path: &Path, reason: &str) {
    assert!(matches!(error, StoreError::Open { .. }), "{error:?}");
    let text = with_causes(error);
    let path = path.display().to_string();
    assert_eq!(text.matches(&path).count(), 1, "{text}");
    assert_eq!(text.matches(reason).count(), 1, "{text}");
    assert!(text.contains("check that the folder"), "{text}");
}

#[tokio::test]
async fn a_database_that_cannot_be_opened_is_one_error_naming_it() {
    // `mode=rw` does not create the file, so it cannot be opened, whoever
    // runs the test.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.db");
    let error = Store::connect(&format!("{}?mode=rw", sqlite_url(&path)))
        .await
        .unwrap_err();
    assert_one_clear_error(&error, &path, "unable to open database file");
}

/// Whether this user can write in `folder` although it is read-only (root
/// can): then a permission test has nothing to show.
fn writable_anyway(folder: &Path) -> bool {
    let probe = folder.join("probe");
    let written = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    written
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn a_read_only_folder_is_one_error_naming_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("read-only");
    std::fs::create_dir(&folder).unwrap();
    set_mode(&folder, 0o555);
    if writable_anyway(&folder) {
        eprintln!("skipped: this user writes to read-only folders (root?)");
        return;
    }
    let path = folder.join("baton.db");
    let error = Store::connect(&sqlite_url(&path)).await.unwrap_err();
    set_mode(&folder, 0o755);
    assert_one_clear_error(&error, &path, "unable to open database file");
}

#[tokio::test]
async fn a_read_only_database_file_fails_at_connect_not_at_the_first_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baton.db");
    // Made by `baton migrate`, in a process of its own: SQLite reuses a
    // writable descriptor this process may still hold on the file.
    let config = dir.path().join("baton.toml");
    std::fs::write(&config, "").unwrap();
    let migrate = std::process::Command::new(env!("CARGO_BIN_EXE_baton"))
        .arg("--config")
        .arg(&config)
        .arg("migrate")
        .env("BATON__STORAGE__URL", sqlite_url(&path))
        .output()
        .unwrap();
    assert!(migrate.status.success(), "{migrate:?}");
    set_mode(&path, 0o444);
    if std::fs::OpenOptions::new().write(true).open(&path).is_ok() {
        eprintln!("skipped: this user writes to read-only files (root?)");
        return;
    }
    // It can be read, and the migrations have nothing to write: only the
    // write that connect tries shows it.
    let error = Store::connect(&sqlite_url(&path)).await.unwrap_err();
    assert_one_clear_error(&error, &path, "readonly database");
}
