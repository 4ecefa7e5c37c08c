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
        Box::new(TelegramReply {
            key: key.clone(),
            chat: key.chat.parse().ok().map(ChatId),
            thread: key
                .thread
                .as_deref()
                .and_then(|t| t.parse().ok())
                .map(|id| ThreadId(MessageId(id))),
            outboxes: self.outboxes.clone(),
            cancel: CancelSource::new(),
        })
    }
}

/// One conversation's handle: a chat, and a forum topic in it.
struct TelegramReply {
    key: ConversationKey,
    chat: Option<ChatId>,
    thread: Option<ThreadId>,
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
            chat,
            thread: self.thread,
            reply_to: message_id(origin),
        })
    }
}

/// The Telegram message id an origin names, if it names one.
pub(crate) fn message_id(origin: &Origin) -> Option<MessageId> {
    origin
        .message_id
        .as_deref()
        .and_then(|id| id.parse().ok())
        .map(MessageId)
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
