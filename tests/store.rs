//! The sqlx repository against both backends it serves.
//!
//! Every scenario that does not depend on the database kind is an
//! `async fn(TestDb)` run twice by [`on_both_backends!`]: as
//! `store::sqlite::<name>` (in memory, or on a file in a temp folder when it
//! reconnects) and as `store::postgres::<name>` on a fresh database of a
//! throwaway PostgreSQL server (see `support::postgres`; without server
//! binaries the Postgres variants print "skipped" and pass). The rest are
//! backend-specific: WAL and the folder created for a SQLite file, a locked
//! database on each, and the check that both migration folders declare the
//! same schema.

use baton::domain::{ConversationSettings, Mode, Usage};
use baton::store::{
    EventKind, MessageId, NewProject, NewWorker, ProjectStatus, Role, Store, StoreError, TurnId,
    TurnStatus,
};
use baton_channel::{Author, ConversationKey, Effort, Platform, WorkerId, WorkerStatus};
use sqlx::Row;

use crate::support;

fn key(chat: &str) -> ConversationKey {
    ConversationKey::new(Platform::Telegram, chat)
}

fn alice() -> Author {
    Author {
        id: "1".into(),
        name: "Alice".into(),
    }
}

fn file_url(dir: &tempfile::TempDir, name: &str) -> String {
    format!("sqlite://{}", dir.path().join(name).display())
}

fn usage(input_tokens: u64, output_tokens: u64) -> Usage {
    Usage {
        input_tokens,
        output_tokens,
        ..Usage::default()
    }
}

/// One test's database: the URL to connect to (again and again), and the
/// temp folder holding it for SQLite files.
struct TestDb {
    url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A private in-memory SQLite database (each `connect` is a new one).
    fn sqlite_memory() -> TestDb {
        TestDb {
            url: "sqlite::memory:".into(),
            _dir: None,
        }
    }

    /// A SQLite file in a folder that does not exist yet, in a temp folder.
    fn sqlite_file() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        TestDb {
            url: file_url(&dir, "data/baton.db"),
            _dir: Some(dir),
        }
    }

    /// A fresh database on the throwaway PostgreSQL server, or `None`
    /// (skipped) without server binaries.
    async fn postgres() -> Option<TestDb> {
        let url = support::postgres::database().await?;
        Some(TestDb { url, _dir: None })
    }

    async fn connect(&self) -> Store {
        Store::connect(&self.url)
            .await
            .unwrap_or_else(|error| panic!("connect to {}: {error}", self.url))
    }
}

/// Runs each named `async fn(TestDb)` on SQLite (`memory`: in memory,
/// `file`: on a file, for scenarios that reconnect) and on Postgres.
macro_rules! on_both_backends {
    (memory: [$($memory:ident),* $(,)?], file: [$($file:ident),* $(,)?] $(,)?) => {
        mod sqlite {
            use super::TestDb;
            $(
                #[tokio::test]
                async fn $memory() {
                    super::$memory(TestDb::sqlite_memory()).await;
                }
            )*
            $(
                #[tokio::test]
                async fn $file() {
                    super::$file(TestDb::sqlite_file()).await;
                }
            )*
        }

        mod postgres {
            use super::TestDb;
            $(
                #[tokio::test]
                async fn $memory() {
                    if let Some(db) = TestDb::postgres().await {
                        super::$memory(db).await;
                    }
                }
            )*
            $(
                #[tokio::test]
                async fn $file() {
                    if let Some(db) = TestDb::postgres().await {
                        super::$file(db).await;
                    }
                }
            )*
        }
    };
}

on_both_backends! {
    memory: [
        a_conversation_with_messages_but_no_saved_settings_has_none,
        unknown_stored_words_fall_back_to_defaults,
        inbound_is_deduplicated_by_platform_message_id,
        history_returns_the_newest_messages_oldest_first,
        a_reply_follows_its_message_even_when_others_queued_before_it,
        reset_context_hides_earlier_messages,
        usage_since_adds_turn_and_worker_usage,
        cache_tokens_are_stored_per_turn_and_worker,
        conversations_browse_by_last_activity_with_titles,
        updating_an_unknown_turn_or_worker_is_not_found,
        events_are_logged_in_order,
        clones_share_the_connection_and_close_ends_it,
    ],
    file: [
        settings_round_trip_and_survive_a_reconnect,
        abandoned_turns_are_failed_on_start,
        migrations_applied_twice_are_a_no_op,
        concurrent_events_are_all_written_in_order_before_close,
        a_project_and_its_turn_survive_a_restart_and_its_outcome_is_posted_once,
        a_stored_reply_is_unsent_until_marked_even_across_a_restart,
    ],
}

async fn settings_round_trip_and_survive_a_reconnect(db: TestDb) {
    let k = key("-100123").with_thread("7");
    let settings = ConversationSettings {
        mode: Mode::Orchestrator,
        verbose: true,
        effort: Effort::High,
        model: Some("anthropic:claude-x".into()),
        greedy: true,
        autonomy: false,
    };

    let store = db.connect().await;
    assert_eq!(store.load_settings(&k).await.unwrap(), None);
    store.save_settings(&k, &settings).await.unwrap();
    assert_eq!(store.load_settings(&k).await.unwrap(), Some(settings));
    let changed = ConversationSettings {
        mode: Mode::Single,
        verbose: false,
        effort: Effort::Off,
        model: None,
        greedy: false,
        autonomy: true,
    };
    store.save_settings(&k, &changed).await.unwrap();
    assert_eq!(
        store.load_settings(&k).await.unwrap(),
        Some(changed.clone())
    );
    store.close().await;

    let store = db.connect().await;
    assert_eq!(store.load_settings(&k).await.unwrap(), Some(changed));
    // Another conversation in the same chat is another key.
    assert_eq!(store.load_settings(&key("-100123")).await.unwrap(), None);
    store.close().await;
}

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

async fn a_conversation_with_messages_but_no_saved_settings_has_none(db: TestDb) {
    let store = db.connect().await;
    let k = key("5");
    store
        .record_inbound(&k, &alice(), "hi", None)
        .await
        .unwrap();
    store.reset_context(&k).await.unwrap();
    assert_eq!(store.load_settings(&k).await.unwrap(), None);
}

async fn unknown_stored_words_fall_back_to_defaults(db: TestDb) {
    let store = db.connect().await;
    let k = key("6");
    let raw_key = k.to_string();
    store
        .with_connection(move |conn| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO conversations \
                     (key, mode, \"verbose\", effort, created_at, updated_at) \
                     VALUES ($1, 'swarm', TRUE, 'extreme', 0, 0)",
                )
                .bind(raw_key)
                .execute(conn)
                .await
            })
        })
        .await
        .unwrap();
    let settings = store.load_settings(&k).await.unwrap().unwrap();
    assert_eq!(settings.mode, Mode::default());
    assert_eq!(settings.effort, Effort::default());
    assert!(settings.verbose);
}

async fn inbound_is_deduplicated_by_platform_message_id(db: TestDb) {
    let store = db.connect().await;
    let k = key("42");
    let first = store
        .record_inbound(&k, &alice(), "hello", Some("m1"))
        .await
        .unwrap();
    assert!(first.is_some());
    let again = store
        .record_inbound(&k, &alice(), "hello", Some("m1"))
        .await
        .unwrap();
    assert_eq!(again, None);
    // The same platform id in another conversation is another message.
    assert!(
        store
            .record_inbound(&key("43"), &alice(), "hello", Some("m1"))
            .await
            .unwrap()
            .is_some()
    );
    // Messages without a platform id are never deduplicated.
    for _ in 0..2 {
        assert!(
            store
                .record_inbound(&k, &alice(), "no id", None)
                .await
                .unwrap()
                .is_some()
        );
    }

    let history = store.history(&k, 10).await.unwrap();
    let texts: Vec<&str> = history.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["hello", "no id", "no id"]);
    assert_eq!(history[0].id, first.unwrap());
    assert_eq!(history[0].role, Role::User);
    assert_eq!(history[0].author.as_deref(), Some("Alice"));
}

async fn history_returns_the_newest_messages_oldest_first(db: TestDb) {
    let store = db.connect().await;
    let k = key("7");
    for i in 1..=5 {
        let inbound = store
            .record_inbound(&k, &alice(), &format!("q{i}"), Some(&format!("p{i}")))
            .await
            .unwrap();
        let turn = store
            .start_turn(&k, inbound, Mode::Single, "openai:gpt")
            .await
            .unwrap();
        store
            .record_reply(&k, turn, &format!("a{i}"), None)
            .await
            .unwrap();
    }
    let history = store.history(&k, 3).await.unwrap();
    let texts: Vec<&str> = history.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["a4", "q5", "a5"]);
    assert_eq!(history[0].role, Role::Assistant);
    assert_eq!(history[0].author, None);
    assert_eq!(history[1].role, Role::User);
    assert!(history.windows(2).all(|pair| pair[0].id < pair[1].id));
    assert_eq!(store.history(&k, 100).await.unwrap().len(), 10);
    assert!(store.history(&k, 0).await.unwrap().is_empty());
    assert!(store.history(&key("other"), 10).await.unwrap().is_empty());
}

async fn a_reply_follows_its_message_even_when_others_queued_before_it(db: TestDb) {
    let store = db.connect().await;
    let k = key("7q");
    // q2 and q3 arrive (and are stored) while q1's turn runs.
    let q1 = store
        .record_inbound(&k, &alice(), "q1", None)
        .await
        .unwrap();
    let q2 = store
        .record_inbound(&k, &alice(), "q2", None)
        .await
        .unwrap();
    store
        .record_inbound(&k, &alice(), "q3", None)
        .await
        .unwrap();
    let turn = store.start_turn(&k, q1, Mode::Single, "m").await.unwrap();
    store.record_reply(&k, turn, "a1", None).await.unwrap();

    let texts = |history: Vec<baton::store::StoredMessage>| -> Vec<String> {
        history.into_iter().map(|m| m.content).collect()
    };
    assert_eq!(
        texts(store.history(&k, 10).await.unwrap()),
        ["q1", "a1", "q2", "q3"]
    );
    // q2's turn sees q1 and its answer, not q3 (it waits for its own turn).
    assert_eq!(
        texts(store.history_through(&k, q2, 10).await.unwrap()),
        ["q1", "a1", "q2"]
    );
    // A reset through q1 hides q1's reply too.
    store.reset_context_through(&k, q1.unwrap()).await.unwrap();
    assert_eq!(texts(store.history(&k, 10).await.unwrap()), ["q2", "q3"]);
}

async fn reset_context_hides_earlier_messages(db: TestDb) {
    let store = db.connect().await;
    let k = key("8");
    store
        .record_inbound(&k, &alice(), "old", None)
        .await
        .unwrap();
    // Another conversation's later messages do not move this one's start.
    store
        .record_inbound(&key("9"), &alice(), "elsewhere", None)
        .await
        .unwrap();
    store.reset_context(&k).await.unwrap();
    assert!(store.history(&k, 10).await.unwrap().is_empty());
    assert_eq!(store.history(&key("9"), 10).await.unwrap().len(), 1);

    store
        .record_inbound(&k, &alice(), "new", None)
        .await
        .unwrap();
    let history = store.history(&k, 10).await.unwrap();
    let texts: Vec<&str> = history.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["new"]);

    // A reset before anything was said is fine too.
    store.reset_context(&key("fresh")).await.unwrap();
    assert!(store.history(&key("fresh"), 10).await.unwrap().is_empty());
}

fn worker(id: &str) -> NewWorker {
    NewWorker {
        worker_id: WorkerId(id.into()),
        label: format!("label {id}"),
        brief: format!("brief {id}"),
        effort: Effort::Off,
        model: "openai:gpt-mini".into(),
    }
}

/// Prompt-cache tokens go to the turn's and each worker's row, come back
/// from every read (the turn, its workers, the totals, the dashboard's tree)
/// and are added up like the other counts.
async fn cache_tokens_are_stored_per_turn_and_worker(db: TestDb) {
    let store = db.connect().await;
    let k = key("12");
    let cached = |input, output, cached_input_tokens, cache_write_tokens| Usage {
        input_tokens: input,
        output_tokens: output,
        cached_input_tokens,
        cache_write_tokens,
    };
    let turn = store
        .start_turn(&k, None, Mode::Orchestrator, "anthropic:claude")
        .await
        .unwrap();
    store.insert_worker(turn, &worker("w1")).await.unwrap();
    store
        .update_worker(
            turn,
            &WorkerId("w1".into()),
            WorkerStatus::Done,
            Some("done"),
            None,
            cached(400, 40, 300, 50),
        )
        .await
        .unwrap();
    store
        .finish_turn(turn, TurnStatus::Done, cached(2000, 100, 1500, 200), None)
        .await
        .unwrap();
    // A single-mode turn is written once, at its end.
    let single = store
        .record_turn(
            &k,
            None,
            Mode::Single,
            "anthropic:claude",
            0,
            baton::store::TurnEnd {
                status: TurnStatus::Done,
                usage: cached(1000, 10, 900, 0),
                error: None,
            },
        )
        .await
        .unwrap();

    let stored = store.load_turn(turn).await.unwrap().unwrap();
    assert_eq!(stored.usage, cached(2000, 100, 1500, 200));
    let workers = store.workers(turn).await.unwrap();
    assert_eq!(workers[0].usage, cached(400, 40, 300, 50));
    let stored = store.load_turn(single).await.unwrap().unwrap();
    assert_eq!(stored.usage, cached(1000, 10, 900, 0));
    assert_eq!(
        store.usage_since(&k, 0).await.unwrap(),
        cached(3400, 150, 2700, 250)
    );
    let tree = store.browse_turn(turn.0).await.unwrap().unwrap();
    assert_eq!(
        (tree.turn.cached_input_tokens, tree.turn.cache_write_tokens),
        (1500, 200)
    );
    assert_eq!(
        (
            tree.workers[0].cached_input_tokens,
            tree.workers[0].cache_write_tokens
        ),
        (300, 50)
    );
}

/// The dashboard's list: most recently active first, paged by cursor,
/// named by the chat's title when one was noted (else the last user).
async fn conversations_browse_by_last_activity_with_titles(db: TestDb) {
    let store = db.connect().await;
    for (chat, text) in [("1", "a"), ("2", "b"), ("3", "c"), ("1", "d")] {
        store
            .record_inbound(&key(chat), &alice(), text, None)
            .await
            .unwrap();
    }
    store.note_title(&key("2"), "Team two").await.unwrap();
    // Unchanged: nothing written; blank: ignored.
    store.note_title(&key("2"), "Team two").await.unwrap();
    store.note_title(&key("3"), "   ").await.unwrap();

    let first = store.browse_conversations(None, 2, 0).await.unwrap();
    let names: Vec<(&str, Option<&str>)> = first
        .iter()
        .map(|c| (c.key.as_str(), c.name.as_deref()))
        .collect();
    assert_eq!(
        names,
        [("telegram/1", Some("Alice")), ("telegram/3", Some("Alice"))]
    );
    let rest = store
        .browse_conversations(Some(first[1].cursor.clone()), 2, 0)
        .await
        .unwrap();
    let names: Vec<(&str, Option<&str>)> = rest
        .iter()
        .map(|c| (c.key.as_str(), c.name.as_deref()))
        .collect();
    assert_eq!(names, [("telegram/2", Some("Team two"))]);
    assert!(
        store
            .browse_conversations(Some("not a cursor".into()), 2, 0)
            .await
            .unwrap()
            .len()
            == 2,
        "an unreadable cursor starts from the top"
    );
}

async fn usage_since_adds_turn_and_worker_usage(db: TestDb) {
    let store = db.connect().await;
    let k = key("10");
    let inbound = store
        .record_inbound(&k, &alice(), "do it", Some("x"))
        .await
        .unwrap();
    let turn = store
        .start_turn(&k, inbound, Mode::Orchestrator, "openai:gpt")
        .await
        .unwrap();
    store.insert_worker(turn, &worker("w1")).await.unwrap();
    store.insert_worker(turn, &worker("w2")).await.unwrap();
    store
        .update_worker(
            turn,
            &WorkerId("w1".into()),
            WorkerStatus::Done,
            Some("result one"),
            None,
            usage(100, 10),
        )
        .await
        .unwrap();
    store
        .update_worker(
            turn,
            &WorkerId("w2".into()),
            WorkerStatus::Error,
            None,
            Some("model failed"),
            usage(50, 5),
        )
        .await
        .unwrap();
    store
        .finish_turn(turn, TurnStatus::Done, usage(1000, 200), None)
        .await
        .unwrap();

    // A second turn without workers, and a turn in another conversation.
    let second = store
        .start_turn(&k, None, Mode::Single, "openai:gpt")
        .await
        .unwrap();
    store
        .finish_turn(second, TurnStatus::Cancelled, usage(7, 3), None)
        .await
        .unwrap();
    let other = store
        .start_turn(&key("11"), None, Mode::Single, "openai:gpt")
        .await
        .unwrap();
    store
        .finish_turn(other, TurnStatus::Done, usage(99_999, 99_999), None)
        .await
        .unwrap();

    assert_eq!(
        store.usage_since(&k, 0).await.unwrap(),
        usage(1000 + 100 + 50 + 7, 200 + 10 + 5 + 3)
    );
    assert_eq!(
        store.usage_since(&k, i64::MAX).await.unwrap(),
        Usage::default()
    );
    assert_eq!(
        store.usage_since(&key("nobody"), 0).await.unwrap(),
        Usage::default()
    );
    // The whole service, split by model (budgets price each model apart).
    let by_model = store.usage_by_model_since(None, 0).await.unwrap();
    let mut service = Usage::default();
    for part in &by_model {
        service.add(part.usage);
    }
    assert_eq!(service, usage(1157 + 99_999, 218 + 99_999), "{by_model:?}");
    assert!(
        by_model.iter().any(|p| p.model == "openai:gpt"),
        "{by_model:?}"
    );

    let stored = store.load_turn(turn).await.unwrap().unwrap();
    assert_eq!(stored.status, TurnStatus::Done);
    assert_eq!(stored.inbound, inbound);
    assert_eq!(stored.mode, Mode::Orchestrator);
    assert_eq!(stored.usage, usage(1000, 200));
    assert!(stored.finished_at.is_some());

    let workers = store.workers(turn).await.unwrap();
    assert_eq!(workers.len(), 2);
    assert_eq!(workers[0].worker_id, WorkerId("w1".into()));
    assert_eq!(workers[0].status, WorkerStatus::Done);
    assert_eq!(workers[0].result.as_deref(), Some("result one"));
    assert_eq!(workers[0].effort, Effort::Off);
    assert_eq!(workers[1].status, WorkerStatus::Error);
    assert_eq!(workers[1].error.as_deref(), Some("model failed"));
    assert_eq!(workers[1].usage, usage(50, 5));
}

async fn updating_an_unknown_turn_or_worker_is_not_found(db: TestDb) {
    let store = db.connect().await;
    let k = key("12");
    let turn = store.start_turn(&k, None, Mode::Single, "m").await.unwrap();
    let missing = store
        .update_worker(
            turn,
            &WorkerId("w9".into()),
            WorkerStatus::Done,
            None,
            None,
            Usage::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound(_)), "{missing:?}");
    assert!(!missing.is_transient());
    let bogus = baton::store::TurnId(turn.0 + 1000);
    let missing = store
        .finish_turn(bogus, TurnStatus::Done, Usage::default(), None)
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound(_)), "{missing:?}");
    // A worker for a turn that does not exist breaks a foreign key.
    let broken = store.insert_worker(bogus, &worker("w1")).await.unwrap_err();
    assert!(matches!(broken, StoreError::Database(_)), "{broken:?}");
}

async fn abandoned_turns_are_failed_on_start(db: TestDb) {
    let k = key("13");

    let store = db.connect().await;
    let finished = store.start_turn(&k, None, Mode::Single, "m").await.unwrap();
    store
        .finish_turn(finished, TurnStatus::Done, usage(1, 1), None)
        .await
        .unwrap();
    let left_running = store
        .start_turn(&k, None, Mode::Orchestrator, "m")
        .await
        .unwrap();
    store
        .insert_worker(left_running, &worker("w1"))
        .await
        .unwrap();
    store.close().await; // the "crash"

    let store = db.connect().await;
    assert_eq!(store.fail_abandoned_turns().await.unwrap(), 1);
    assert_eq!(store.fail_abandoned_turns().await.unwrap(), 0);

    let turn = store.load_turn(left_running).await.unwrap().unwrap();
    assert_eq!(turn.status, TurnStatus::Failed);
    assert!(turn.error.unwrap().contains("abandoned"));
    assert!(turn.finished_at.is_some());
    let workers = store.workers(left_running).await.unwrap();
    assert_eq!(workers[0].status, WorkerStatus::Cancelled);
    let done = store.load_turn(finished).await.unwrap().unwrap();
    assert_eq!(done.status, TurnStatus::Done);
    assert_eq!(done.error, None);
    store.close().await;
}

async fn events_are_logged_in_order(db: TestDb) {
    let store = db.connect().await;
    let k = key("14");
    let turn = store
        .start_turn(&k, None, Mode::Orchestrator, "m")
        .await
        .unwrap();
    store
        .record_event(&k, None, EventKind::Message, "user", "hi")
        .await
        .unwrap();
    store
        .record_event(
            &k,
            Some(turn),
            EventKind::Delegation,
            "orchestrator",
            "w1: look",
        )
        .await
        .unwrap();
    store
        .record_event(&k, Some(turn), EventKind::Result, "w1", "found it")
        .await
        .unwrap();
    let events = store.recent_events(&k, 2).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].kind, Some(EventKind::Delegation));
    assert_eq!(events[0].turn, Some(turn));
    assert_eq!(events[1].source, "w1");
    assert_eq!(events[1].body, "found it");
    assert!(events[0].id < events[1].id);
}

async fn concurrent_events_are_all_written_in_order_before_close(db: TestDb) {
    let store = db.connect().await;
    // 8 conversations (new rows, created by the writer) log 50 events each
    // at once; the writer batches them.
    let mut tasks = tokio::task::JoinSet::new();
    for conversation in 0..8 {
        let store = store.clone();
        tasks.spawn(async move {
            let k = key(&format!("ev{conversation}"));
            for n in 0..50 {
                store
                    .record_event(&k, None, EventKind::Progress, "w1", &n.to_string())
                    .await
                    .unwrap();
            }
        });
    }
    tasks.join_all().await;
    // Closing writes what is queued; a new connection sees all of it.
    store.close().await;
    let store = db.connect().await;
    for conversation in 0..8 {
        let events = store
            .recent_events(&key(&format!("ev{conversation}")), 100)
            .await
            .unwrap();
        let bodies: Vec<String> = events.into_iter().map(|e| e.body).collect();
        let expected: Vec<String> = (0..50).map(|n| n.to_string()).collect();
        assert_eq!(bodies, expected, "conversation ev{conversation}");
    }
    store.close().await;
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

async fn migrations_applied_twice_are_a_no_op(db: TestDb) {
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

async fn clones_share_the_connection_and_close_ends_it(db: TestDb) {
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

async fn a_project_and_its_turn_survive_a_restart_and_its_outcome_is_posted_once(db: TestDb) {
    let k = key("77");
    let store = db.connect().await;
    let project = store
        .create_project(
            &k,
            NewProject {
                goal: "map the tides",
                plan: Some("north first"),
                model: "p:big",
                reply_to: Some("m9"),
            },
        )
        .await
        .unwrap();
    assert_eq!(project.status, ProjectStatus::Running);
    assert_eq!(project.transcript, "[]");
    assert_eq!(project.reply_to.as_deref(), Some("m9"));
    let turn = store.load_turn(project.turn).await.unwrap().unwrap();
    assert_eq!((turn.status, turn.inbound), (TurnStatus::Running, None));
    store
        .insert_worker(project.turn, &worker("w1"))
        .await
        .unwrap();
    store
        .save_project_transcript(
            project.id,
            r#"[{"role":"user","text":"go"}]"#,
            3,
            usage(30, 7),
        )
        .await
        .unwrap();
    store.close().await; // the "crash"

    let store = db.connect().await;
    // The project's turn stays running; its running worker is interrupted.
    assert_eq!(store.fail_abandoned_turns().await.unwrap(), 0);
    let turn = store.load_turn(project.turn).await.unwrap().unwrap();
    assert_eq!(turn.status, TurnStatus::Running);
    assert_eq!(turn.usage, usage(30, 7));
    let workers = store.workers(project.turn).await.unwrap();
    assert_eq!(workers[0].status, WorkerStatus::Cancelled);
    let resumed = store.projects_to_resume().await.unwrap();
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].rounds, 3);
    assert!(resumed[0].transcript.contains("go"));

    store
        .complete_project(project.id, "Tides mapped.")
        .await
        .unwrap();
    let done = store.load_project(project.id).await.unwrap().unwrap();
    assert_eq!(done.status, ProjectStatus::Completed);
    assert_eq!(done.result.as_deref(), Some("Tides mapped."));
    assert!(done.finished_at.is_some());
    let turn = store.load_turn(project.turn).await.unwrap().unwrap();
    assert_eq!(turn.status, TurnStatus::Done);
    // Completed but not posted: a restart posts it; once posted, never again.
    assert_eq!(store.projects_to_resume().await.unwrap().len(), 1);
    store.mark_project_posted(project.id).await.unwrap();
    assert!(store.projects_to_resume().await.unwrap().is_empty());
    assert_eq!(store.projects_of(&k, 10).await.unwrap().len(), 1);
    assert!(store.projects_of(&key("78"), 10).await.unwrap().is_empty());
    store.close().await;
}

async fn a_stored_reply_is_unsent_until_marked_even_across_a_restart(db: TestDb) {
    let k = key("88");
    let store = db.connect().await;
    let inbound = store
        .record_inbound(&k, &alice(), "q1", Some("m1"))
        .await
        .unwrap();
    let turn = store
        .start_turn(&k, inbound, Mode::Single, "m")
        .await
        .unwrap();
    let first = store
        .record_reply(&k, turn, "a1", Some("m1"))
        .await
        .unwrap();
    let second = store.record_reply(&k, turn, "a2", None).await.unwrap();
    // The reply is in the transcript as well as in the outbox.
    let history = store.history(&k, 10).await.unwrap();
    assert_eq!(history.last().map(|m| m.id), Some(second.message));
    store.mark_sent(second.outbox).await.unwrap();
    store.close().await; // a stop before the first was posted

    let store = db.connect().await;
    let unsent = store.unsent_replies(0, 10).await.unwrap();
    assert_eq!(unsent.len(), 1, "{unsent:?}");
    assert_eq!(unsent[0].id, first.outbox);
    assert_eq!(unsent[0].key, k);
    assert_eq!(unsent[0].text, "a1");
    assert_eq!(unsent[0].reply_to.as_deref(), Some("m1"));
    // Only replies stored since the given time are posted again.
    assert!(store.unsent_replies(i64::MAX, 10).await.unwrap().is_empty());
    store.mark_sent(first.outbox).await.unwrap();
    assert!(store.unsent_replies(0, 10).await.unwrap().is_empty());
    store.close().await;
}
