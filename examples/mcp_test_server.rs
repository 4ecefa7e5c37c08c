//! A small MCP server over stdio (the glossary in
//! tests/support/mcp_server.rs) that the integration tests start as
//! `[mcp.servers.NAME] command = ...`. `cargo test` builds examples, so the
//! tests find it at `target/<profile>/examples/`.

#[path = "../tests/support/mcp_server.rs"]
#[allow(dead_code)] // serve_http is for the tests
mod mcp_server;

use rmcp::ServiceExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = mcp_server::Glossary::new()
        .serve(rmcp::transport::stdio())
        .await?;
    server.waiting().await?;
    Ok(())
}
