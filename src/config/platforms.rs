//! `[telegram]` and `[discord]`. Their types are the adapters' own
//! (`baton_telegram::TelegramConfig`, `baton_discord::DiscordConfig`: keys,
//! defaults and checks in one place); what the core adds is their secrets,
//! read from the environment variables the sections name.

use secrecy::SecretString;

pub use baton_discord::DiscordConfig;
pub use baton_telegram::{TelegramConfig, TelegramMode};

use super::env_secret;

/// The Telegram bot token: given by code, or from `token_env`.
pub fn telegram_token(config: &TelegramConfig) -> Option<SecretString> {
    bot_token(config.token.as_ref(), &config.token_env)
}

/// The Telegram webhook secret from `webhook_secret_env`.
pub fn telegram_webhook_secret(config: &TelegramConfig) -> Option<SecretString> {
    env_secret(&config.webhook_secret_env)
}

/// The Discord bot token: given by code, or from `token_env`.
pub fn discord_token(config: &DiscordConfig) -> Option<SecretString> {
    bot_token(config.token.as_ref(), &config.token_env)
}

/// A token given by code wins over the one in its variable.
fn bot_token(given: Option<&SecretString>, token_env: &str) -> Option<SecretString> {
    given.cloned().or_else(|| env_secret(token_env))
}
