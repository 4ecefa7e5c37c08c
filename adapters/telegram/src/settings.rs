//! What the adapter is told by Baton's config: token, API URL, how updates
//! arrive, who may talk to the bot, how fast it may send, and which answers
//! go out as documents.

use std::time::Duration;

use baton_channel::MediaOut;
use secrecy::SecretString;

/// How updates reach the bot.
#[derive(Debug, Clone)]
pub enum UpdateMode {
    /// `getUpdates` long polling (the default; needs no public address).
    Polling,
    /// Telegram POSTs updates to `url`, which Baton's HTTP server answers;
    /// each request must carry `secret` in `X-Telegram-Bot-Api-Secret-Token`.
    Webhook {
        /// The public HTTPS URL registered with `setWebhook`.
        url: String,
        /// The secret token Telegram sends back with every update.
        secret: SecretString,
    },
}

/// Who may talk to the bot in private chats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DmPolicy {
    /// Only `allowed_users` (the default).
    #[default]
    Allowlist,
    /// Anyone.
    Open,
}

/// The adapter's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The bot token from BotFather (never logged).
    pub token: SecretString,
    /// The Bot API base URL (`https://api.telegram.org`, a local Bot API
    /// server, or a test fake).
    pub api_url: String,
    /// Polling or webhook.
    pub mode: UpdateMode,
    /// Users who may talk to the bot anywhere and change settings in groups.
    pub allowed_users: Vec<u64>,
    /// Groups (and supergroups) whose members may talk to the bot.
    pub allowed_chats: Vec<i64>,
    /// Who may talk to the bot in private chats.
    pub dm_policy: DmPolicy,
    /// Least time between two messages to one chat (Telegram allows about
    /// one a second).
    pub min_send_interval: Duration,
    /// Most messages to one group in a minute (Telegram allows about 20).
    pub group_messages_per_minute: usize,
    /// How long verbose worker output is collected before it is sent as
    /// one message per worker.
    pub verbose_batch: Duration,
    /// The long-polling timeout of `getUpdates` (below the HTTP client's
    /// 17 s timeout).
    pub poll_timeout: Duration,
    /// Which answers go out as a document (`[media]`).
    pub media: MediaOut,
}

impl Settings {
    /// Settings with the defaults for everything but the token.
    pub fn new(token: SecretString) -> Self {
        Self {
            token,
            api_url: "https://api.telegram.org".into(),
            mode: UpdateMode::Polling,
            allowed_users: Vec::new(),
            allowed_chats: Vec::new(),
            dm_policy: DmPolicy::Allowlist,
            min_send_interval: Duration::from_secs(1),
            group_messages_per_minute: 20,
            verbose_batch: Duration::from_secs(1),
            poll_timeout: Duration::from_secs(10),
            media: MediaOut::default(),
        }
    }
}
