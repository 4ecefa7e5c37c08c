//! From a Telegram update to what the engine hears: conversation keys,
//! mention gating in groups, access control, commands, and the short
//! answers the adapter gives by itself (refusals, "can't read this yet").
//! A caption and its photo or document are one message.
//!
//! An update is handled once it is dispatched to the engine (which stores a
//! message before it returns), answered by the adapter, or deliberately
//! ignored; only then may it be confirmed to Telegram.

use std::sync::Arc;

use baton_channel::{
    Author, ChannelEvent, Command, ConversationKey, Dispatch, DispatchError, DmPolicy, Inbound,
    OncePerKey, Origin, Ticket, parse_command,
};
use teloxide::Bot;
use teloxide::prelude::Requester;
use teloxide::types::{Message, Update, UpdateKind, User, UserId};

use crate::outbox::{Outboxes, Outgoing, Target};
use crate::settings::{Settings, TelegramConfig};

pub use baton_channel::refusal::NOT_ALLOWED;
/// The answer to a settings command from a non-administrator in a group.
pub const ADMINS_ONLY: &str = "Only this chat's administrators can change my settings.";
pub use crate::files::CANNOT_READ_YET;

/// Who the bot is.
#[derive(Debug, Clone)]
pub struct BotIdentity {
    /// Its user id (replies to its messages address it).
    pub id: UserId,
    /// Its username, without `@`.
    pub username: String,
}

/// Turns updates into engine events; shared by polling and the webhook.
pub struct Intake {
    pub(crate) bot: Bot,
    pub(crate) me: BotIdentity,
    pub(crate) settings: Arc<Settings>,
    pub(crate) outboxes: Arc<Outboxes>,
    pub(crate) engine: Arc<dyn Dispatch>,
    /// Chats whose unanswerable message was already logged at info.
    pub(crate) noted: OncePerKey<i64>,
    /// Marked on every `getUpdates` that succeeds (readiness).
    pub(crate) connection: Arc<baton_channel::Connection>,
}

/// What to do with one update.
#[derive(Debug)]
enum Action {
    /// Nothing (not for this bot, not allowed, not a message); logged at
    /// debug.
    Ignore(&'static str),
    /// Nothing, though it may have been meant for the bot (no sender,
    /// nothing but white space): logged at info, once per chat.
    Unanswerable(&'static str),
    /// Give the engine this event.
    Dispatch(ChannelEvent),
    /// Answer this by the adapter, without the engine.
    Answer(Target, &'static str),
    /// A settings command from someone who is neither an allowed user nor
    /// (yet known to be) an administrator of the group.
    NeedsAdmin(ChannelEvent, Target, UserId),
}

impl Intake {
    /// Handles one update. `Ok` means it may be confirmed to Telegram; a
    /// transient error means it should be offered again later.
    pub async fn handle(&self, update: Update) -> Result<(), DispatchError> {
        let action = decide(&update, &self.me, &self.settings.config);
        let event = match action {
            Action::Ignore(why) => {
                tracing::debug!(
                    update = update.id.0,
                    chat = update.chat().map(|chat| chat.id.0),
                    user = update.from().map(|user| user.id.0),
                    why,
                    "update ignored"
                );
                return Ok(());
            }
            Action::Unanswerable(why) => {
                let chat = update.chat().map(|chat| chat.id.0);
                if chat.is_some_and(|chat| self.noted.first(chat)) {
                    tracing::info!(
                        update = update.id.0,
                        chat,
                        why,
                        "message not answered (logged once per chat)"
                    );
                } else {
                    tracing::debug!(update = update.id.0, chat, why, "message not answered");
                }
                return Ok(());
            }
            Action::Answer(target, text) => {
                self.answer(target, text);
                return Ok(());
            }
            Action::Dispatch(event) => event,
            Action::NeedsAdmin(event, target, user) => {
                if self.is_admin(target, user).await {
                    event
                } else {
                    self.answer(target, ADMINS_ONLY);
                    return Ok(());
                }
            }
        };
        match self.engine.dispatch(event).await {
            Ok(accepted) => {
                tracing::debug!(update = update.id.0, ?accepted, "update dispatched");
                Ok(())
            }
            Err(error) if error.transient => Err(error),
            Err(error) => {
                tracing::error!(update = update.id.0, error = %error, "the engine refused an update; it is dropped");
                Ok(())
            }
        }
    }

    fn answer(&self, target: Target, text: &str) {
        let item = Outgoing::Reply {
            target,
            markdown: text.to_owned(),
            done: None,
            ticket: Ticket::default(),
        };
        if !self.outboxes.offer(target.chat, item) {
            tracing::debug!(chat = target.chat.0, "send queue full; answer dropped");
        }
    }

    async fn is_admin(&self, target: Target, user: UserId) -> bool {
        match self.bot.get_chat_member(target.chat, user).await {
            Ok(member) => member.kind.is_privileged(),
            Err(error) => {
                let failure = crate::api::Failure::from_request(&error, self.bot.token());
                tracing::warn!(chat = target.chat.0, error = %failure, "cannot check whether a user is an administrator");
                false
            }
        }
    }
}

/// Decides what an update is, without any I/O.
fn decide(update: &Update, me: &BotIdentity, settings: &TelegramConfig) -> Action {
    let message = match &update.kind {
        UpdateKind::Message(message) => message,
        UpdateKind::EditedMessage(_) => return Action::Ignore("edited message"),
        _ => return Action::Ignore("not a message"),
    };
    let Some(user) = message.from.as_ref() else {
        // Sent on behalf of a chat (an anonymous admin, a linked channel).
        return Action::Unanswerable("no sender");
    };
    if user.is_bot {
        return Action::Ignore("from a bot");
    }
    let chat = &message.chat;
    let private = chat.is_private();
    if !private && !chat.is_group() && !chat.is_supergroup() {
        return Action::Ignore("a channel");
    }
    let target = Target {
        chat: chat.id,
        thread: message.thread_id.filter(|_| message.is_topic_message),
        reply_to: Some(message.id),
    };
    let allowed = settings.allowed_users.contains(&user.id.0)
        || if private {
            settings.dm_policy == DmPolicy::Open
        } else {
            settings.allowed_chats.contains(&chat.id.0)
        };
    let key = conversation_key(message);
    let author = author(user);
    let origin = Origin::Telegram(message.id.0);
    let attachments = crate::files::attachments(message);
    let text = message.text().or(message.caption());
    if crate::files::unreadable(message) || (text.is_none() && attachments.is_empty()) {
        let addressed = private
            || replies_to_bot(message, me)
            || text.is_some_and(|text| mentions_bot(text, me));
        return if allowed && addressed {
            Action::Answer(target, CANNOT_READ_YET)
        } else {
            Action::Ignore("not text")
        };
    }
    let text = text.unwrap_or_default();
    if let Some(command) = parse_command(text, Some(&me.username)) {
        let for_me = private || command.is_ok() || names_bot(text, me);
        if !for_me {
            // An unknown `/word` in a group is some other bot's business.
            return Action::Ignore("a command for another bot");
        }
        if !allowed {
            return Action::Answer(target, NOT_ALLOWED);
        }
        let changes_settings = command.as_ref().is_ok_and(Command::changes_settings);
        let event = ChannelEvent::Command {
            key,
            author,
            origin,
            command,
        };
        let trusted = private || settings.allowed_users.contains(&user.id.0);
        return if changes_settings && !trusted {
            Action::NeedsAdmin(event, target, user.id)
        } else {
            Action::Dispatch(event)
        };
    }
    let text = if private {
        text.trim().to_owned()
    } else {
        if !mentions_bot(text, me) && !replies_to_bot(message, me) {
            return Action::Ignore("a group message not addressed to the bot");
        }
        strip_mentions(text, me)
    };
    if !allowed {
        return Action::Ignore("sender not allowed");
    }
    if text.is_empty() && attachments.is_empty() {
        return Action::Unanswerable("nothing but white space or the mention");
    }
    Action::Dispatch(ChannelEvent::Message(Inbound {
        key,
        author,
        text,
        origin,
        attachments,
        chat_title: message.chat.title().map(str::to_owned),
    }))
}

/// A DM or a group is one conversation; a forum topic is its own.
fn conversation_key(message: &Message) -> ConversationKey {
    let topic = message
        .thread_id
        .filter(|_| message.is_topic_message)
        .map(|thread| thread.0.0);
    ConversationKey::telegram(message.chat.id.0, topic)
}

fn author(user: &User) -> Author {
    let mut name = user.first_name.clone();
    if let Some(last) = &user.last_name {
        name.push(' ');
        name.push_str(last);
    }
    if name.trim().is_empty()
        && let Some(username) = &user.username
    {
        name = username.clone();
    }
    Author {
        id: user.id.0.to_string(),
        name,
    }
}

/// Whether the message answers one of the bot's own messages. (In forum
/// topics every message "replies" to the topic's first message; that one is
/// the bot's only if the bot opened the topic.)
fn replies_to_bot(message: &Message, me: &BotIdentity) -> bool {
    message
        .reply_to_message()
        .and_then(|replied| replied.from.as_ref())
        .is_some_and(|from| from.id == me.id)
}

/// Whether `@username` of the bot appears as a word in `text`.
fn mentions_bot(text: &str, me: &BotIdentity) -> bool {
    mention_spans(text, me).next().is_some()
}

/// Whether a command is explicitly addressed to this bot (`/cmd@bot`).
fn names_bot(text: &str, me: &BotIdentity) -> bool {
    text.split_whitespace()
        .next()
        .and_then(|head| head.split_once('@'))
        .is_some_and(|(_, name)| name.eq_ignore_ascii_case(&me.username))
}

/// The text without the bot's `@username` mentions, whitespace tidied.
fn strip_mentions(text: &str, me: &BotIdentity) -> String {
    baton_channel::mention::cut(text, mention_spans(text, me))
}

/// Byte spans of `@username` (any case) that stand as words.
fn mention_spans<'a>(
    text: &'a str,
    me: &'a BotIdentity,
) -> impl Iterator<Item = (usize, usize)> + 'a {
    let needle = format!("@{}", me.username.to_ascii_lowercase());
    let lower = text.to_ascii_lowercase();
    let spans: Vec<(usize, usize)> = lower
        .match_indices(&needle)
        .map(|(start, m)| (start, start + m.len()))
        .filter(|&(_, end)| {
            text[end..]
                .chars()
                .next()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
        })
        .collect();
    spans.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn me() -> BotIdentity {
        BotIdentity {
            id: UserId(999),
            username: "baton_bot".into(),
        }
    }

    fn settings() -> TelegramConfig {
        TelegramConfig {
            allowed_users: vec![42],
            allowed_chats: vec![-100],
            ..TelegramConfig::default()
        }
    }

    fn update(chat: Value, from: u64, text: &str, extra: Value) -> Update {
        let mut message = json!({
            "message_id": 7,
            "date": 0,
            "chat": chat,
            "from": {"id": from, "is_bot": false, "first_name": "Ada"},
            "text": text,
        });
        if let (Some(message), Some(extra)) = (message.as_object_mut(), extra.as_object()) {
            message.extend(extra.clone());
        }
        parse(json!({"update_id": 1, "message": message}))
    }

    /// Updates parse from text (teloxide's flattened enums do not parse
    /// from a `Value`).
    fn parse(value: Value) -> Update {
        serde_json::from_str(&value.to_string()).unwrap()
    }

    fn dm(from: u64, text: &str) -> Update {
        update(
            json!({"id": from, "type": "private", "first_name": "Ada"}),
            from,
            text,
            json!({}),
        )
    }

    fn group(from: u64, text: &str, extra: Value) -> Update {
        update(
            json!({"id": -100, "type": "supergroup", "title": "G"}),
            from,
            text,
            extra,
        )
    }

    fn dispatched_text(action: Action) -> String {
        match action {
            Action::Dispatch(ChannelEvent::Message(inbound)) => inbound.text,
            other => panic!("not a message: {other:?}"),
        }
    }

    #[test]
    fn a_dm_from_an_allowed_user_is_a_message_of_its_own_conversation() {
        let action = decide(&dm(42, "hello"), &me(), &settings());
        let Action::Dispatch(ChannelEvent::Message(inbound)) = action else {
            panic!("{action:?}")
        };
        assert_eq!(inbound.key.to_string(), "telegram/42");
        assert_eq!(inbound.origin, Origin::Telegram(7));
        assert_eq!(inbound.author.name, "Ada");
    }

    #[test]
    fn strangers_get_silence_for_chat_and_a_refusal_for_commands() {
        assert!(matches!(
            decide(&dm(5, "hello"), &me(), &settings()),
            Action::Ignore(_)
        ));
        assert!(matches!(
            decide(&dm(5, "/status"), &me(), &settings()),
            Action::Answer(_, NOT_ALLOWED)
        ));
        let mut open = settings();
        open.dm_policy = DmPolicy::Open;
        assert!(matches!(
            decide(&dm(5, "hello"), &me(), &open),
            Action::Dispatch(_)
        ));
    }

    #[test]
    fn groups_answer_mentions_replies_and_commands_only() {
        let s = settings();
        assert!(matches!(
            decide(&group(5, "just chatting", json!({})), &me(), &s),
            Action::Ignore(_)
        ));
        assert_eq!(
            dispatched_text(decide(
                &group(5, "@Baton_Bot what is 2+2?", json!({})),
                &me(),
                &s
            )),
            "what is 2+2?"
        );
        assert!(matches!(
            decide(&group(5, "@baton_botty hi", json!({})), &me(), &s),
            Action::Ignore(_)
        ));
        let reply = json!({"reply_to_message": {
            "message_id": 3, "date": 0,
            "chat": {"id": -100, "type": "supergroup", "title": "G"},
            "from": {"id": 999, "is_bot": true, "first_name": "Baton", "username": "baton_bot"},
            "text": "earlier answer"
        }});
        assert_eq!(
            dispatched_text(decide(&group(5, "and why?", reply), &me(), &s)),
            "and why?"
        );
        assert!(matches!(
            decide(&group(5, "/status@baton_bot", json!({})), &me(), &s),
            Action::Dispatch(ChannelEvent::Command { .. })
        ));
        assert!(matches!(
            decide(&group(5, "/status@other_bot", json!({})), &me(), &s),
            Action::Ignore(_)
        ));
        assert!(matches!(
            decide(&group(5, "/frobnicate", json!({})), &me(), &s),
            Action::Ignore(_)
        ));
    }

    #[test]
    fn settings_commands_in_groups_need_an_admin_or_an_allowed_user() {
        let s = settings();
        assert!(matches!(
            decide(&group(5, "/verbose on", json!({})), &me(), &s),
            Action::NeedsAdmin(..)
        ));
        assert!(matches!(
            decide(&group(42, "/verbose on", json!({})), &me(), &s),
            Action::Dispatch(_)
        ));
        assert!(matches!(
            decide(&group(5, "/verbose", json!({})), &me(), &s),
            Action::Dispatch(_)
        ));
    }

    #[test]
    fn a_forum_topic_is_its_own_conversation() {
        let topic = json!({"message_thread_id": 11, "is_topic_message": true});
        let action = decide(&group(42, "@baton_bot hi", topic), &me(), &settings());
        let Action::Dispatch(ChannelEvent::Message(inbound)) = action else {
            panic!("{action:?}")
        };
        assert_eq!(inbound.key.to_string(), "telegram/-100/11");
    }

    #[test]
    fn edits_and_stickers_are_handled_quietly() {
        let edited: Update = parse(json!({"update_id": 2, "edited_message": {
            "message_id": 7, "date": 0, "edit_date": 1,
            "chat": {"id": 42, "type": "private", "first_name": "Ada"},
            "from": {"id": 42, "is_bot": false, "first_name": "Ada"},
            "text": "changed"
        }}));
        assert!(matches!(
            decide(&edited, &me(), &settings()),
            Action::Ignore(_)
        ));
        let sticker: Update = parse(json!({"update_id": 3, "message": {
            "message_id": 8, "date": 0,
            "chat": {"id": 42, "type": "private", "first_name": "Ada"},
            "from": {"id": 42, "is_bot": false, "first_name": "Ada"},
            "sticker": {"file_id": "f", "file_unique_id": "u", "type": "regular",
                        "width": 1, "height": 1, "is_animated": false, "is_video": false}
        }}));
        assert!(matches!(
            decide(&sticker, &me(), &settings()),
            Action::Answer(_, CANNOT_READ_YET)
        ));
    }

    #[test]
    fn a_photo_with_a_caption_is_one_message_with_its_largest_size() {
        let update: Update = parse(json!({"update_id": 4, "message": {
            "message_id": 7, "date": 0,
            "chat": {"id": 42, "type": "private", "first_name": "Ada"},
            "from": {"id": 42, "is_bot": false, "first_name": "Ada"},
            "photo": [
                {"file_id": "small", "file_unique_id": "s", "width": 90, "height": 60, "file_size": 900},
                {"file_id": "large", "file_unique_id": "l", "width": 1280, "height": 853, "file_size": 90000},
                {"file_id": "mid", "file_unique_id": "m", "width": 320, "height": 213}
            ],
            "caption": "what is this?"
        }}));
        let Action::Dispatch(ChannelEvent::Message(inbound)) = decide(&update, &me(), &settings())
        else {
            panic!("not dispatched")
        };
        assert_eq!(inbound.text, "what is this?");
        assert_eq!(inbound.attachments.len(), 1);
        let photo = &inbound.attachments[0];
        assert_eq!(
            (photo.file_id.as_str(), photo.size, photo.image),
            ("large", Some(90000), true)
        );
    }

    #[test]
    fn a_document_without_a_caption_is_dispatched_and_a_voice_message_is_answered() {
        let document: Update = parse(json!({"update_id": 5, "message": {
            "message_id": 10, "date": 0,
            "chat": {"id": 42, "type": "private", "first_name": "Ada"},
            "from": {"id": 42, "is_bot": false, "first_name": "Ada"},
            "document": {"file_id": "d", "file_unique_id": "du", "file_name": "notes.md",
                         "mime_type": "text/markdown", "file_size": 12}
        }}));
        let Action::Dispatch(ChannelEvent::Message(inbound)) =
            decide(&document, &me(), &settings())
        else {
            panic!("not dispatched")
        };
        assert_eq!(inbound.text, "");
        assert_eq!(inbound.attachments[0].name, "notes.md");
        assert!(!inbound.attachments[0].image);
        let voice: Update = parse(json!({"update_id": 6, "message": {
            "message_id": 11, "date": 0,
            "chat": {"id": 42, "type": "private", "first_name": "Ada"},
            "from": {"id": 42, "is_bot": false, "first_name": "Ada"},
            "voice": {"file_id": "v", "file_unique_id": "vu", "duration": 2}
        }}));
        assert!(matches!(
            decide(&voice, &me(), &settings()),
            Action::Answer(_, CANNOT_READ_YET)
        ));
    }

    #[test]
    fn blank_messages_and_messages_without_a_sender_are_unanswerable() {
        let s = settings();
        assert!(matches!(
            decide(&dm(42, " \n\t "), &me(), &s),
            Action::Unanswerable(_)
        ));
        assert!(matches!(
            decide(&group(42, "@baton_bot   ", json!({})), &me(), &s),
            Action::Unanswerable(_)
        ));
        // A stranger's blank message is just ignored.
        assert!(matches!(
            decide(&dm(5, "   "), &me(), &s),
            Action::Ignore(_)
        ));
        let anonymous: Update = parse(json!({"update_id": 4, "message": {
            "message_id": 9, "date": 0,
            "chat": {"id": -100, "type": "supergroup", "title": "G"},
            "sender_chat": {"id": -100, "type": "supergroup", "title": "G"},
            "text": "@baton_bot hello"
        }}));
        assert!(matches!(
            decide(&anonymous, &me(), &s),
            Action::Unanswerable("no sender")
        ));
    }

    #[test]
    fn mentions_are_stripped() {
        assert_eq!(
            strip_mentions("@baton_bot, hello @BATON_BOT there", &me()),
            "hello there"
        );
    }
}
