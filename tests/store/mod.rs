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
//!
//! One module per area of the store: `conversations`, `transcript`,
//! `turns`, `events`, `projects`, `connection` and `migrations`; this one
//! holds what they share (the test database, the helpers, the macro).

use baton::domain::Usage;
use baton::store::{NewWorker, Store};
use baton_channel::{Author, ConversationKey, Effort, WorkerId};

use crate::support;

mod connection;
mod conversations;
mod events;
mod migrations;
mod projects;
mod transcript;
mod turns;

/// The Telegram chat `chat` (a number).
fn key(chat: &str) -> ConversationKey {
    format!("telegram/{chat}").parse().unwrap()
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

/// Runs each named `async fn(TestDb)` (`topic::name`: the module it is in,
/// and its name, which the test keeps) on SQLite (`memory`: in memory,
/// `file`: on a file, for scenarios that reconnect) and on Postgres, as
/// `store::sqlite::name` and `store::postgres::name`.
macro_rules! on_both_backends {
    (
        memory: [$($memory_topic:ident :: $memory:ident),* $(,)?],
        file: [$($file_topic:ident :: $file:ident),* $(,)?] $(,)?
    ) => {
        mod sqlite {
            use super::TestDb;
            $(
                #[tokio::test]
                async fn $memory() {
                    super::$memory_topic::$memory(TestDb::sqlite_memory()).await;
                }
            )*
            $(
                #[tokio::test]
                async fn $file() {
                    super::$file_topic::$file(TestDb::sqlite_file()).await;
                }
            )*
        }

        mod postgres {
            use super::TestDb;
            $(
                #[tokio::test]
                async fn $memory() {
                    if let Some(db) = TestDb::postgres().await {
                        super::$memory_topic::$memory(db).await;
                    }
                }
            )*
            $(
                #[tokio::test]
                async fn $file() {
                    if let Some(db) = TestDb::postgres().await {
                        super::$file_topic::$file(db).await;
                    }
                }
            )*
        }
    };
}

/// A worker to record, known by `id`.
fn worker(id: &str) -> NewWorker {
    NewWorker {
        worker_id: WorkerId(id.into()),
        label: format!("label {id}"),
        brief: format!("brief {id}"),
        effort: Effort::Off,
        model: "openai:gpt-mini".into(),
    }
}

on_both_backends! {
    memory: [
        conversations::a_conversation_with_messages_but_no_saved_settings_has_none,
        conversations::unknown_stored_words_fall_back_to_defaults,
        transcript::inbound_is_deduplicated_by_platform_message_id,
        transcript::history_returns_the_newest_messages_oldest_first,
        transcript::a_reply_follows_its_message_even_when_others_queued_before_it,
        transcript::reset_context_hides_earlier_messages,
        turns::usage_since_adds_turn_and_worker_usage,
        turns::cache_tokens_are_stored_per_turn_and_worker,
        conversations::conversations_browse_by_last_activity_with_titles,
        turns::updating_an_unknown_turn_or_worker_is_not_found,
        events::events_are_logged_in_order,
        connection::clones_share_the_connection_and_close_ends_it,
    ],
    file: [
        conversations::settings_round_trip_and_survive_a_reconnect,
        turns::abandoned_turns_are_failed_on_start,
        migrations::migrations_applied_twice_are_a_no_op,
        events::concurrent_events_are_all_written_in_order_before_close,
        projects::a_project_and_its_turn_survive_a_restart_and_its_outcome_is_posted_once,
        transcript::a_stored_reply_is_unsent_until_marked_even_across_a_restart,
    ],
}
