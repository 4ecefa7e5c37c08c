//! What both adapters' settings share: who may talk to the bot in private
//! chats ([`DmPolicy`], the `dm_policy` key of `[telegram]` and
//! `[discord]`), and [`InvalidSetting`], the error of their checks.

use serde::Deserialize;

/// Who may talk to the bot in private chats (Telegram) or DMs (Discord).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DmPolicy {
    /// Only `allowed_users` (the default).
    #[default]
    Allowlist,
    /// Anyone.
    Open,
}

/// A setting that deserialized but cannot be used; the text names the key
/// as the config file writes it (`telegram.poll_timeout_secs ...`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSetting(pub String);
