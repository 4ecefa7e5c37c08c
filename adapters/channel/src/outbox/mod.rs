//! The adapters' toolkit for posting: one send queue per chat, the same on
//! every platform. A platform supplies only what differs, through
//! [`Transport`]: how to send one [`Piece`] and a typing indicator, how it
//! splits and tags text, its limits and pacing ([`Rules`]), and how its
//! failures sort ([`SendFailure`]).
//!
//! [`Outboxes`] keeps one outbox per chat: a task with a bounded queue,
//! started on the first item and reaped after [`IDLE`] with nothing to do.
//! A sender whose outbox has just stopped is forgotten and the item goes to
//! a new one. Each outbox:
//! - sends its jobs in the order they were queued, paced per chat (a
//!   minimum interval, an optional cap per minute, and a 429's
//!   `retry_after` for this chat only);
//! - retries transient failures with backoff, sends a piece whose
//!   formatting the platform rejected again unformatted, and sends a reply
//!   that was to go as a file (see [`crate::file_reply`]) as text pieces
//!   when the file cannot be sent;
//! - collects verbose worker output per worker for [`Rules::verbose_batch`]
//!   and sends it as one tagged message per batch, each line cut at
//!   [`Rules::verbose_line_limit`] characters with "…", and holds at most
//!   512 lines and pieces of it (more is dropped); verbose output never
//!   goes as a file;
//! - flushes the worker output that is still being collected ahead of a
//!   reply, so a turn's reply is the last thing users read of it (the
//!   order [`crate::Reply`] documents);
//! - drops output whose [`Ticket`] was cancelled (`/stop`), telling the
//!   poster `Ok`.
//!
//! Verbose output, typing indicators and the adapters' own short answers
//! are display only: [`Outboxes::offer`] drops them when the queue is full.

mod pace;
mod task;

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::event::WorkerEvent;
use crate::files::{MediaOut, OutFile};
use crate::reply::{ChannelError, Ticket};

/// Items waiting for one chat's outbox.
pub const QUEUE_CAPACITY: usize = 256;
/// An outbox with nothing to do for this long stops (a new one starts on
/// the next item).
pub const IDLE: Duration = Duration::from_secs(300);
/// Attempts for one piece before it is given up (rate limits and transient
/// failures together).
pub const MAX_ATTEMPTS: u32 = 8;

/// One platform's limits and pacing for one chat.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// At least this long between two messages to the chat.
    pub min_interval: Duration,
    /// At most this many messages a minute to the chat (`None`: no cap).
    pub per_minute: Option<usize>,
    /// How long a worker's verbose lines are collected before they go as
    /// one message.
    pub verbose_batch: Duration,
    /// Longest verbose line, in characters (cut with "…"): verbose output
    /// is a glimpse, the result comes in the reply.
    pub verbose_line_limit: usize,
    /// Which replies go as a file.
    pub media: MediaOut,
    /// The longest text sent with a file, in characters.
    pub file_text_limit: usize,
    /// How long a typing indicator may take before it is not worth waiting
    /// for.
    pub typing_timeout: Duration,
}

/// One message on its way, before the platform renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Markdown for a reply (the platform renders it where `formatted`);
    /// tagged plain text for verbose output.
    pub text: String,
    /// What the piece is.
    pub kind: PieceKind,
    /// Whether the platform applies its formatting; cleared when the
    /// platform rejected it ([`SendFailure::Formatting`]).
    pub formatted: bool,
}

/// What a [`Piece`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PieceKind {
    /// Piece `index` (from 0) of a reply sent as text.
    Text {
        /// Its place in the reply.
        index: usize,
    },
    /// A reply as one message: its short text with this file attached.
    File(OutFile),
    /// A batch of one worker's verbose output, tagged with its label.
    Verbose,
}

/// Why a platform could not send something, sorted by what the outbox
/// does about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendFailure {
    /// Transient: the platform asked this chat to wait this long; the
    /// outbox waits it out (for this chat only) and tries again.
    #[error("rate limited; retry after {0:?}")]
    RetryAfter(Duration),
    /// Transient: network trouble, a timeout, a 5xx; tried again with
    /// backoff, at most [`MAX_ATTEMPTS`] times.
    #[error("{0}")]
    Transient(String),
    /// Permanent for this rendering: the platform rejected the formatting;
    /// the piece is sent again at once unformatted.
    #[error("the formatting was rejected: {0}")]
    Formatting(String),
    /// Not tried again by the outbox (the platform's client may have
    /// retried already); transient or permanent as the error says.
    #[error("{0}")]
    Failed(ChannelError),
}

impl SendFailure {
    /// As the poster's delivery error.
    pub fn into_channel(self) -> ChannelError {
        match self {
            SendFailure::RetryAfter(_) | SendFailure::Transient(_) => {
                ChannelError::Transient(self.to_string())
            }
            SendFailure::Formatting(_) => ChannelError::Permanent(self.to_string()),
            SendFailure::Failed(error) => error,
        }
    }
}

/// What one platform supplies to the outboxes: everything that differs.
#[async_trait::async_trait]
pub trait Transport: Send + Sync + 'static {
    /// The platform's name, for messages ("Telegram").
    const NAME: &'static str;
    /// What one outbox serves: a chat, a channel.
    type Chat: Copy + Eq + Hash + Debug + Send + Sync + 'static;
    /// Where in the chat a reply goes, and what it answers; verbose output
    /// is batched per target and worker.
    type Target: Clone + PartialEq + Debug + Send + Sync + 'static;
    /// What a typing indicator needs besides the chat.
    type Typing: Debug + Send + 'static;
    /// What one outbox keeps between sends (Discord: its verbose threads).
    type State: Default + Send + 'static;

    /// The limits and pacing for `chat`.
    fn rules(&self, chat: Self::Chat) -> Rules;

    /// `markdown` split into pieces that each fit in one message.
    fn split(&self, markdown: &str) -> Vec<String>;

    /// Whether `text` (at most [`Rules::file_text_limit`] characters) fits
    /// with a file as the platform counts; if not, the outbox makes the
    /// text half as long.
    fn fits_with_file(&self, _text: &str) -> bool {
        true
    }

    /// One worker's verbose `lines` (already cut) as tagged messages, each
    /// within the platform's limit.
    fn verbose_pieces(&self, label: &str, lines: &[String]) -> Vec<String>;

    /// Sends one piece to `target` in `chat` (one attempt, as far as the
    /// outbox is concerned).
    async fn send(
        &self,
        state: &mut Self::State,
        chat: Self::Chat,
        target: &Self::Target,
        piece: &Piece,
    ) -> Result<(), SendFailure>;

    /// Shows the typing indicator in `chat`.
    async fn typing(&self, chat: Self::Chat, typing: &Self::Typing) -> Result<(), SendFailure>;
}

/// Where a reply's delivery is reported.
pub type Done = oneshot::Sender<Result<(), ChannelError>>;

/// Something for a chat's outbox.
pub enum Outgoing<T: Transport> {
    /// A reply (or a short notice) in Markdown, split and rendered by the
    /// outbox; `done` hears whether it was delivered.
    Reply {
        /// Where it goes.
        target: T::Target,
        /// Its text.
        markdown: String,
        /// Hears the outcome, where someone waits for it.
        done: Option<Done>,
        /// Voided when the conversation cancels its pending output: the
        /// unsent rest is dropped and `done` hears `Ok`.
        ticket: Ticket,
    },
    /// One line of a worker's verbose output.
    Verbose {
        /// Where it goes (the message the turn answers).
        target: T::Target,
        /// The worker's label, its tag.
        label: String,
        /// The line.
        line: String,
        /// As for a reply.
        ticket: Ticket,
    },
    /// The typing indicator.
    Typing(T::Typing),
}

/// One chat's queue in the map: the outbox's number tells a stopped
/// outbox's entry from its successor's.
struct Entry<T: Transport> {
    id: u64,
    sender: mpsc::Sender<Outgoing<T>>,
}

/// The chats' queues; never locked across an `.await`.
type Senders<T> = Arc<Mutex<HashMap<<T as Transport>::Chat, Entry<T>>>>;

/// The outboxes of all chats of one platform (one task each, started on
/// demand, reaped when idle).
pub struct Outboxes<T: Transport> {
    transport: Arc<T>,
    senders: Senders<T>,
    next_id: AtomicU64,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

/// Attempts to queue an item when the outbox found stops just then.
const QUEUE_ATTEMPTS: usize = 3;

impl<T: Transport> Outboxes<T> {
    /// No outboxes yet.
    pub fn new(transport: T) -> Self {
        Self {
            transport: Arc::new(transport),
            senders: Arc::default(),
            next_id: AtomicU64::new(0),
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
        }
    }

    /// Queues `item` for `chat`, waiting while its outbox is full.
    pub async fn send(&self, chat: T::Chat, item: Outgoing<T>) -> Result<(), ChannelError> {
        let mut item = item;
        for _ in 0..QUEUE_ATTEMPTS {
            let (id, sender) = self.sender(chat)?;
            match sender.send(item).await {
                Ok(()) => return Ok(()),
                // That outbox has just stopped (idle): start another.
                Err(mpsc::error::SendError(back)) => {
                    forget(&self.senders, chat, id);
                    item = back;
                }
            }
        }
        Err(ChannelError::Transient(
            "the chat's send queue is gone".into(),
        ))
    }

    /// Queues display-only `item` for `chat` if there is room; returns
    /// whether it was queued.
    pub fn offer(&self, chat: T::Chat, item: Outgoing<T>) -> bool {
        let mut item = item;
        for _ in 0..QUEUE_ATTEMPTS {
            let Ok((id, sender)) = self.sender(chat) else {
                return false;
            };
            match sender.try_send(item) {
                Ok(()) => return true,
                Err(mpsc::error::TrySendError::Full(_)) => return false,
                Err(mpsc::error::TrySendError::Closed(back)) => {
                    forget(&self.senders, chat, id);
                    item = back;
                }
            }
        }
        false
    }

    /// Posts `markdown` to `target` in `chat` and waits until it is
    /// delivered (or dropped by `ticket`'s cancellation: `Ok`).
    pub async fn deliver(
        &self,
        chat: T::Chat,
        target: T::Target,
        markdown: &str,
        ticket: Ticket,
    ) -> Result<(), ChannelError> {
        let (done, delivered) = oneshot::channel();
        let item = Outgoing::Reply {
            target,
            markdown: markdown.to_owned(),
            done: Some(done),
            ticket,
        };
        self.send(chat, item).await?;
        delivered.await.unwrap_or_else(|_| Err(stopped::<T>()))
    }

    /// Shows one worker `event` under `target` in `chat`, if there is room
    /// (display only: dropped, with a log line, when the queue is full).
    pub fn show(&self, chat: T::Chat, target: T::Target, event: &WorkerEvent, ticket: Ticket) {
        let item = Outgoing::Verbose {
            target,
            label: event.label.clone(),
            line: event.describe(),
            ticket,
        };
        if !self.offer(chat, item) {
            tracing::debug!(?chat, "send queue full; verbose output dropped");
        }
    }

    /// Stops every outbox (what is still queued is dropped, its posters
    /// hear a transient error) and waits for them.
    pub async fn close(&self) {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// How many chats have an outbox now.
    pub fn open(&self) -> usize {
        lock(&self.senders).len()
    }

    fn sender(&self, chat: T::Chat) -> Result<(u64, mpsc::Sender<Outgoing<T>>), ChannelError> {
        if self.cancel.is_cancelled() {
            return Err(ChannelError::Permanent(format!(
                "the {} adapter has stopped",
                T::NAME
            )));
        }
        let mut senders = lock(&self.senders);
        if let Some(entry) = senders.get(&chat)
            && !entry.sender.is_closed()
        {
            return Ok((entry.id, entry.sender.clone()));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let outbox = task::Outbox::new(self.transport.clone(), chat, rx);
        let senders_of_task = self.senders.clone();
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            outbox.run(cancel).await;
            // Reaped: the map forgets this outbox (not a successor).
            forget(&senders_of_task, chat, id);
        });
        senders.insert(
            chat,
            Entry {
                id,
                sender: tx.clone(),
            },
        );
        Ok((id, tx))
    }
}

fn lock<T: Transport>(
    senders: &Senders<T>,
) -> std::sync::MutexGuard<'_, HashMap<T::Chat, Entry<T>>> {
    senders.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Removes `chat`'s entry if it is still outbox `id`'s.
fn forget<T: Transport>(senders: &Senders<T>, chat: T::Chat, id: u64) {
    let mut senders = lock(senders);
    if senders.get(&chat).is_some_and(|entry| entry.id == id) {
        senders.remove(&chat);
    }
}

/// What a poster hears when the adapter stopped before its reply went.
fn stopped<T: Transport>() -> ChannelError {
    ChannelError::Transient(format!(
        "the {} adapter stopped before the reply was sent",
        T::NAME
    ))
}

/// Cuts `text` to at most `limit` characters, marking the cut with `…`.
pub fn truncate(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(limit.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests;
