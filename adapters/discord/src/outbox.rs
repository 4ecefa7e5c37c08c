//! Discord's side of the shared outboxes ([`baton_channel::outbox`]), one
//! per channel: a reply piece is one message under 2000 characters (the
//! first referencing the user's message, never pinging anyone but the
//! replied-to user, each with a [`nonce`] so a retried create is not posted
//! twice); a reply that goes as a file is one message with the short text
//! and `files[0]`.
//!
//! Verbose output goes, one message per worker batch tagged `**[label]**`,
//! in a thread started from the user's message; where no thread can be
//! started (the conversation is a thread or a DM: Discord refuses) it goes
//! as replies in place. Rate limits and retries of server errors are
//! [`Rest`]'s business (a 429 is waited out there, per route), so a failed
//! request is not tried again here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use baton_channel::chunk_text;
use baton_channel::outbox::{self, Piece, PieceKind, Rules, SendFailure, Transport};
use serde_json::{Value, json};

use crate::nonce;
use crate::rest::{Endpoint, Rest, RestError};

/// Most characters in one message (Discord allows 2000; a little room is
/// kept for fences that chunking closes and reopens).
pub const MESSAGE_LIMIT: usize = 1990;
/// Longest verbose line, in characters.
const VERBOSE_LINE_LIMIT: usize = 1500;
/// How long a typing indicator may take before it is not worth waiting for.
const TYPING_TIMEOUT: Duration = Duration::from_secs(3);
/// The name of the thread that holds a turn's worker output.
const THREAD_NAME: &str = "Workers";
/// Minutes of inactivity before Discord archives a verbose thread.
const THREAD_ARCHIVE_MINUTES: u32 = 60;

/// What a message in a channel answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The user's message it answers (and the verbose thread starts from).
    pub reply_to: Option<u64>,
}

/// The outboxes of all Discord channels.
pub type Outboxes = outbox::Outboxes<DiscordOut>;
/// Something for a Discord channel's outbox.
pub type Outgoing = outbox::Outgoing<DiscordOut>;

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

/// Discord as the outboxes see it.
pub struct DiscordOut {
    rest: Arc<Rest>,
    verbose_batch: Duration,
    media: baton_channel::MediaOut,
}

impl DiscordOut {
    /// Sends through `rest`; verbose output is batched for
    /// `verbose_batch`, replies go as files as `media` says.
    pub fn new(rest: Arc<Rest>, verbose_batch: Duration, media: baton_channel::MediaOut) -> Self {
        Self {
            rest,
            verbose_batch,
            media,
        }
    }

    /// Where verbose output under `under` goes: the thread started from it,
    /// or in place as a reply to it.
    async fn verbose_place(
        &self,
        threads: &mut Threads,
        channel: u64,
        under: Option<u64>,
    ) -> (u64, Option<u64>) {
        let Some(message) = under else {
            return (channel, None);
        };
        if let Some(thread) = threads.started.get(&message) {
            return (*thread, None);
        }
        if threads.refused {
            return (channel, Some(message));
        }
        let body = json!({"name": THREAD_NAME, "auto_archive_duration": THREAD_ARCHIVE_MINUTES});
        let endpoint = Endpoint::StartThread { channel, message };
        match self.rest.call(endpoint, Some(&body)).await {
            Ok(thread) => match thread["id"].as_str().and_then(|id| id.parse().ok()) {
                Some(thread) => {
                    threads.started.insert(message, thread);
                    (thread, None)
                }
                None => (channel, Some(message)),
            },
            Err(error) => {
                if !error.is_transient() {
                    tracing::debug!(channel, error = %error, "no thread here; verbose output goes in place");
                    threads.refused = true;
                }
                (channel, Some(message))
            }
        }
    }
}

/// One channel's verbose threads.
#[derive(Debug, Default)]
pub struct Threads {
    /// The thread started from each user message.
    started: HashMap<u64, u64>,
    /// Discord refused to start a thread here (a thread, a DM).
    refused: bool,
}

#[async_trait::async_trait]
impl Transport for DiscordOut {
    const NAME: &'static str = "Discord";
    type Chat = u64;
    type Target = Target;
    type Typing = ();
    type State = Threads;

    fn rules(&self, _channel: u64) -> Rules {
        Rules {
            // Rest paces by Discord's buckets.
            min_interval: Duration::ZERO,
            per_minute: None,
            verbose_batch: self.verbose_batch,
            verbose_line_limit: VERBOSE_LINE_LIMIT,
            media: self.media,
            file_text_limit: MESSAGE_LIMIT,
            typing_timeout: TYPING_TIMEOUT,
        }
    }

    fn split(&self, markdown: &str) -> Vec<String> {
        chunk_text(markdown, MESSAGE_LIMIT)
    }

    fn verbose_pieces(&self, label: &str, lines: &[String]) -> Vec<String> {
        tagged(label, &lines.join("\n"))
    }

    async fn send(
        &self,
        threads: &mut Threads,
        channel: u64,
        target: &Target,
        piece: &Piece,
    ) -> Result<(), SendFailure> {
        let reply_to = target.reply_to;
        let text = &piece.text;
        let posted = match &piece.kind {
            PieceKind::Text { index } => {
                let reference = reply_to.filter(|_| *index == 0);
                let mut body = message_body(text, reference, true);
                nonce::enforce(&mut body, channel, reply_to, *index, text);
                self.rest
                    .call(Endpoint::CreateMessage { channel }, Some(&body))
                    .await
            }
            PieceKind::File(file) => {
                let mut body = message_body(text, reply_to, true);
                // Apart from the text pieces' nonces, should it fall back to them.
                nonce::enforce(&mut body, channel, reply_to, usize::MAX, text);
                let endpoint = Endpoint::CreateMessage { channel };
                self.rest
                    .call_with_files(endpoint, &body, std::slice::from_ref(file))
                    .await
            }
            PieceKind::Verbose => {
                let (channel, reply_to) = self.verbose_place(threads, channel, reply_to).await;
                let body = message_body(text, reply_to, false);
                self.rest
                    .call(Endpoint::CreateMessage { channel }, Some(&body))
                    .await
            }
        };
        posted.map(drop).map_err(failed)
    }

    async fn typing(&self, channel: u64, _typing: &()) -> Result<(), SendFailure> {
        self.rest
            .call(Endpoint::Typing { channel }, None)
            .await
            .map(drop)
            .map_err(failed)
    }
}

/// [`Rest`] has retried what was worth retrying.
fn failed(error: RestError) -> SendFailure {
    SendFailure::Failed(error.into_channel())
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
