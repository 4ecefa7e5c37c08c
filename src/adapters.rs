//! The glue between the engine and the platform adapters: the registry as
//! the adapters' [`Dispatch`], and connecting each adapter with its own
//! config section plus what the core adds (secrets, `[media]`). Adapters know nothing of the engine beyond this trait.

use std::time::Duration;

use baton_channel::backoff::{self, Retryable};
use baton_channel::{Accepted, ChannelEvent, Dispatch, DispatchError};
use baton_discord::{Discord, Settings as DiscordSettings};
use baton_telegram::{Settings as TelegramSettings, Telegram};

use crate::config::{
    ConfigError, DiscordConfig, MediaConfig, TelegramConfig, TelegramMode, discord_token,
    telegram_token, telegram_webhook_secret,
};
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

/// Connects the Telegram adapter if it is enabled and has a token. The
/// section is the adapter's own; the core adds the secrets from the
/// environment and `[media]`'s answers-as-files rule.
pub async fn connect_telegram(
    config: &TelegramConfig,
    media: &MediaConfig,
) -> Result<Option<Telegram>, AdapterError> {
    let Some(token) = enabled_token(
        "telegram",
        config.enabled,
        telegram_token(config),
        &config.token_env,
    ) else {
        return Ok(None);
    };
    let webhook_secret = telegram_webhook_secret(config);
    if config.mode == TelegramMode::Webhook && webhook_secret.is_none() {
        return Err(ConfigError::Invalid(format!(
            "telegram webhook mode needs a secret token in {}",
            config.webhook_secret_env
        ))
        .into());
    }
    let settings = TelegramSettings {
        config: config.clone(),
        token,
        webhook_secret,
        media: media.out(),
    };
    let telegram = with_retries("Telegram", baton_telegram::StartError::is_transient, || {
        Telegram::connect(settings.clone())
    })
    .await?;
    Ok(Some(telegram))
}

/// Connects the Discord adapter if it is enabled and has a token (and its
/// `require_mention_in` keys are guild ids).
pub async fn connect_discord(
    config: &DiscordConfig,
    media: &MediaConfig,
) -> Result<Option<Discord>, AdapterError> {
    let Some(token) = enabled_token(
        "discord",
        config.enabled,
        discord_token(config),
        &config.token_env,
    ) else {
        return Ok(None);
    };
    config.validate().map_err(ConfigError::from)?;
    let settings = DiscordSettings {
        config: config.clone(),
        token,
        media: media.out(),
    };
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

/// Attempts to reach a platform at start before giving up (transient errors
/// only; a wrong token fails at once).
const CONNECT_ATTEMPTS: u32 = 4;
