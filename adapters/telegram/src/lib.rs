//! Baton's Telegram adapter, on teloxide's Bot API client.
//!
//! [`Telegram::connect`] checks the token (`getMe`), registers the commands
//! (`setMyCommands`) and sets up how updates arrive: long polling
//! ([`Telegram::poll`], after `deleteWebhook`) or a webhook
//! ([`Telegram::webhook`], a route for Baton's HTTP server, after
//! `setWebhook` with a secret token). Updates become `baton-channel` events
//! for the engine's [`Dispatch`]; the engine answers through
//! [`Telegram::channel`].
//!
//! The modules, in the order an update flows through them:
//! - [`poll`] and [`webhook`]: where updates come from; confirmation only
//!   after the engine has stored them.
//! - [`decode`]: reading what teloxide cannot read as a whole (lone UTF-16
//!   surrogates repaired, a batch read update by update), so that one bad
//!   update never stops the bot.
//! - [`inbound`]: conversation keys, mention gating, access control,
//!   commands.
//! - [`reply`]: the engine's reply handles.
//! - [`outbox`]: Telegram's side of the shared per-chat send queues
//!   ([`baton_channel::outbox`]): sending one message or document, typing,
//!   pacing, how failures sort.
//! - [`render`]: Markdown to Telegram HTML, and splitting under 4096.
//! - [`api`]: Bot API failures sorted transient / permanent, token redacted.
//!
//! Nothing here knows about agents or models.

pub mod api;
mod decode;
pub mod files;
pub mod inbound;
pub mod outbox;
mod poll;
pub mod render;
pub mod reply;
pub mod settings;
pub mod webhook;

use std::sync::Arc;

use baton_channel::{Channel, Command, Dispatch};
use secrecy::ExposeSecret;
use teloxide::Bot;
use teloxide::payloads::SetWebhookSetters;
use teloxide::prelude::Requester;
use teloxide::types::BotCommand;
use tokio_util::sync::CancellationToken;

pub use api::Failure;
pub use inbound::BotIdentity;
pub use settings::{Settings, TelegramConfig, TelegramMode};

use inbound::Intake;
use outbox::{Outboxes, TelegramOut};
use reply::TelegramChannel;

/// Why the adapter could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Permanent: `api_url` or the webhook URL is not a URL.
    #[error("invalid Telegram URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    /// The Bot API refused or could not be reached; transient when the
    /// failure is.
    #[error("Telegram {step} failed: {failure}")]
    Api {
        step: &'static str,
        failure: Failure,
    },
    /// Permanent: the bot has no username (every Telegram bot has one).
    #[error("getMe returned a bot without a username")]
    NoUsername,
    /// Permanent: webhook mode was asked for without a secret token.
    #[error("telegram webhook mode needs a secret token in {variable}")]
    NoWebhookSecret { variable: String },
}

impl StartError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StartError::Api { failure, .. } if failure.is_transient())
    }
}

/// A connected Telegram bot.
pub struct Telegram {
    bot: Bot,
    me: BotIdentity,
    settings: Arc<Settings>,
    outboxes: Arc<Outboxes>,
    /// Whether the link to the Bot API works (for readiness).
    connection: Arc<baton_channel::Connection>,
}

impl Telegram {
    /// Connects: `getMe`, `setMyCommands`, then `deleteWebhook` (polling)
    /// or `setWebhook` (webhook mode).
    pub async fn connect(settings: Settings) -> Result<Telegram, StartError> {
        let config = &settings.config;
        let url = url::Url::parse(&config.api_url).map_err(|e| StartError::Url {
            url: config.api_url.clone(),
            reason: e.to_string(),
        })?;
        let bot = Bot::new(settings.token.expose_secret()).set_api_url(url);
        let failed = |step: &'static str, error: teloxide::RequestError| StartError::Api {
            step,
            failure: Failure::from_request(&error, settings.token.expose_secret()),
        };
        let me = bot.get_me().await.map_err(|e| failed("getMe", e))?;
        let me = BotIdentity {
            id: me.user.id,
            username: me.user.username.clone().ok_or(StartError::NoUsername)?,
        };
        let commands = Command::SPECS.iter().map(|spec| {
            let usage = spec.arg.usage();
            let description = if usage.is_empty() {
                spec.about.to_owned()
            } else {
                format!("{} ({usage})", spec.about)
            };
            BotCommand::new(spec.name, description)
        });
        if let Err(error) = bot.set_my_commands(commands).await {
            let failure = Failure::from_request(&error, settings.token.expose_secret());
            tracing::warn!(error = %failure, "could not register the bot's commands");
        }
        match config.mode {
            TelegramMode::Polling => {
                if let Err(error) = bot.delete_webhook().await {
                    let failure = Failure::from_request(&error, settings.token.expose_secret());
                    tracing::warn!(error = %failure, "could not remove a webhook before polling");
                }
            }
            TelegramMode::Webhook => {
                let secret = settings.webhook_secret.as_ref().ok_or_else(|| {
                    StartError::NoWebhookSecret {
                        variable: config.webhook_secret_env.clone(),
                    }
                })?;
                let url = config.webhook_url.clone().unwrap_or_default();
                let hook = url::Url::parse(&url).map_err(|e| StartError::Url {
                    url: url.clone(),
                    reason: e.to_string(),
                })?;
                bot.set_webhook(hook)
                    .secret_token(secret.expose_secret())
                    .allowed_updates(poll::ALLOWED_UPDATES)
                    .await
                    .map_err(|e| failed("setWebhook", e))?;
            }
        }
        tracing::info!(bot = %me.username, "connected to Telegram");
        let settings = Arc::new(settings);
        let outboxes = Arc::new(Outboxes::new(TelegramOut::new(
            bot.clone(),
            settings.clone(),
        )));
        let connection = Arc::new(baton_channel::Connection::default());
        if settings.config.mode == TelegramMode::Webhook {
            // The webhook is set: Telegram delivers to it from now on.
            connection.up();
        }
        Ok(Telegram {
            bot,
            me,
            settings,
            outboxes,
            connection,
        })
    }

    /// Who the bot is.
    pub fn identity(&self) -> &BotIdentity {
        &self.me
    }

    /// The engine's side: reply handles, one per conversation.
    pub fn channel(&self) -> Arc<dyn Channel> {
        Arc::new(baton_channel::WithFiles {
            channel: TelegramChannel::new(self.outboxes.clone()),
            files: Arc::new(files::TelegramFiles::new(self.bot.clone())),
        })
    }

    /// Whether the link to the Bot API works: the webhook is set, or the
    /// last `getUpdates` succeeded (see [`baton_channel::Connection`]).
    pub fn connection(&self) -> Arc<baton_channel::Connection> {
        self.connection.clone()
    }

    /// Whether updates come by webhook.
    pub fn uses_webhook(&self) -> bool {
        self.settings.config.mode == TelegramMode::Webhook
    }

    /// Long-polls for updates and hands them to `engine` until `shutdown`
    /// is cancelled.
    pub async fn poll(&self, engine: Arc<dyn Dispatch>, shutdown: CancellationToken) {
        let intake = Arc::new(self.intake(engine));
        poll::poll(
            self.bot.clone(),
            intake,
            self.settings.config.poll_timeout(),
            shutdown,
        )
        .await;
    }

    /// The webhook route (`POST path`) for Baton's HTTP server, or `None`
    /// in polling mode.
    pub fn webhook(&self, path: &str, engine: Arc<dyn Dispatch>) -> Option<axum::Router> {
        let secret = self.settings.webhook_secret.as_ref()?;
        self.uses_webhook()
            .then(|| webhook::router(path, Arc::new(self.intake(engine)), secret.clone()))
    }

    /// Stops the send queues (what is still queued is dropped).
    pub async fn close(&self) {
        self.outboxes.close().await;
    }

    fn intake(&self, engine: Arc<dyn Dispatch>) -> Intake {
        Intake {
            bot: self.bot.clone(),
            me: self.me.clone(),
            settings: self.settings.clone(),
            outboxes: self.outboxes.clone(),
            engine,
            noted: Default::default(),
            connection: self.connection.clone(),
        }
    }
}
