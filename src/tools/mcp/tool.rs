//! One MCP server tool offered as a Baton [`Tool`] named
//! `mcp__<server>__<tool>`: the call goes to the server with a timeout, and
//! the result's text becomes the tool result.

use std::time::Duration;

use rmcp::RoleClient;
use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock, ResourceContents};
use rmcp::service::{Peer, ServiceError};

use crate::domain::ToolSpec;
use crate::tools::{Tool, ToolError};

/// The longest tool name the model providers accept.
const MAX_NAME_LEN: usize = 64;

/// An MCP server's tool, callable through the server's client.
pub struct McpTool {
    /// The configured server name (for messages).
    server: String,
    /// The tool's name at the server.
    remote_name: String,
    /// What the model is offered: the prefixed name, the server's
    /// description and input schema.
    spec: ToolSpec,
    /// The running client's handle.
    peer: Peer<RoleClient>,
    /// How long one call may take.
    call_timeout: Duration,
}

impl McpTool {
    /// Wraps `tool` of `server`, reached through `peer`.
    pub fn new(
        server: &str,
        tool: &rmcp::model::Tool,
        peer: Peer<RoleClient>,
        call_timeout: Duration,
    ) -> Self {
        let spec = ToolSpec {
            name: qualified_name(server, &tool.name),
            description: tool.description.as_deref().unwrap_or_default().to_owned(),
            parameters: serde_json::Value::Object((*tool.input_schema).clone()),
        };
        Self {
            server: server.to_owned(),
            remote_name: tool.name.to_string(),
            spec,
            peer,
            call_timeout,
        }
    }
}

#[async_trait::async_trait]
impl Tool for McpTool {
    fn spec(&self) -> ToolSpec {
        self.spec.clone()
    }

    async fn call(&self, arguments: serde_json::Value) -> Result<String, ToolError> {
        let mut params = CallToolRequestParams::new(self.remote_name.clone());
        match arguments {
            serde_json::Value::Object(object) => params = params.with_arguments(object),
            serde_json::Value::Null => {}
            other => {
                return Err(ToolError::BadArguments(format!(
                    "expected a JSON object, got {other}"
                )));
            }
        }
        // A call dropped at the timeout tells the server it was cancelled.
        let outcome = tokio::time::timeout(self.call_timeout, self.peer.call_tool(params)).await;
        match outcome {
            Err(_elapsed) => Err(ToolError::Failed {
                message: format!(
                    "MCP server {} did not answer {} within {}s",
                    self.server,
                    self.remote_name,
                    self.call_timeout.as_secs()
                ),
                transient: true,
            }),
            Ok(Err(error)) => Err(call_failed(&self.server, &error)),
            Ok(Ok(result)) => result_text(result),
        }
    }
}

/// A failed call in words, with whether trying again may help.
fn call_failed(server: &str, error: &ServiceError) -> ToolError {
    let (message, transient) = match error {
        ServiceError::McpError(data) => (format!("MCP server {server}: {}", data.message), false),
        ServiceError::TransportClosed => (format!("MCP server {server} has stopped"), false),
        ServiceError::Timeout { .. } | ServiceError::TransportSend(_) => {
            (format!("MCP server {server}: {error}"), true)
        }
        other => (format!("MCP server {server}: {other}"), false),
    };
    ToolError::Failed { message, transient }
}

/// The text a result gives the model; an `isError` result is a failure.
fn result_text(result: CallToolResult) -> Result<String, ToolError> {
    let mut parts: Vec<String> = result.content.iter().map(content_text).collect();
    if parts.is_empty()
        && let Some(structured) = &result.structured_content
    {
        parts.push(structured.to_string());
    }
    let text = parts.join("\n");
    if result.is_error == Some(true) {
        let message = if text.is_empty() {
            "the tool reported an error".to_owned()
        } else {
            text
        };
        return Err(ToolError::Failed {
            message,
            transient: false,
        });
    }
    Ok(text)
}

/// One content block as text (non-text content is named, not inlined).
fn content_text(content: &ContentBlock) -> String {
    match content {
        ContentBlock::Text(text) => text.text.clone(),
        ContentBlock::Image(image) => format!("[image: {}]", image.mime_type),
        ContentBlock::Audio(audio) => format!("[audio: {}]", audio.mime_type),
        ContentBlock::Resource(embedded) => match &embedded.resource {
            ResourceContents::TextResourceContents { text, .. } => text.clone(),
            ResourceContents::BlobResourceContents { uri, .. } => format!("[resource: {uri}]"),
            _ => "[resource]".to_owned(),
        },
        ContentBlock::ResourceLink(link) => format!("[resource: {}]", link.uri),
        _ => "[content of a kind Baton does not show]".to_owned(),
    }
}

/// `mcp__<server>__<tool>`, with every character outside `[a-zA-Z0-9_-]`
/// made `_`; past 64 characters it is cut and ends in a short hash of the
/// whole name, so that two long names stay apart.
pub fn qualified_name(server: &str, tool: &str) -> String {
    let name: String = format!("mcp__{server}__{tool}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.len() <= MAX_NAME_LEN {
        return name;
    }
    let hash = format!("_{:08x}", fnv1a(name.as_bytes()));
    // All ASCII by now, so any byte index is a character boundary.
    format!("{}{hash}", &name[..MAX_NAME_LEN - hash.len()])
}

/// 32-bit FNV-1a: small, and the same in every build.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_sanitised_and_at_most_64_characters() {
        assert_eq!(qualified_name("files", "read"), "mcp__files__read");
        assert_eq!(
            qualified_name("web", "search.v2 (beta)"),
            "mcp__web__search_v2__beta_"
        );
        let long_a = qualified_name("server", &"a".repeat(80));
        let long_b = qualified_name("server", &format!("{}b", "a".repeat(79)));
        assert_eq!(long_a.len(), 64);
        assert_eq!(long_b.len(), 64);
        assert_ne!(long_a, long_b);
        assert!(long_a.starts_with("mcp__server__aaaa"));
    }

    #[test]
    fn results_become_text_and_errors_failures() {
        let ok = CallToolResult::success(vec![ContentBlock::text("5"), ContentBlock::text("six")]);
        assert_eq!(result_text(ok).unwrap(), "5\nsix");
        let failed = CallToolResult::error(vec![ContentBlock::text("no such key")]);
        assert_eq!(
            result_text(failed).unwrap_err(),
            ToolError::Failed {
                message: "no such key".into(),
                transient: false
            }
        );
    }
}
