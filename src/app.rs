//! Putting the engine together: config to services, and the service's
//! `run` function, shaped like mini-redis's: it runs until `shutdown`
//! resolves, then stops every conversation before returning.

use std::future::Future;
use std::sync::Arc;

use crate::config::{Config, ConfigError};
use crate::conversation::Registry;
use crate::llm::models::Models;
use crate::services::Services;
use crate::store::{Store, StoreError};

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config is incomplete or wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be opened or migrated.
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    /// What the last stop left unanswered could not be resumed.
    #[error("cannot resume unanswered messages: {0}")]
    Resume(#[from] crate::conversation::EngineError),
}

/// Connects the store (applying migrations) and builds the models.
pub async fn services(config: Config) -> Result<Arc<Services>, StartError> {
    let models = Models::from_config(&config)?;
    let store = Store::connect(&config.storage.url).await?;
    Ok(Arc::new(Services::new(config, store, models)))
}

/// Runs the service until `shutdown` resolves.
///
/// Platform adapters are started here when they are enabled and their
/// token variables are set.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    let services = services(config).await?;
    let registry = Registry::new(services.clone());
    let adapters = [
        ("telegram", &services.config.telegram),
        ("discord", &services.config.discord),
    ];
    for (name, platform) in adapters {
        if platform.enabled && platform.token().is_some() {
            tracing::warn!(
                adapter = name,
                "this build has no {name} adapter yet; its token is ignored"
            );
        }
    }
    registry.resume().await?;
    tracing::info!(
        orchestrator = %services.models.orchestrator.model,
        worker = %services.models.worker.model,
        "baton is running; stop it with Ctrl-C"
    );
    shutdown.await;
    tracing::info!("shutting down");
    registry.shutdown().await;
    services.store.close().await;
    Ok(())
}
