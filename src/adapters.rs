//! The glue between the engine and the platform adapters: the registry as
//! the adapters' [`Dispatch`], and each adapter's settings from Baton's
//! config. Adapters know nothing of the engine beyond this trait.

use std::time::Duration;

use baton_channel::backoff::{self, Retryable};
use baton_channel::{Accepted, ChannelEvent, Dispatch, DispatchError};
use baton_telegram::{Settings as TelegramSettings, Telegram, UpdateMode};

use baton_discord::{Discord, Settings as DiscordSettings};

use crate::config::{ConfigError, DiscordConfig, DmPolicy, TelegramConfig, TelegramMode};
use crate::conversation::Registry;

#[async_trait::async_trait]
impl Dispatch for Registry {
    async fn dispatch(&self, event: ChannelEvent) -> Result<Accepted, DispatchError> {
        match Registry::dispatch(self, event).await {
            Ok(accepted) => Ok(accepted),
            Err(error) => Err(DispatchError {
                transient: error.is_transient(),
                message: error.to_string(),
            }),
        }
    }
}

/// Why an adapter could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// Its config is incomplete (a missing secret, for example).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Telegram could not be reached or refused the token.
    #[error(transparent)]
    Telegram(#[from] baton_telegram::StartError),
    /// Discord could not be reached or refused the token.
    #[error(transparent)]
    Discord(#[from] baton_discord::StartError),
}

/// Connects the Telegram adapter if it is enabled and has a token.
pub async fn connect_telegram(
    config: &TelegramConfig,
    media: &crate::config::MediaConfig,
) -> Result<Option<Telegram>, AdapterError> {
    let Some(token) = enabled_token(
        "telegram",
        config.enabled,
        config.token(),
        &config.token_env,
    ) else {
        return Ok(None);
    };
    let mut settings = telegram_settings(config, token)?;
    settings.media = media.out();
    let telegram = with_retries("Telegram", baton_telegram::StartError::is_transient, || {
        Telegram::connect(settings.clone())
    })
    .await?;
    Ok(Some(telegram))
}

/// Connects the Discord adapter if it is enabled and has a token.
pub async fn connect_discord(
    config: &DiscordConfig,
    media: &crate::config::MediaConfig,
) -> Result<Option<Discord>, AdapterError> {
    let Some(token) = enabled_token("discord", config.enabled, config.token(), &config.token_env)
    else {
        return Ok(None);
    };
    let mut settings = discord_settings(config, token)?;
    settings.media = media.out();
    let discord = with_retries("Discord", baton_discord::StartError::is_transient, || {
        Discord::connect(settings.clone())
    })
    .await?;
    Ok(Some(discord))
}

/// The token of an adapter that should start: enabled, and its token
/// variable set.
fn enabled_token(
    platform: &str,
    enabled: bool,
    token: Option<secrecy::SecretString>,
    token_env: &str,
) -> Option<secrecy::SecretString> {
    if !enabled {
        return None;
    }
    if token.is_none() {
        tracing::info!(
            variable = %token_env,
            "{platform} is enabled but its token variable is not set; not starting it"
        );
    }
    token
}

/// Runs `connect` until it succeeds, fails permanently, or has failed
/// [`CONNECT_ATTEMPTS`] times, waiting 2 s, 4 s, 8 s, ... between attempts.
async fn with_retries<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
    platform: &str,
    is_transient: impl Fn(&E) -> bool,
    connect: impl Fn() -> F,
) -> Result<T, E> {
    let retries = CONNECT_ATTEMPTS - 1;
    let mut attempt = 0;
    connect
        .retry(backoff::exponential(
            Duration::from_secs(2),
            Duration::from_secs(1 << retries),
            retries,
        ))
        .when(is_transient)
        .notify(|error, wait| {
            attempt += 1;
            tracing::warn!(error = %error, attempt, "cannot reach {platform}; retrying in {wait:?}");
        })
        .await
}

/// The adapter's settings from `[discord]`.
pub fn discord_settings(
    config: &DiscordConfig,
    token: secrecy::SecretString,
) -> Result<DiscordSettings, ConfigError> {
    let mut settings = DiscordSettings::new(token);
    settings.api_url = config.api_url.clone();
    settings.require_mention = config.require_mention;
    for (guild, required) in &config.require_mention_in {
        let guild = guild.trim().parse().map_err(|_| {
            ConfigError::Invalid(format!(
                "discord.require_mention_in: {guild:?} is not a guild id"
            ))
        })?;
        settings.require_mention_in.insert(guild, *required);
    }
    settings.dev_guild = config.dev_guild;
    settings.allowed_guilds = config.allowed_guilds.clone();
    settings.allowed_users = config.allowed_users.clone();
    settings.allowed_roles = config.allowed_roles.clone();
    settings.open_dms = config.dm_policy == DmPolicy::Open;
    settings.verbose_batch = Duration::from_millis(config.verbose_batch_ms);
    settings.defer_after = Duration::from_millis(config.defer_after_ms.min(2500));
    settings.global_requests_per_second = config.global_requests_per_second.max(1);
    Ok(settings)
}

/// Attempts to reach a platform at start before giving up (transient errors
/// only; a wrong token fails at once).
const CONNECT_ATTEMPTS: u32 = 4;

/// The adapter's settings from `[telegram]`.
pub fn telegram_settings(
    config: &TelegramConfig,
    token: secrecy::SecretString,
) -> Result<TelegramSettings, ConfigError> {
    let mode = match config.mode {
        TelegramMode::Polling => UpdateMode::Polling,
        TelegramMode::Webhook => UpdateMode::Webhook {
            url: config.webhook_url.clone().unwrap_or_default(),
            secret: config.webhook_secret().ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "telegram webhook mode needs a secret token in {}",
                    config.webhook_secret_env
                ))
            })?,
        },
    };
    let mut settings = TelegramSettings::new(token);
    settings.api_url = config.api_url.clone();
    settings.mode = mode;
    settings.allowed_users = config.allowed_users.clone();
    settings.allowed_chats = config.allowed_chats.clone();
    settings.dm_policy = match config.dm_policy {
        DmPolicy::Allowlist => baton_telegram::DmPolicy::Allowlist,
        DmPolicy::Open => baton_telegram::DmPolicy::Open,
    };
    settings.min_send_interval = Duration::from_millis(config.min_send_interval_ms);
    settings.group_messages_per_minute = config.group_messages_per_minute;
    settings.verbose_batch = Duration::from_millis(config.verbose_batch_ms);
    settings.poll_timeout = Duration::from_secs(config.poll_timeout_secs);
    Ok(settings)
}
