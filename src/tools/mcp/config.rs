//! `[mcp]`: the MCP servers Baton starts and how long it waits for them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

/// `[mcp]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpConfig {
    /// Seconds one server may take to start, answer the handshake and list
    /// its tools; past that it is skipped.
    pub startup_timeout_secs: u64,
    /// Seconds one tool call may take; past that the model gets an error.
    pub call_timeout_secs: u64,
    /// The servers, by name (`[mcp.servers.NAME]`).
    pub servers: BTreeMap<String, McpServerConfig>,
}

impl Default for McpConfig {
    fn default() -> Self {
        Self {
            startup_timeout_secs: 10,
            call_timeout_secs: 60,
            servers: BTreeMap::new(),
        }
    }
}

impl McpConfig {
    /// The startup timeout as a duration.
    pub fn startup_timeout(&self) -> Duration {
        Duration::from_secs(self.startup_timeout_secs)
    }

    /// The call timeout as a duration.
    pub fn call_timeout(&self) -> Duration {
        Duration::from_secs(self.call_timeout_secs)
    }

    /// The servers to start: the enabled ones.
    pub fn enabled_servers(&self) -> impl Iterator<Item = (&str, &McpServerConfig)> {
        self.servers
            .iter()
            .filter(|(_, server)| server.enabled)
            .map(|(name, server)| (name.as_str(), server))
    }

    /// Checks what the types cannot: names, one transport per server,
    /// limits; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        let invalid = |what: String| Err(what);
        if self.startup_timeout_secs == 0 {
            return invalid("mcp.startup_timeout_secs must be at least 1".into());
        }
        if self.call_timeout_secs == 0 {
            return invalid("mcp.call_timeout_secs must be at least 1".into());
        }
        for (name, server) in &self.servers {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return invalid(format!(
                    "mcp.servers.{name:?}: a server name may use only letters, digits, _ and -"
                ));
            }
            if let Err(why) = server.transport() {
                return invalid(format!("mcp.servers.{name}: {why}"));
            }
        }
        Ok(())
    }
}

/// `[mcp.servers.NAME]`: one MCP server, either a command Baton starts and
/// talks to over stdio, or a streamable-HTTP URL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// Whether to start it.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// stdio: the program to run.
    pub command: Option<String>,
    /// stdio: its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// stdio: environment variables set for it (on top of Baton's own).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// stdio: the folder it runs in (Baton's own when unset).
    pub cwd: Option<PathBuf>,
    /// streamable HTTP: the server's endpoint URL.
    pub url: Option<String>,
    /// streamable HTTP: the environment variable holding a bearer token.
    pub bearer_token_env: Option<String>,
}

fn enabled_by_default() -> bool {
    true
}

/// How to reach one server, as its config says.
#[derive(Debug, Clone, Copy)]
pub enum McpTransportConfig<'a> {
    /// Start `command` and speak MCP over its stdin and stdout.
    Stdio {
        command: &'a str,
        args: &'a [String],
        env: &'a BTreeMap<String, String>,
        cwd: Option<&'a std::path::Path>,
    },
    /// Speak MCP over streamable HTTP to `url`.
    Http {
        url: &'a str,
        bearer_token_env: Option<&'a str>,
    },
}

impl McpServerConfig {
    /// The transport, or why the table does not name exactly one.
    pub fn transport(&self) -> Result<McpTransportConfig<'_>, String> {
        match (self.command.as_deref(), self.url.as_deref()) {
            (Some(_), Some(_)) => Err("give either command (stdio) or url (HTTP), not both".into()),
            (None, None) => Err("give either command (stdio) or url (HTTP)".into()),
            (Some(""), None) => Err("command is empty".into()),
            (None, Some("")) => Err("url is empty".into()),
            (Some(command), None) => {
                if self.bearer_token_env.is_some() {
                    return Err("bearer_token_env is for url servers, not command".into());
                }
                Ok(McpTransportConfig::Stdio {
                    command,
                    args: &self.args,
                    env: &self.env,
                    cwd: self.cwd.as_deref(),
                })
            }
            (None, Some(url)) => {
                if !self.args.is_empty() || !self.env.is_empty() || self.cwd.is_some() {
                    return Err("args, env and cwd are for command servers, not url".into());
                }
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!("url {url:?} is not http:// or https://"));
                }
                Ok(McpTransportConfig::Http {
                    url,
                    bearer_token_env: self.bearer_token_env.as_deref(),
                })
            }
        }
    }
}

/// The value of environment variable `var` as a secret, if set and not blank.
pub(super) fn secret_from_env(var: &str) -> Option<SecretString> {
    std::env::var(var)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .map(SecretString::from)
}
