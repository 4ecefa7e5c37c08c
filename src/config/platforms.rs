//! `[telegram]` and `[discord]`: the platform adapters' settings as the
//! core reads them (copied into each adapter's own settings in
//! `src/adapters.rs`).

use super::*;

/// How Telegram updates arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TelegramMode {
    /// `getUpdates` long polling: no public address needed.
    #[default]
    Polling,
    /// Telegram POSTs updates to `webhook_url`, served by `[server]`.
    Webhook,
}

/// Who may talk to the bot in private chats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DmPolicy {
    /// Only `allowed_users`.
    #[default]
    Allowlist,
    /// Anyone.
    Open,
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
    /// Least milliseconds between two messages to one chat.
    pub min_send_interval_ms: u64,
    /// Most messages to one group in a minute.
    pub group_messages_per_minute: usize,
    /// Milliseconds verbose worker output is collected before it is sent.
    pub verbose_batch_ms: u64,
    /// Long-polling timeout of `getUpdates` in seconds (at most 15).
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
    /// The bot token: given by code, or from `token_env`.
    pub fn token(&self) -> Option<SecretString> {
        self.token.clone().or_else(|| env_secret(&self.token_env))
    }

    /// The webhook secret from `webhook_secret_env`.
    pub fn webhook_secret(&self) -> Option<SecretString> {
        env_secret(&self.webhook_secret_env)
    }
}

/// `[discord]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscordConfig {
    /// Whether to start the adapter (it also needs its token variable set).
    pub enabled: bool,
    /// The environment variable holding the bot token.
    pub token_env: String,
    /// The REST base (serenity's proxy setting); the gateway URL is asked
    /// of it.
    pub api_url: String,
    /// In guilds, answer only when mentioned or replied to.
    pub require_mention: bool,
    /// Per-guild exceptions to `require_mention`, by guild id (as a string
    /// key: `{ "123" = false }`).
    pub require_mention_in: BTreeMap<String, bool>,
    /// A guild to register the slash commands in as well, so that changes
    /// show at once.
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
    /// Milliseconds verbose worker output is collected before it is sent.
    pub verbose_batch_ms: u64,
    /// Milliseconds a slash command waits for its answer before it is
    /// deferred (below Discord's 3-second deadline).
    pub defer_after_ms: u64,
    /// Requests a second for the whole bot (Discord allows 50).
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
    /// The bot token: given by code, or from `token_env`.
    pub fn token(&self) -> Option<SecretString> {
        self.token.clone().or_else(|| env_secret(&self.token_env))
    }
}
