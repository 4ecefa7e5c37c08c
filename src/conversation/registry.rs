//! The registry: finds or starts the actor of each conversation and puts
//! events in its queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use baton_channel::{Channel, ChannelEvent, ConversationKey, Platform};
use dashmap::mapref::entry::Entry;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::actor::{Actor, ControlMessage, ConversationHandle, LiveActors, Queued};
use crate::services::Services;
use crate::store::ConversationSettings;

/// Commands waiting for one actor (they are answered at once, so few wait).
const CONTROL_CAPACITY: usize = 16;

/// Why the engine could not take an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// Permanent: no adapter is registered for the event's platform.
    #[error("no channel is registered for {0}")]
    NoChannel(Platform),
    /// Permanent: the engine is shutting down.
    #[error("the engine is shutting down")]
    ShuttingDown,
}

/// All live conversations, keyed by [`ConversationKey`].
pub struct Registry {
    services: Arc<Services>,
    channels: HashMap<Platform, Arc<dyn Channel>>,
    live: Arc<LiveActors>,
    generation: AtomicU64,
    shutdown: CancellationToken,
    actors: TaskTracker,
}

impl Registry {
    /// A registry with no channels yet.
    pub fn new(services: Arc<Services>) -> Self {
        Self {
            services,
            channels: HashMap::new(),
            live: Arc::new(LiveActors::default()),
            generation: AtomicU64::new(0),
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

    /// Hands an event to its conversation's actor, starting the actor if it
    /// is not live. Waits while the conversation's queue is full.
    pub async fn dispatch(&self, event: ChannelEvent) -> Result<(), EngineError> {
        let key = event.key().clone();
        let mut event = event;
        loop {
            let handle = self.handle(&key)?;
            // A send fails only when the actor has just left (idle) or died:
            // the event comes back and goes to a new actor.
            event = match event {
                ChannelEvent::Message(inbound) => {
                    match handle.queue.send(Queued::Message(inbound)).await {
                        Ok(()) => return Ok(()),
                        Err(mpsc::error::SendError(queued)) => returned(&key, queued),
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
                    };
                    let sent = if message.bypasses_queue() {
                        handle
                            .control
                            .send(message)
                            .await
                            .map_err(|e| Queued::Command(e.0))
                    } else {
                        let queued = Queued::Command(message);
                        handle.queue.send(queued).await.map_err(|e| e.0)
                    };
                    match sent {
                        Ok(()) => return Ok(()),
                        Err(queued) => returned(&key, queued),
                    }
                }
            };
            self.live
                .remove_if(&key, |_, live| live.generation == handle.generation);
        }
    }

    fn handle(&self, key: &ConversationKey) -> Result<ConversationHandle, EngineError> {
        if self.shutdown.is_cancelled() {
            return Err(EngineError::ShuttingDown);
        }
        if let Some(handle) = self.live.get(key) {
            return Ok(handle.clone());
        }
        let channel = self
            .channels
            .get(&key.platform)
            .ok_or(EngineError::NoChannel(key.platform))?;
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
        let defaults = &self.services.config.orchestrator;
        let actor = Actor {
            key: key.clone(),
            generation,
            services: self.services.clone(),
            reply: channel.reply_to(key),
            settings: ConversationSettings {
                mode: defaults.default_mode.0,
                verbose: defaults.default_verbose,
                effort: defaults.default_effort,
            },
            queue: queue_rx,
            control: control_rx,
            pending: None,
            live: self.live.clone(),
            shutdown: self.shutdown.child_token(),
            last_turn: None,
        };
        self.actors.spawn(actor.run());
        ConversationHandle {
            generation,
            queue: queue_tx,
            control: control_tx,
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

/// An event a departed actor handed back, to send to its successor.
fn returned(key: &ConversationKey, queued: Queued) -> ChannelEvent {
    match queued {
        Queued::Message(inbound) => ChannelEvent::Message(inbound),
        Queued::Command(message) => ChannelEvent::Command {
            key: key.clone(),
            author: message.author,
            origin: message.origin,
            command: message.command,
        },
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
