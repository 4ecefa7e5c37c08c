//! How a turn ends: its row recorded (once, for a single-mode turn; at
//! its start and now, for an orchestrator turn), its reply stored in the
//! transcript, and the one text the actor posts for it, whatever the
//! outcome (an answer, cut to `max_reply_chars`; a failure in plain words;
//! a stop; a deadline). Also the answer without a model when a budget is
//! used up.

use baton_channel::Origin;

use super::actor::Actor;
use super::reply_cap::cap_reply;
use super::turn::TurnOutcome;
use crate::domain::{Mode, Usage};
use crate::store::{
    EndingTurn, EventKind, MessageId, ReplyToStore, Role, StoreError, StoredMessage, TurnEnd,
    TurnId, TurnStatus,
};

/// What `finish` records a turn's end with.
pub(super) struct TurnRow {
    /// The row, when the turn was recorded at its start.
    pub turn: Option<TurnId>,
    pub message: MessageId,
    pub mode: Mode,
    pub model: String,
    pub started_at: i64,
}

impl Actor {
    /// Answers without a model (the budget is used up, the files cannot be
    /// read); the turn is recorded as failed (`why`) so the message counts
    /// as handled.
    pub(super) async fn refuse(
        &mut self,
        message: MessageId,
        origin: &Origin,
        text: &str,
        why: &str,
    ) {
        let store = self.services.store.clone();
        let model = self.services.models.orchestrator.model.to_string();
        match store
            .start_turn(&self.key, Some(message), self.settings.mode, &model)
            .await
        {
            Ok(turn) => {
                let finished = store
                    .finish_turn(turn, TurnStatus::Failed, Usage::default(), Some(why))
                    .await;
                if let Err(e) = finished {
                    tracing::error!(conversation = %self.key, error = %e, "could not finish a turn");
                }
            }
            Err(e) => {
                tracing::error!(conversation = %self.key, error = %e, "could not record a turn")
            }
        }
        self.post(origin, text).await;
    }

    /// Records how the turn ended (with the orchestrator's `usage`, also
    /// for a failed or stopped turn) and posts its one reply.
    pub(super) async fn finish(
        &mut self,
        row: TurnRow,
        outcome: TurnOutcome,
        usage: Usage,
        origin: &Origin,
        notice: Option<String>,
    ) {
        if !self.services.fence.holds() {
            // Whoever holds the conversation next re-runs this turn: record
            // and post nothing.
            tracing::warn!(conversation = %self.key, "a turn ended while this instance could not trust its cluster lease; left to be run again");
            self.strand();
            return;
        }
        let store = self.services.store.clone();
        let (status, error, text) = match outcome {
            TurnOutcome::Interrupted => {
                tracing::info!(conversation = %self.key, "turn interrupted by shutdown; it resumes on the next start");
                return;
            }
            TurnOutcome::Answered { text, .. } => {
                let text = if text.trim().is_empty() {
                    "(The model returned an empty answer.)".to_owned()
                } else {
                    text
                };
                let text = match notice {
                    Some(notice) => format!("_{notice}_\n\n{text}"),
                    None => text,
                };
                let text = cap_reply(text, self.services.config.engine.max_reply_chars);
                (TurnStatus::Done, None, text)
            }
            TurnOutcome::Failed(error) => {
                // Redacted where it was built; the user gets plain words.
                // Logged once recorded, so that the line has the turn id.
                let message = error.to_string();
                (
                    TurnStatus::Failed,
                    Some(message),
                    format!("Sorry, I could not answer: {}", error.user_message()),
                )
            }
            TurnOutcome::TimedOut { deadline } => (
                TurnStatus::Failed,
                Some(format!(
                    "stopped at the turn deadline ({} s, engine.turn_deadline_secs)",
                    deadline.as_secs()
                )),
                super::turn::took_too_long(deadline),
            ),
            TurnOutcome::Cancelled => (TurnStatus::Cancelled, None, "Stopped.".to_owned()),
            TurnOutcome::Crashed => (
                TurnStatus::Failed,
                Some("the turn's task panicked".to_owned()),
                "Sorry, something went wrong on my side; please try again.".to_owned(),
            ),
        };
        let ended = TurnEnd {
            status,
            usage,
            error: error.as_deref(),
        };
        let ending = match row.turn {
            Some(turn) => EndingTurn::Started(turn),
            None => EndingTurn::Whole {
                inbound: Some(row.message),
                mode: row.mode,
                model: &row.model,
                started_at: row.started_at,
            },
        };
        // A reply is stored with its turn's end, in one transaction.
        let reply_to = origin.stored_id();
        let reply = (status == TurnStatus::Done).then(|| ReplyToStore {
            text: &text,
            reply_to: reply_to.as_deref(),
        });
        let lease = self.under_lease();
        let (turn, outbox) = match store.end_turn(&self.key, ending, ended, reply, lease).await {
            Ok((turn, stored)) => {
                // A single-mode turn's id exists from here on (its row is
                // written once, at its end): the span's lines carry it now.
                tracing::Span::current().record("turn", turn.0);
                if let Some(stored) = stored {
                    let reply = StoredMessage {
                        id: stored.message,
                        role: Role::Assistant,
                        author: None,
                        content: text.clone(),
                        attachments: Vec::new(),
                    };
                    let limit = self.services.config.orchestrator.history_limit;
                    self.recent.push(reply, limit);
                }
                (Some(turn), stored.map(|stored| stored.outbox))
            }
            Err(StoreError::LeaseLost) => {
                // Another instance holds the conversation now and runs this
                // message again: record and post nothing.
                tracing::warn!(conversation = %self.key, "a turn ended after another instance took the conversation over; left to it");
                self.strand();
                return;
            }
            Err(e) => {
                tracing::error!(conversation = %self.key, error = %e, "could not record a turn's end and its reply");
                self.recent.forget();
                (None, None)
            }
        };
        if let Some(error) = &error {
            tracing::warn!(conversation = %self.key, error = %error, "turn failed");
        }
        self.log(turn, EventKind::Message, "orchestrator", &text)
            .await;
        match outbox {
            Some(outbox) => self.post_stored(origin, &text, outbox).await,
            // Not stored: posted all the same, but not again after a stop.
            None => self.post(origin, &text).await,
        }
    }
}
