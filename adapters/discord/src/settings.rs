//! What the adapter is told by Baton's config: token, API URL, who may
//! talk to the bot, where it answers without a mention, how fast slash
//! commands are acknowledged, how it paces verbose output, and which
//! answers go out as file attachments.

use std::collections::HashMap;
use std::time::Duration;

use baton_channel::MediaOut;
use secrecy::SecretString;

/// The adapter's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The bot token from the developer portal (never logged).
    pub token: SecretString,
    /// The REST base (`https://discord.com`, or a test fake); REST goes to
    /// `api_url/api/v10/...` and the gateway URL is asked of it.
    pub api_url: String,
    /// In guilds, answer only when mentioned or replied to (default on).
    pub require_mention: bool,
    /// Per-guild overrides of `require_mention`, by guild id.
    pub require_mention_in: HashMap<u64, bool>,
    /// A guild to register the slash commands in as well, so that changes
    /// show at once (global commands can take a while to appear).
    pub dev_guild: Option<u64>,
    /// Guilds whose members may talk to the bot.
    pub allowed_guilds: Vec<u64>,
    /// Users who may talk to the bot anywhere and change settings in guilds.
    pub allowed_users: Vec<u64>,
    /// Roles whose members may change settings in guilds (besides members
    /// with Manage Server).
    pub allowed_roles: Vec<u64>,
    /// Whether anyone may talk to the bot in DMs (`dm_policy = "open"`);
    /// otherwise only `allowed_users` may.
    pub open_dms: bool,
    /// How long verbose worker output is collected before it is posted as
    /// one message per worker.
    pub verbose_batch: Duration,
    /// How long a slash command waits for the engine's answer before its
    /// interaction is deferred (Discord's deadline is 3 seconds).
    pub defer_after: Duration,
    /// Requests a second for the whole bot (Discord allows 50; interaction
    /// answers do not count).
    pub global_requests_per_second: u32,
    /// Which answers go out as a file attachment (`[media]`).
    pub media: MediaOut,
}

impl Settings {
    /// Settings with the defaults for everything but the token.
    pub fn new(token: SecretString) -> Self {
        Self {
            token,
            api_url: "https://discord.com".into(),
            require_mention: true,
            require_mention_in: HashMap::new(),
            dev_guild: None,
            allowed_guilds: Vec::new(),
            allowed_users: Vec::new(),
            allowed_roles: Vec::new(),
            open_dms: false,
            verbose_batch: Duration::from_secs(2),
            defer_after: Duration::from_millis(1500),
            global_requests_per_second: 45,
            media: MediaOut::default(),
        }
    }

    /// Whether messages in `guild` must mention (or reply to) the bot.
    pub fn mention_required(&self, guild: u64) -> bool {
        self.require_mention_in
            .get(&guild)
            .copied()
            .unwrap_or(self.require_mention)
    }
}
