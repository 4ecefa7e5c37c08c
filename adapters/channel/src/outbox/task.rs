//! One chat's outbox task: its jobs in order, its verbose batches, its
//! pace, and what it does about each kind of failure.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::pace::Pace;
use super::{
    Done, IDLE, MAX_ATTEMPTS, Outgoing, Piece, PieceKind, Rules, SendFailure, Transport, stopped,
    truncate,
};
use crate::backoff;
use crate::files::file_reply;
use crate::reply::{ChannelError, Ticket};

/// Verbose lines and pieces one outbox holds at most (a worker flood on a
/// paced chat): past it, new lines are dropped, as display-only output is
/// when the queue is full.
const MAX_VERBOSE_HELD: usize = 512;

/// A reply or a verbose batch on its way: its pieces in order.
struct Job<T: Transport> {
    target: T::Target,
    pieces: VecDeque<Piece>,
    /// What is sent instead if the file in `pieces` cannot be: the reply
    /// as text pieces (empty for anything else).
    fallback: Vec<Piece>,
    done: Option<Done>,
    attempts: u32,
    not_before: Instant,
    ticket: Ticket,
}

impl<T: Transport> Job<T> {
    fn finish(mut self, result: Result<(), ChannelError>) {
        if let Some(done) = self.done.take() {
            // The poster may have gone (shutdown); nothing to tell then.
            let _ = done.send(result);
        }
    }

    fn is_verbose(&self) -> bool {
        self.pieces
            .front()
            .is_some_and(|piece| piece.kind == PieceKind::Verbose)
    }
}

/// Verbose lines of one worker under one target, collected for a while.
struct Batch<T: Transport> {
    target: T::Target,
    label: String,
    lines: Vec<String>,
    ready_at: Instant,
    ticket: Ticket,
}

/// One chat's outbox.
pub(super) struct Outbox<T: Transport> {
    transport: Arc<T>,
    chat: T::Chat,
    state: T::State,
    rules: Rules,
    rx: mpsc::Receiver<Outgoing<T>>,
    /// Replies and verbose batches, in the order they go.
    jobs: VecDeque<Job<T>>,
    /// Verbose output still being collected.
    batches: Vec<Batch<T>>,
    pace: Pace,
}

impl<T: Transport> Outbox<T> {
    pub(super) fn new(transport: Arc<T>, chat: T::Chat, rx: mpsc::Receiver<Outgoing<T>>) -> Self {
        let rules = transport.rules(chat);
        Self {
            transport,
            chat,
            state: T::State::default(),
            rules,
            rx,
            jobs: VecDeque::new(),
            batches: Vec::new(),
            pace: Pace::new(rules.min_interval, rules.per_minute),
        }
    }

    /// Takes and sends items until `cancel`, or until it has been idle for
    /// [`IDLE`] and has sent what it took.
    pub(super) async fn run(mut self, cancel: CancellationToken) {
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
        for job in self.jobs.drain(..) {
            job.finish(Err(stopped::<T>()));
        }
        self.rx.close();
        while let Ok(item) = self.rx.try_recv() {
            if let Outgoing::Reply {
                done: Some(done), ..
            } = item
            {
                let _ = done.send(Err(stopped::<T>()));
            }
        }
    }

    /// When the next send is due, if anything is waiting.
    fn next_wake(&self) -> Option<Instant> {
        let due = match self.jobs.front() {
            Some(job) => job.not_before,
            None => self.batches.iter().map(|b| b.ready_at).min()?,
        };
        Some(due.max(self.pace.next_allowed().unwrap_or(due)))
    }

    async fn accept(&mut self, item: Outgoing<T>) {
        let now = Instant::now();
        match item {
            Outgoing::Reply {
                target,
                markdown,
                done,
                ticket,
            } => {
                // Workers show before the reply that sums them up.
                self.take_batches(None, now);
                let (pieces, fallback) = self.reply_pieces(&markdown);
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
                    self.jobs.push_back(job);
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
                if self.verbose_held() >= MAX_VERBOSE_HELD {
                    tracing::debug!(chat = ?self.chat, "too much verbose output waiting; a line dropped");
                    return;
                }
                let line = truncate(&line, self.rules.verbose_line_limit);
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
                        ready_at: now + self.rules.verbose_batch,
                        ticket,
                    }),
                }
            }
            Outgoing::Typing(typing) => self.typing(typing, now).await,
        }
    }

    /// Verbose lines being batched and verbose pieces waiting to go.
    fn verbose_held(&self) -> usize {
        let batched: usize = self.batches.iter().map(|b| b.lines.len()).sum();
        let queued: usize = self
            .jobs
            .iter()
            .filter(|job| job.is_verbose())
            .map(|job| job.pieces.len())
            .sum();
        batched + queued
    }

    /// A reply's pieces: one file piece with the text pieces as its
    /// fallback where [`file_reply`] says so, else the text pieces.
    fn reply_pieces(&self, markdown: &str) -> (VecDeque<Piece>, Vec<Piece>) {
        let pieces: Vec<Piece> = self
            .transport
            .split(markdown)
            .into_iter()
            .enumerate()
            .map(|(index, text)| Piece {
                text,
                kind: PieceKind::Text { index },
                formatted: true,
            })
            .collect();
        let (media, limit) = (&self.rules.media, self.rules.file_text_limit);
        let file = file_reply(markdown, pieces.len(), limit, media).and_then(|reply| {
            if self.transport.fits_with_file(&reply.text) {
                Some(reply)
            } else {
                file_reply(markdown, pieces.len(), limit / 2, media)
            }
        });
        match file {
            Some(reply) => {
                let file = Piece {
                    text: reply.text,
                    kind: PieceKind::File(reply.file),
                    formatted: true,
                };
                (VecDeque::from([file]), pieces)
            }
            None => (VecDeque::from(pieces), Vec::new()),
        }
    }

    /// Turns the verbose batches ready by `now` (all of them for `None`)
    /// into jobs, oldest first.
    fn take_batches(&mut self, ready_by: Option<Instant>, now: Instant) {
        self.batches.retain(|batch| !batch.ticket.is_cancelled());
        self.batches.sort_by_key(|b| b.ready_at);
        let (ready, waiting): (Vec<Batch<T>>, Vec<Batch<T>>) = std::mem::take(&mut self.batches)
            .into_iter()
            .partition(|b| ready_by.is_none_or(|at| b.ready_at <= at));
        self.batches = waiting;
        for batch in ready {
            let pieces = self
                .transport
                .verbose_pieces(&batch.label, &batch.lines)
                .into_iter()
                .map(|text| Piece {
                    text,
                    kind: PieceKind::Verbose,
                    formatted: false,
                })
                .collect();
            self.jobs.push_back(Job {
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

    async fn typing(&mut self, typing: T::Typing, now: Instant) {
        if self.pace.cooling(now) {
            return;
        }
        let shown = self.transport.typing(self.chat, &typing);
        match tokio::time::timeout(self.rules.typing_timeout, shown).await {
            Ok(Ok(())) | Err(_) => {}
            Ok(Err(SendFailure::RetryAfter(wait))) => self.pace.cool_down(now + wait),
            Ok(Err(failure)) => {
                tracing::debug!(chat = ?self.chat, error = %failure, "typing indicator failed");
            }
        }
    }

    /// Drops what was cancelled after it was queued; its posters hear `Ok`.
    fn drop_cancelled(&mut self) {
        let (cancelled, kept): (VecDeque<Job<T>>, VecDeque<Job<T>>) =
            std::mem::take(&mut self.jobs)
                .into_iter()
                .partition(|job| job.ticket.is_cancelled());
        self.jobs = kept;
        for job in cancelled {
            tracing::debug!(chat = ?self.chat, left = job.pieces.len(), "output cancelled; the rest is not sent");
            job.finish(Ok(()));
        }
        self.batches.retain(|batch| !batch.ticket.is_cancelled());
    }

    /// Sends the next due piece, in queue order.
    async fn send_next(&mut self) {
        self.drop_cancelled();
        let now = Instant::now();
        self.take_batches(Some(now), now);
        if self.pace.next_allowed().is_some_and(|at| at > now) {
            return;
        }
        if self.jobs.front().is_some_and(|job| job.not_before <= now)
            && let Some(job) = self.jobs.pop_front()
            && let Some(job) = self.attempt(job).await
        {
            self.jobs.push_front(job);
        }
    }

    /// Sends the job's next piece; returns the job if pieces are left.
    async fn attempt(&mut self, mut job: Job<T>) -> Option<Job<T>> {
        let Some(piece) = job.pieces.front_mut() else {
            job.finish(Ok(()));
            return None;
        };
        let result = self
            .transport
            .send(&mut self.state, self.chat, &job.target, piece)
            .await;
        let now = Instant::now();
        let failure = match result {
            Ok(()) => {
                self.pace.sent(now);
                job.pieces.pop_front();
                job.attempts = 0;
                if job.pieces.is_empty() {
                    job.finish(Ok(()));
                    return None;
                }
                return Some(job);
            }
            Err(failure) => failure,
        };
        job.attempts += 1;
        let chat = self.chat;
        match failure {
            SendFailure::Formatting(why) if piece.formatted => {
                tracing::warn!(?chat, error = %why, "the platform rejected the formatting; sending plain text");
                piece.formatted = false;
                job.attempts -= 1;
            }
            SendFailure::RetryAfter(wait) if job.attempts < MAX_ATTEMPTS => {
                tracing::info!(
                    ?chat,
                    wait_ms = wait.as_millis() as u64,
                    "rate limited; waiting"
                );
                self.pace.cool_down(now + wait);
            }
            SendFailure::Transient(why) if job.attempts < MAX_ATTEMPTS => {
                tracing::info!(?chat, attempt = job.attempts, error = %why, "send failed; retrying");
                job.not_before = now + backoff::pacing_delay(job.attempts);
            }
            failure if !job.fallback.is_empty() => {
                tracing::warn!(?chat, error = %failure, "could not send the answer as a file; sending it as text");
                job.pieces = std::mem::take(&mut job.fallback).into();
                job.attempts = 0;
                job.not_before = now;
            }
            failure => {
                if job.is_verbose() {
                    tracing::debug!(?chat, error = %failure, "verbose output not shown");
                } else {
                    tracing::warn!(?chat, error = %failure, "could not send a message");
                }
                job.finish(Err(failure.into_channel()));
                return None;
            }
        }
        Some(job)
    }
}
