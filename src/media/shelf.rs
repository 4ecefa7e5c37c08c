//! [`Shelf`]: the attachments a turn can see, by the ids the transcript
//! shows the orchestrator (`57.1`), so `spawn_worker` can hand them to a
//! worker. The turn's own files are already read; earlier ones are
//! downloaded again when a worker is given them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use baton_channel::{Attachment, Files};

use super::read::read_one;
use super::{Ready, attachment_id};
use crate::config::MediaConfig;
use crate::store::StoredMessage;

/// The most attachments one `spawn_worker` call may hand over.
pub const MAX_PER_WORKER: usize = 8;

/// The attachments of a turn's context, by id.
#[derive(Default)]
pub struct Shelf {
    config: MediaConfig,
    files: Option<Arc<dyn Files>>,
    known: BTreeMap<String, Attachment>,
    /// What was read already. A std mutex, never held across an `.await`.
    ready: Mutex<BTreeMap<String, Ready>>,
}

impl Shelf {
    /// The attachments of `history`, with `ready` (the turn's message's
    /// files, already read).
    pub fn new(
        config: MediaConfig,
        files: Option<Arc<dyn Files>>,
        history: &[StoredMessage],
        ready: Vec<Ready>,
    ) -> Self {
        let known = history
            .iter()
            .flat_map(|message| {
                message
                    .attachments
                    .iter()
                    .enumerate()
                    .map(|(index, file)| (attachment_id(message.id, index), file.clone()))
            })
            .collect();
        let ready = ready
            .into_iter()
            .map(|one| (one.id().to_owned(), one))
            .collect();
        Self {
            config,
            files,
            known,
            ready: Mutex::new(ready),
        }
    }

    /// The attachments `ids` names, read; the error is for the model.
    pub async fn take(&self, ids: &[String]) -> Result<Vec<Ready>, String> {
        if ids.len() > MAX_PER_WORKER {
            return Err(format!(
                "at most {MAX_PER_WORKER} attachments can be given to one worker"
            ));
        }
        let mut taken = Vec::with_capacity(ids.len());
        for id in ids {
            let cached = self
                .ready
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(id)
                .cloned();
            if let Some(ready) = cached {
                taken.push(ready);
                continue;
            }
            let Some(attachment) = self.known.get(id) else {
                return Err(format!(
                    "no attachment {id} in this conversation's context (ids look like 57.1)"
                ));
            };
            let ready = read_one(&self.config, self.files.as_deref(), id.clone(), attachment)
                .await
                .map_err(|why| format!("attachment {id} cannot be given: {why}"))?;
            self.ready
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id.clone(), ready.clone());
            taken.push(ready);
        }
        Ok(taken)
    }
}
