//! The actor's side of attachments: reading a message's files before its
//! turn (in the conversation's own actor, so no other conversation waits;
//! the downloads are bounded in size and time, and `/stop` ends them), and
//! the [`Shelf`] of the context's attachments the turn's orchestrator can
//! hand to workers.

use std::sync::Arc;

use baton_channel::{Attachment, Command};

use super::actor::{Actor, Control, DEFERRED_LIMIT, STOPPED};
use crate::llm::Message;
use crate::llm::models::ModelHandle;
use crate::media::{self, Ready, Shelf};
use crate::store::MessageId;

/// A message answered without a turn because of its files.
pub(super) struct FilesRefused {
    /// What the user reads.
    pub text: String,
    /// The turn row's error.
    pub why: &'static str,
}

fn is_stop(control: &Control) -> bool {
    matches!(control, Control::Command(message) if matches!(message.command, Ok(Command::Stop)))
}

impl Actor {
    /// Reads the files of message `message` for `model`; a refusal is the
    /// user's answer instead of a turn. Meanwhile a `/stop` ends the
    /// reading (answered "Stopped."); other control messages wait in
    /// `deferred` for the actor's loop.
    pub(super) async fn read_files(
        &mut self,
        message: MessageId,
        attachments: &[Attachment],
        model: &ModelHandle,
    ) -> Result<Vec<Ready>, FilesRefused> {
        if attachments.is_empty() {
            return Ok(Vec::new());
        }
        let config = self.services.config.media.clone();
        let files = self.files.clone();
        let read = async move {
            media::read_all(&config, files.as_deref(), message, attachments, model).await
        };
        tokio::pin!(read);
        let mut control_open = true;
        let read = loop {
            tokio::select! {
                read = &mut read => break read,
                // At most a control channel's worth is held back.
                control = self.control.recv(), if control_open && self.deferred.len() < DEFERRED_LIMIT => match control {
                    Some(control) if is_stop(&control) => {
                        return Err(FilesRefused {
                            text: STOPPED.to_owned(),
                            why: "stopped while its files were read",
                        });
                    }
                    Some(control) => self.deferred.push_back(control),
                    None => control_open = false,
                },
            }
        };
        read.map_err(|refusal| {
            // The reason names the files (users' words): not logged.
            tracing::info!(conversation = %self.key, message = message.0, files = attachments.len(), "a message's files were refused");
            FilesRefused {
                text: refusal.0,
                why: "its files were refused",
            }
        })
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
