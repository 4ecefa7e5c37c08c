//! Starting one MCP server (a child process over stdio, or a streamable-HTTP
//! endpoint), the MCP handshake, and listing its tools: all within the
//! startup timeout.

use std::time::Duration;

use rmcp::model::{ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use secrecy::ExposeSecret;

use super::config::{McpServerConfig, McpTransportConfig, secret_from_env};

/// A running client: its handshake done, its transport (and child process,
/// for stdio) owned by it.
pub type McpClient = RunningService<RoleClient, ClientConfig>;

/// Why a server could not be started. None of these stops Baton: the
/// server is skipped.
#[derive(Debug, thiserror::Error)]
pub enum McpStartError {
    /// The table names neither or both transports (config validation
    /// catches this first). Not transient.
    #[error("{0}")]
    Config(String),
    /// The command could not be started (not found, not executable). Not
    /// transient.
    #[error("cannot start {command:?}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    /// `bearer_token_env` names a variable that is not set. Not transient.
    #[error("the environment variable {0} (bearer_token_env) is not set")]
    MissingToken(String),
    /// Starting, the handshake and listing tools took longer than allowed.
    /// Transient: a slow start may be quicker next time.
    #[error("did not start within {}s", .0.as_secs())]
    Timeout(Duration),
    /// The handshake failed: the process exited, the URL did not answer, or
    /// it does not speak MCP. Transient (a server may come up later).
    #[error("the MCP handshake failed: {0}")]
    Handshake(String),
    /// The server started but could not list its tools. Transient.
    #[error("cannot list its tools: {0}")]
    ListTools(String),
}

impl McpStartError {
    /// Whether trying again later may work.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            McpStartError::Timeout(_) | McpStartError::Handshake(_) | McpStartError::ListTools(_)
        )
    }
}

/// A started server and the tools it listed.
pub struct StartedServer {
    /// The running client.
    pub client: McpClient,
    /// Its tools, as listed at start.
    pub tools: Vec<rmcp::model::Tool>,
}

/// Starts `server`, completes the handshake and lists its tools within
/// `timeout`. On a timeout everything started so far is dropped, which
/// kills a child process.
pub async fn start(
    server: &McpServerConfig,
    timeout: Duration,
) -> Result<StartedServer, McpStartError> {
    match tokio::time::timeout(timeout, start_unbounded(server)).await {
        Ok(started) => started,
        Err(_elapsed) => Err(McpStartError::Timeout(timeout)),
    }
}

async fn start_unbounded(server: &McpServerConfig) -> Result<StartedServer, McpStartError> {
    let client = match server.transport().map_err(McpStartError::Config)? {
        McpTransportConfig::Stdio {
            command,
            args,
            env,
            cwd,
        } => {
            let mut process = tokio::process::Command::new(command);
            process.args(args).envs(env).kill_on_drop(true);
            if let Some(cwd) = cwd {
                process.current_dir(cwd);
            }
            let transport =
                TokioChildProcess::new(process).map_err(|source| McpStartError::Spawn {
                    command: command.to_owned(),
                    source,
                })?;
            client_config()
                .serve(transport)
                .await
                .map_err(|e| McpStartError::Handshake(e.to_string()))?
        }
        McpTransportConfig::Http {
            url,
            bearer_token_env,
        } => {
            let mut config = StreamableHttpClientTransportConfig::with_uri(url);
            if let Some(var) = bearer_token_env {
                let token =
                    secret_from_env(var).ok_or_else(|| McpStartError::MissingToken(var.into()))?;
                config = config.auth_header(token.expose_secret());
            }
            install_tls_provider();
            let transport = StreamableHttpClientTransport::from_config(config);
            client_config()
                .serve(transport)
                .await
                .map_err(|e| McpStartError::Handshake(e.to_string()))?
        }
    };
    let tools = client
        .list_all_tools()
        .await
        .map_err(|e| McpStartError::ListTools(e.to_string()))?;
    Ok(StartedServer { client, tools })
}

/// How Baton introduces itself to MCP servers.
fn client_config() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("baton", env!("CARGO_PKG_VERSION")),
    )
}

/// rmcp's HTTP client is built without a TLS crypto provider of its own;
/// this gives the process the ring provider (already in the build through
/// Baton's own HTTP client). Installing twice is harmless.
fn install_tls_provider() {
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
}
