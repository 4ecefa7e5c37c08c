//! A small MCP server over stdio, built with rmcp's server side, that the
//! integration tests start as `[mcp.servers.NAME] command = ...`.
//!
//! Tools: `lookup` (a fixed glossary), `slow` (sleeps, to test the call
//! timeout) and `broken` (always an `isError` result). `cargo test` builds
//! examples, so the tests find it at `target/<profile>/examples/`.

use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, ServiceExt, tool, tool_handler, tool_router};

/// The arguments of `lookup`.
#[derive(Debug, serde::Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
struct LookupRequest {
    /// The word to look up.
    #[schemars(description = "the word to look up")]
    word: String,
}

/// The arguments of `slow`.
#[derive(Debug, serde::Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
struct SlowRequest {
    /// How long to sleep before answering.
    seconds: u64,
}

/// The test server: a glossary and two misbehaving tools.
#[derive(Debug, Clone)]
struct Glossary {
    #[allow(dead_code)] // read by the code #[tool_handler] generates
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Glossary {
    fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Looks a word up in the orchestra glossary")]
    fn lookup(&self, Parameters(LookupRequest { word }): Parameters<LookupRequest>) -> String {
        match word.as_str() {
            "baton" => "baton: the conductor's stick, 42 cm of birch".to_owned(),
            other => format!("{other}: not in the glossary"),
        }
    }

    #[tool(description = "Sleeps for the given seconds, then answers")]
    async fn slow(&self, Parameters(SlowRequest { seconds }): Parameters<SlowRequest>) -> String {
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        format!("slept {seconds}s")
    }

    #[tool(description = "Always fails")]
    fn broken(&self) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text("the glossary is on fire")])
    }
}

#[tool_handler]
impl ServerHandler for Glossary {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Glossary::new().serve(rmcp::transport::stdio()).await?;
    server.waiting().await?;
    Ok(())
}
