//! The engine's side of the adapter: a [`Channel`] whose [`Reply`] handles
//! put replies, verbose output and typing indicators in the channel's
//! outbox, and hand answers to slash commands to their interaction.

use std::sync::Arc;

use baton_channel::{
    CancelSource, Channel, ChannelError, ConversationKey, Origin, PendingCancel, Reply, WorkerEvent,
};

use crate::interaction::Interactions;
use crate::outbox::{Outboxes, Outgoing, Target};

/// Discord as the engine sees it: a source of reply handles.
pub struct DiscordChannel {
    outboxes: Arc<Outboxes>,
    interactions: Arc<Interactions>,
}

impl DiscordChannel {
    pub(crate) fn new(outboxes: Arc<Outboxes>, interactions: Arc<Interactions>) -> Self {
        Self {
            outboxes,
            interactions,
        }
    }
}

impl Channel for DiscordChannel {
    fn reply_to(&self, key: &ConversationKey) -> Box<dyn Reply> {
        Box::new(DiscordReply {
            key: key.clone(),
            channel: match *key {
                ConversationKey::Discord { channel } => Some(channel),
                _ => None,
            },
            outboxes: self.outboxes.clone(),
            interactions: self.interactions.clone(),
            cancel: CancelSource::new(),
        })
    }
}

/// One conversation's handle: a guild channel, a thread or a DM channel.
struct DiscordReply {
    key: ConversationKey,
    channel: Option<u64>,
    outboxes: Arc<Outboxes>,
    interactions: Arc<Interactions>,
    /// Voids what this conversation queued (`/stop` during a long reply).
    cancel: CancelSource,
}

impl DiscordReply {
    fn channel(&self) -> Result<u64, ChannelError> {
        self.channel.ok_or_else(|| {
            ChannelError::Permanent(format!("{} is not a Discord channel", self.key))
        })
    }
}

/// The user's message an origin names, if it names one.
fn message_id(origin: &Origin) -> Option<u64> {
    match *origin {
        Origin::Discord(id) => Some(id),
        _ => None,
    }
}

#[async_trait::async_trait]
impl Reply for DiscordReply {
    async fn post(&mut self, origin: &Origin, text: &str) -> Result<(), ChannelError> {
        if let Origin::Interaction(interaction) = *origin
            && let Some(result) = self.interactions.answer(interaction, text).await
        {
            return result;
        }
        let channel = self.channel()?;
        let target = Target {
            reply_to: message_id(origin),
        };
        let ticket = self.cancel.ticket();
        self.outboxes.deliver(channel, target, text, ticket).await
    }

    async fn verbose(&mut self, origin: &Origin, event: &WorkerEvent) -> Result<(), ChannelError> {
        let channel = self.channel()?;
        let target = Target {
            reply_to: message_id(origin),
        };
        let ticket = self.cancel.ticket();
        self.outboxes.show(channel, target, event, ticket);
        Ok(())
    }

    async fn working(&mut self, _origin: &Origin) -> Result<(), ChannelError> {
        let channel = self.channel()?;
        self.outboxes.offer(channel, Outgoing::Typing(()));
        Ok(())
    }

    fn pending_cancel(&self) -> PendingCancel {
        self.cancel.handle()
    }
}
