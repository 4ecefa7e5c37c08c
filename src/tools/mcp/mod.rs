//! The MCP bridge: Baton as a client of the MCP servers in `[mcp]`.
//!
//! At start every enabled server is started concurrently, each within the
//! startup timeout; its tools are offered to workers (and to the
//! orchestrator) as `mcp__<server>__<tool>`. A server that fails to start
//! is logged and skipped, never fatal. [`McpServers`] owns the running
//! clients (and so their child processes) until [`McpServers::shutdown`];
//! dropping it kills any child process still running.

mod client;
mod config;
mod tool;

pub use client::{McpClient, McpStartError, StartedServer};
pub use config::{McpConfig, McpServerConfig, McpTransportConfig};
pub use tool::{McpTool, qualified_name};

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::Tool;

/// How long a stop waits for one server to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The running MCP servers and their tools.
#[derive(Default)]
pub struct McpServers {
    /// The running clients by server name; emptied by `shutdown`. A std
    /// mutex: it is never held across an `.await`.
    clients: Mutex<Vec<(String, McpClient)>>,
    /// Every started server's tools, wrapped as Baton tools.
    tools: Vec<Arc<dyn Tool>>,
}

impl std::fmt::Debug for McpServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tools: Vec<String> = self.tools.iter().map(|t| t.spec().name).collect();
        f.debug_struct("McpServers").field("tools", &tools).finish()
    }
}

impl McpServers {
    /// Starts every enabled server in `config` concurrently; those that
    /// fail are logged (with their name and reason) and skipped.
    pub async fn start(config: &McpConfig) -> Self {
        let mut clients = Vec::new();
        let mut tools: Vec<Arc<dyn Tool>> = Vec::new();
        for (name, started) in start_all(config).await {
            let started = match started {
                Ok(started) => started,
                Err(error) => {
                    tracing::warn!(server = %name, "MCP server skipped: {error}");
                    continue;
                }
            };
            for remote in &started.tools {
                let tool = McpTool::new(
                    &name,
                    remote,
                    started.client.peer().clone(),
                    config.call_timeout(),
                );
                let offered = tool.spec().name;
                if tools.iter().any(|t| t.spec().name == offered) {
                    tracing::warn!(server = %name, tool = %remote.name, "MCP tool skipped: {offered} is taken");
                    continue;
                }
                tools.push(Arc::new(tool));
            }
            tracing::info!(server = %name, tools = started.tools.len(), "MCP server started");
            clients.push((name, started.client));
        }
        Self {
            clients: Mutex::new(clients),
            tools,
        }
    }

    /// The started servers' tools.
    pub fn tools(&self) -> &[Arc<dyn Tool>] {
        &self.tools
    }

    /// The enabled servers in `config` that are not up: skipped at start,
    /// or closed since (for readiness).
    pub fn down(&self, config: &McpConfig) -> Vec<String> {
        let clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        config
            .enabled_servers()
            .map(|(name, _)| name)
            .filter(|name| {
                !clients
                    .iter()
                    .any(|(running, client)| running == name && !client.is_closed())
            })
            .map(str::to_owned)
            .collect()
    }

    /// Stops every server: closes its connection and waits a little for it
    /// to exit; a child process still running then is killed.
    pub async fn shutdown(&self) {
        let clients =
            std::mem::take(&mut *self.clients.lock().unwrap_or_else(PoisonError::into_inner));
        futures::future::join_all(clients.into_iter().map(|(name, client)| stop(name, client)))
            .await;
    }
}

/// Starts every enabled server in `config` concurrently, each within the
/// startup timeout; the outcomes are in the config's order.
pub async fn start_all(config: &McpConfig) -> Vec<(String, Result<StartedServer, McpStartError>)> {
    let timeout = config.startup_timeout();
    futures::future::join_all(config.enabled_servers().map(|(name, server)| async move {
        (name.to_owned(), client::start(server, timeout).await)
    }))
    .await
}

/// Closes one client; dropping it at the end kills a child still running.
pub async fn stop(name: String, mut client: McpClient) {
    match client.close_with_timeout(STOP_GRACE).await {
        Ok(Some(_)) => tracing::debug!(server = %name, "MCP server stopped"),
        Ok(None) => tracing::warn!(server = %name, "MCP server did not stop in time; killing it"),
        Err(error) => tracing::warn!(server = %name, "MCP server stopped abnormally: {error}"),
    }
}
