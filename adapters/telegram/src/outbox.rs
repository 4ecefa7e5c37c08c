//! One send queue per chat: everything the bot posts to a chat goes through
//! its outbox, a task with a bounded channel that paces messages (about one
//! a second per chat, at most `group_messages_per_minute` a minute in a
//! group), waits out 429 `retry_after` for that chat only, retries network
//! failures with backoff, and falls back to plain text when Telegram
//! rejects a message's formatting.
//!
//! Replies go ahead of verbose output: verbose events are collected per
//! worker for a short while and sent as one message per batch, and only
//! when no reply is waiting, so worker chatter can neither starve the final
//! reply nor trip Telegram's limits. Verbose output and typing indicators
//! are display only and are dropped, with a log line, when the queue is
//! full.
//!
//! A reply that [`file_reply`] says goes as a file (a long code block, or
//! more than `max_pieces` messages) is one `sendDocument` whose caption is
//! the short text. If Telegram refuses it, or it keeps failing, the reply
//! goes as text pieces instead, with a log line. Verbose output never goes
//! as a file.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_channel::{ChannelError, MediaOut, OutFile, Platform, Ticket, file_reply, metrics};
use teloxide::payloads::{SendChatActionSetters, SendDocumentSetters, SendMessageSetters};
use teloxide::prelude::Requester;
use teloxide::types::{
    ChatAction, ChatId, InputFile, Message, MessageId, ParseMode, ReplyParameters, ThreadId,
};
use teloxide::{Bot, RequestError};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{Failure, backoff};
use crate::render;
use crate::settings::Settings;

/// Items waiting for one chat's outbox.
const QUEUE_CAPACITY: usize = 256;
/// An outbox with nothing to do for this long stops (a new one starts on
/// the next message).
const IDLE: Duration = Duration::from_secs(300);
/// Attempts for one message before it is given up (429s and network
/// failures together).
const MAX_ATTEMPTS: u32 = 8;
/// Longest verbose message, in characters: verbose output is a glimpse,
/// the result comes in the reply.
const VERBOSE_LIMIT: usize = 3500;
/// How long a typing indicator may take before it is not worth waiting for.
const TYPING_TIMEOUT: Duration = Duration::from_secs(5);
/// Telegram's limit for a caption, in UTF-16 code units after entity
/// parsing.
const CAPTION_LIMIT: usize = 1024;
/// The longest short text sent with a file, in characters (the caption's
/// limit, less a little room).
const CAPTION_SPLIT_AT: usize = 1000;

/// Where a message goes: a chat, a forum topic in it, and the message it
/// answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The chat.
    pub chat: ChatId,
    /// The forum topic, if the conversation is one.
    pub thread: Option<ThreadId>,
    /// The user's message this answers.
    pub reply_to: Option<MessageId>,
}

/// Something for a chat's outbox.
#[derive(Debug)]
pub enum Outgoing {
    /// A reply (or a short notice): Markdown, split and rendered here;
    /// `done` hears whether it was delivered.
    Reply {
        target: Target,
        markdown: String,
        done: Option<oneshot::Sender<Result<(), ChannelError>>>,
        /// Voided when the conversation cancels its pending output: the
        /// unsent rest is dropped and `done` hears `Ok`.
        ticket: Ticket,
    },
    /// One line of a worker's verbose output.
    Verbose {
        target: Target,
        label: String,
        line: String,
        ticket: Ticket,
    },
    /// The typing indicator.
    Typing { thread: Option<ThreadId> },
}

/// The outboxes of all chats (one task each, started on demand).
pub struct Outboxes {
    bot: Bot,
    settings: Arc<Settings>,
    /// Never held across an `.await`.
    senders: Mutex<HashMap<ChatId, mpsc::Sender<Outgoing>>>,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

impl Outboxes {
    /// No outboxes yet.
    pub fn new(bot: Bot, settings: Arc<Settings>) -> Self {
        Self {
            bot,
            settings,
            senders: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
        }
    }

    /// Queues `item` for `chat`, waiting while its outbox is full.
    pub async fn send(&self, chat: ChatId, item: Outgoing) -> Result<(), ChannelError> {
        let mut item = item;
        for _ in 0..3 {
            let sender = self.sender(chat)?;
            match sender.send(item).await {
                Ok(()) => return Ok(()),
                // That outbox has just stopped (idle): start another.
                Err(mpsc::error::SendError(back)) => {
                    self.forget(chat, &sender);
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
    pub fn offer(&self, chat: ChatId, item: Outgoing) -> bool {
        let mut item = item;
        for _ in 0..3 {
            let Ok(sender) = self.sender(chat) else {
                return false;
            };
            match sender.try_send(item) {
                Ok(()) => return true,
                Err(mpsc::error::TrySendError::Full(_)) => return false,
                Err(mpsc::error::TrySendError::Closed(back)) => {
                    self.forget(chat, &sender);
                    item = back;
                }
            }
        }
        false
    }

    /// Stops every outbox (what is still queued is dropped) and waits for
    /// them.
    pub async fn close(&self) {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    fn sender(&self, chat: ChatId) -> Result<mpsc::Sender<Outgoing>, ChannelError> {
        if self.cancel.is_cancelled() {
            return Err(ChannelError::Permanent(
                "the Telegram adapter has stopped".into(),
            ));
        }
        let mut senders = self
            .senders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(sender) = senders.get(&chat)
            && !sender.is_closed()
        {
            return Ok(sender.clone());
        }
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let outbox = Outbox::new(self.bot.clone(), chat, &self.settings, rx);
        self.tasks.spawn(outbox.run(self.cancel.clone()));
        senders.insert(chat, tx.clone());
        Ok(tx)
    }

    fn forget(&self, chat: ChatId, stale: &mpsc::Sender<Outgoing>) {
        let mut senders = self
            .senders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if senders.get(&chat).is_some_and(|s| s.same_channel(stale)) {
            senders.remove(&chat);
        }
    }
}

/// One message's worth of text: HTML with its plain fallback, or plain;
/// with `file`, a document with that text as its caption.
#[derive(Debug)]
struct Piece {
    html: Option<String>,
    plain: String,
    file: Option<OutFile>,
}

impl Piece {
    /// A text message from Markdown, rendered as HTML.
    fn markdown(plain: String) -> Self {
        Self {
            html: Some(render::to_html(&plain)),
            plain,
            file: None,
        }
    }

    /// The reply as one document with its short text as the caption, if
    /// [`file_reply`] says it goes as a file rather than `pieces` messages.
    fn document(markdown: &str, pieces: usize, media: &MediaOut) -> Option<Self> {
        let mut reply = file_reply(markdown, pieces, CAPTION_SPLIT_AT, media)?;
        if render::utf16_len(&reply.text) > CAPTION_LIMIT {
            // Characters outside the BMP count twice.
            reply = file_reply(markdown, pieces, CAPTION_SPLIT_AT / 2, media)?;
        }
        Some(Self {
            file: Some(reply.file),
            ..Self::markdown(reply.text)
        })
    }
}

/// A reply or a verbose batch on its way: its pieces in order.
#[derive(Debug)]
struct Job {
    target: Target,
    pieces: VecDeque<Piece>,
    /// What is sent instead if the document in `pieces` cannot be: the
    /// reply as text pieces (empty for anything else).
    fallback: Vec<Piece>,
    done: Option<oneshot::Sender<Result<(), ChannelError>>>,
    attempts: u32,
    not_before: Instant,
    ticket: Ticket,
}

impl Job {
    fn finish(mut self, result: Result<(), ChannelError>) {
        if let Some(done) = self.done.take() {
            // The poster may have gone (shutdown); nothing to tell then.
            let _ = done.send(result);
        }
    }
}

/// Verbose lines of one worker under one message, collected for a while.
#[derive(Debug)]
struct Batch {
    target: Target,
    label: String,
    lines: Vec<String>,
    ready_at: Instant,
    ticket: Ticket,
}

/// When the chat may get its next message.
#[derive(Debug)]
struct Pace {
    interval: Duration,
    per_minute: Option<usize>,
    last: Option<Instant>,
    window: VecDeque<Instant>,
    cooldown: Option<Instant>,
}

impl Pace {
    fn next_allowed(&self) -> Option<Instant> {
        let mut at = self.last.map(|last| last + self.interval);
        if let Some(per_minute) = self.per_minute
            && self.window.len() >= per_minute
            && let Some(oldest) = self.window.front()
        {
            at = at.max(Some(*oldest + Duration::from_secs(60)));
        }
        at.max(self.cooldown)
    }

    fn sent(&mut self, now: Instant) {
        self.last = Some(now);
        if self.per_minute.is_some() {
            self.window.push_back(now);
            while self
                .window
                .front()
                .is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(60))
            {
                self.window.pop_front();
            }
        }
    }

    fn cool_down(&mut self, until: Instant) {
        self.cooldown = self.cooldown.max(Some(until));
    }

    fn cooling(&self, now: Instant) -> bool {
        self.cooldown.is_some_and(|until| until > now)
    }
}

/// One chat's outbox task.
struct Outbox {
    bot: Bot,
    chat: ChatId,
    rx: mpsc::Receiver<Outgoing>,
    replies: VecDeque<Job>,
    verbose: VecDeque<Job>,
    batches: Vec<Batch>,
    pace: Pace,
    verbose_batch: Duration,
    /// Which replies go as a document.
    media: MediaOut,
}

impl Outbox {
    fn new(bot: Bot, chat: ChatId, settings: &Settings, rx: mpsc::Receiver<Outgoing>) -> Self {
        let group = chat.0 < 0;
        Self {
            bot,
            chat,
            rx,
            replies: VecDeque::new(),
            verbose: VecDeque::new(),
            batches: Vec::new(),
            pace: Pace {
                interval: settings.min_send_interval,
                per_minute: group.then_some(settings.group_messages_per_minute.max(1)),
                last: None,
                window: VecDeque::new(),
                cooldown: None,
            },
            verbose_batch: settings.verbose_batch,
            media: settings.media,
        }
    }

    async fn run(mut self, cancel: CancellationToken) {
        let mut open = true;
        loop {
            let wake = self.next_wake();
            if !open && wake.is_none() {
                break;
            }
            let far = Instant::now() + IDLE;
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                item = self.rx.recv(), if open => match item {
                    Some(item) => self.accept(item).await,
                    None => open = false,
                },
                () = tokio::time::sleep_until(wake.unwrap_or(far)), if wake.is_some() => {
                    self.send_next().await;
                }
                () = tokio::time::sleep(IDLE), if wake.is_none() => {
                    // Take no more; what slipped in is still sent.
                    self.rx.close();
                }
            }
        }
        for job in self.replies.drain(..) {
            job.finish(Err(ChannelError::Transient(
                "the Telegram adapter stopped before the reply was sent".into(),
            )));
        }
    }

    /// When the next send is due, if anything is waiting.
    fn next_wake(&self) -> Option<Instant> {
        let due = if let Some(job) = self.replies.front() {
            job.not_before
        } else if let Some(job) = self.verbose.front() {
            job.not_before
        } else {
            self.batches.iter().map(|b| b.ready_at).min()?
        };
        Some(due.max(self.pace.next_allowed().unwrap_or(due)))
    }

    async fn accept(&mut self, item: Outgoing) {
        let now = Instant::now();
        match item {
            Outgoing::Reply {
                target,
                markdown,
                done,
                ticket,
            } => {
                let pieces: Vec<Piece> = render::split(&markdown)
                    .into_iter()
                    .map(Piece::markdown)
                    .collect();
                let (pieces, fallback) = match Piece::document(&markdown, pieces.len(), &self.media)
                {
                    Some(document) => (VecDeque::from([document]), pieces),
                    None => (VecDeque::from(pieces), Vec::new()),
                };
                let job = Job {
                    target,
                    pieces,
                    fallback,
                    done,
                    attempts: 0,
                    not_before: now,
                    ticket,
                };
                if job.pieces.is_empty() {
                    job.finish(Ok(()));
                } else {
                    self.replies.push_back(job);
                }
            }
            Outgoing::Verbose {
                target,
                label,
                line,
                ticket,
            } => {
                self.batches.retain(|batch| !batch.ticket.is_cancelled());
                if ticket.is_cancelled() {
                    return;
                }
                let line = render::truncate(&format!("[{label}] {line}"), VERBOSE_LIMIT);
                match self
                    .batches
                    .iter_mut()
                    .find(|b| b.target == target && b.label == label)
                {
                    Some(batch) => {
                        batch.lines.push(line);
                        batch.ticket = ticket;
                    }
                    None => self.batches.push(Batch {
                        target,
                        label,
                        lines: vec![line],
                        ready_at: now + self.verbose_batch,
                        ticket,
                    }),
                }
            }
            Outgoing::Typing { thread } => self.typing(thread, now).await,
        }
    }

    async fn typing(&mut self, thread: Option<ThreadId>, now: Instant) {
        if self.pace.cooling(now) {
            return;
        }
        let mut request = self.bot.send_chat_action(self.chat, ChatAction::Typing);
        if let Some(thread) = thread {
            request = request.message_thread_id(thread);
        }
        match tokio::time::timeout(TYPING_TIMEOUT, request).await {
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(error)) => match Failure::from_request(&error, self.bot.token()) {
                Failure::RetryAfter(wait) => self.pace.cool_down(now + wait),
                failure => {
                    tracing::debug!(chat = self.chat.0, error = %failure, "typing indicator failed")
                }
            },
        }
    }

    /// Drops what was cancelled after it was queued; its posters hear `Ok`.
    fn drop_cancelled(&mut self) {
        let (cancelled, kept): (VecDeque<Job>, VecDeque<Job>) = std::mem::take(&mut self.replies)
            .into_iter()
            .partition(|job| job.ticket.is_cancelled());
        self.replies = kept;
        for job in cancelled {
            tracing::debug!(
                chat = self.chat.0,
                left = job.pieces.len(),
                "reply cancelled; the rest is not sent"
            );
            job.finish(Ok(()));
        }
        self.verbose.retain(|job| !job.ticket.is_cancelled());
        self.batches.retain(|batch| !batch.ticket.is_cancelled());
    }

    /// Sends the next due piece: replies first, then verbose output.
    async fn send_next(&mut self) {
        self.drop_cancelled();
        let now = Instant::now();
        if self.pace.next_allowed().is_some_and(|at| at > now) {
            return;
        }
        let reply_due = self
            .replies
            .front()
            .is_some_and(|job| job.not_before <= now);
        if reply_due {
            if let Some(job) = self.replies.pop_front()
                && let Some(job) = self.attempt(job).await
            {
                self.replies.push_front(job);
            }
            return;
        }
        if !self.replies.is_empty() {
            // A reply is backing off: verbose output waits behind it.
            return;
        }
        if self.verbose.is_empty() {
            self.take_ready_batch(now);
        }
        if self
            .verbose
            .front()
            .is_some_and(|job| job.not_before <= now)
            && let Some(job) = self.verbose.pop_front()
            && let Some(job) = self.attempt(job).await
        {
            self.verbose.push_front(job);
        }
    }

    /// Turns the oldest ready verbose batch into a job.
    fn take_ready_batch(&mut self, now: Instant) {
        let ready = self
            .batches
            .iter()
            .enumerate()
            .filter(|(_, b)| b.ready_at <= now)
            .min_by_key(|(_, b)| b.ready_at)
            .map(|(index, _)| index);
        if let Some(index) = ready {
            let batch = self.batches.remove(index);
            let text = batch.lines.join("\n");
            let pieces = render::split(&text)
                .into_iter()
                .map(|plain| Piece {
                    html: None,
                    plain,
                    file: None,
                })
                .collect();
            self.verbose.push_back(Job {
                target: batch.target,
                pieces,
                fallback: Vec::new(),
                done: None,
                attempts: 0,
                not_before: now,
                ticket: batch.ticket,
            });
        }
    }

    /// Sends the job's next piece; returns the job if pieces are left.
    async fn attempt(&mut self, mut job: Job) -> Option<Job> {
        let Some(piece) = job.pieces.front() else {
            job.finish(Ok(()));
            return None;
        };
        let (text, html) = match &piece.html {
            Some(html) => (html.clone(), true),
            None => (piece.plain.clone(), false),
        };
        let (method, result) = match &piece.file {
            Some(file) => (
                "sendDocument",
                self.send_document(job.target, file, text, html).await,
            ),
            None => ("sendMessage", self.send_text(job.target, text, html).await),
        };
        let now = Instant::now();
        let status = match &result {
            Ok(_) => "200".to_owned(),
            Err(error) => Failure::from_request(error, self.bot.token()).status(),
        };
        if status == "429" {
            metrics::platform_rate_limited(Platform::Telegram);
        }
        metrics::platform_request(Platform::Telegram, method, status);
        let failure = match result {
            Ok(_) => {
                self.pace.sent(now);
                job.pieces.pop_front();
                job.attempts = 0;
                if job.pieces.is_empty() {
                    job.finish(Ok(()));
                    return None;
                }
                return Some(job);
            }
            Err(error) => Failure::from_request(&error, self.bot.token()),
        };
        job.attempts += 1;
        match failure {
            Failure::BadEntities(why) => {
                tracing::warn!(chat = self.chat.0, error = %why, "Telegram rejected the formatting; sending plain text");
                if let Some(piece) = job.pieces.front_mut() {
                    piece.html = None;
                }
                job.attempts -= 1;
            }
            Failure::RetryAfter(wait) if job.attempts < MAX_ATTEMPTS => {
                tracing::info!(
                    chat = self.chat.0,
                    wait_ms = wait.as_millis() as u64,
                    "rate limited by Telegram; waiting"
                );
                self.pace.cool_down(now + wait);
            }
            Failure::Transient(why) if job.attempts < MAX_ATTEMPTS => {
                tracing::info!(chat = self.chat.0, attempt = job.attempts, error = %why, "send failed; retrying");
                job.not_before = now + backoff(job.attempts);
            }
            failure if !job.fallback.is_empty() => {
                tracing::warn!(chat = self.chat.0, error = %failure, "could not send the answer as a document; sending it as text");
                job.pieces = std::mem::take(&mut job.fallback).into();
                job.attempts = 0;
                job.not_before = now;
            }
            failure => {
                tracing::warn!(chat = self.chat.0, error = %failure, "could not send a message");
                let error = if failure.is_transient() {
                    ChannelError::Transient(failure.to_string())
                } else {
                    ChannelError::Permanent(failure.to_string())
                };
                job.finish(Err(error));
                return None;
            }
        }
        Some(job)
    }
    /// One text message (`text` is HTML where `html`).
    async fn send_text(
        &self,
        target: Target,
        text: String,
        html: bool,
    ) -> Result<Message, RequestError> {
        let mut request = self.bot.send_message(target.chat, text);
        if html {
            request = request.parse_mode(ParseMode::Html);
        }
        if let Some(thread) = target.thread {
            request = request.message_thread_id(thread);
        }
        if let Some(message) = target.reply_to {
            request = request.reply_parameters(reply_parameters(message));
        }
        request.await
    }

    /// One document (multipart) with `caption` (HTML where `html`).
    async fn send_document(
        &self,
        target: Target,
        file: &OutFile,
        caption: String,
        html: bool,
    ) -> Result<Message, RequestError> {
        let document = InputFile::memory(file.bytes.clone()).file_name(file.name.clone());
        let mut request = self
            .bot
            .send_document(target.chat, document)
            .caption(caption);
        if html {
            request = request.parse_mode(ParseMode::Html);
        }
        if let Some(thread) = target.thread {
            request = request.message_thread_id(thread);
        }
        if let Some(message) = target.reply_to {
            request = request.reply_parameters(reply_parameters(message));
        }
        request.await
    }
}

/// Answers `message`, or goes out on its own if it was deleted.
fn reply_parameters(message: MessageId) -> ReplyParameters {
    ReplyParameters {
        allow_sending_without_reply: Some(true),
        ..ReplyParameters::new(message)
    }
}
