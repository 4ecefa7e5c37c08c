//! Conversations: one actor per [`ConversationKey`](baton_channel::ConversationKey),
//! found or started by the [`Registry`].
//!
//! An actor runs one turn at a time; messages arriving meanwhile wait in its
//! bounded queue, in order, and past it in the store (`backlog`), so that
//! dispatching never waits on a busy conversation. Per-user flood control
//! (`flood`) skips messages past a user's per-minute limit. `/stop` and
//! `/status` bypass the queue (`/stop` cancels the running turn and its
//! workers at once). The actor alone holds the
//! conversation's `Reply` handle; worker events reach it over a channel and
//! go to the verbose sink only when verbose is on. Idle actors leave memory;
//! their state lives in the store.

mod actor;
mod attachments;
mod backlog;
mod cluster;
mod commands;
mod context;
mod flood;
mod ownership;
mod projects;
mod registry;
mod reply_cap;
mod store_trouble;
mod turn;
mod turn_end;

pub use cluster::{listen, sweep};
pub use registry::{EngineError, Registry};
pub use turn::{TurnOutcome, TurnRequest, run_turn};
