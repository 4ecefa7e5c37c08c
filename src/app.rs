//! Putting the engine together: config to services, and the service's
//! `run` function, shaped like mini-redis's: it runs until `shutdown`
//! resolves, then stops every conversation before returning.
//!
//! Start order matters for "none lost, none answered twice": the adapters
//! connect, the registry answers what the last stop left unanswered
//! (`resume`), and only then do updates flow in. Stop order: updates stop
//! flowing, the conversations stop, then the adapters' send queues.

use std::future::Future;
use std::sync::Arc;

use baton_channel::Platform;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::adapters::{self, AdapterError};
use crate::cluster::{Cluster, Membership};
use crate::config::{Config, ConfigError};
use crate::conversation::Registry;
use crate::llm::models::Models;
use crate::services::Services;
use crate::store::{Store, StoreError};
use crate::tools::mcp::McpServers;

/// How long a stop waits for replies that are still being sent.
const SEND_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config is incomplete or wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be opened or migrated.
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    /// A platform adapter could not start.
    #[error("cannot start an adapter: {0}")]
    Adapter(#[from] AdapterError),
    /// The HTTP server could not listen.
    #[error("cannot listen on {listen}: {source}")]
    Listen {
        listen: String,
        source: std::io::Error,
    },
    /// What the last stop left unanswered could not be resumed.
    #[error("cannot resume unanswered messages: {0}")]
    Resume(#[from] crate::conversation::EngineError),
    /// This instance could no longer trust its leases (it was paused or
    /// cut off past `[cluster] lease_secs`, and another took over). Start
    /// it again: it rejoins the cluster.
    #[error(
        "this instance lost its cluster leases (paused or cut off past [cluster] lease_secs) and stopped"
    )]
    LeaseLost,
}

/// Connects the store (applying migrations), builds the models and starts
/// the MCP servers (one that fails is skipped). Stop the servers with
/// `services.mcp.shutdown()`.
pub async fn services(config: Config) -> Result<Arc<Services>, StartError> {
    let models = Models::from_config(&config)?;
    let store = Store::connect(&config.storage.url).await?;
    let mcp = McpServers::start(&config.mcp).await;
    let cluster = match store.backend() {
        // Leases are renewed on a connection of their own, so that a busy
        // pool cannot hold a renewal back past the fence.
        crate::store::Backend::Postgres => {
            let heartbeat = store.with_own_pool(&config.storage.url, 1).await?;
            Some(Arc::new(Cluster::new(
                store.clone(),
                heartbeat,
                config.cluster.clone(),
            )))
        }
        crate::store::Backend::Sqlite => None,
    };
    let services = Services::new(config, store, models).with_mcp(mcp);
    Ok(Arc::new(match cluster {
        Some(cluster) => services.with_cluster(cluster),
        None => services,
    }))
}

/// Runs the service until `shutdown` resolves.
///
/// Platform adapters are started here when they are enabled and their
/// token variables are set.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    run_on(config, None, shutdown).await
}

/// Like [`run`], serving HTTP on `listener` when given (tests bind
/// `127.0.0.1:0` first to know the address) instead of `[server] listen`.
pub async fn run_on(
    config: Config,
    listener: Option<tokio::net::TcpListener>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    crate::newcomer::warn_at_run(&config);
    let metrics = crate::metrics::install();
    let services = services(config).await?;
    let config = &services.config;
    // On Postgres, the instance joins the cluster first: its fence opens.
    let mut shutdown = std::pin::pin!(shutdown);
    let membership = match services.cluster.clone() {
        Some(cluster) => tokio::select! {
            membership = Membership::join(cluster) => Some(Arc::new(membership)),
            () = &mut shutdown => {
                services.mcp.shutdown().await;
                services.store.close().await;
                return Ok(());
            }
        },
        None => None,
    };
    let lost = membership
        .as_ref()
        .map_or_else(CancellationToken::new, |membership| membership.lost());
    let telegram = adapters::connect_telegram(&config.telegram, &config.media)
        .await?
        .map(Arc::new);
    let discord = adapters::connect_discord(&config.discord, &config.media)
        .await?
        .map(Arc::new);
    let mut registry = Registry::new(services.clone());
    if let Some(telegram) = &telegram {
        registry = registry.with_channel(Platform::Telegram, telegram.channel());
    }
    if let Some(discord) = &discord {
        registry = registry.with_channel(Platform::Discord, discord.channel());
    }
    let registry = Arc::new(registry);
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    match &services.cluster {
        // Before any update flows in: a message stored by then is answered
        // here, and the same message offered again is a duplicate.
        None => {
            registry.resume().await?;
        }
        // The others are running: what a stop left is taken over
        // conversation by conversation, by the sweep.
        Some(cluster) => {
            tasks.spawn(crate::conversation::listen(
                registry.clone(),
                cluster.clone(),
                config.storage.url.clone(),
                stop.clone(),
            ));
            tasks.spawn(crate::conversation::sweep(
                registry.clone(),
                cluster.clone(),
                stop.clone(),
            ));
        }
    }
    if config.server.enabled {
        let webhook = telegram
            .as_ref()
            .and_then(|telegram| telegram.webhook(&config.telegram.webhook_path, registry.clone()));
        let listener = match listener {
            Some(listener) => listener,
            None => crate::server::bind(&config.server.listen)
                .await
                .map_err(|source| StartError::Listen {
                    listen: config.server.listen.clone(),
                    source,
                })?,
        };
        let mut platforms = Vec::new();
        if let Some(telegram) = &telegram {
            platforms.push(("telegram", telegram.connection()));
        }
        if let Some(discord) = &discord {
            platforms.push(("discord", discord.connection()));
        }
        let web = Arc::new(crate::web::Web {
            services: services.clone(),
            registry: registry.clone(),
            platforms,
            metrics,
            token: config.server.dashboard_token(),
            stop: stop.clone(),
        });
        if web.token.is_some()
            && let Ok(address) = listener.local_addr()
        {
            tracing::info!(
                "dashboard at http://{address}/ (put it behind TLS when not on loopback)"
            );
        }
        let operator = crate::web::router(web);
        let routes = match webhook {
            Some(webhook) => operator.merge(webhook),
            None => operator,
        };
        tasks.spawn(crate::server::serve(
            listener,
            crate::server::router(Some(routes)),
            stop.clone(),
        ));
    } else if telegram.as_ref().is_some_and(|t| t.uses_webhook()) {
        tracing::warn!(
            "telegram is in webhook mode but [server] is disabled: no updates will arrive"
        );
    }
    // In a cluster, one instance at a time polls Telegram and one holds
    // the Discord gateway; the others stand by for the role.
    if let Some(telegram) = telegram.clone().filter(|t| !t.uses_webhook()) {
        let engine = registry.clone();
        let stop = stop.clone();
        let membership = membership.clone();
        tasks.spawn(async move {
            if take_role(membership.as_deref(), TELEGRAM_POLLING, &stop).await {
                telegram.poll(engine, stop).await;
            }
        });
    }
    if let Some(discord) = discord.clone() {
        let engine = registry.clone();
        let stop = stop.clone();
        let membership = membership.clone();
        tasks.spawn(async move {
            if !take_role(membership.as_deref(), DISCORD_GATEWAY, &stop).await {
                return;
            }
            if let Err(error) = discord.run(engine, stop).await {
                tracing::error!(error = %error, "the Discord gateway stopped; Discord messages no longer arrive");
            }
        });
    }
    tracing::info!(
        orchestrator = %services.models.orchestrator.model,
        worker = %services.models.worker.model,
        "baton is running; stop it with Ctrl-C"
    );
    let lease_lost = tokio::select! {
        () = &mut shutdown => false,
        () = lost.cancelled() => true,
    };
    tracing::info!("shutting down");
    stop.cancel();
    tasks.close();
    tasks.wait().await;
    // Replies being sent get a grace period (a 429 may be waited out);
    // then the send queues stop and whatever is left is given up.
    let stopping = registry.shutdown();
    tokio::pin!(stopping);
    if tokio::time::timeout(SEND_GRACE, &mut stopping)
        .await
        .is_err()
    {
        tracing::warn!("replies still unsent after {SEND_GRACE:?}; giving them up");
        close_adapters(telegram.as_deref(), discord.as_deref()).await;
        stopping.await;
    }
    close_adapters(telegram.as_deref(), discord.as_deref()).await;
    services.mcp.shutdown().await;
    if lease_lost {
        services.store.close().await;
        return Err(StartError::LeaseLost);
    }
    if let Some(membership) = membership.and_then(Arc::into_inner) {
        membership.leave().await;
    }
    services.store.close().await;
    Ok(())
}

/// The role of the instance that polls Telegram.
const TELEGRAM_POLLING: &str = "role:telegram-polling";
/// The role of the instance connected to the Discord gateway.
const DISCORD_GATEWAY: &str = "role:discord-gateway";

/// Waits until this instance plays `role` (at once without a cluster);
/// false if `stop` came first.
async fn take_role(membership: Option<&Membership>, role: &str, stop: &CancellationToken) -> bool {
    let Some(membership) = membership else {
        return true;
    };
    tokio::select! {
        () = membership.take_role(role) => true,
        () = stop.cancelled() => false,
    }
}

/// Stops the adapters' send queues (what is still queued is given up).
async fn close_adapters(
    telegram: Option<&baton_telegram::Telegram>,
    discord: Option<&baton_discord::Discord>,
) {
    if let Some(telegram) = telegram {
        telegram.close().await;
    }
    if let Some(discord) = discord {
        discord.close().await;
    }
}
