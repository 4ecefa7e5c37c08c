//! Telegram's side of the shared outboxes ([`baton_channel::outbox`]):
//! one piece is one `sendMessage` (HTML rendered from Markdown, or plain
//! text once Telegram rejected the formatting) or one `sendDocument` with
//! the short text as its caption; verbose lines are tagged `[label]` one
//! by one. Telegram's pacing is about one message a second per chat and
//! `group_messages_per_minute` in a group (a negative chat id); its 429
//! answers carry `retry_after`, which the outbox waits out for that chat
//! only. Failures are sorted by [`Failure`], with the token cut out.

use std::sync::Arc;
use std::time::Duration;

use baton_channel::outbox::{self, Piece, PieceKind, Rules, SendFailure, Transport};
use baton_channel::{ChannelError, OutFile, Platform, metrics};
use teloxide::payloads::{SendChatActionSetters, SendDocumentSetters, SendMessageSetters};
use teloxide::prelude::Requester;
use teloxide::types::{
    ChatAction, ChatId, InputFile, Message, MessageId, ParseMode, ReplyParameters, ThreadId,
};
use teloxide::{Bot, RequestError};

use crate::api::Failure;
use crate::render;
use crate::settings::Settings;

/// Longest verbose line, in characters.
const VERBOSE_LINE_LIMIT: usize = 3500;
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

/// `request` with what every message to `target` carries: the HTML parse
/// mode where `html`, the forum topic, and the message it answers (the
/// payloads share no trait for these).
macro_rules! addressed {
    ($request:expr, $target:expr, $html:expr) => {{
        let mut request = $request;
        if $html {
            request = request.parse_mode(ParseMode::Html);
        }
        if let Some(thread) = $target.thread {
            request = request.message_thread_id(thread);
        }
        if let Some(message) = $target.reply_to {
            request = request.reply_parameters(reply_parameters(message));
        }
        request
    }};
}

/// The outboxes of all Telegram chats.
pub type Outboxes = outbox::Outboxes<TelegramOut>;
/// Something for a Telegram chat's outbox.
pub type Outgoing = outbox::Outgoing<TelegramOut>;

/// Telegram as the outboxes see it.
pub struct TelegramOut {
    bot: Bot,
    settings: Arc<Settings>,
}

impl TelegramOut {
    /// Sends through `bot`, paced and batched as `settings` say.
    pub fn new(bot: Bot, settings: Arc<Settings>) -> Self {
        Self { bot, settings }
    }

    /// A failed request sorted, and counted for the metrics.
    fn sorted(
        &self,
        method: &'static str,
        result: Result<Message, RequestError>,
    ) -> Result<(), SendFailure> {
        let failure = result
            .as_ref()
            .err()
            .map(|error| Failure::from_request(error, self.bot.token()));
        let status = failure
            .as_ref()
            .map_or_else(|| "200".to_owned(), Failure::status);
        if status == "429" {
            metrics::platform_rate_limited(Platform::Telegram);
        }
        metrics::platform_request(Platform::Telegram, method, status);
        match failure {
            None => Ok(()),
            Some(Failure::RetryAfter(wait)) => Err(SendFailure::RetryAfter(wait)),
            Some(failure @ Failure::Transient(_)) => {
                Err(SendFailure::Transient(failure.to_string()))
            }
            Some(Failure::BadEntities(why)) => Err(SendFailure::Formatting(why)),
            Some(failure) => Err(SendFailure::Failed(ChannelError::Permanent(
                failure.to_string(),
            ))),
        }
    }

    /// One text message (`text` is HTML where `html`).
    async fn send_text(
        &self,
        target: &Target,
        text: String,
        html: bool,
    ) -> Result<Message, RequestError> {
        addressed!(self.bot.send_message(target.chat, text), target, html).await
    }

    /// One document (multipart) with `caption` (HTML where `html`).
    async fn send_document(
        &self,
        target: &Target,
        file: &OutFile,
        caption: String,
        html: bool,
    ) -> Result<Message, RequestError> {
        let document = InputFile::memory(file.bytes.clone()).file_name(file.name.clone());
        let request = self
            .bot
            .send_document(target.chat, document)
            .caption(caption);
        addressed!(request, target, html).await
    }
}

#[async_trait::async_trait]
impl Transport for TelegramOut {
    const NAME: &'static str = "Telegram";
    type Chat = ChatId;
    type Target = Target;
    /// The forum topic.
    type Typing = Option<ThreadId>;
    type State = ();

    fn rules(&self, chat: ChatId) -> Rules {
        let group = chat.0 < 0;
        Rules {
            min_interval: self.settings.config.min_send_interval(),
            per_minute: group.then_some(self.settings.config.group_messages_per_minute),
            verbose_batch: self.settings.config.verbose_batch(),
            verbose_line_limit: VERBOSE_LINE_LIMIT,
            media: self.settings.media,
            file_text_limit: CAPTION_SPLIT_AT,
            typing_timeout: TYPING_TIMEOUT,
        }
    }

    fn split(&self, markdown: &str) -> Vec<String> {
        render::split(markdown)
    }

    fn fits_with_file(&self, text: &str) -> bool {
        // Characters outside the BMP count twice.
        render::utf16_len(text) <= CAPTION_LIMIT
    }

    fn verbose_pieces(&self, label: &str, lines: &[String]) -> Vec<String> {
        let text: Vec<String> = lines
            .iter()
            .map(|line| format!("[{label}] {line}"))
            .collect();
        render::split(&text.join("\n"))
    }

    async fn send(
        &self,
        _state: &mut (),
        _chat: ChatId,
        target: &Target,
        piece: &Piece,
    ) -> Result<(), SendFailure> {
        let html = piece.formatted && piece.kind != PieceKind::Verbose;
        let text = if html {
            render::to_html(&piece.text)
        } else {
            piece.text.clone()
        };
        match &piece.kind {
            PieceKind::File(file) => {
                let sent = self.send_document(target, file, text, html).await;
                self.sorted("sendDocument", sent)
            }
            PieceKind::Text { .. } | PieceKind::Verbose => {
                let sent = self.send_text(target, text, html).await;
                self.sorted("sendMessage", sent)
            }
        }
    }

    async fn typing(&self, chat: ChatId, thread: &Option<ThreadId>) -> Result<(), SendFailure> {
        let mut request = self.bot.send_chat_action(chat, ChatAction::Typing);
        if let Some(thread) = thread {
            request = request.message_thread_id(*thread);
        }
        match request.await {
            Ok(_) => Ok(()),
            Err(error) => match Failure::from_request(&error, self.bot.token()) {
                Failure::RetryAfter(wait) => Err(SendFailure::RetryAfter(wait)),
                failure => Err(SendFailure::Transient(failure.to_string())),
            },
        }
    }
}

/// Answers `message`, or goes out on its own if it was deleted.
fn reply_parameters(message: MessageId) -> ReplyParameters {
    ReplyParameters {
        allow_sending_without_reply: Some(true),
        ..ReplyParameters::new(message)
    }
}
