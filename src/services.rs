//! The services every conversation shares: config, store, models, the
//! model-call limiter and the worker-safe tools (MCP servers' included),
//! and the service-wide count of running projects (`slots.rs`).

mod slots;

pub use slots::{ProjectSlot, ProjectSlots};

use crate::agent::ModelCallLimiter;
use std::sync::Arc;

use crate::cluster::{Cluster, Fence};
use crate::config::Config;
use crate::llm::models::Models;
use crate::llm::retry::RetryPolicy;
use crate::store::Store;
use crate::tools::ToolRegistry;
use crate::tools::mcp::McpServers;

/// Shared, read-only after start (held in an `Arc`).
#[derive(Debug)]
pub struct Services {
    /// The loaded configuration.
    pub config: Config,
    /// The repository.
    pub store: Store,
    /// The orchestrator's and workers' models.
    pub models: Models,
    /// Limits model calls in flight per provider (adaptively) and
    /// engine-wide.
    pub limiter: ModelCallLimiter,
    /// Tools offered to workers (and to the orchestrator).
    pub tools: ToolRegistry,
    /// The running MCP servers whose tools are in `tools`; stopped by
    /// `mcp.shutdown()` when the service stops.
    pub mcp: McpServers,
    /// Retries for the orchestrator's model calls (workers get none).
    pub retry: RetryPolicy,
    /// Running projects across the service (`[projects] max_running`).
    pub projects: ProjectSlots,
    /// Whether this instance may still act on its leases: checked before
    /// a turn records its end and before anything is posted.
    pub fence: Fence,
    /// This instance's cluster, on Postgres (none on SQLite: one instance).
    pub cluster: Option<Arc<Cluster>>,
}

impl Services {
    /// Builds the services from a config, a connected store and the models.
    pub fn new(config: Config, store: Store, models: Models) -> Self {
        Self {
            limiter: ModelCallLimiter::from_config(&config),
            retry: RetryPolicy::from(&config.engine),
            projects: ProjectSlots::new(config.projects.max_running),
            tools: ToolRegistry::worker_defaults(&config.tools),
            mcp: McpServers::default(),
            fence: Fence::always(),
            cluster: None,
            config,
            store,
            models,
        }
    }

    /// Runs as a member of `cluster` (on Postgres): conversations are
    /// claimed, and the fence is the cluster's (closed until it joins).
    pub fn with_cluster(mut self, cluster: Arc<Cluster>) -> Self {
        self.fence = cluster.fence();
        self.cluster = Some(cluster);
        self
    }

    /// Adds the started MCP servers' tools to `tools` and keeps the servers
    /// (so that they live, and stop, with the services).
    pub fn with_mcp(mut self, mcp: McpServers) -> Self {
        for tool in mcp.tools() {
            self.tools.register(tool.clone());
        }
        self.mcp = mcp;
        self
    }
}
