//! The sqlx repository: conversations and their settings, the transcript,
//! turns, workers, and the event log.
//!
//! One [`Store`] over sqlx's `Any` driver serves SQLite (the default, in WAL
//! mode) and Postgres; the SQL is portable and the migrations in
//! `migrations/sqlite` and `migrations/postgres` are applied on connect.

mod model;

pub use model::{
    ConversationSettings, EventKind, MessageId, Mode, NewWorker, Role, StoredMessage, TurnId,
    TurnStatus,
};
