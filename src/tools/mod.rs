//! Tools a model can call, and the [`Toolbox`] the agent loop calls them
//! through.
//!
//! Everything registered in a [`ToolRegistry`] here is worker-safe: it can
//! read the world but has no way to post to a channel or start workers. The
//! orchestrator's delegation tools live in `orchestrator/` and are offered
//! only to the orchestrator in orchestrator mode. The MCP servers' tools
//! (`mcp/`) join them when servers are configured, and `web_search`
//! (`web_search.rs`) when `[tools.web_search]` is.

mod fetch;
pub mod mcp;
mod time;
mod web_search;

pub(crate) use web_search::error_chain;

pub use fetch::{FetchPolicy, FetchUrl, FetchUrlConfig};
pub use time::CurrentTime;
pub use web_search::{MAX_RESULTS_CAP, SearchBackend, SearchHit, WebSearch, WebSearchConfig};

use std::sync::Arc;

use serde::Deserialize;

use crate::domain::ToolSpec;

/// `[tools]`: settings of the built-in tools, one table per tool.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToolsConfig {
    /// `[tools.fetch_url]`.
    pub fetch_url: FetchUrlConfig,
    /// `[tools.web_search]`; the tool is off without it.
    pub web_search: Option<WebSearchConfig>,
}

impl ToolsConfig {
    /// Why the settings cannot be used, if they cannot.
    pub fn validate(&self) -> Result<(), String> {
        self.fetch_url.validate()?;
        match &self.web_search {
            Some(search) => search.validate(),
            None => Ok(()),
        }
    }
}

/// Why a tool call failed. Every variant goes back to the model as an error
/// result; none ends the turn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// The model named a tool that is not offered.
    #[error("unknown tool {0:?}")]
    UnknownTool(String),
    /// The arguments are not valid JSON or do not fit the schema.
    #[error("bad arguments: {0}")]
    BadArguments(String),
    /// The tool ran and failed. `transient` says whether trying again may
    /// work (the model decides whether to).
    #[error("{message}")]
    Failed { message: String, transient: bool },
}

impl ToolError {
    /// A failure that trying again will not fix.
    pub fn failed(message: impl Into<String>) -> Self {
        ToolError::Failed {
            message: message.into(),
            transient: false,
        }
    }
}

/// What the agent loop calls tools through.
#[async_trait::async_trait]
pub trait Toolbox: Send + Sync {
    /// The tools offered to the model.
    fn specs(&self) -> Vec<ToolSpec>;

    /// Calls tool `name` with parsed `arguments`; the `Ok` text goes to the
    /// model as the result.
    async fn call(&self, name: &str, arguments: serde_json::Value) -> Result<String, ToolError>;

    /// Asked before the agent loop takes an answer (text without tool
    /// calls) as final. `Some(note)` says what is still unfinished (running
    /// workers, say): the loop holds that answer back once and gives the
    /// model the note. The default has nothing to say.
    async fn before_answer(&self) -> Option<String> {
        None
    }

    /// The loop has its final answer (also one forced by the round limit):
    /// end and record whatever is still going. The default does nothing.
    async fn after_answer(&self) {}
}

/// One worker-safe tool.
#[async_trait::async_trait]
pub trait Tool: Send + Sync {
    /// Its name, description and argument schema.
    fn spec(&self) -> ToolSpec;

    /// Runs it.
    async fn call(&self, arguments: serde_json::Value) -> Result<String, ToolError>;
}

/// A set of worker-safe tools, keyed by name.
#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: Vec<Arc<dyn Tool>>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.tools.iter().map(|t| t.spec().name).collect();
        f.debug_struct("ToolRegistry")
            .field("tools", &names)
            .finish()
    }
}

impl ToolRegistry {
    /// The tools every worker gets by default, set up by `config`.
    pub fn worker_defaults(config: &ToolsConfig) -> Self {
        let mut registry = Self::default();
        registry.register(Arc::new(CurrentTime));
        registry.register(Arc::new(FetchUrl::new(config.fetch_url.policy())));
        if let Some(search) = &config.web_search {
            match WebSearch::from_config(search) {
                Ok(tool) => registry.register(Arc::new(tool)),
                Err(why) => tracing::warn!("web_search is off: {why}"),
            }
        }
        registry
    }

    /// Adds a tool (a later one with the same name replaces it).
    pub fn register(&mut self, tool: Arc<dyn Tool>) {
        let name = tool.spec().name;
        self.tools.retain(|t| t.spec().name != name);
        self.tools.push(tool);
    }

    fn find(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.iter().find(|t| t.spec().name == name)
    }
}

#[async_trait::async_trait]
impl Toolbox for ToolRegistry {
    fn specs(&self) -> Vec<ToolSpec> {
        self.tools.iter().map(|t| t.spec()).collect()
    }

    async fn call(&self, name: &str, arguments: serde_json::Value) -> Result<String, ToolError> {
        match self.find(name) {
            Some(tool) => tool.call(arguments).await,
            None => Err(ToolError::UnknownTool(name.to_owned())),
        }
    }
}
