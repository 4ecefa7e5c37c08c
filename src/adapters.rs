//! The glue between the engine and the platform adapters: the registry as
//! the adapters' [`Dispatch`], and each adapter's settings from Baton's
//! config. Adapters know nothing of the engine beyond this trait.

use std::time::Duration;

use baton_channel::{Accepted, ChannelEvent, Dispatch, DispatchError};
use baton_telegram::{Settings as TelegramSettings, Telegram, UpdateMode};

use crate::config::{ConfigError, DmPolicy, TelegramConfig, TelegramMode};
use crate::conversation::{Dispatched, Registry};

#[async_trait::async_trait]
impl Dispatch for Registry {
    async fn dispatch(&self, event: ChannelEvent) -> Result<Accepted, DispatchError> {
        match Registry::dispatch(self, event).await {
            Ok(Dispatched::Accepted) => Ok(Accepted::New),
            Ok(Dispatched::Duplicate) => Ok(Accepted::Duplicate),
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
}

/// Connects the Telegram adapter if it is enabled and has a token.
pub async fn connect_telegram(config: &TelegramConfig) -> Result<Option<Telegram>, AdapterError> {
    if !config.enabled {
        return Ok(None);
    }
    let Some(token) = config.token() else {
        tracing::info!(
            variable = %config.token_env,
            "telegram is enabled but its token variable is not set; not starting it"
        );
        return Ok(None);
    };
    let settings = telegram_settings(config, token)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match Telegram::connect(settings.clone()).await {
            Ok(telegram) => return Ok(Some(telegram)),
            Err(error) if error.is_transient() && attempt < CONNECT_ATTEMPTS => {
                let wait = Duration::from_secs(1 << attempt);
                tracing::warn!(error = %error, attempt, "cannot reach Telegram; retrying in {wait:?}");
                tokio::time::sleep(wait).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Attempts to reach Telegram at start before giving up (transient errors
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
