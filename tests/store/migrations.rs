//! Migrations: applied twice they change nothing, the SQLite rebuild keeps
//! every row and id, and both migration folders declare the same schema.

use baton::store::{MessageId, Store, TurnId};

use super::{TestDb, alice, file_url, key, usage};

pub(super) async fn migrations_applied_twice_are_a_no_op(db: TestDb) {
    let k = key("15");

    let store = db.connect().await;
    store
        .record_inbound(&k, &alice(), "kept", Some("1"))
        .await
        .unwrap();
    let applied = migrations_applied(&store).await;
    assert!(applied >= 1);
    store.close().await;

    let store = db.connect().await;
    let again = migrations_applied(&store).await;
    assert_eq!(again, applied);
    let history = store.history(&k, 10).await.unwrap();
    assert_eq!(history.len(), 1);
    // The dedup index survived too.
    assert_eq!(
        store
            .record_inbound(&k, &alice(), "kept", Some("1"))
            .await
            .unwrap(),
        None
    );
    store.close().await;
}

async fn migrations_applied(store: &Store) -> i64 {
    store
        .with_connection(|conn| {
            Box::pin(async move {
                sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
                    .fetch_one(conn)
                    .await
            })
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn rebuilding_the_sqlite_tables_keeps_every_row_and_id() {
    use sqlx::{AnyConnection, Connection, Executor};

    // A database as migrations 0001-0003 left it (AUTOINCREMENT ids), with
    // a row in every table.
    let dir = tempfile::tempdir().unwrap();
    let old_migrations = dir.path().join("migrations");
    std::fs::create_dir(&old_migrations).unwrap();
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for entry in std::fs::read_dir(&all).unwrap() {
        let name = entry.unwrap().file_name();
        if name.to_string_lossy().as_ref() < "0004" {
            std::fs::copy(all.join(&name), old_migrations.join(&name)).unwrap();
        }
    }
    let url = file_url(&dir, "old.db");
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(&format!("{url}?mode=rwc"))
        .await
        .unwrap();
    sqlx::migrate::Migrator::new(old_migrations.as_path())
        .await
        .unwrap()
        .run(&mut conn)
        .await
        .unwrap();
    conn.execute(
        "INSERT INTO conversations (key, created_at, updated_at) VALUES ('telegram/9', 1, 1);
         INSERT INTO messages (id, conversation, role, author_id, author_name, content,
                               platform_message_id, created_at)
             VALUES (41, 'telegram/9', 'user', 'u1', 'Ann', 'question', 'p1', 2);
         INSERT INTO turns (id, conversation, inbound_message_id, mode, model, status,
                            input_tokens, output_tokens, started_at, finished_at)
             VALUES (7, 'telegram/9', 41, 'orchestrator', 'openai:gpt', 'done', 10, 5, 2, 3);
         INSERT INTO messages (id, conversation, role, content, turn_id, created_at)
             VALUES (42, 'telegram/9', 'assistant', 'answer', 7, 3);
         INSERT INTO workers (turn_id, worker_id, label, brief, effort, model, status,
                              input_tokens, output_tokens, created_at, updated_at)
             VALUES (7, 'w1', 'research', 'look it up', 'low', 'openai:mini', 'done',
                     3, 2, 2, 3);
         INSERT INTO events (id, conversation, turn_id, kind, source, body, created_at)
             VALUES (5, 'telegram/9', 7, 'delegation', 'orchestrator', 'w1', 2);",
    )
    .await
    .unwrap();
    conn.close().await.unwrap();

    // The store applies 0004 and finds everything where it was.
    let store = Store::connect(&url).await.unwrap();
    let k = key("9");
    let history = store.history(&k, 10).await.unwrap();
    let ids: Vec<i64> = history.iter().map(|message| message.id.0).collect();
    assert_eq!(ids, [41, 42]);
    assert_eq!(history[1].content, "answer");
    let turn = store.load_turn(TurnId(7)).await.unwrap().unwrap();
    assert_eq!(
        (turn.inbound, turn.usage),
        (Some(MessageId(41)), usage(10, 5))
    );
    assert_eq!(store.workers(TurnId(7)).await.unwrap()[0].label, "research");
    let events = store.recent_events(&k, 10).await.unwrap();
    assert_eq!((events[0].id, events[0].turn), (5, Some(TurnId(7))));
    // The dedup index is back, and ids go on after the largest.
    assert_eq!(
        store
            .record_inbound(&k, &alice(), "again", Some("p1"))
            .await
            .unwrap(),
        None
    );
    let next = store
        .record_inbound(&k, &alice(), "new", Some("p2"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next, MessageId(43));
    let autoincrement: i64 = store
        .with_connection(|conn| {
            Box::pin(async move {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM sqlite_master WHERE sql LIKE '%AUTOINCREMENT%'",
                )
                .fetch_one(conn)
                .await
            })
        })
        .await
        .unwrap();
    assert_eq!(autoincrement, 0);
    store.close().await;
}

/// The schema the migrations build, as far as the service sees it: each
/// table's column names in order and each index's definition, normalised.
#[derive(Debug, Default, PartialEq)]
struct SchemaOutline {
    tables: std::collections::BTreeMap<String, Vec<String>>,
    indexes: std::collections::BTreeMap<String, String>,
}

impl SchemaOutline {
    /// Applies one migration file's CREATE/DROP TABLE, ALTER TABLE (ADD
    /// COLUMN, RENAME TO) and CREATE/DROP INDEX statements. Dropping a table
    /// drops its indexes, as both databases do.
    fn apply(&mut self, sql: &str) {
        let mut creating: Option<String> = None;
        for line in sql.lines() {
            let line = line.split("--").next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            let bare = |word: &str| word.trim_end_matches(';').trim_matches('"').to_owned();
            if let Some(name) = line.strip_prefix("CREATE TABLE ") {
                let name = name.trim_end_matches('(').trim().to_owned();
                self.tables.insert(name.clone(), Vec::new());
                creating = Some(name);
            } else if line.starts_with(");") {
                creating = None;
            } else if let Some(table) = &creating {
                // A quoted column name ("verbose") is the same column.
                let first = bare(words[0]);
                let constraint = matches!(
                    first.as_str(),
                    "PRIMARY" | "UNIQUE" | "FOREIGN" | "CONSTRAINT" | "CHECK"
                );
                if let (false, Some(columns)) = (constraint, self.tables.get_mut(table)) {
                    columns.push(first);
                }
            } else if line.starts_with("CREATE INDEX") || line.starts_with("CREATE UNIQUE INDEX") {
                let name = words[words.iter().position(|w| *w == "INDEX").unwrap() + 1];
                self.indexes.insert(bare(name), words.join(" "));
            } else if let ["DROP", "INDEX", name] = words[..] {
                assert!(self.indexes.remove(&bare(name)).is_some(), "{line}");
            } else if let ["DROP", "TABLE", table] = words[..] {
                let table = bare(table);
                assert!(self.tables.remove(&table).is_some(), "{line}");
                let on_table = format!(" ON {table} ");
                self.indexes
                    .retain(|_, definition| !definition.contains(&on_table));
            } else if let ["ALTER", "TABLE", table, "RENAME", "TO", new_name] = words[..] {
                let columns = self.tables.remove(&bare(table)).expect(line);
                self.tables.insert(bare(new_name), columns);
            } else if let ["ALTER", "TABLE", table, "ADD", "COLUMN", column, ..] = words[..] {
                self.tables
                    .get_mut(&bare(table))
                    .expect(line)
                    .push(bare(column));
            }
        }
    }
}

#[test]
fn postgres_and_sqlite_migrations_define_the_same_schema() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let names = |kind: &str| {
        let mut names: Vec<String> = std::fs::read_dir(root.join(kind))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let sqlite_files = names("sqlite");
    assert_eq!(sqlite_files, names("postgres"));
    let mut sqlite = SchemaOutline::default();
    let mut postgres = SchemaOutline::default();
    for file in &sqlite_files {
        sqlite.apply(&std::fs::read_to_string(root.join("sqlite").join(file)).unwrap());
        postgres.apply(&std::fs::read_to_string(root.join("postgres").join(file)).unwrap());
        assert_eq!(sqlite, postgres, "the schemas after {file}");
    }
    let tables: Vec<&str> = sqlite.tables.keys().map(String::as_str).collect();
    assert_eq!(
        tables,
        [
            "conversations",
            "events",
            "instances",
            "leases",
            "messages",
            "outbox",
            "projects",
            "turns",
            "workers"
        ]
    );
    assert!(sqlite.indexes.contains_key("turns_running"));
}
