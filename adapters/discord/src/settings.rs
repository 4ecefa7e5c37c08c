//! `[discord]` as the config file writes it ([`DiscordConfig`]: its keys,
//! defaults, checks and clamps; Baton's core embeds it in its `Config`),
//! and what the adapter starts with ([`Settings`]: that section plus what
//! the core adds: the bot token read from the environment, and which
//! answers go out as file attachments, from `[media]`).

use std::collections::BTreeMap;
use std::time::Duration;

use baton_channel::{DmPolicy, InvalidSetting, MediaOut};
use secrecy::SecretString;
use serde::Deserialize;

/// The longest a slash command waits before it is deferred, whatever
/// `defer_after_ms` says (Discord's deadline is 3 seconds).
const MAX_DEFER_AFTER: Duration = Duration::from_millis(2500);

/// `[discord]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscordConfig {
    /// Whether to start the adapter (it also needs its token variable set).
    pub enabled: bool,
    /// The environment variable holding the bot token.
    pub token_env: String,
    /// The REST base (serenity's proxy setting): REST goes to
    /// `api_url/api/v10/...` and the gateway URL is asked of it.
    pub api_url: String,
    /// In guilds, answer only when mentioned or replied to.
    pub require_mention: bool,
    /// Per-guild exceptions to `require_mention`, by guild id (as a string
    /// key: `{ "123" = false }`; see [`DiscordConfig::validate`]).
    pub require_mention_in: BTreeMap<String, bool>,
    /// A guild to register the slash commands in as well, so that changes
    /// show at once (global commands can take a while to appear).
    pub dev_guild: Option<u64>,
    /// Guild ids whose members may talk to the bot.
    pub allowed_guilds: Vec<u64>,
    /// User ids that may talk to the bot anywhere and change settings in
    /// guilds.
    pub allowed_users: Vec<u64>,
    /// Role ids whose members may change settings in guilds (besides
    /// members with Manage Server).
    pub allowed_roles: Vec<u64>,
    /// `allowlist` (only `allowed_users` in DMs) or `open`.
    pub dm_policy: DmPolicy,
    /// Milliseconds verbose worker output is collected before it is posted
    /// as one message per worker.
    pub verbose_batch_ms: u64,
    /// Milliseconds a slash command waits for its answer before it is
    /// deferred (at most 2500, below Discord's 3-second deadline).
    pub defer_after_ms: u64,
    /// Requests a second for the whole bot (Discord allows 50; interaction
    /// answers do not count); at least 1.
    pub global_requests_per_second: u32,
    /// A token given by code (tests, embedding); wins over `token_env`.
    /// Never read from the file.
    #[serde(skip)]
    pub token: Option<SecretString>,
}

impl Default for DiscordConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            token_env: "DISCORD_BOT_TOKEN".into(),
            api_url: "https://discord.com".into(),
            require_mention: true,
            require_mention_in: BTreeMap::new(),
            dev_guild: None,
            allowed_guilds: Vec::new(),
            allowed_users: Vec::new(),
            allowed_roles: Vec::new(),
            dm_policy: DmPolicy::Allowlist,
            verbose_batch_ms: 2000,
            defer_after_ms: 1500,
            global_requests_per_second: 45,
            token: None,
        }
    }
}

impl DiscordConfig {
    /// Checks what the types cannot: every `require_mention_in` key is a
    /// guild id.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        match self
            .require_mention_in
            .keys()
            .find(|guild| guild_id(guild).is_none())
        {
            Some(guild) => Err(InvalidSetting(format!(
                "discord.require_mention_in: {guild:?} is not a guild id"
            ))),
            None => Ok(()),
        }
    }

    /// Whether messages in `guild` must mention (or reply to) the bot.
    pub fn mention_required(&self, guild: u64) -> bool {
        self.require_mention_in
            .iter()
            .find(|(key, _)| guild_id(key) == Some(guild))
            .map_or(self.require_mention, |(_, required)| *required)
    }

    /// `verbose_batch_ms` as a duration.
    pub fn verbose_batch(&self) -> Duration {
        Duration::from_millis(self.verbose_batch_ms)
    }

    /// `defer_after_ms` as a duration, at most 2.5 s.
    pub fn defer_after(&self) -> Duration {
        Duration::from_millis(self.defer_after_ms).min(MAX_DEFER_AFTER)
    }

    /// `global_requests_per_second`, at least 1.
    pub fn requests_per_second(&self) -> u32 {
        self.global_requests_per_second.max(1)
    }
}

/// A `require_mention_in` key as a guild id.
fn guild_id(key: &str) -> Option<u64> {
    key.trim().parse().ok()
}

/// What the adapter starts with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `[discord]`.
    pub config: DiscordConfig,
    /// The bot token from the developer portal (never logged).
    pub token: SecretString,
    /// Which answers go out as a file attachment (`[media]`).
    pub media: MediaOut,
}

impl Settings {
    /// Settings with the section's defaults for everything but the token.
    pub fn new(token: SecretString) -> Self {
        Self {
            config: DiscordConfig::default(),
            token,
            media: MediaOut::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_guild_mention_rules_override_the_default_and_bad_keys_are_refused() {
        let mut config = DiscordConfig::default();
        config.require_mention_in.insert(" 123 ".into(), false);
        assert!(!config.mention_required(123));
        assert!(config.mention_required(456));
        assert_eq!(config.validate(), Ok(()));
        config.require_mention_in.insert("general".into(), true);
        assert_eq!(
            config.validate().map_err(|e| e.to_string()),
            Err("discord.require_mention_in: \"general\" is not a guild id".to_owned())
        );
    }

    #[test]
    fn slash_command_deferral_and_the_global_rate_are_clamped() {
        let config = DiscordConfig {
            defer_after_ms: 10_000,
            global_requests_per_second: 0,
            ..DiscordConfig::default()
        };
        assert_eq!(config.defer_after(), Duration::from_millis(2500));
        assert_eq!(config.requests_per_second(), 1);
        let config = DiscordConfig::default();
        assert_eq!(config.defer_after(), Duration::from_millis(1500));
        assert_eq!(config.requests_per_second(), 45);
    }
}
