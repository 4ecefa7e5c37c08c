//! One send queue per Discord channel: a task with a bounded channel that
//! posts replies (split under 2000 characters, the first piece referencing
//! the user's message, never pinging anyone but the replied-to user),
//! shows the typing indicator, and posts verbose worker output.
//!
//! A reply that [`file_reply`] says goes as a file (a long code block, or
//! more than `max_pieces` messages) is one message: the short text with
//! the file attached (`files[0]`). If Discord refuses or fails it (no
//! permission to attach files, say), the reply is posted as text pieces
//! instead, with a log line. Verbose output never goes as a file.
//!
//! Verbose output is collected per worker for `verbose_batch` and posted as
//! one message per worker, tagged with its label, in a thread started from
//! the user's message. Where no thread can be started (the conversation is
//! a thread or a DM: Discord refuses) it goes as replies in place. Pending
//! verbose output is posted before a reply, so workers show before the
//! answer that sums them up; the reply itself always goes to the
//! conversation's channel. Rate limits are [`Rest`]'s business: a 429 is
//! waited out there, so nothing here is dropped for one. Verbose output and
//! typing indicators are display only and are dropped, with a log line,
//! when the queue is full.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_channel::{ChannelError, MediaOut, Ticket, chunk_text, file_reply};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::nonce;
use crate::rest::{Endpoint, Rest, RestError};

/// Most characters in one message (Discord allows 2000; a little room is
/// kept for fences that chunking closes and reopens).
pub const MESSAGE_LIMIT: usize = 1990;
/// Items waiting for one channel's outbox.
const QUEUE_CAPACITY: usize = 256;
/// An outbox with nothing to do for this long stops (a new one starts on
/// the next message).
const IDLE: Duration = Duration::from_secs(300);
/// Longest verbose line, in characters: verbose output is a glimpse, the
/// result comes in the reply.
const VERBOSE_LINE_LIMIT: usize = 1500;
/// How long a typing indicator may take before it is not worth waiting for.
const TYPING_TIMEOUT: Duration = Duration::from_secs(3);
/// The name of the thread that holds a turn's worker output.
const THREAD_NAME: &str = "Workers";
/// Minutes of inactivity before Discord archives a verbose thread.
const THREAD_ARCHIVE_MINUTES: u32 = 60;

/// Something for a channel's outbox.
#[derive(Debug)]
pub enum Outgoing {
    /// A reply (or a short notice); `done` hears whether it was delivered.
    Reply {
        /// The user's message it answers.
        reply_to: Option<u64>,
        text: String,
        done: Option<oneshot::Sender<Result<(), ChannelError>>>,
        /// Voided when the conversation cancels its pending output: the
        /// unsent rest is dropped and `done` hears `Ok`.
        ticket: Ticket,
    },
    /// One line of a worker's verbose output under the user's message.
    Verbose {
        under: Option<u64>,
        label: String,
        line: String,
        ticket: Ticket,
    },
    /// The typing indicator.
    Typing,
}

/// The body of a message that pings no one but, where `ping_replied`, the
/// author of the message it references.
pub fn message_body(content: &str, reply_to: Option<u64>, ping_replied: bool) -> Value {
    let mut body = json!({
        "content": content,
        "allowed_mentions": {"parse": [], "replied_user": ping_replied},
    });
    if let Some(message) = reply_to {
        body["message_reference"] = json!({
            "message_id": message.to_string(),
            "fail_if_not_exists": false,
        });
    }
    body
}

/// The outboxes of all channels (one task each, started on demand).
pub struct Outboxes {
    rest: Arc<Rest>,
    verbose_batch: Duration,
    media: MediaOut,
    /// Never held across an `.await`.
    senders: Mutex<HashMap<u64, mpsc::Sender<Outgoing>>>,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

impl Outboxes {
    /// No outboxes yet; replies go as files as `media` says.
    pub fn new(rest: Arc<Rest>, verbose_batch: Duration, media: MediaOut) -> Self {
        Self {
            rest,
            verbose_batch,
            media,
            senders: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
        }
    }

    /// Queues `item` for `channel`, waiting while its outbox is full.
    pub async fn send(&self, channel: u64, item: Outgoing) -> Result<(), ChannelError> {
        let mut item = item;
        for _ in 0..3 {
            let sender = self.sender(channel)?;
            match sender.send(item).await {
                Ok(()) => return Ok(()),
                // That outbox has just stopped (idle): start another.
                Err(mpsc::error::SendError(back)) => item = back,
            }
        }
        Err(ChannelError::Transient(
            "the channel's send queue is gone".into(),
        ))
    }

    /// Queues display-only `item` for `channel` if there is room; returns
    /// whether it was queued.
    pub fn offer(&self, channel: u64, item: Outgoing) -> bool {
        match self.sender(channel) {
            Ok(sender) => sender.try_send(item).is_ok(),
            Err(_) => false,
        }
    }

    /// Stops every outbox (what is still queued is dropped) and waits for
    /// them.
    pub async fn close(&self) {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    fn sender(&self, channel: u64) -> Result<mpsc::Sender<Outgoing>, ChannelError> {
        if self.cancel.is_cancelled() {
            return Err(ChannelError::Permanent(
                "the Discord adapter has stopped".into(),
            ));
        }
        let mut senders = self
            .senders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(sender) = senders.get(&channel)
            && !sender.is_closed()
        {
            return Ok(sender.clone());
        }
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let outbox = Outbox {
            rest: self.rest.clone(),
            channel,
            rx,
            batches: Vec::new(),
            threads: HashMap::new(),
            threads_refused: false,
            verbose_batch: self.verbose_batch,
            media: self.media,
        };
        self.tasks.spawn(outbox.run(self.cancel.clone()));
        senders.insert(channel, tx.clone());
        Ok(tx)
    }
}

/// Verbose lines of one worker under one message, collected for a while.
#[derive(Debug)]
struct Batch {
    under: Option<u64>,
    label: String,
    lines: Vec<String>,
    ready_at: Instant,
    ticket: Ticket,
}

/// One channel's outbox task.
struct Outbox {
    rest: Arc<Rest>,
    channel: u64,
    rx: mpsc::Receiver<Outgoing>,
    batches: Vec<Batch>,
    /// The verbose thread started from each user message.
    threads: HashMap<u64, u64>,
    /// Discord refused to start a thread here (a thread, a DM).
    threads_refused: bool,
    verbose_batch: Duration,
    /// Which replies go as a file.
    media: MediaOut,
}

impl Outbox {
    async fn run(mut self, cancel: CancellationToken) {
        loop {
            let wake = self.batches.iter().map(|b| b.ready_at).min();
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                item = self.rx.recv() => match item {
                    Some(item) => self.accept(item).await,
                    None => break,
                },
                () = sleep_until(wake), if wake.is_some() => self.flush(Some(Instant::now())).await,
                () = tokio::time::sleep(IDLE), if wake.is_none() => {
                    // Take no more; what slipped in is still sent.
                    self.rx.close();
                }
            }
        }
        self.rx.close();
        while let Ok(item) = self.rx.try_recv() {
            if let Outgoing::Reply {
                done: Some(done), ..
            } = item
            {
                let _ = done.send(Err(ChannelError::Transient(
                    "the Discord adapter stopped before the reply was sent".into(),
                )));
            }
        }
    }

    async fn accept(&mut self, item: Outgoing) {
        match item {
            Outgoing::Reply {
                reply_to,
                text,
                done,
                ticket,
            } => {
                // Workers show before the answer that sums them up.
                self.flush(None).await;
                let result = self.reply(&text, reply_to, &ticket).await;
                if let Err(error) = &result {
                    tracing::warn!(channel = self.channel, error = %error, "could not post a reply");
                }
                if let Some(done) = done {
                    // The poster may have gone (shutdown); nothing to tell then.
                    let _ = done.send(result.map_err(RestError::into_channel));
                }
            }
            Outgoing::Verbose {
                under,
                label,
                line,
                ticket,
            } => {
                self.batches.retain(|batch| !batch.ticket.is_cancelled());
                if ticket.is_cancelled() {
                    return;
                }
                let line: String = line.chars().take(VERBOSE_LINE_LIMIT).collect();
                match self
                    .batches
                    .iter_mut()
                    .find(|b| b.under == under && b.label == label)
                {
                    Some(batch) => {
                        batch.lines.push(line);
                        batch.ticket = ticket;
                    }
                    None => self.batches.push(Batch {
                        under,
                        label,
                        lines: vec![line],
                        ready_at: Instant::now() + self.verbose_batch,
                        ticket,
                    }),
                }
            }
            Outgoing::Typing => {
                let typing = self.rest.call(
                    Endpoint::Typing {
                        channel: self.channel,
                    },
                    None,
                );
                match tokio::time::timeout(TYPING_TIMEOUT, typing).await {
                    Ok(Ok(_)) | Err(_) => {}
                    Ok(Err(error)) => {
                        tracing::debug!(channel = self.channel, error = %error, "typing indicator failed")
                    }
                }
            }
        }
    }

    /// Posts the verbose batches ready by `now` (all of them for `None`),
    /// oldest first.
    async fn flush(&mut self, now: Option<Instant>) {
        self.batches.retain(|batch| !batch.ticket.is_cancelled());
        self.batches.sort_by_key(|b| b.ready_at);
        let (ready, waiting): (Vec<Batch>, Vec<Batch>) = std::mem::take(&mut self.batches)
            .into_iter()
            .partition(|b| now.is_none_or(|now| b.ready_at <= now));
        self.batches = waiting;
        for batch in ready {
            let (channel, reply_to) = self.verbose_place(batch.under).await;
            for piece in tagged(&batch.label, &batch.lines.join("\n")) {
                if batch.ticket.is_cancelled() {
                    break;
                }
                let body = message_body(&piece, reply_to, false);
                let posted = self
                    .rest
                    .call(Endpoint::CreateMessage { channel }, Some(&body))
                    .await;
                if let Err(error) = posted {
                    tracing::debug!(channel, error = %error, "verbose output not shown");
                    break;
                }
            }
        }
    }

    /// Where verbose output under `under` goes: the thread started from it,
    /// or in place as a reply to it.
    async fn verbose_place(&mut self, under: Option<u64>) -> (u64, Option<u64>) {
        let Some(message) = under else {
            return (self.channel, None);
        };
        if let Some(thread) = self.threads.get(&message) {
            return (*thread, None);
        }
        if self.threads_refused {
            return (self.channel, Some(message));
        }
        let body = json!({"name": THREAD_NAME, "auto_archive_duration": THREAD_ARCHIVE_MINUTES});
        let endpoint = Endpoint::StartThread {
            channel: self.channel,
            message,
        };
        match self.rest.call(endpoint, Some(&body)).await {
            Ok(thread) => match thread["id"].as_str().and_then(|id| id.parse().ok()) {
                Some(thread) => {
                    self.threads.insert(message, thread);
                    (thread, None)
                }
                None => (self.channel, Some(message)),
            },
            Err(error) => {
                if !error.is_transient() {
                    tracing::debug!(channel = self.channel, error = %error, "no thread here; verbose output goes in place");
                    self.threads_refused = true;
                }
                (self.channel, Some(message))
            }
        }
    }

    /// Posts a reply to the conversation's channel, as one message with a
    /// file where [`file_reply`] says so, else (or if that fails) split
    /// under the limit; the first message references (and so notifies)
    /// `reply_to`'s author. Stops at the first piece that fails, and (with
    /// `Ok`) before the first piece after `ticket` is cancelled.
    async fn reply(
        &self,
        text: &str,
        reply_to: Option<u64>,
        ticket: &Ticket,
    ) -> Result<(), RestError> {
        let channel = self.channel;
        let pieces = chunk_text(text, MESSAGE_LIMIT);
        let as_file = file_reply(text, pieces.len(), MESSAGE_LIMIT, &self.media);
        if let Some(reply) = as_file.filter(|_| !ticket.is_cancelled()) {
            let mut body = message_body(&reply.text, reply_to, true);
            // Apart from the text pieces' nonces, should it fall back to them.
            nonce::enforce(&mut body, channel, reply_to, usize::MAX, &reply.text);
            let endpoint = Endpoint::CreateMessage { channel };
            match self
                .rest
                .call_with_files(endpoint, &body, &[reply.file])
                .await
            {
                Ok(_) => return Ok(()),
                Err(error) => tracing::warn!(
                    channel,
                    error = %error,
                    "could not post the answer as a file; posting it as text"
                ),
            }
        }
        for (index, piece) in pieces.iter().enumerate() {
            if ticket.is_cancelled() {
                tracing::debug!(channel, "reply cancelled; the rest is not sent");
                break;
            }
            let reference = reply_to.filter(|_| index == 0);
            let mut body = message_body(piece, reference, true);
            nonce::enforce(&mut body, channel, reply_to, index, piece);
            self.rest
                .call(Endpoint::CreateMessage { channel }, Some(&body))
                .await?;
        }
        Ok(())
    }
}

/// `text` split under the limit, every piece tagged `**[label]**` (on a
/// line of its own where the piece opens a code block).
fn tagged(label: &str, text: &str) -> Vec<String> {
    let tag = format!("**[{label}]**");
    let room = MESSAGE_LIMIT.saturating_sub(tag.chars().count() + 1);
    chunk_text(text, room)
        .into_iter()
        .map(|piece| {
            let separator = if piece.starts_with("```") { '\n' } else { ' ' };
            format!("{tag}{separator}{piece}")
        })
        .collect()
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_verbose_piece_carries_its_label_and_fits() {
        let code: String = (0..200).map(|i| format!("let x{i} = {i};\n")).collect();
        let text = format!("started: a long one\n```rust\n{code}```");
        let pieces = tagged("alpha", &text);
        assert!(pieces.len() > 1);
        for piece in &pieces {
            assert!(piece.starts_with("**[alpha]**"), "{piece}");
            assert!(piece.chars().count() <= MESSAGE_LIMIT);
        }
        assert!(
            pieces[1].starts_with("**[alpha]**\n```rust\n"),
            "{}",
            pieces[1]
        );
    }

    #[test]
    fn message_bodies_ping_no_one_and_reference_the_users_message() {
        let body = message_body("@everyone hi", Some(5), true);
        assert_eq!(
            body["allowed_mentions"],
            json!({"parse": [], "replied_user": true})
        );
        assert_eq!(body["message_reference"]["message_id"], "5");
        assert!(
            message_body("x", None, false)
                .get("message_reference")
                .is_none()
        );
    }
}
