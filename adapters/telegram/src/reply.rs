//! The engine's side of the adapter: a [`Channel`] whose [`Reply`] handles
//! put replies, verbose output and typing indicators in the chat's outbox.

use std::sync::Arc;

use baton_channel::{
    CancelSource, Channel, ChannelError, ConversationKey, Origin, PendingCancel, Reply, WorkerEvent,
};
use teloxide::types::{ChatId, MessageId, ThreadId};

use crate::outbox::{Outboxes, Outgoing, Target};

/// Telegram as the engine sees it: a source of reply handles.
pub struct TelegramChannel {
    outboxes: Arc<Outboxes>,
}

impl TelegramChannel {
    pub(crate) fn new(outboxes: Arc<Outboxes>) -> Self {
        Self { outboxes }
    }
}

impl Channel for TelegramChannel {
    fn reply_to(&self, key: &ConversationKey) -> Box<dyn Reply> {
        let chat = match *key {
            ConversationKey::Telegram { chat, topic } => Some(Chat {
                id: ChatId(chat),
                topic: topic.map(|topic| ThreadId(MessageId(topic))),
            }),
            _ => None,
        };
        Box::new(TelegramReply {
            key: key.clone(),
            chat,
            outboxes: self.outboxes.clone(),
            cancel: CancelSource::new(),
        })
    }
}

/// A chat, and a forum topic in it.
#[derive(Clone, Copy)]
struct Chat {
    id: ChatId,
    topic: Option<ThreadId>,
}

/// One conversation's handle.
struct TelegramReply {
    key: ConversationKey,
    /// `None` for a key of another platform: every post then fails.
    chat: Option<Chat>,
    outboxes: Arc<Outboxes>,
    /// Voids what this conversation queued (`/stop` during a long reply).
    cancel: CancelSource,
}

impl TelegramReply {
    fn target(&self, origin: &Origin) -> Result<Target, ChannelError> {
        let chat = self.chat.ok_or_else(|| {
            ChannelError::Permanent(format!("{} is not a Telegram chat", self.key))
        })?;
        Ok(Target {
            chat: chat.id,
            thread: chat.topic,
            reply_to: message_id(origin),
        })
    }
}

/// The Telegram message an origin names, if it names one.
fn message_id(origin: &Origin) -> Option<MessageId> {
    match *origin {
        Origin::Telegram(id) => Some(MessageId(id)),
        _ => None,
    }
}

#[async_trait::async_trait]
impl Reply for TelegramReply {
    async fn post(&mut self, origin: &Origin, text: &str) -> Result<(), ChannelError> {
        let target = self.target(origin)?;
        let ticket = self.cancel.ticket();
        self.outboxes
            .deliver(target.chat, target, text, ticket)
            .await
    }

    async fn verbose(&mut self, origin: &Origin, event: &WorkerEvent) -> Result<(), ChannelError> {
        let target = self.target(origin)?;
        let ticket = self.cancel.ticket();
        self.outboxes.show(target.chat, target, event, ticket);
        Ok(())
    }

    async fn working(&mut self, origin: &Origin) -> Result<(), ChannelError> {
        let target = self.target(origin)?;
        self.outboxes
            .offer(target.chat, Outgoing::Typing(target.thread));
        Ok(())
    }

    fn pending_cancel(&self) -> PendingCancel {
        self.cancel.handle()
    }
}
