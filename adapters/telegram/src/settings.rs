//! `[telegram]` as the config file writes it ([`TelegramConfig`]: its keys,
//! defaults and checks; Baton's core embeds it in its `Config`), and what
//! the adapter starts with ([`Settings`]: that section plus what the core
//! adds: the bot token and webhook secret read from the environment, and
//! which answers go out as documents, from `[media]`).

use std::time::Duration;

use baton_channel::{DmPolicy, InvalidSetting, MediaOut};
use secrecy::SecretString;
use serde::Deserialize;

/// How updates reach the bot (`mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TelegramMode {
    /// `getUpdates` long polling: no public address needed.
    #[default]
    Polling,
    /// Telegram POSTs updates to `webhook_url`, which Baton's HTTP server
    /// answers; each request must carry the secret token in
    /// `X-Telegram-Bot-Api-Secret-Token`.
    Webhook,
}

/// `[telegram]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelegramConfig {
    /// Whether to start the adapter (it also needs its token variable set).
    pub enabled: bool,
    /// The environment variable holding the bot token.
    pub token_env: String,
    /// The Bot API base URL (a local Bot API server or a test fake).
    pub api_url: String,
    /// `polling` or `webhook`.
    pub mode: TelegramMode,
    /// Webhook mode: the public HTTPS URL Telegram posts to; it must reach
    /// `webhook_path` on `[server] listen` (through a reverse proxy).
    pub webhook_url: Option<String>,
    /// Webhook mode: the path served on Baton's HTTP server.
    pub webhook_path: String,
    /// Webhook mode: the environment variable holding the secret token
    /// Telegram sends back in `X-Telegram-Bot-Api-Secret-Token`.
    pub webhook_secret_env: String,
    /// Telegram user ids that may talk to the bot anywhere and change
    /// settings in groups.
    pub allowed_users: Vec<u64>,
    /// Group and supergroup chat ids whose members may talk to the bot.
    pub allowed_chats: Vec<i64>,
    /// `allowlist` (only `allowed_users` in private chats) or `open`.
    pub dm_policy: DmPolicy,
    /// Least milliseconds between two messages to one chat (Telegram
    /// allows about one a second).
    pub min_send_interval_ms: u64,
    /// Most messages to one group in a minute (Telegram allows about 20).
    pub group_messages_per_minute: usize,
    /// Milliseconds verbose worker output is collected before it is sent
    /// as one message per worker.
    pub verbose_batch_ms: u64,
    /// Long-polling timeout of `getUpdates` in seconds (1 to 15: the HTTP
    /// client gives up at 17).
    pub poll_timeout_secs: u64,
    /// A token given by code (tests, embedding); wins over `token_env`.
    /// Never read from the file.
    #[serde(skip)]
    pub token: Option<SecretString>,
}

impl Default for TelegramConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            token_env: "TELEGRAM_BOT_TOKEN".into(),
            api_url: "https://api.telegram.org".into(),
            mode: TelegramMode::Polling,
            webhook_url: None,
            webhook_path: "/telegram/webhook".into(),
            webhook_secret_env: "TELEGRAM_WEBHOOK_SECRET".into(),
            allowed_users: Vec::new(),
            allowed_chats: Vec::new(),
            dm_policy: DmPolicy::Allowlist,
            min_send_interval_ms: 1000,
            group_messages_per_minute: 20,
            verbose_batch_ms: 1000,
            poll_timeout_secs: 10,
            token: None,
        }
    }
}

impl TelegramConfig {
    /// Checks what the types cannot: the pacing and polling limits, and
    /// (when enabled in webhook mode) the webhook's URL and path.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.group_messages_per_minute == 0 {
            return invalid("telegram.group_messages_per_minute must be at least 1");
        }
        if !(1..=15).contains(&self.poll_timeout_secs) {
            return invalid(
                "telegram.poll_timeout_secs must be 1 to 15 (the HTTP client gives up at 17)",
            );
        }
        if self.enabled && self.mode == TelegramMode::Webhook {
            if self.webhook_url.as_deref().is_none_or(str::is_empty) {
                return invalid("telegram.mode = \"webhook\" needs telegram.webhook_url");
            }
            if !self.webhook_path.starts_with('/') {
                return invalid("telegram.webhook_path must start with /");
            }
        }
        Ok(())
    }

    /// `min_send_interval_ms` as a duration.
    pub fn min_send_interval(&self) -> Duration {
        Duration::from_millis(self.min_send_interval_ms)
    }

    /// `verbose_batch_ms` as a duration.
    pub fn verbose_batch(&self) -> Duration {
        Duration::from_millis(self.verbose_batch_ms)
    }

    /// `poll_timeout_secs` as a duration.
    pub fn poll_timeout(&self) -> Duration {
        Duration::from_secs(self.poll_timeout_secs)
    }
}

fn invalid(text: &str) -> Result<(), InvalidSetting> {
    Err(InvalidSetting(text.to_owned()))
}

/// What the adapter starts with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `[telegram]`.
    pub config: TelegramConfig,
    /// The bot token from BotFather (never logged).
    pub token: SecretString,
    /// Webhook mode: the secret token Telegram sends back with every
    /// update (from `webhook_secret_env`); starting in webhook mode
    /// without it fails.
    pub webhook_secret: Option<SecretString>,
    /// Which answers go out as a document (`[media]`).
    pub media: MediaOut,
}

impl Settings {
    /// Settings with the section's defaults for everything but the token.
    pub fn new(token: SecretString) -> Self {
        Self {
            config: TelegramConfig::default(),
            token,
            webhook_secret: None,
            media: MediaOut::default(),
        }
    }
}
