//! The actor's side of attachments: reading a message's files before its
//! turn (in the conversation's own actor, so no other conversation waits;
//! each download is bounded in size and time), and the [`Shelf`] of the
//! context's attachments the turn's orchestrator can hand to workers.

use std::sync::Arc;

use baton_channel::Attachment;

use super::actor::Actor;
use crate::llm::Message;
use crate::llm::models::ModelHandle;
use crate::media::{self, Ready, Refusal, Shelf};
use crate::store::MessageId;

impl Actor {
    /// Reads the files of message `message` for `model`; a refusal is the
    /// user's answer instead of a turn.
    pub(super) async fn read_files(
        &self,
        message: MessageId,
        attachments: &[Attachment],
        model: &ModelHandle,
    ) -> Result<Vec<Ready>, Refusal> {
        if attachments.is_empty() {
            return Ok(Vec::new());
        }
        let config = &self.services.config.media;
        let read =
            media::read_all(config, self.files.as_deref(), message, attachments, model).await;
        if read.is_err() {
            // The reason names the files (users' words): not logged.
            tracing::info!(conversation = %self.key, message = message.0, files = attachments.len(), "a message's files were refused");
        }
        read
    }

    /// Gives the context's newest message its files' contents, and returns
    /// the shelf of the context's attachments for the turn.
    pub(super) fn shelve(&self, context: &mut [Message], ready: Vec<Ready>) -> Arc<Shelf> {
        media::attach(context, &ready);
        Arc::new(Shelf::new(
            self.services.config.media.clone(),
            self.files.clone(),
            self.recent.messages(),
            ready,
        ))
    }
}
