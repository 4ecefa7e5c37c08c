//! From a gateway MESSAGE_CREATE to what the engine hears: conversation
//! keys (a guild channel, a thread, a DM: each its own), mention gating in
//! guilds, access control, and text commands (`@Baton /status`). Decided
//! without I/O, so it is tested without Discord.

use baton_channel::mention;
use baton_channel::{
    Author, ChannelEvent, Command, ConversationKey, DmPolicy, Inbound, Origin, parse_command,
};
use serenity::all::{Message, MessageType, User};

use crate::settings::DiscordConfig;

pub use baton_channel::refusal::NOT_ALLOWED;
/// The answer to a settings command from a member without Manage Server
/// or an allowed role.
pub const MANAGERS_ONLY: &str =
    "Only members with Manage Server or an allowed role can change my settings here.";
/// The answer to a settings command typed as text in a guild, where the
/// adapter cannot see the sender's permissions.
pub const USE_SLASH: &str =
    "To change my settings here, use the slash command: it checks your Manage Server permission.";

/// Who the bot is.
#[derive(Debug, Clone)]
pub struct BotIdentity {
    /// Its user id (mentions and replies address it).
    pub id: u64,
    /// Its username.
    pub name: String,
    /// Its application's id (slash commands and interaction answers).
    pub application: u64,
}

/// Where a short answer of the adapter's own goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spot {
    /// The channel.
    pub channel: u64,
    /// The user's message it answers.
    pub message: u64,
}

/// What to do with a message.
#[derive(Debug)]
pub enum Action {
    /// Nothing (the reason is logged at debug).
    Ignore(&'static str),
    /// Nothing, though it was meant for the bot: it has no text (nothing
    /// but white space or the mention, or the MESSAGE_CONTENT intent is
    /// missing). Logged at info, once per channel.
    Unanswerable(&'static str),
    /// The adapter answers by itself.
    Answer(Spot, &'static str),
    /// Hand it to the engine.
    Dispatch(ChannelEvent),
}

/// Decides what a message is, without any I/O.
pub fn decide(message: &Message, me: &BotIdentity, settings: &DiscordConfig) -> Action {
    if message.author.bot || message.webhook_id.is_some() {
        return Action::Ignore("from a bot");
    }
    if !matches!(
        message.kind,
        MessageType::Regular | MessageType::InlineReply
    ) {
        return Action::Ignore("not a chat message");
    }
    let user = message.author.id.get();
    let spot = Spot {
        channel: message.channel_id.get(),
        message: message.id.get(),
    };
    let guild = message.guild_id.map(|g| g.get());
    let trusted = settings.allowed_users.contains(&user);
    let allowed = trusted
        || match guild {
            None => settings.dm_policy == DmPolicy::Open,
            Some(guild) => settings.allowed_guilds.contains(&guild),
        };
    let addressed = match guild {
        None => true,
        Some(guild) => {
            !settings.mention_required(guild)
                || mentions_bot(message, me)
                || replies_to_bot(message, me)
        }
    };
    if !addressed {
        return Action::Ignore("a guild message not addressed to the bot");
    }
    let text = strip_mentions(&message.content, me.id);
    let key = ConversationKey::discord(spot.channel);
    let author = author(message);
    let origin = Origin::Discord(spot.message);
    if let Some(command) = parse_command(&text, Some(&me.name)) {
        if !allowed {
            return Action::Answer(spot, NOT_ALLOWED);
        }
        let changes_settings = command.as_ref().is_ok_and(Command::changes_settings);
        if changes_settings && guild.is_some() && !trusted && !has_allowed_role(message, settings) {
            return Action::Answer(spot, USE_SLASH);
        }
        return Action::Dispatch(ChannelEvent::Command {
            key,
            author,
            origin,
            command,
        });
    }
    if !allowed {
        return Action::Ignore("sender not allowed");
    }
    if crate::files::unreadable(message) {
        return Action::Answer(spot, crate::files::CANNOT_READ_YET);
    }
    let attachments = crate::files::attachments(message);
    if text.is_empty() && attachments.is_empty() {
        return Action::Unanswerable(
            "no text (nothing but white space or the mention, or the MESSAGE_CONTENT intent is missing)",
        );
    }
    Action::Dispatch(ChannelEvent::Message(Inbound {
        key,
        author,
        text,
        origin,
        attachments,
        chat_title: None,
    }))
}

/// Whether the sender holds one of `allowed_roles` (guild messages carry
/// the member's roles).
fn has_allowed_role(message: &Message, settings: &DiscordConfig) -> bool {
    message.member.as_ref().is_some_and(|member| {
        member
            .roles
            .iter()
            .any(|role| settings.allowed_roles.contains(&role.get()))
    })
}

fn author(message: &Message) -> Author {
    let nick = message.member.as_ref().and_then(|m| m.nick.as_deref());
    author_of(&message.author, nick)
}

/// An author by their guild nickname, else their display name, else
/// their username.
pub(crate) fn author_of(user: &User, nick: Option<&str>) -> Author {
    let name = nick
        .or(user.global_name.as_deref())
        .unwrap_or(&user.name)
        .to_owned();
    Author {
        id: user.id.get().to_string(),
        name,
    }
}

/// Whether the message mentions the bot (Discord lists mentioned users;
/// the text is checked too, for payloads without the list).
fn mentions_bot(message: &Message, me: &BotIdentity) -> bool {
    message.mentions.iter().any(|user| user.id.get() == me.id)
        || mention_tokens(me.id)
            .iter()
            .any(|token| message.content.contains(token.as_str()))
}

/// Whether the message answers one of the bot's own messages.
fn replies_to_bot(message: &Message, me: &BotIdentity) -> bool {
    message
        .referenced_message
        .as_ref()
        .is_some_and(|replied| replied.author.id.get() == me.id)
}

/// `<@id>` and `<@!id>`: the ways a user mention is written.
fn mention_tokens(id: u64) -> [String; 2] {
    [format!("<@{id}>"), format!("<@!{id}>")]
}

/// The text without the bot's mentions, whitespace tidied.
fn strip_mentions(text: &str, me: u64) -> String {
    let mut text = text.to_owned();
    for token in mention_tokens(me) {
        text = text.replace(&token, " ");
    }
    mention::tidy(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const BOT: u64 = 999;
    const GUILD: u64 = 7;
    const ADA: u64 = 42;
    const BOB: u64 = 5;

    fn me() -> BotIdentity {
        BotIdentity {
            id: BOT,
            name: "Baton".into(),
            application: BOT,
        }
    }

    fn settings() -> DiscordConfig {
        DiscordConfig {
            allowed_users: vec![ADA],
            allowed_guilds: vec![GUILD],
            ..DiscordConfig::default()
        }
    }

    fn user(id: u64, bot: bool) -> Value {
        json!({"id": id.to_string(), "username": format!("u{id}"), "discriminator": "0",
               "global_name": null, "avatar": null, "bot": bot})
    }

    fn message(guild: Option<u64>, from: u64, content: &str, extra: Value) -> Message {
        let mut message = json!({
            "id": "500", "channel_id": "300", "author": user(from, false),
            "content": content, "timestamp": "2026-01-01T00:00:00.000Z",
            "edited_timestamp": null, "tts": false, "mention_everyone": false,
            "mentions": [], "mention_roles": [], "attachments": [], "embeds": [],
            "pinned": false, "type": 0,
        });
        if let Some(guild) = guild {
            message["guild_id"] = json!(guild.to_string());
        }
        if let (Some(message), Some(extra)) = (message.as_object_mut(), extra.as_object()) {
            message.extend(extra.clone());
        }
        serde_json::from_value(message).unwrap()
    }

    fn text_of(action: Action) -> String {
        match action {
            Action::Dispatch(ChannelEvent::Message(inbound)) => inbound.text,
            other => panic!("not a message: {other:?}"),
        }
    }

    #[test]
    fn a_mention_in_an_allowed_guild_is_a_message_of_the_channels_conversation() {
        let mention = json!({"mentions": [user(BOT, true)]});
        let action = decide(
            &message(Some(GUILD), BOB, "<@999> what is 2+2?", mention),
            &me(),
            &settings(),
        );
        let Action::Dispatch(ChannelEvent::Message(inbound)) = action else {
            panic!("{action:?}")
        };
        assert_eq!(inbound.key.to_string(), "discord/300");
        assert_eq!(inbound.text, "what is 2+2?");
        assert_eq!(inbound.origin, Origin::Discord(500));
    }

    #[test]
    fn guild_messages_need_a_mention_or_a_reply_unless_the_guild_says_otherwise() {
        let s = settings();
        assert!(matches!(
            decide(
                &message(Some(GUILD), BOB, "just chatting", json!({})),
                &me(),
                &s
            ),
            Action::Ignore(_)
        ));
        let reply = json!({"referenced_message": {
            "id": "400", "channel_id": "300", "author": user(BOT, true),
            "content": "earlier", "timestamp": "2026-01-01T00:00:00.000Z",
            "edited_timestamp": null, "tts": false, "mention_everyone": false,
            "mentions": [], "mention_roles": [], "attachments": [], "embeds": [],
            "pinned": false, "type": 0
        }, "message_reference": {"message_id": "400", "channel_id": "300"}, "type": 19});
        assert_eq!(
            text_of(decide(
                &message(Some(GUILD), BOB, "and why?", reply),
                &me(),
                &s
            )),
            "and why?"
        );
        let mut open = settings();
        open.require_mention_in.insert(GUILD.to_string(), false);
        assert_eq!(
            text_of(decide(
                &message(Some(GUILD), BOB, "hello", json!({})),
                &me(),
                &open
            )),
            "hello"
        );
    }

    #[test]
    fn bots_strangers_and_other_guilds_get_silence() {
        let s = settings();
        let mut from_bot = message(Some(GUILD), BOB, "<@999> hi", json!({}));
        from_bot.author.bot = true;
        assert!(matches!(decide(&from_bot, &me(), &s), Action::Ignore(_)));
        assert!(matches!(
            decide(&message(Some(8), BOB, "<@999> hi", json!({})), &me(), &s),
            Action::Ignore(_)
        ));
        assert!(matches!(
            decide(&message(None, BOB, "hi", json!({})), &me(), &s),
            Action::Ignore(_)
        ));
        assert!(matches!(
            decide(&message(None, BOB, "/status", json!({})), &me(), &s),
            Action::Answer(_, NOT_ALLOWED)
        ));
        let mut open = settings();
        open.dm_policy = DmPolicy::Open;
        assert_eq!(
            text_of(decide(&message(None, BOB, "hi", json!({})), &me(), &open)),
            "hi"
        );
    }

    #[test]
    fn text_commands_that_change_settings_in_guilds_need_trust() {
        let s = settings();
        assert!(matches!(
            decide(
                &message(Some(GUILD), BOB, "<@999> /verbose on", json!({})),
                &me(),
                &s
            ),
            Action::Answer(_, USE_SLASH)
        ));
        assert!(matches!(
            decide(
                &message(Some(GUILD), ADA, "<@999> /verbose on", json!({})),
                &me(),
                &s
            ),
            Action::Dispatch(ChannelEvent::Command { .. })
        ));
        assert!(matches!(
            decide(
                &message(Some(GUILD), BOB, "<@999> /status", json!({})),
                &me(),
                &s
            ),
            Action::Dispatch(ChannelEvent::Command { .. })
        ));
    }

    #[test]
    fn blank_messages_for_the_bot_are_unanswerable() {
        let s = settings();
        let mention = json!({"mentions": [user(BOT, true)]});
        for text in ["<@999>", "<@999>  \n ", ""] {
            assert!(
                matches!(
                    decide(&message(Some(GUILD), BOB, text, mention.clone()), &me(), &s),
                    Action::Unanswerable(_)
                ),
                "{text:?}"
            );
        }
        assert!(matches!(
            decide(&message(None, ADA, " \t ", json!({})), &me(), &s),
            Action::Unanswerable(_)
        ));
        // A stranger's is just ignored.
        assert!(matches!(
            decide(&message(None, BOB, " ", json!({})), &me(), &s),
            Action::Ignore(_)
        ));
    }

    fn file(name: &str, content_type: &str) -> Value {
        json!({"id": "800", "filename": name, "size": 12, "content_type": content_type,
               "url": "https://cdn.discordapp.com/attachments/300/800/x",
               "proxy_url": "https://media.discordapp.net/attachments/300/800/x"})
    }

    #[test]
    fn a_file_without_text_is_a_message_and_stickers_and_voice_get_an_answer() {
        let s = settings();
        let with_file = message(
            None,
            ADA,
            "",
            json!({"attachments": [file("a.png", "image/png")]}),
        );
        let Action::Dispatch(ChannelEvent::Message(inbound)) = decide(&with_file, &me(), &s) else {
            panic!("not dispatched")
        };
        assert_eq!(inbound.text, "");
        let attachment = &inbound.attachments[0];
        assert_eq!(
            (attachment.name.as_str(), attachment.image, attachment.size),
            ("a.png", true, Some(12))
        );
        assert_eq!(
            attachment.url.as_deref(),
            Some("https://cdn.discordapp.com/attachments/300/800/x")
        );
        let voice = message(
            None,
            ADA,
            "",
            json!({"attachments": [file("voice-message.ogg", "audio/ogg")]}),
        );
        assert!(matches!(
            decide(&voice, &me(), &s),
            Action::Answer(_, crate::files::CANNOT_READ_YET)
        ));
        let sticker = message(
            None,
            ADA,
            "",
            json!({"sticker_items": [{"id": "1", "name": "wave", "format_type": 1}]}),
        );
        assert!(matches!(
            decide(&sticker, &me(), &s),
            Action::Answer(_, crate::files::CANNOT_READ_YET)
        ));
        // A stranger's file gets silence, as a stranger's text does.
        let stranger = message(
            None,
            BOB,
            "",
            json!({"attachments": [file("a.png", "image/png")]}),
        );
        assert!(matches!(decide(&stranger, &me(), &s), Action::Ignore(_)));
    }
}
