//! What a conversation does when its queue is full: the message stays in
//! the store (it already is, before the platform is told it arrived), the
//! sender moves on, and the actor reads it back from the store once it has
//! worked through its queue. One busy conversation so never blocks the
//! adapter that feeds every other conversation.
//!
//! [`Overflow`] is the flag the registry and the actor share: the smallest
//! message id left in the store, or none. While it is set, new messages of
//! the conversation go to the store only, so they keep their order behind
//! the ones already waiting there. [`Backlog`] is the actor's side: it
//! reads what is waiting, in id order, and clears the flag once nothing is.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};

use baton_channel::{ConversationKey, Inbound, Origin};
use tokio::sync::Notify;

use super::actor::StoredInbound;
use crate::store::{MessageId, Store, StoreError, UnansweredMessage};

/// No message is waiting in the store.
const NONE: i64 = 0;

/// The smallest id of a message that waits in the store instead of the
/// conversation's queue, or none; and the actor's wake-up when one is
/// marked. Shared by the registry and the actor.
#[derive(Debug, Default)]
pub(crate) struct Overflow {
    from: AtomicI64,
    wake: Notify,
}

impl Overflow {
    /// The smallest waiting id, if any message waits.
    pub fn from(&self) -> Option<MessageId> {
        match self.from.load(Ordering::SeqCst) {
            NONE => None,
            id => Some(MessageId(id)),
        }
    }

    /// Whether messages wait in the store.
    pub fn is_set(&self) -> bool {
        self.from().is_some()
    }

    /// Records that message `id` waits in the store, and wakes the actor
    /// (it may have emptied its queue just before).
    pub fn mark(&self, id: MessageId) {
        let _ = self
            .from
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |current| {
                (current == NONE || id.0 < current).then_some(id.0)
            });
        self.wake.notify_one();
    }

    /// Resolves after the next [`Overflow::mark`] (at once if one came
    /// since the last wait).
    pub async fn marked(&self) {
        self.wake.notified().await;
    }

    /// Clears the flag if it still says `from` (a smaller id marked since
    /// keeps it set).
    fn clear(&self, from: MessageId) -> bool {
        self.from
            .compare_exchange(from.0, NONE, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }
}

/// The actor's side: messages read back from the store, waiting for their
/// turns, and the ids recently taken that way (the same message may also
/// reach the queue when it raced the flag being cleared).
#[derive(Debug, Default)]
pub(crate) struct Backlog {
    waiting: VecDeque<StoredInbound>,
    taken: VecDeque<MessageId>,
}

impl Backlog {
    /// The next message read back from the store.
    pub fn next(&mut self, remember: usize) -> Option<StoredInbound> {
        let message = self.waiting.pop_front()?;
        self.note_taken(message.id, remember);
        Some(message)
    }

    /// Remembers that message `id` was taken from the queue, so that a
    /// copy read back from the store later is not answered again.
    pub fn note_taken(&mut self, id: MessageId, remember: usize) {
        if self.taken.contains(&id) {
            return;
        }
        if self.taken.len() >= remember {
            self.taken.pop_front();
        }
        self.taken.push_back(id);
    }

    /// Puts messages an earlier owner left unanswered ahead of everything
    /// else, in order (a message taken or waiting already is skipped).
    pub fn take_over(&mut self, messages: impl IntoIterator<Item = StoredInbound>) {
        for message in messages {
            let known = self.taken.contains(&message.id)
                || self.waiting.iter().any(|waiting| waiting.id == message.id);
            if !known {
                self.waiting.push_back(message);
            }
        }
    }

    /// Whether nothing read back waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Whether message `id` was already taken from the store (its copy in
    /// the queue is then dropped).
    pub fn was_taken(&self, id: MessageId) -> bool {
        self.taken.contains(&id)
    }

    /// Reads up to `limit` waiting messages of `key` from the store. When
    /// none wait, clears `overflow` and looks once more, for a message
    /// stored while the flag was being cleared.
    pub async fn refill(
        &mut self,
        overflow: &Overflow,
        store: &Store,
        key: &ConversationKey,
        limit: usize,
    ) -> Result<(), StoreError> {
        let Some(from) = overflow.from() else {
            return Ok(());
        };
        self.read(store, key, from, limit).await?;
        if self.waiting.is_empty() && overflow.clear(from) {
            self.read(store, key, from, limit).await?;
        }
        Ok(())
    }

    /// Whether message `id` waits in the backlog.
    pub fn is_waiting(&self, id: MessageId) -> bool {
        self.waiting.iter().any(|message| message.id == id)
    }

    /// The largest message id taken, if any.
    pub fn last_taken(&self) -> Option<MessageId> {
        self.taken.iter().max().copied()
    }

    /// Reads the conversation's messages from `from` on that no turn took
    /// yet (up to `limit`), to go before the rest of the queue.
    pub async fn catch_up(
        &mut self,
        store: &Store,
        key: &ConversationKey,
        from: MessageId,
        limit: usize,
    ) -> Result<(), StoreError> {
        self.read(store, key, from, limit).await
    }

    async fn read(
        &mut self,
        store: &Store,
        key: &ConversationKey,
        from: MessageId,
        limit: usize,
    ) -> Result<(), StoreError> {
        let rows = store
            .unanswered_in(key, from, limit + self.taken.len())
            .await?;
        let fresh = rows
            .into_iter()
            .filter(|row| !self.taken.contains(&row.id))
            .take(limit);
        self.waiting.extend(fresh.map(stored_inbound));
        Ok(())
    }
}

/// A message read back from the store, as its turn takes it.
pub(crate) fn stored_inbound(message: UnansweredMessage) -> StoredInbound {
    let origin = Origin::from_stored(
        message.key.platform(),
        message.platform_message_id.as_deref(),
    );
    StoredInbound {
        id: message.id,
        inbound: Inbound {
            key: message.key,
            author: message.author,
            text: message.text,
            origin,
            attachments: message.attachments,
            chat_title: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_keeps_the_smallest_id_and_clears_only_for_it() {
        let overflow = Overflow::default();
        assert!(!overflow.is_set());
        overflow.mark(MessageId(7));
        overflow.mark(MessageId(9));
        assert_eq!(overflow.from(), Some(MessageId(7)));
        overflow.mark(MessageId(5));
        assert_eq!(overflow.from(), Some(MessageId(5)));
        assert!(!overflow.clear(MessageId(7)), "a smaller id came since");
        assert!(overflow.clear(MessageId(5)));
        assert!(!overflow.is_set());
    }
}
