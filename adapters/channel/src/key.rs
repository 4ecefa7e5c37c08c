//! Conversation identity: which platform, and the platform's own ids for
//! the chat (typed as the platform types them, so that nothing is parsed
//! back from a string when posting).

use std::fmt;
use std::str::FromStr;

/// The platform a conversation lives on.
#[derive(strum::IntoStaticStr, strum::EnumString, strum::Display)]
#[strum(serialize_all = "snake_case")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Platform {
    /// `baton chat`: one conversation in a terminal.
    Terminal,
    /// A Telegram DM, group, or forum topic.
    Telegram,
    /// A Discord guild channel, thread, or DM.
    Discord,
}

impl Platform {
    /// The lowercase name used in storage keys and logs.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Identifies one conversation: each has exactly one orchestrator.
///
/// The string form (`telegram/-100123/7`, `discord/42`, `terminal/notes`)
/// is what the store keys on; [`FromStr`] reads it back.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConversationKey {
    /// A named `baton chat` conversation.
    Terminal {
        /// The name given on the command line.
        name: String,
    },
    /// A Telegram DM or group, or (with `topic`) one forum topic in a group.
    Telegram {
        /// The chat id (negative for groups).
        chat: i64,
        /// The forum topic (`message_thread_id`).
        topic: Option<i32>,
    },
    /// A Discord guild channel, thread or DM channel: each is a channel.
    Discord {
        /// The channel's snowflake.
        channel: u64,
    },
}

impl ConversationKey {
    /// A terminal conversation.
    pub fn terminal(name: impl Into<String>) -> Self {
        ConversationKey::Terminal { name: name.into() }
    }

    /// A Telegram chat, or a forum topic in it.
    pub fn telegram(chat: i64, topic: Option<i32>) -> Self {
        ConversationKey::Telegram { chat, topic }
    }

    /// A Discord channel (a guild channel, a thread or a DM).
    pub fn discord(channel: u64) -> Self {
        ConversationKey::Discord { channel }
    }

    /// The platform the conversation lives on.
    pub fn platform(&self) -> Platform {
        match self {
            ConversationKey::Terminal { .. } => Platform::Terminal,
            ConversationKey::Telegram { .. } => Platform::Telegram,
            ConversationKey::Discord { .. } => Platform::Discord,
        }
    }
}

impl fmt::Display for ConversationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/", self.platform())?;
        match self {
            ConversationKey::Terminal { name } => f.write_str(name),
            ConversationKey::Telegram { chat, topic } => {
                write!(f, "{chat}")?;
                match topic {
                    Some(topic) => write!(f, "/{topic}"),
                    None => Ok(()),
                }
            }
            ConversationKey::Discord { channel } => write!(f, "{channel}"),
        }
    }
}

/// A string that is not a conversation key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a conversation key: {0:?} (expected telegram/<chat>[/<topic>], discord/<channel> or terminal/<name>)"
)]
pub struct ParseKeyError(pub String);

/// In its string form, as the store keys on it.
impl serde::Serialize for ConversationKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ConversationKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let key = String::deserialize(deserializer)?;
        key.parse().map_err(serde::de::Error::custom)
    }
}

impl FromStr for ConversationKey {
    type Err = ParseKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseKeyError(s.to_owned());
        let (platform, rest) = s.split_once('/').ok_or_else(err)?;
        let platform: Platform = platform.parse().map_err(|_| err())?;
        let number = |text: &str| text.parse().map_err(|_| err());
        match platform {
            Platform::Terminal if !rest.is_empty() => Ok(ConversationKey::terminal(rest)),
            Platform::Terminal => Err(err()),
            Platform::Telegram => match rest.split_once('/') {
                Some((chat, topic)) => Ok(ConversationKey::telegram(
                    number(chat)?,
                    Some(topic.parse().map_err(|_| err())?),
                )),
                None => Ok(ConversationKey::telegram(number(rest)?, None)),
            },
            Platform::Discord => Ok(ConversationKey::discord(rest.parse().map_err(|_| err())?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_its_string_form() {
        let topic = ConversationKey::telegram(-100123, Some(7));
        assert_eq!(topic.to_string(), "telegram/-100123/7");
        assert_eq!(topic.to_string().parse::<ConversationKey>(), Ok(topic));
        let dm: ConversationKey = "discord/42".parse().unwrap();
        assert_eq!(dm, ConversationKey::discord(42));
        assert_eq!(dm.platform(), Platform::Discord);
        let named: ConversationKey = "terminal/notes/2026".parse().unwrap();
        assert_eq!(named, ConversationKey::terminal("notes/2026"));
        assert_eq!(named.to_string(), "terminal/notes/2026");
        for bad in [
            "irc/1",
            "telegram/",
            "telegram/abc",
            "telegram/1/x",
            "discord/-5",
            "terminal/",
            "discord",
        ] {
            assert!(bad.parse::<ConversationKey>().is_err(), "{bad}");
        }
    }
}
