//! What comes in from a platform, and the handle the conversation actor
//! posts through.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::attachment::{Attachment, Files};
use crate::command::{Command, CommandError};
use crate::event::WorkerEvent;
use crate::key::{ConversationKey, Platform};

/// Who sent a message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Author {
    /// The platform's user id.
    pub id: String,
    /// A display name, for the transcript.
    pub name: String,
}

/// The platform message a turn answers: replies reference it and the verbose
/// thread hangs under it. Typed as its platform numbers it.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Origin {
    /// Nothing to refer to: the terminal, or a stored message whose id
    /// does not read back.
    #[default]
    Unnamed,
    /// A Telegram message.
    Telegram(i32),
    /// A Discord message.
    Discord(u64),
    /// A Discord slash-command interaction, answered through its token.
    Interaction(u64),
}

/// The stored form's prefix of an interaction.
const INTERACTION_PREFIX: &str = "interaction:";

impl Origin {
    /// The id as the store keeps it: messages are deduplicated on it, and
    /// unsent replies and projects keep it to refer to it later.
    pub fn stored_id(&self) -> Option<String> {
        match self {
            Origin::Unnamed => None,
            Origin::Telegram(id) => Some(id.to_string()),
            Origin::Discord(id) => Some(id.to_string()),
            Origin::Interaction(id) => Some(format!("{INTERACTION_PREFIX}{id}")),
        }
    }

    /// Reads a stored id back for a conversation on `platform`. An id that
    /// does not read back is [`Origin::Unnamed`]: the reply then goes out
    /// without a reference rather than not at all.
    pub fn from_stored(platform: Platform, id: Option<&str>) -> Origin {
        let Some(id) = id else {
            return Origin::Unnamed;
        };
        let read = match platform {
            Platform::Terminal => None,
            Platform::Telegram => id.parse().ok().map(Origin::Telegram),
            Platform::Discord => match id.strip_prefix(INTERACTION_PREFIX) {
                Some(interaction) => interaction.parse().ok().map(Origin::Interaction),
                None => id.parse().ok().map(Origin::Discord),
            },
        };
        read.unwrap_or_default()
    }
}

/// A chat message for the conversation's orchestrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The conversation it belongs to.
    pub key: ConversationKey,
    /// Who wrote it.
    pub author: Author,
    /// Its text, with any bot mention already stripped.
    pub text: String,
    /// The message itself, for replies and deduplication.
    pub origin: Origin,
    /// Files sent with it (a caption and its file are one message).
    pub attachments: Vec<Attachment>,
    /// The chat's title where it has one (a group, a channel), as the
    /// platform gave it with this message; `None` for direct chats and
    /// where the adapter cannot tell without an extra request. The
    /// dashboard names conversations by it.
    pub chat_title: Option<String>,
}

/// A failure to deliver something to a platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// Worth retrying: rate limits, timeouts, 5xx answers.
    #[error("temporary delivery failure: {0}")]
    Transient(String),
    /// Not worth retrying: the chat is gone, the bot was removed, bad request.
    #[error("delivery failed: {0}")]
    Permanent(String),
}

impl ChannelError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, ChannelError::Transient(_))
    }
}

/// The one handle through which a conversation reaches its channel.
///
/// Exactly one exists per conversation actor, owned by it: it is not
/// `Clone`, and the worker side of the engine has no field of this type, so
/// a worker has no code path to a channel. Adapters split long text (see
/// [`crate::chunk_text`]) and apply their platform's formatting and limits.
///
/// **Order.** Users see a conversation's output in the order the handle
/// was given it: worker output shown with [`Reply::verbose`] before a
/// [`Reply::post`] reaches the chat before that post, even where the
/// adapter was still collecting it into a batch (the post flushes it
/// first), so a turn's reply is the last thing users read of the turn.
/// Worker output given after a post goes after it. (Workers are explained
/// before the answer that sums them up; and since a post waits only
/// behind output already given, worker chatter cannot starve a reply.)
/// The adapters get this from [`crate::outbox`].
#[async_trait::async_trait]
pub trait Reply: Send + Sync {
    /// Posts `text` to the conversation as the bot's answer to `origin`,
    /// after the worker output given before it (see the order above);
    /// returns once it was delivered.
    async fn post(&mut self, origin: &Origin, text: &str) -> Result<(), ChannelError>;

    /// Shows one worker event under `origin` (only called with verbose on);
    /// display only: an adapter may drop it when its queue is full.
    async fn verbose(&mut self, origin: &Origin, event: &WorkerEvent) -> Result<(), ChannelError>;

    /// Shows that a turn is running (a typing indicator); called again while
    /// it runs. Platforms without one ignore it.
    async fn working(&mut self, _origin: &Origin) -> Result<(), ChannelError> {
        Ok(())
    }

    /// A handle that drops this conversation's not-yet-sent output (the
    /// rest of queued replies, and verbose output) from the platform's send
    /// queue: `/stop` uses it while a long reply is still being sent.
    ///
    /// It is separate from the handle so it can be used while
    /// [`Reply::post`] runs. A `post` whose pieces are dropped this way
    /// returns `Ok(())`: nothing failed, the rest was not wanted. Only what
    /// was queued before [`PendingCancel::cancel`] is dropped; later posts
    /// go out as usual. The default does nothing (platforms that post at
    /// once have nothing queued).
    fn pending_cancel(&self) -> PendingCancel {
        PendingCancel::default()
    }
}

/// Drops what a conversation has queued but not yet sent; see
/// [`Reply::pending_cancel`]. Cheap to clone.
#[derive(Clone, Default)]
pub struct PendingCancel(Option<Arc<dyn Fn() + Send + Sync>>);

impl PendingCancel {
    /// A handle that runs `cancel` each time it is used.
    pub fn new(cancel: impl Fn() + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(cancel)))
    }

    /// Drops the conversation's queued, unsent output.
    pub fn cancel(&self) {
        if let Some(cancel) = &self.0 {
            cancel();
        }
    }
}

impl std::fmt::Debug for PendingCancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PendingCancel")
            .field(&self.0.is_some())
            .finish()
    }
}

/// Something an adapter hands the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelEvent {
    /// A chat message for the orchestrator.
    Message(Inbound),
    /// A command (already permission-checked by the adapter). Parse errors
    /// are passed on too, so every platform answers them the same way.
    Command {
        /// The conversation it applies to.
        key: ConversationKey,
        /// Who sent it.
        author: Author,
        /// The message (or interaction) to answer.
        origin: Origin,
        /// The parsed command, or why it did not parse.
        command: Result<Command, CommandError>,
    },
}

impl ChannelEvent {
    /// The conversation the event belongs to.
    pub fn key(&self) -> &ConversationKey {
        match self {
            ChannelEvent::Message(inbound) => &inbound.key,
            ChannelEvent::Command { key, .. } => key,
        }
    }
}

/// A platform adapter as the engine sees it: a source of [`Reply`] handles,
/// one per conversation actor.
pub trait Channel: Send + Sync {
    /// A new reply handle for `key`; the engine keeps exactly one per live
    /// conversation.
    fn reply_to(&self, key: &ConversationKey) -> Box<dyn Reply>;

    /// The platform's file API, for the attachments of messages; `None`
    /// where messages carry none (the terminal).
    fn files(&self) -> Option<Arc<dyn Files>> {
        None
    }
}

/// The adapter's side of [`PendingCancel`]: each reply handle owns one, and
/// stamps what it queues with a [`Ticket`] that its handle can void.
#[derive(Debug, Clone, Default)]
pub struct CancelSource(Arc<AtomicU64>);

impl CancelSource {
    /// A source nothing was cancelled from yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A stamp for output queued now.
    pub fn ticket(&self) -> Ticket {
        Ticket {
            generation: Some(self.0.clone()),
            at: self.0.load(Ordering::SeqCst),
        }
    }

    /// The handle that voids every ticket issued so far.
    pub fn handle(&self) -> PendingCancel {
        let generation = self.0.clone();
        PendingCancel::new(move || {
            generation.fetch_add(1, Ordering::SeqCst);
        })
    }
}

/// Marks queued output as belonging to one conversation's cancel
/// generation; the default ticket is never cancelled.
#[derive(Debug, Clone, Default)]
pub struct Ticket {
    generation: Option<Arc<AtomicU64>>,
    at: u64,
}

impl Ticket {
    /// Whether the output was cancelled after it was queued.
    pub fn is_cancelled(&self) -> bool {
        self.generation
            .as_ref()
            .is_some_and(|g| g.load(Ordering::SeqCst) != self.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_reads_back_from_its_stored_id() {
        for (platform, origin) in [
            (Platform::Telegram, Origin::Telegram(7)),
            (
                Platform::Discord,
                Origin::Discord(1_234_567_890_123_456_789),
            ),
            (Platform::Discord, Origin::Interaction(12)),
        ] {
            let stored = origin.stored_id();
            assert_eq!(Origin::from_stored(platform, stored.as_deref()), origin);
        }
        assert_eq!(Origin::Unnamed.stored_id(), None);
        assert_eq!(
            Origin::from_stored(Platform::Telegram, None),
            Origin::Unnamed
        );
        // A row written by something else reads as no reference, not an error.
        assert_eq!(
            Origin::from_stored(Platform::Telegram, Some("m1")),
            Origin::Unnamed
        );
        assert_eq!(
            Origin::from_stored(Platform::Terminal, Some("1")),
            Origin::Unnamed
        );
    }
}
