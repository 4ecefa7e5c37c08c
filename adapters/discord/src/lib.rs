//! Baton's Discord adapter, on serenity's gateway client and Baton's own
//! rate-limited REST.
//!
//! [`Discord::connect`] checks the token (`GET /users/@me`), learns the
//! application (`GET /applications/@me`) and registers the slash commands
//! (globally, and in `dev_guild` too so changes show at once).
//! [`Discord::run`] connects serenity's autosharded gateway client and
//! hands its events to the engine's [`Dispatch`]; the engine answers
//! through [`Discord::channel`].
//!
//! The modules, in the order an event flows through them:
//! - [`gateway`]: serenity's client and event handler.
//! - [`inbound`]: conversation keys, mention gating, access control.
//! - [`names`]: guild channels' and threads' readable names, from the
//!   gateway's guild, channel and thread events.
//! - [`order`]: one channel's messages to the engine in order.
//! - [`commands`]: slash command definitions from the shared command list,
//!   and interactions back to command text.
//! - [`interaction`]: permission checks for slash commands, and answering
//!   them within the 3-second deadline.
//! - [`reply`]: the engine's reply handles.
//! - [`outbox`]: Discord's side of the shared per-channel send queues
//!   ([`baton_channel::outbox`]): message bodies, nonces, verbose threads,
//!   typing.
//! - [`rest`] and [`ratelimit`]: the REST endpoints, per-route and global
//!   rate limits, 429 waits.
//!
//! Nothing here knows about agents or models.

pub mod commands;
pub mod files;
pub mod gateway;
pub mod inbound;
pub mod interaction;
pub mod names;
pub mod nonce;
pub mod order;
pub mod outbox;
pub mod ratelimit;
pub mod reply;
pub mod rest;
pub mod settings;

use std::sync::Arc;

use baton_channel::{Channel, Dispatch};
use secrecy::ExposeSecret;
use serde_json::Value;
use serenity::all::{ApplicationId, ClientBuilder, HttpBuilder};
use tokio_util::sync::CancellationToken;

pub use inbound::BotIdentity;
pub use rest::RestError;
pub use settings::{DiscordConfig, Settings};

use gateway::{Handler, Intake};
use interaction::Interactions;
use outbox::{DiscordOut, Outboxes};
use reply::DiscordChannel;
use rest::{Endpoint, Rest};

/// Why the adapter could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Discord refused or could not be reached; transient when the failure
    /// is (a refused token is permanent).
    #[error("Discord {step} failed: {source}")]
    Rest {
        step: &'static str,
        source: RestError,
    },
    /// Permanent: Discord's answer lacked something every answer has.
    #[error("Discord {step} answered without {field}")]
    Malformed {
        step: &'static str,
        field: &'static str,
    },
    /// The HTTP client could not be built (permanent).
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// The gateway connection failed for good; transient (serenity retries
    /// what it can by itself).
    #[error("Discord gateway: {0}")]
    Gateway(String),
}

impl StartError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            StartError::Rest { source, .. } => source.is_transient(),
            StartError::Gateway(_) => true,
            StartError::Malformed { .. } | StartError::Client(_) => false,
        }
    }
}

/// A connected Discord bot.
pub struct Discord {
    me: BotIdentity,
    settings: Arc<Settings>,
    client: reqwest::Client,
    outboxes: Arc<Outboxes>,
    interactions: Arc<Interactions>,
    /// Up while the gateway session is ready (for readiness).
    connection: Arc<baton_channel::Connection>,
}

impl Discord {
    /// Connects: checks the token, learns the application, registers the
    /// slash commands.
    pub async fn connect(settings: Settings) -> Result<Discord, StartError> {
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| StartError::Client(e.without_url().to_string()))?;
        let rest = Arc::new(Rest::new(
            client.clone(),
            &settings.token,
            &settings.config.api_url,
            settings.config.requests_per_second(),
        ));
        let call = |step: &'static str| move |source| StartError::Rest { step, source };
        let user = rest
            .call(Endpoint::CurrentUser, None)
            .await
            .map_err(call("GET /users/@me"))?;
        let application = rest
            .call(Endpoint::CurrentApplication, None)
            .await
            .map_err(call("GET /applications/@me"))?;
        let me = BotIdentity {
            id: snowflake(&user["id"]).ok_or(StartError::Malformed {
                step: "GET /users/@me",
                field: "an id",
            })?,
            name: user["username"].as_str().unwrap_or("baton").to_owned(),
            application: snowflake(&application["id"]).ok_or(StartError::Malformed {
                step: "GET /applications/@me",
                field: "an id",
            })?,
        };
        register_commands(&rest, &me, settings.config.dev_guild).await;
        tracing::info!(bot = %me.name, "connected to Discord");
        let outboxes = Arc::new(Outboxes::new(DiscordOut::new(
            rest.clone(),
            settings.config.verbose_batch(),
            settings.media,
        )));
        let interactions = Arc::new(Interactions::new(
            rest,
            me.application,
            settings.config.defer_after(),
        ));
        Ok(Discord {
            me,
            settings: Arc::new(settings),
            client,
            outboxes,
            interactions,
            connection: Arc::default(),
        })
    }

    /// Whether the gateway session is ready (see [`baton_channel::Connection`]).
    pub fn connection(&self) -> Arc<baton_channel::Connection> {
        self.connection.clone()
    }

    /// Who the bot is.
    pub fn identity(&self) -> &BotIdentity {
        &self.me
    }

    /// The engine's side: reply handles, one per conversation.
    pub fn channel(&self) -> Arc<dyn Channel> {
        Arc::new(baton_channel::WithFiles {
            channel: DiscordChannel::new(self.outboxes.clone(), self.interactions.clone()),
            files: Arc::new(files::DiscordFiles::new(
                self.client.clone(),
                &self.settings.config.api_url,
            )),
        })
    }

    /// Runs the gateway client, handing its events to `engine`, until
    /// `shutdown` is cancelled. serenity reconnects and resumes by itself;
    /// this returns early only when the gateway fails for good.
    pub async fn run(
        &self,
        engine: Arc<dyn Dispatch>,
        shutdown: CancellationToken,
    ) -> Result<(), StartError> {
        // serenity takes the gateway URL from `GET /gateway` and, for
        // autosharding, `GET /gateway/bot`, through the proxy; its own
        // ratelimiter must be off for the proxy to apply.
        let http = HttpBuilder::new(self.settings.token.expose_secret())
            .client(self.client.clone())
            .proxy(self.settings.config.api_url.trim_end_matches('/'))
            .ratelimiter_disabled(true)
            .application_id(ApplicationId::new(self.me.application))
            .build();
        let intake = Arc::new(Intake {
            me: self.me.clone(),
            settings: self.settings.clone(),
            outboxes: self.outboxes.clone(),
            interactions: self.interactions.clone(),
            engine,
            order: Default::default(),
            noted: Default::default(),
            names: Default::default(),
        });
        let mut client = ClientBuilder::new_with_http(http, gateway::intents())
            .event_handler(Handler {
                intake,
                connection: self.connection.clone(),
            })
            .await
            .map_err(|e| StartError::Gateway(e.to_string()))?;
        let shards = client.shard_manager.clone();
        tokio::select! {
            result = client.start_autosharded() => {
                result.map_err(|e| StartError::Gateway(e.to_string()))
            }
            () = shutdown.cancelled() => {
                shards.shutdown_all().await;
                Ok(())
            }
        }
    }

    /// Stops the send queues and interaction answers (what is still queued
    /// is dropped).
    pub async fn close(&self) {
        self.interactions.close().await;
        self.outboxes.close().await;
    }
}

/// Registers the slash commands globally and, when set, in `dev_guild`
/// (guild commands show at once; global ones can take a while). A failure
/// is logged, not fatal: the bot still answers mentions.
async fn register_commands(rest: &Rest, me: &BotIdentity, dev_guild: Option<u64>) {
    let definitions = commands::definitions();
    let global = Endpoint::GlobalCommands {
        application: me.application,
    };
    let guild = dev_guild.map(|guild| Endpoint::GuildCommands {
        application: me.application,
        guild,
    });
    for endpoint in std::iter::once(global).chain(guild) {
        if let Err(error) = rest.call(endpoint, Some(&definitions)).await {
            tracing::warn!(error = %error, "could not register the slash commands");
        }
    }
}

/// A Discord id (a snowflake, sent as a string).
fn snowflake(value: &Value) -> Option<u64> {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| value.as_u64())
}
