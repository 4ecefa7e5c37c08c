//! A conversation actor in a cluster (several instances on one Postgres
//! database): before it runs anything it claims the conversation's lease.
//!
//! - Claimed: it takes over what an earlier owner left (a dead instance's
//!   unsent replies, unanswered messages, the turns it left running, its
//!   projects), then runs as usual, and gives the lease up when it leaves.
//! - Held by another instance: it hands over. Messages are in the store
//!   already, so the owner is woken from the first one; commands are sent
//!   to it whole ([`Signal`]); then the actor stops.

use baton_channel::Origin;

use super::actor::{Actor, Control, ControlMessage, Queued};
use super::backlog::stored_inbound;
use super::cluster::Signal;
use super::registry::RECOVERY_WINDOW_MS;
use crate::store::{MessageId, UnderLease, conversation_lease, now_ms};

/// At most this many unanswered messages (or unsent replies) are taken
/// over at once; more wait for the next sweep.
const TAKE_OVER_LIMIT: usize = 1_000;

/// A slash command's interaction that another instance received and
/// holds (its token lives there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ForwardedInteraction {
    pub interaction: u64,
    /// The instance that holds it.
    pub instance: String,
}

impl ForwardedInteraction {
    /// The interaction of a command received elsewhere, if it has one.
    pub fn of(message: &ControlMessage) -> Option<ForwardedInteraction> {
        match (message.origin, &message.received_at) {
            (Origin::Interaction(interaction), Some(instance)) => Some(ForwardedInteraction {
                interaction,
                instance: instance.clone(),
            }),
            _ => None,
        }
    }
}

/// Whether this actor may run its conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lease {
    /// A single instance (SQLite): no lease.
    Unneeded,
    /// Held by this instance since the take at this epoch.
    Held(i64),
    /// Another instance runs the conversation.
    Elsewhere,
}

impl Actor {
    /// Claims the conversation on a cluster; on a claim, takes over what
    /// an earlier owner left.
    pub(super) async fn claim(&mut self) -> Lease {
        let Some(cluster) = self.services.cluster.clone() else {
            return Lease::Unneeded;
        };
        match cluster.claim(&self.key, self.shutdown.clone()).await {
            Ok(Some(epoch)) => {
                self.take_over().await;
                Lease::Held(epoch)
            }
            Ok(None) => Lease::Elsewhere,
            Err(e) => {
                // Its messages are stored; the sweep hands them out again.
                tracing::warn!(conversation = %self.key, error = %e, "cannot claim the conversation; it waits for the next sweep");
                Lease::Elsewhere
            }
        }
    }

    /// The lease this actor's writes are made under, on a cluster.
    pub(super) fn under_lease(&self) -> Option<UnderLease> {
        match (self.lease, &self.services.cluster) {
            (Lease::Held(epoch), Some(cluster)) => Some(UnderLease {
                name: conversation_lease(&self.key),
                owner: cluster.id().to_owned(),
                epoch,
            }),
            _ => None,
        }
    }

    /// Reads into the backlog, in id order, the messages no turn took yet
    /// from the one after the last taken (or from `queued`, the message
    /// that came through the queue, when none was taken yet); `queued` is
    /// among them. If it is not (the store cannot be read, or more were
    /// waiting than one read takes), it waits in the store for the actor's
    /// next read.
    pub(super) async fn catch_up(&mut self, queued: MessageId) {
        let from = self
            .backlog
            .last_taken()
            .map_or(queued, |last| MessageId(last.0 + 1).min(queued));
        let limit = self.services.config.engine.queue_capacity;
        let store = self.services.store.clone();
        match self.backlog.catch_up(&store, &self.key, from, limit).await {
            // Read back with the others.
            Ok(()) if self.backlog.is_waiting(queued) => {}
            // Past the read's limit: the store keeps it, and the others
            // before it, for the next reads.
            Ok(()) => self.overflow.mark(from),
            Err(e) => {
                tracing::warn!(conversation = %self.key, error = %e, "cannot read the messages waiting before this one; it waits in the store");
                self.overflow.mark(from);
            }
        }
    }

    /// Gives the lease up as the actor leaves: released when everything
    /// was handled, expired at once when the actor was stranded (so that
    /// the sweep of any instance takes the conversation over, and answers
    /// what was left).
    pub(super) async fn release(&self) {
        if let (Lease::Held(epoch), Some(cluster)) = (self.lease, &self.services.cluster) {
            if self.stranded {
                cluster.expire(&self.key, epoch).await;
            } else {
                cluster.release(&self.key, epoch).await;
            }
        }
    }

    /// The fence closed under a turn (a renewal came late): this actor can
    /// no longer tell whether it still holds its conversation. It stops
    /// without recording or posting more; what it left (the message, or a
    /// stored reply) is taken over through the sweep, by this instance or
    /// another.
    pub(super) fn strand(&mut self) {
        self.stranded = true;
        self.shutdown.cancel();
    }

    /// Answers what an earlier owner left: replies stored but not sent,
    /// then messages not answered (a turn it left running counts; that
    /// turn is closed as failed), then its projects.
    async fn take_over(&mut self) {
        let store = self.services.store.clone();
        let since = now_ms() - RECOVERY_WINDOW_MS;
        match store
            .unsent_replies_of(&self.key, since, TAKE_OVER_LIMIT)
            .await
        {
            Ok(unsent) => {
                for reply in unsent {
                    self.handle(Box::new(Queued::Resend(reply))).await;
                }
            }
            Err(e) => {
                tracing::warn!(conversation = %self.key, error = %e, "cannot read the replies an earlier owner left unsent");
            }
        }
        let unanswered = store
            .unanswered_messages_of(&self.key, since, TAKE_OVER_LIMIT)
            .await;
        match store.fail_abandoned_turns_of(&self.key).await {
            Ok(0) => {}
            Ok(turns) => {
                tracing::warn!(conversation = %self.key, turns, "turns an earlier owner left running are marked failed");
            }
            Err(e) => {
                tracing::warn!(conversation = %self.key, error = %e, "cannot close the turns an earlier owner left running");
            }
        }
        match unanswered {
            Ok(messages) if !messages.is_empty() => {
                let ids: Vec<i64> = messages.iter().map(|message| message.id.0).collect();
                tracing::info!(conversation = %self.key, messages = ?ids, "taking over unanswered messages");
                self.backlog
                    .take_over(messages.into_iter().map(stored_inbound));
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(conversation = %self.key, error = %e, "cannot read the messages an earlier owner left unanswered");
            }
        }
        match store.projects_to_resume_of(&self.key).await {
            Ok(projects) => {
                for project in projects {
                    tracing::info!(project = %project.id, "taking up a project an earlier owner left");
                    self.take_up_project(project).await;
                }
            }
            Err(e) => {
                tracing::warn!(conversation = %self.key, error = %e, "cannot read the projects an earlier owner left");
            }
        }
    }

    /// Hands what reached this actor to the conversation's owner: wakes it
    /// from the first waiting message, sends it the commands, and answers
    /// here only what needs no owner (a bad command, a notice).
    pub(super) async fn hand_over(&mut self) {
        self.live
            .remove_if(&self.key, |_, handle| handle.generation == self.generation);
        self.queue.close();
        self.control.close();
        let mut first = self.overflow.from();
        let mut commands = Vec::new();
        while let Ok(queued) = self.queue.try_recv() {
            match *queued {
                Queued::Message(message) => {
                    first = Some(first.map_or(message.id, |id| id.min(message.id)));
                }
                Queued::Command(message) | Queued::Reset { message, .. } => commands.push(message),
                Queued::Resend(_) => {}
            }
        }
        while let Ok(control) = self.control.try_recv() {
            match *control {
                Control::Command(message) => commands.push(message),
                Control::Notice { origin, text } => self.post(&origin, &text).await,
                Control::Project(_) => {}
            }
        }
        if let Some(from) = first {
            self.signal(Signal::Wake {
                key: self.key.clone(),
                from: from.0,
            })
            .await;
        }
        for message in commands {
            let ControlMessage {
                author,
                origin,
                command,
                received_at,
            } = message;
            match command {
                Ok(command) => {
                    let received_at = received_at.or_else(|| {
                        let cluster = self.services.cluster.as_ref()?;
                        Some(cluster.id().to_owned())
                    });
                    self.signal(Signal::Command {
                        key: self.key.clone(),
                        author,
                        origin,
                        command,
                        received_at,
                    })
                    .await;
                }
                Err(error) => self.post(&origin, &error.to_string()).await,
            }
        }
    }

    /// Answers a forwarded command's interaction through the instance that
    /// holds it. False when `origin` is no such interaction, or the answer
    /// cannot be sent there: it is then posted here (in the channel).
    pub(super) async fn answer_elsewhere(&self, origin: &Origin, text: &str) -> bool {
        let Some(forwarded) = &self.answering_for else {
            return false;
        };
        let (Origin::Interaction(interaction), Some(cluster)) = (*origin, &self.services.cluster)
        else {
            return false;
        };
        if interaction != forwarded.interaction {
            return false;
        }
        let answer = Signal::Answer {
            key: self.key.clone(),
            instance: forwarded.instance.clone(),
            interaction,
            text: text.to_owned(),
        };
        let Some(payload) = answer.encode() else {
            return false;
        };
        match cluster.signal(&payload).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(conversation = %self.key, error = %e, "cannot hand a command's answer to the instance that received it; posting it in the channel");
                false
            }
        }
    }

    async fn signal(&self, signal: Signal) {
        let Some(cluster) = &self.services.cluster else {
            return;
        };
        let sent = match signal.encode() {
            Some(payload) => cluster.signal(&payload).await.map_err(|e| e.to_string()),
            None => Err("too long to send".to_owned()),
        };
        if let Err(error) = sent {
            tracing::warn!(conversation = %self.key, error, "cannot wake the conversation's owner; the sweep will");
        }
    }
}
