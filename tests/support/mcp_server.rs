//! The MCP server the tests talk to, built with rmcp's server side: over
//! stdio as examples/mcp_test_server.rs (which includes this file), and
//! over streamable HTTP in the test process ([`serve_http`]).
//!
//! Tools: `lookup` (a fixed glossary), `slow` (sleeps, to test the call
//! timeout) and `broken` (always an `isError` result).

use std::time::Duration;

use axum::response::IntoResponse;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};

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
pub struct Glossary {
    #[allow(dead_code)] // read by the code #[tool_handler] generates
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Glossary {
    /// A fresh server.
    pub fn new() -> Self {
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

/// Serves the glossary over streamable HTTP on 127.0.0.1, answering only
/// requests that carry `Authorization: Bearer <token>`; returns its URL.
pub async fn serve_http(token: &str) -> std::io::Result<String> {
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService,
    };
    let service = StreamableHttpService::new(
        || Ok(Glossary::new()),
        std::sync::Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let expected = format!("Bearer {token}");
    let app = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let allowed = request
                    .headers()
                    .get("authorization")
                    .is_some_and(|value| value.as_bytes() == expected.as_bytes());
                async move {
                    if allowed {
                        next.run(request).await
                    } else {
                        axum::http::StatusCode::UNAUTHORIZED.into_response()
                    }
                }
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/mcp", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}
