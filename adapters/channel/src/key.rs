//! Conversation identity: which platform, which chat, which thread.

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
/// A Telegram DM or group is `chat` alone; a forum topic adds `thread`.
/// A Discord channel, thread or DM is its channel id. The string form
/// (`telegram/-100123/7`) is what the store keys on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConversationKey {
    /// Where the conversation lives.
    pub platform: Platform,
    /// The platform's chat or channel id.
    pub chat: String,
    /// A sub-conversation inside the chat (a Telegram forum topic).
    pub thread: Option<String>,
}

impl ConversationKey {
    /// A conversation without a sub-thread.
    pub fn new(platform: Platform, chat: impl Into<String>) -> Self {
        Self {
            platform,
            chat: chat.into(),
            thread: None,
        }
    }

    /// The same chat, narrowed to one thread (a forum topic).
    pub fn with_thread(mut self, thread: impl Into<String>) -> Self {
        self.thread = Some(thread.into());
        self
    }
}

impl fmt::Display for ConversationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.platform, self.chat)?;
        if let Some(thread) = &self.thread {
            write!(f, "/{thread}")?;
        }
        Ok(())
    }
}

/// A string that is not `platform/chat[/thread]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a conversation key: {0:?} (expected platform/chat[/thread])")]
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
        let mut parts = s.splitn(3, '/');
        let platform = match parts.next() {
            Some("terminal") => Platform::Terminal,
            Some("telegram") => Platform::Telegram,
            Some("discord") => Platform::Discord,
            _ => return Err(err()),
        };
        let chat = parts.next().filter(|c| !c.is_empty()).ok_or_else(err)?;
        let thread = parts.next().filter(|t| !t.is_empty());
        let key = ConversationKey::new(platform, chat);
        Ok(match thread {
            Some(thread) => key.with_thread(thread),
            None => key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_its_string_form() {
        let key = ConversationKey::new(Platform::Telegram, "-100123").with_thread("7");
        assert_eq!(key.to_string(), "telegram/-100123/7");
        assert_eq!(key.to_string().parse::<ConversationKey>(), Ok(key));
        let dm: ConversationKey = "discord/42".parse().unwrap();
        assert_eq!(dm, ConversationKey::new(Platform::Discord, "42"));
        assert!("irc/1".parse::<ConversationKey>().is_err());
        assert!("telegram/".parse::<ConversationKey>().is_err());
    }
}
