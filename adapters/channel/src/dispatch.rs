//! The engine as an adapter sees it: something that takes [`ChannelEvent`]s.
//!
//! Adapters know nothing of agents or models; the core implements
//! [`Dispatch`] (for its conversation registry) and hands it to each adapter.
//! The contract that makes platform confirmations safe: when `dispatch`
//! returns `Ok`, a message is stored, so the adapter may confirm it to its
//! platform (a Telegram offset, a webhook's 200).

use crate::reply::ChannelEvent;

/// What became of a dispatched event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Stored (messages) and handed to its conversation: queued, or left
    /// in the store behind others when its queue is full.
    New,
    /// A message with this platform id was seen before; it is not answered
    /// again.
    Duplicate,
}

/// Why the engine did not take an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DispatchError {
    /// Whether offering the same event again later may succeed (the store
    /// was busy or unreachable). A permanent error will not go away: the
    /// adapter drops the event.
    pub transient: bool,
    /// What went wrong, for the log.
    pub message: String,
}

/// The engine's entry point for adapters.
#[async_trait::async_trait]
pub trait Dispatch: Send + Sync {
    /// Hands an event to its conversation. A message is stored before this
    /// returns `Ok`; never waits for a busy conversation (one that is
    /// behind reads its messages back from the store).
    async fn dispatch(&self, event: ChannelEvent) -> Result<Accepted, DispatchError>;
}
