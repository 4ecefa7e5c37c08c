//! The registry: finds or starts the actor of each conversation and puts
//! events in its queue.
//!
//! Dispatching never waits on a conversation: a message is stored first,
//! and when its conversation's queue is full it stays in the store for the
//! actor to read back (`backlog.rs`), so one busy conversation never holds
//! up an adapter that feeds all the others. Past a user's per-minute limit
//! (`flood.rs`) a message is stored but not answered.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use baton_channel::{Accepted, Channel, ChannelEvent, Command, ConversationKey, Platform};
use dashmap::mapref::entry::Entry;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::actor::{
    Actor, Control, ControlMessage, ConversationHandle, LiveActors, Queued, StoredInbound,
};
use super::backlog::{Overflow, stored_inbound};
use super::flood::{FloodGate, SLOW_DOWN, Verdict};
use super::store_trouble::{CANNOT_STORE, StoreTrouble};
use crate::domain::{ConversationSettings, Mode};
use crate::services::Services;
use crate::store::{MessageId, StoreError, TurnEnd, TurnStatus, now_ms};

/// Commands waiting for one actor (they are answered at once, so few wait).
const CONTROL_CAPACITY: usize = 16;

/// How long after a stop its unanswered messages are still answered (by
/// `resume`, or by a cluster member taking a conversation over).
pub(super) const RECOVERY_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;
/// At most this many unanswered messages are resumed.
const RESUME_LIMIT: usize = 10_000;

/// Why the engine could not take an event.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Permanent: no adapter is registered for the event's platform.
    #[error("no channel is registered for {0}")]
    NoChannel(Platform),
    /// Permanent: the engine is shutting down.
    #[error("the engine is shutting down")]
    ShuttingDown,
    /// The message could not be stored; transient when the store error is.
    #[error("cannot store the message: {0}")]
    Store(#[from] StoreError),
}

impl EngineError {
    /// Whether the same event may be taken if offered again later.
    pub fn is_transient(&self) -> bool {
        match self {
            EngineError::Store(e) => e.is_transient(),
            EngineError::NoChannel(_) | EngineError::ShuttingDown => false,
        }
    }
}

/// All live conversations, keyed by [`ConversationKey`].
pub struct Registry {
    services: Arc<Services>,
    pub(super) channels: HashMap<Platform, Arc<dyn Channel>>,
    live: Arc<LiveActors>,
    generation: AtomicU64,
    flood: FloodGate,
    /// When each conversation was last told its messages cannot be stored.
    store_trouble: StoreTrouble,
    shutdown: CancellationToken,
    /// The actors, and the other work `shutdown` waits for.
    pub(super) actors: TaskTracker,
}

impl Registry {
    /// A registry with no channels yet.
    pub fn new(services: Arc<Services>) -> Self {
        let flood = FloodGate::new(services.config.engine.max_messages_per_user_per_minute);
        Self {
            services,
            channels: HashMap::new(),
            live: Arc::new(LiveActors::default()),
            generation: AtomicU64::new(0),
            flood,
            store_trouble: StoreTrouble::default(),
            shutdown: CancellationToken::new(),
            actors: TaskTracker::new(),
        }
    }

    /// Registers the adapter that answers conversations on `platform`.
    pub fn with_channel(mut self, platform: Platform, channel: Arc<dyn Channel>) -> Self {
        self.channels.insert(platform, channel);
        self
    }

    /// The shared services.
    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    /// Conversations with an actor in memory right now.
    pub fn live_conversations(&self) -> usize {
        self.live.len()
    }

    /// Messages waiting in the live conversations' queues (for `/metrics`).
    pub fn queued_messages(&self) -> usize {
        self.live
            .iter()
            .map(|entry| {
                let queue = &entry.value().queue;
                queue.max_capacity() - queue.capacity()
            })
            .sum()
    }

    /// Hands an event to its conversation's actor, starting the actor if it
    /// is not live. A message is stored before this returns (so a platform
    /// may confirm it); one seen before is [`Accepted::Duplicate`] and is
    /// not answered again. Never waits for a busy conversation.
    pub async fn dispatch(&self, event: ChannelEvent) -> Result<Accepted, EngineError> {
        if self.shutdown.is_cancelled() {
            return Err(EngineError::ShuttingDown);
        }
        let key = event.key().clone();
        let delivery = match event {
            ChannelEvent::Message(inbound) => {
                let store = &self.services.store;
                let platform_id = inbound.origin.stored_id();
                let stored = match store
                    .record_inbound_with(
                        &key,
                        &inbound.author,
                        &inbound.text,
                        platform_id.as_deref(),
                        &inbound.attachments,
                    )
                    .await
                {
                    Ok(stored) => stored,
                    Err(e) => {
                        // Not confirmed to the platform: it comes again.
                        // The user hears why, once in a while.
                        if e.is_transient() && self.store_trouble.should_tell(&key) {
                            let notice = Control::Notice {
                                origin: inbound.origin,
                                text: CANNOT_STORE.to_owned(),
                            };
                            if let Err(e) = self.deliver(&key, Delivery::Control(Box::new(notice)))
                            {
                                tracing::warn!(conversation = %key, error = %e, "cannot tell the user the store is failing");
                            }
                        }
                        return Err(e.into());
                    }
                };
                let Some(id) = stored else {
                    tracing::info!(conversation = %key, "duplicate message ignored");
                    return Ok(Accepted::Duplicate);
                };
                // Written only when it changed; cosmetic, so a failure is
                // no reason to refuse the message.
                if let Some(title) = inbound.chat_title.as_deref()
                    && let Err(e) = store.note_title(&key, title).await
                {
                    tracing::debug!(conversation = %key, error = %e, "could not store the chat's title");
                }
                match self.flood.check(key.platform(), &inbound.author.id) {
                    Verdict::Admit => {
                        Delivery::Queue(Box::new(Queued::Message(StoredInbound { id, inbound })))
                    }
                    verdict => {
                        if !self.skip_flooded(&key, id, &inbound.author.id).await {
                            let message = StoredInbound { id, inbound };
                            Delivery::Queue(Box::new(Queued::Message(message)))
                        } else if verdict == Verdict::SkipAndNotify {
                            Delivery::Control(Box::new(Control::Notice {
                                origin: inbound.origin,
                                text: SLOW_DOWN.to_owned(),
                            }))
                        } else {
                            return Ok(Accepted::New);
                        }
                    }
                }
            }
            ChannelEvent::Command {
                key: _,
                author,
                origin,
                command,
            } => {
                let message = ControlMessage {
                    author,
                    origin,
                    command,
                    received_at: None,
                };
                self.command(&key, message).await?;
                return Ok(Accepted::New);
            }
        };
        self.deliver(&key, delivery)?;
        Ok(Accepted::New)
    }

    /// Hands a command to its conversation's actor: at once (`/stop`,
    /// `/status`) or in its place among the messages.
    pub(super) async fn command(
        &self,
        key: &ConversationKey,
        message: ControlMessage,
    ) -> Result<(), EngineError> {
        let delivery = if message.bypasses_queue() {
            Delivery::Control(Box::new(Control::Command(message)))
        } else if matches!(message.command, Ok(Command::Reset)) {
            let through = self.services.store.last_message_id(key).await?;
            Delivery::Queue(Box::new(Queued::Reset { message, through }))
        } else {
            Delivery::Queue(Box::new(Queued::Command(message)))
        };
        self.deliver(key, delivery)
    }

    /// Answers what an earlier stop left unanswered: messages of the last
    /// day that were stored but never answered (a turn left running counts
    /// as unanswered). Then marks such turns as failed, and takes up the
    /// projects that were running or whose outcome was not posted. Returns
    /// how many messages were queued again.
    pub async fn resume(&self) -> Result<usize, EngineError> {
        let store = &self.services.store;
        let since = now_ms() - RECOVERY_WINDOW_MS;
        let unsent = store.unsent_replies(since, RESUME_LIMIT).await?;
        let unanswered = store.unanswered_messages(since, RESUME_LIMIT).await?;
        let abandoned = store.fail_abandoned_turns().await?;
        if abandoned > 0 {
            tracing::warn!(
                turns = abandoned,
                "turns an earlier stop interrupted are marked failed"
            );
        }
        // Replies first: they answer messages older than any unanswered one.
        let resent = self.deliver_all(unsent.into_iter().map(|reply| {
            let key = reply.key.clone();
            (key, Delivery::Queue(Box::new(Queued::Resend(reply))))
        }))?;
        if resent > 0 {
            tracing::info!(
                replies = resent,
                "posting replies the last stop left stored but unsent"
            );
        }
        let queued = self.deliver_all(unanswered.into_iter().map(|message| {
            let key = message.key.clone();
            let stored = stored_inbound(message);
            (key, Delivery::Queue(Box::new(Queued::Message(stored))))
        }))?;
        if queued > 0 {
            tracing::info!(
                messages = queued,
                "answering messages left unanswered by the last stop"
            );
        }
        let projects = store.projects_to_resume().await?;
        for project in projects {
            if !self.channels.contains_key(&project.key.platform()) {
                continue;
            }
            tracing::info!(project = %project.id, status = %project.status, "taking up a project the last stop left");
            let key = project.key.clone();
            self.deliver(&key, Delivery::Control(Box::new(Control::Project(project))))?;
        }
        Ok(queued)
    }

    /// [`Registry::deliver`]s each item whose platform this engine serves
    /// (the others wait for a start that serves it); returns how many.
    fn deliver_all(
        &self,
        items: impl IntoIterator<Item = (ConversationKey, Delivery)>,
    ) -> Result<usize, EngineError> {
        let mut delivered = 0;
        for (key, delivery) in items {
            if self.channels.contains_key(&key.platform()) {
                self.deliver(&key, delivery)?;
                delivered += 1;
            }
        }
        Ok(delivered)
    }

    /// Records a message past its author's limit as handled without a
    /// model call. Returns false when that could not be stored (the
    /// message is then answered after all, rather than left hanging).
    async fn skip_flooded(&self, key: &ConversationKey, message: MessageId, user: &str) -> bool {
        tracing::info!(conversation = %key, user, "message over the per-user limit; stored, not answered");
        let model = self.services.models.orchestrator.model.to_string();
        let ended = TurnEnd {
            status: TurnStatus::Failed,
            usage: Default::default(),
            error: Some("skipped: over the per-user message limit"),
        };
        let recorded = self
            .services
            .store
            .record_turn(key, Some(message), Mode::Single, &model, now_ms(), ended)
            .await;
        if let Err(e) = &recorded {
            tracing::warn!(conversation = %key, error = %e, "cannot record a skipped message; answering it");
        }
        recorded.is_ok()
    }

    /// Puts an item in the actor's queue or control channel without
    /// waiting. A message that finds the queue full (or others already
    /// waiting in the store) stays in the store for the actor to read back;
    /// a command that finds it full is handled at once instead. A send
    /// fails only when the actor has just left (idle) or died: the item
    /// comes back and goes to a new actor.
    fn deliver(&self, key: &ConversationKey, delivery: Delivery) -> Result<(), EngineError> {
        let mut delivery = delivery;
        loop {
            let handle = self.handle(key)?;
            delivery = match delivery {
                Delivery::Queue(queued) => {
                    if let Queued::Message(message) = &*queued
                        && handle.overflow.is_set()
                    {
                        // Others wait in the store: this one waits behind them.
                        handle.overflow.mark(message.id);
                        return Ok(());
                    }
                    match handle.queue.try_send(queued) {
                        Ok(()) => return Ok(()),
                        Err(TrySendError::Full(queued)) => match *queued {
                            Queued::Message(message) => {
                                tracing::debug!(conversation = %key, "queue full; the message waits in the store");
                                handle.overflow.mark(message.id);
                                return Ok(());
                            }
                            Queued::Command(message) | Queued::Reset { message, .. } => {
                                Delivery::Control(Box::new(Control::Command(message)))
                            }
                            Queued::Resend(unsent) => {
                                tracing::warn!(conversation = %key, outbox = unsent.id.0, "queue full; an unsent reply waits for the next start");
                                return Ok(());
                            }
                        },
                        Err(TrySendError::Closed(queued)) => Delivery::Queue(queued),
                    }
                }
                Delivery::Control(control) => match handle.control.try_send(control) {
                    Ok(()) => return Ok(()),
                    Err(TrySendError::Full(_)) => {
                        tracing::warn!(conversation = %key, "too many commands waiting; one is dropped");
                        return Ok(());
                    }
                    Err(TrySendError::Closed(control)) => Delivery::Control(control),
                },
            };
            self.live
                .remove_if(key, |_, live| live.generation == handle.generation);
        }
    }

    pub(super) fn handle(&self, key: &ConversationKey) -> Result<ConversationHandle, EngineError> {
        if self.shutdown.is_cancelled() {
            return Err(EngineError::ShuttingDown);
        }
        if let Some(handle) = self.live.get(key) {
            return Ok(handle.clone());
        }
        let channel = self
            .channels
            .get(&key.platform())
            .ok_or(EngineError::NoChannel(key.platform()))?;
        Ok(match self.live.entry(key.clone()) {
            Entry::Occupied(entry) => entry.get().clone(),
            Entry::Vacant(entry) => {
                let handle = self.start(key, channel.as_ref());
                entry.insert(handle.clone());
                handle
            }
        })
    }

    fn start(&self, key: &ConversationKey, channel: &dyn Channel) -> ConversationHandle {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let capacity = self.services.config.engine.queue_capacity;
        let (queue_tx, queue_rx) = mpsc::channel(capacity);
        let (control_tx, control_rx) = mpsc::channel(CONTROL_CAPACITY);
        let overflow = Arc::new(Overflow::default());
        let defaults = &self.services.config.orchestrator;
        let actor = Actor {
            key: key.clone(),
            generation,
            services: self.services.clone(),
            reply: channel.reply_to(key),
            files: channel.files(),
            settings: ConversationSettings {
                mode: defaults.default_mode.0,
                verbose: defaults.default_verbose,
                effort: defaults.default_effort,
                model: None,
                greedy: defaults.default_greedy,
                autonomy: defaults.default_autonomy,
            },
            queue: queue_rx,
            control: control_rx,
            deferred: Default::default(),
            in_turn: false,
            pending: None,
            overflow: overflow.clone(),
            backlog: Default::default(),
            projects: Default::default(),
            live: self.live.clone(),
            shutdown: self.shutdown.child_token(),
            last_turn: None,
            recent: Default::default(),
            lease: super::ownership::Lease::Unneeded,
            stranded: false,
            answering_for: None,
        };
        self.actors.spawn(actor.run());
        ConversationHandle {
            generation,
            queue: queue_tx,
            control: control_tx,
            overflow,
        }
    }

    /// Stops taking events and lets every actor finish what is queued, then
    /// returns once all are gone (`baton chat` at the end of its input).
    pub async fn drain(&self) {
        self.live.clear();
        self.actors.close();
        self.actors.wait().await;
    }

    /// Stops every actor now: running turns are cancelled and queued
    /// messages dropped; returns once all are gone.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.live.clear();
        self.actors.close();
        self.actors.wait().await;
    }
}

/// Where an event goes in its actor.
enum Delivery {
    /// In order, behind what is queued.
    Queue(Box<Queued>),
    /// At once (`/stop`, `/status`, notices).
    Control(Box<Control>),
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
