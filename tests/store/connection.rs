//! Connecting: the SQLite file and its folders, its pragmas (WAL),
//! clones sharing one connection, URLs refused, and a locked database on
//! each backend read as a transient busy error.

use baton::store::{Store, StoreError};
use sqlx::Row;

use super::{TestDb, alice, file_url, key};

#[tokio::test]
async fn connecting_creates_the_sqlite_file_and_its_folders() {
    let dir = tempfile::tempdir().unwrap();
    // A folder that does not exist yet: connect creates it and the file.
    let store = Store::connect(&file_url(&dir, "data/nested/baton.db"))
        .await
        .unwrap();
    store.close().await;
    assert!(dir.path().join("data/nested/baton.db").is_file());
}

#[tokio::test]
async fn a_file_database_runs_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&file_url(&dir, "wal.db")).await.unwrap();
    // The store's connection is set up with the pragmas.
    let pragmas = store
        .with_connection(|conn| {
            Box::pin(async move {
                let mut values = Vec::new();
                for pragma in [
                    "journal_mode",
                    "foreign_keys",
                    "busy_timeout",
                    "synchronous",
                    "journal_size_limit",
                ] {
                    let row = sqlx::query(&format!("PRAGMA {pragma}"))
                        .fetch_one(&mut *conn)
                        .await?;
                    let value = match row.try_get::<String, _>(0) {
                        Ok(text) => text.to_lowercase(),
                        Err(_) => row.try_get::<i64, _>(0)?.to_string(),
                    };
                    values.push(value);
                }
                Ok(values)
            })
        })
        .await
        .unwrap();
    // synchronous: NORMAL is 1.
    assert_eq!(pragmas, ["wal", "1", "5000", "1", "67108864"]);
    store.close().await;
    assert!(dir.path().join("wal.db").is_file());
}

pub(super) async fn clones_share_the_connection_and_close_ends_it(db: TestDb) {
    let store = db.connect().await;
    let clone = store.clone();
    let k = key("16");
    clone
        .record_inbound(&k, &alice(), "via clone", None)
        .await
        .unwrap();
    assert_eq!(store.history(&k, 10).await.unwrap().len(), 1);
    store.close().await;
    let closed = clone.history(&k, 10).await.unwrap_err();
    assert!(matches!(closed, StoreError::Closed), "{closed:?}");
    assert!(!closed.is_transient());
}

#[tokio::test]
async fn bad_urls_are_rejected() {
    let error = Store::connect("mysql://localhost/baton").await.unwrap_err();
    assert!(matches!(error, StoreError::UnsupportedUrl(_)), "{error:?}");
}

#[tokio::test]
async fn a_locked_sqlite_database_is_a_transient_busy_error() {
    use sqlx::{AnyConnection, Connection, Executor};

    let db = TestDb::sqlite_file();
    let store = db.connect().await;
    // Hold the write lock on the store's connection...
    store
        .with_connection(|conn| Box::pin(async move { conn.execute("BEGIN IMMEDIATE").await }))
        .await
        .unwrap();
    // ...and write from another connection that will not wait for it.
    let mut other = AnyConnection::connect(&db.url).await.unwrap();
    other.execute("PRAGMA busy_timeout = 0").await.unwrap();
    let error = other
        .execute("INSERT INTO conversations (key, created_at, updated_at) VALUES ('x', 0, 0)")
        .await
        .unwrap_err();
    let error = StoreError::from(error);
    assert!(matches!(error, StoreError::Busy(_)), "{error:?}");
    assert!(error.is_transient());
    store
        .with_connection(|conn| Box::pin(async move { conn.execute("ROLLBACK").await }))
        .await
        .unwrap();
    other.close().await.unwrap();
    store.close().await;
}

#[tokio::test]
async fn a_locked_postgres_table_is_a_transient_busy_error() {
    use sqlx::{AnyConnection, Connection, Executor};

    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let store = db.connect().await;
    // Hold a lock on the table in a connection of its own...
    let mut holder = AnyConnection::connect(&db.url).await.unwrap();
    holder.execute("BEGIN").await.unwrap();
    holder
        .execute("LOCK TABLE conversations IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    // ...and write from another connection that gives up on locks at once.
    let mut other = AnyConnection::connect(&db.url).await.unwrap();
    other.execute("SET lock_timeout = '10ms'").await.unwrap();
    let error = other
        .execute("INSERT INTO conversations (key, created_at, updated_at) VALUES ('x', 0, 0)")
        .await
        .unwrap_err();
    let error = StoreError::from(error);
    assert!(matches!(error, StoreError::Busy(_)), "{error:?}");
    assert!(error.is_transient());
    holder.execute("ROLLBACK").await.unwrap();
    drop(holder);
    other.close().await.unwrap();
    store.close().await;
}
