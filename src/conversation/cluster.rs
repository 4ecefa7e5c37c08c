//! The registry's part in a cluster of instances on one Postgres database:
//! the wake-ups instances send each other over `LISTEN/NOTIFY`, and the
//! sweep that hands out what nobody is answering.
//!
//! Any instance may receive a message. It stores it, and its actor for the
//! conversation claims the conversation's lease (`ownership.rs`); when
//! another instance holds it, the actor sends that owner a [`Signal`] and
//! stops. A signal is acted on only by the instance that holds the
//! conversation. Notifications can be lost (a dropped listening
//! connection), so every beat each instance also sweeps
//! ([`sweep`]): conversations whose owner died (their lease expired) are
//! taken over, and messages nobody took yet wake their owner, or an
//! instance that claims them.

use std::sync::Arc;
use std::time::Duration;

use baton_channel::{Author, Command, ConversationKey, Origin};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use super::Registry;
use super::actor::ControlMessage;
use super::registry::RECOVERY_WINDOW_MS;
use crate::cluster::{Cluster, SIGNALS};
use crate::store::{CONVERSATION_LEASE, MessageId, now_ms};

/// Postgres refuses a `NOTIFY` payload of 8,000 bytes or more.
const MAX_PAYLOAD: usize = 7_900;
/// How far back a sweep after the first looks for messages nobody took.
const SWEEP_WINDOW_MS: i64 = 60_000;
/// Conversations one sweep hands out, at most (the rest wait a beat).
const SWEEP_LIMIT: usize = 1_000;
/// How long the listener waits after a failed connection.
const RECONNECT: Duration = Duration::from_secs(1);

/// What one instance tells another about a conversation the other holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "signal", rename_all = "snake_case")]
pub(crate) enum Signal {
    /// Messages wait in the store, from message id `from` on.
    Wake { key: ConversationKey, from: i64 },
    /// A command that arrived at another instance, `received_at`.
    Command {
        key: ConversationKey,
        author: Author,
        origin: Origin,
        command: Command,
        #[serde(default)]
        received_at: Option<String>,
    },
    /// The answer to a slash command's `interaction`, for the instance
    /// that received the command (only it holds the interaction's token).
    Answer {
        key: ConversationKey,
        instance: String,
        interaction: u64,
        text: String,
    },
}

impl Signal {
    /// The signal as a `NOTIFY` payload, or `None` when it is too long.
    pub fn encode(&self) -> Option<String> {
        serde_json::to_string(self)
            .ok()
            .filter(|payload| payload.len() < MAX_PAYLOAD)
    }

    fn key(&self) -> &ConversationKey {
        match self {
            Signal::Wake { key, .. } | Signal::Command { key, .. } | Signal::Answer { key, .. } => {
                key
            }
        }
    }
}

impl Registry {
    /// Wakes `key`'s actor, starting it if it is idle (it then claims the
    /// conversation); with `from`, it reads the messages waiting in the
    /// store from that id on.
    pub(crate) fn wake(
        &self,
        key: &ConversationKey,
        from: Option<MessageId>,
    ) -> Result<(), super::EngineError> {
        let handle = self.handle(key)?;
        if let Some(from) = from {
            handle.overflow.mark(from);
        }
        Ok(())
    }

    /// Whether this instance has the adapter of `key`'s platform (an
    /// instance without it leaves the conversation to one that has).
    fn serves(&self, key: &ConversationKey) -> bool {
        self.channels.contains_key(&key.platform())
    }

    /// Acts on a signal from another instance, if this one holds the
    /// conversation it is about.
    async fn take_signal(&self, cluster: &Cluster, signal: Signal) {
        let key = signal.key().clone();
        if let Signal::Answer {
            instance,
            interaction,
            text,
            ..
        } = signal
        {
            if instance == cluster.id() {
                self.answer_interaction(key, interaction, text);
            }
            return;
        }
        if !cluster.holds(&key) {
            return;
        }
        let taken = match signal {
            Signal::Wake { from, .. } => self.wake(&key, Some(MessageId(from))),
            Signal::Command {
                author,
                origin,
                command,
                received_at,
                ..
            } => {
                let message = ControlMessage {
                    author,
                    origin,
                    command: Ok(command),
                    received_at: received_at.filter(|at| at != cluster.id()),
                };
                self.command(&key, message).await
            }
            Signal::Answer { .. } => Ok(()),
        };
        if let Err(e) = taken {
            tracing::warn!(conversation = %key, error = %e, "cannot act on another instance's signal");
        }
    }
}

impl Registry {
    /// Answers `interaction`, which this instance received, with the text
    /// its conversation's owner sent back (in the background: the
    /// listener goes on). An interaction no longer open gets the answer
    /// in its channel instead.
    fn answer_interaction(&self, key: ConversationKey, interaction: u64, text: String) {
        let Some(channel) = self.channels.get(&key.platform()).cloned() else {
            return;
        };
        self.actors.spawn(async move {
            let mut reply = channel.reply_to(&key);
            if let Err(e) = reply.post(&Origin::Interaction(interaction), &text).await {
                tracing::warn!(conversation = %key, error = %e, "could not answer a slash command for its conversation's owner");
            }
        });
    }
}

/// Listens for other instances' signals until `stop`, reconnecting when
/// the connection drops (signals sent meanwhile are lost; the sweep
/// catches what they were about).
pub async fn listen(
    registry: Arc<Registry>,
    cluster: Arc<Cluster>,
    url: String,
    stop: CancellationToken,
) {
    let mut listener = loop {
        let connected = async {
            let mut listener = PgListener::connect(&url).await?;
            listener.listen(SIGNALS).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        tokio::select! {
            () = stop.cancelled() => return,
            connected = connected => match connected {
                Ok(listener) => break listener,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for the other instances' signals; retrying");
                    tokio::time::sleep(RECONNECT).await;
                }
            },
        }
    };
    loop {
        let notification = tokio::select! {
            () = stop.cancelled() => return,
            notification = listener.recv() => notification,
        };
        match notification {
            Ok(notification) => match serde_json::from_str(notification.payload()) {
                Ok(signal) => registry.take_signal(&cluster, signal).await,
                Err(e) => {
                    tracing::warn!(error = %e, "an unreadable signal from another instance is ignored")
                }
            },
            Err(e) => {
                // The next `recv` reconnects.
                tracing::warn!(error = %e, "lost the connection that listens for signals; reconnecting");
                tokio::time::sleep(RECONNECT).await;
            }
        }
    }
}

/// Every beat until `stop`: takes over the conversations whose owner died,
/// and wakes the conversations whose messages nobody took. The first
/// sweep looks back as far as a restart does.
pub async fn sweep(registry: Arc<Registry>, cluster: Arc<Cluster>, stop: CancellationToken) {
    let mut beat = tokio::time::interval(cluster.beat());
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut window = RECOVERY_WINDOW_MS;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = beat.tick() => {}
        }
        sweep_once(&registry, &cluster, window).await;
        window = SWEEP_WINDOW_MS;
    }
}

async fn sweep_once(registry: &Registry, cluster: &Cluster, window_ms: i64) {
    let store = &registry.services().store;
    let now = now_ms();
    match store
        .expired_leases(CONVERSATION_LEASE, now, SWEEP_LIMIT)
        .await
    {
        Ok(expired) => {
            for name in expired {
                let key = name.strip_prefix(CONVERSATION_LEASE).map(str::parse);
                let Some(Ok(key)) = key else {
                    tracing::warn!(lease = name, "a conversation lease with an unreadable key");
                    continue;
                };
                if !registry.serves(&key) {
                    continue;
                }
                tracing::info!(conversation = %key, "taking over a conversation whose owner stopped");
                if let Err(e) = registry.wake(&key, None) {
                    tracing::warn!(conversation = %key, error = %e, "cannot take over a conversation");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot look for conversations whose owner stopped"),
    }
    match store
        .waiting_conversations(cluster.id(), now - window_ms, now, SWEEP_LIMIT)
        .await
    {
        Ok(waiting) => {
            for (key, from) in waiting {
                if !registry.serves(&key) {
                    continue;
                }
                if let Err(e) = registry.wake(&key, Some(from)) {
                    tracing::warn!(conversation = %key, error = %e, "cannot wake a conversation with waiting messages");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot look for messages nobody took"),
    }
}
