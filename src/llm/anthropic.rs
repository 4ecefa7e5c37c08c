//! The Anthropic Messages wire format (`POST {base_url}/v1/messages`):
//! [`AnthropicProvider`].
//!
//! Owns the translation to Anthropic content blocks (`tool_use`,
//! `tool_result`), the effort → extended-thinking budget mapping, and keeping
//! the model's thinking blocks in [`AssistantMessage::provider_state`] so
//! they go back, first and unchanged, with that message on the next round.
//!
//! Prompt caching: every request carries `cache_control` breakpoints (see
//! [`cache_breakpoints`]) on the system prompt, on the end of the history
//! before the newest user message, and on the last message, so that each
//! round reads the prefix the rounds and turns before it wrote. The cache
//! tokens each answer reports go in [`Usage`].

use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{Endpoint, ProviderOptions};
use super::{
    AssistantMessage, Completion, CompletionRequest, Effort, Message, Provider, ProviderError,
    Quota, StopReason, ToolCall, ToolChoice,
};
use crate::domain::Usage;

/// The API version sent in `anthropic-version`.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// `max_tokens` when the caller sets no bound: the answer's own allowance,
/// on top of any thinking budget.
pub const DEFAULT_MAX_TOKENS: u32 = 8192;

/// The most `cache_control` breakpoints Anthropic accepts in one request.
pub const MAX_CACHE_BREAKPOINTS: usize = 4;

/// The key under which this provider keeps its state in
/// [`AssistantMessage::provider_state`]: `{"anthropic": {"thinking": [...]}}`.
const STATE_KEY: &str = "anthropic";

/// A provider speaking the Anthropic Messages API (non-streaming).
#[derive(Debug, Clone)]
pub struct AnthropicProvider {
    endpoint: Endpoint,
}

impl AnthropicProvider {
    /// A provider called `name` at `base_url` (e.g. `https://api.anthropic.com`;
    /// a trailing `/` is ignored). The key, when given, goes in `x-api-key`.
    pub fn new(
        name: impl Into<String>,
        base_url: impl Into<String>,
        api_key: Option<SecretString>,
        http: reqwest::Client,
    ) -> Self {
        AnthropicProvider {
            endpoint: Endpoint::new(name, base_url, api_key, http),
        }
    }

    /// This provider with `options`: the bounds on its answers, and what
    /// its error messages are cleaned of.
    pub fn with_options(mut self, options: ProviderOptions) -> Self {
        self.endpoint = self.endpoint.with_options(options);
        self
    }

    /// The request body for `request`, in the Messages format.
    ///
    /// `max_tokens` is the caller's bound (default [`DEFAULT_MAX_TOKENS`])
    /// plus the thinking budget when thinking is on, so it is always greater
    /// than the budget and the answer keeps its own allowance.
    pub fn request_body(request: &CompletionRequest) -> Value {
        let budget = thinking_budget(request.effort);
        let answer_allowance = request
            .max_output_tokens
            .unwrap_or(DEFAULT_MAX_TOKENS)
            .max(1);
        let max_tokens = answer_allowance.saturating_add(budget.unwrap_or(0));
        let has_system = !request.system.is_empty();
        let marked = cache_breakpoints(
            &request.messages,
            MAX_CACHE_BREAKPOINTS - usize::from(has_system),
        );
        let mut body = json!({
            "model": request.model,
            "max_tokens": max_tokens,
            "messages": wire_messages(&request.messages, &marked),
        });
        if has_system {
            body["system"] = json!([{
                "type": "text",
                "text": request.system,
                "cache_control": cache_control(),
            }]);
        }
        if !request.tools.is_empty() {
            body["tools"] = request
                .tools
                .iter()
                .map(|tool| {
                    json!({
                        "name": tool.name,
                        "description": tool.description,
                        "input_schema": tool.parameters,
                    })
                })
                .collect();
            if request.tool_choice == ToolChoice::None {
                body["tool_choice"] = json!({"type": "none"});
            }
        }
        if let Some(budget_tokens) = budget {
            body["thinking"] = json!({"type": "enabled", "budget_tokens": budget_tokens});
        }
        body
    }
}

/// The extended-thinking budget for an effort level; `None` turns thinking off.
pub fn thinking_budget(effort: Effort) -> Option<u32> {
    match effort {
        Effort::Off => None,
        Effort::On => Some(4096),
        Effort::High => Some(16384),
        Effort::Max => Some(32000),
    }
}

/// The `cache_control` of a breakpoint: the prefix up to and including the
/// block that carries it is cached (5 minutes, refreshed on each read).
fn cache_control() -> Value {
    json!({"type": "ephemeral"})
}

/// The indexes of the messages whose last block gets a cache breakpoint, at
/// most `limit` of them, oldest first:
/// - the message before the newest user message: the end of the history
///   earlier turns left, the same for every round of this turn (the
///   previous turn's breakpoints are within Anthropic's 20-block look-back,
///   so it reads what they wrote);
/// - the last message, whose prefix the next round of this turn resends
///   unchanged and so reads from the cache.
///
/// Prefixes under the model's minimum cacheable length (1024 to 4096
/// tokens) are simply not cached: Anthropic ignores their breakpoints.
pub fn cache_breakpoints(messages: &[Message], limit: usize) -> Vec<usize> {
    let newest_user = messages
        .iter()
        .rposition(|message| matches!(message, Message::User { .. }));
    let stable = newest_user.and_then(|index| index.checked_sub(1));
    let last = messages.len().checked_sub(1);
    let mut marked: Vec<usize> = stable.into_iter().chain(last).collect();
    marked.dedup();
    // Keep the newest ones: the last breakpoint covers the longest prefix.
    let excess = marked.len().saturating_sub(limit);
    marked.drain(..excess);
    marked
}

/// The conversation as Anthropic messages. Content that belongs to the same
/// role in a row (several tool results, tool results then user text) goes in
/// one message, as the API wants strictly alternating roles. The last block
/// of each message in `marked` (indexes into `messages`) gets a cache
/// breakpoint, unless it is a thinking block, which cannot carry one.
fn wire_messages(messages: &[Message], marked: &[usize]) -> Vec<Value> {
    let mut wire: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        let (role, mut blocks) = match message {
            Message::User { text, images } => {
                // Images first: Anthropic reads them best before the text.
                let mut blocks: Vec<Value> = images
                    .iter()
                    .map(|image| {
                        json!({"type": "image", "source": {
                            "type": "base64",
                            "media_type": image.media_type,
                            "data": &*image.base64,
                        }})
                    })
                    .collect();
                blocks.push(json!({"type": "text", "text": text}));
                ("user", blocks)
            }
            Message::ToolResult(result) => (
                "user",
                vec![json!({
                    "type": "tool_result",
                    "tool_use_id": result.call_id,
                    "content": result.content,
                    "is_error": result.is_error,
                })],
            ),
            Message::Assistant(assistant) => ("assistant", assistant_blocks(assistant)),
        };
        if marked.contains(&index)
            && let Some(last) = blocks.last_mut()
            && !matches!(
                last.get("type").and_then(Value::as_str),
                Some("thinking" | "redacted_thinking")
            )
        {
            last["cache_control"] = cache_control();
        }
        if blocks.is_empty() {
            continue;
        }
        match wire.last_mut() {
            Some((last_role, last_blocks)) if *last_role == role => last_blocks.extend(blocks),
            _ => wire.push((role, blocks)),
        }
    }
    wire.into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect()
}

/// An assistant message's content: its thinking blocks first (from
/// `provider_state`), then its text, then its tool calls.
fn assistant_blocks(assistant: &AssistantMessage) -> Vec<Value> {
    let mut blocks: Vec<Value> = assistant
        .provider_state
        .as_ref()
        .and_then(|state| state.pointer("/anthropic/thinking"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(text) = assistant.text.as_deref().filter(|text| !text.is_empty()) {
        blocks.push(json!({"type": "text", "text": text}));
    }
    blocks.extend(assistant.tool_calls.iter().map(|call| {
        json!({
            "type": "tool_use",
            "id": call.id,
            "name": call.name,
            "input": arguments_object(&call.arguments),
        })
    }));
    blocks
}

/// A tool call's arguments as the JSON object `input` must be; `{}` when the
/// model wrote something that is not a JSON object.
fn arguments_object(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(object @ Value::Object(_)) => object,
        _ => json!({}),
    }
}

#[derive(Debug, Deserialize)]
struct MessagesResponse {
    content: Vec<Value>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

impl AnthropicProvider {
    fn completion_from_wire(&self, wire: MessagesResponse) -> Result<Completion, ProviderError> {
        let mut text = String::new();
        let mut tool_calls = Vec::new();
        let mut thinking = Vec::new();
        for block in wire.content {
            match block.get("type").and_then(Value::as_str) {
                Some("text") => {
                    text.push_str(block.get("text").and_then(Value::as_str).unwrap_or(""));
                }
                Some("tool_use") => tool_calls.push(self.tool_call(&block)?),
                Some("thinking" | "redacted_thinking") => thinking.push(block),
                _ => {}
            }
        }
        let stop = match wire.stop_reason.as_deref() {
            Some("end_turn" | "stop_sequence") | None => StopReason::EndTurn,
            Some("tool_use") => StopReason::ToolUse,
            Some("max_tokens") => StopReason::MaxTokens,
            Some(_) => StopReason::Other,
        };
        // Anthropic's input_tokens are only those neither read from the
        // cache nor written to it; Usage counts all of them.
        let usage = wire.usage.map_or_else(Usage::default, |usage| {
            let read = usage.cache_read_input_tokens.unwrap_or(0);
            let written = usage.cache_creation_input_tokens.unwrap_or(0);
            Usage {
                input_tokens: usage.input_tokens + read + written,
                output_tokens: usage.output_tokens,
                cached_input_tokens: read,
                cache_write_tokens: written,
            }
        });
        let provider_state =
            (!thinking.is_empty()).then(|| json!({STATE_KEY: {"thinking": thinking}}));
        Ok(Completion {
            message: AssistantMessage {
                text: (!text.is_empty()).then_some(text),
                tool_calls,
                provider_state,
            },
            usage,
            stop,
            quota: Quota::default(),
        })
    }

    fn tool_call(&self, block: &Value) -> Result<ToolCall, ProviderError> {
        let field = |name: &str| -> Result<String, ProviderError> {
            block
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| ProviderError::InvalidResponse {
                    provider: self.endpoint.name.clone(),
                    message: format!("a tool_use block has no {name}"),
                })
        };
        let arguments = match block.get("input") {
            Some(input) if !input.is_null() => input.to_string(),
            _ => String::from("{}"),
        };
        Ok(ToolCall {
            id: field("id")?,
            name: field("name")?,
            arguments,
        })
    }
}

#[async_trait::async_trait]
impl Provider for AnthropicProvider {
    fn name(&self) -> &str {
        &self.endpoint.name
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, ProviderError> {
        let body = Self::request_body(request);
        let http = self
            .endpoint
            .post("/v1/messages", &body, |http, key| {
                http.header("x-api-key", key)
            })
            .header("anthropic-version", ANTHROPIC_VERSION);
        let (wire, quota): (MessagesResponse, _) = self.endpoint.send(http).await?;
        Ok(Completion {
            quota,
            ..self.completion_from_wire(wire)?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ToolResult;

    fn tool_result(id: &str, content: &str, is_error: bool) -> Message {
        Message::ToolResult(ToolResult {
            call_id: id.into(),
            name: "t".into(),
            content: content.into(),
            is_error,
        })
    }

    #[test]
    fn tool_results_share_one_user_message_and_thinking_goes_first() {
        let thinking = json!({"type": "thinking", "thinking": "hmm", "signature": "sig"});
        let request = CompletionRequest {
            model: "claude-test".into(),
            system: "sys".into(),
            messages: vec![
                Message::user("go"),
                Message::Assistant(AssistantMessage {
                    text: Some("calling".into()),
                    tool_calls: vec![
                        ToolCall {
                            id: "a".into(),
                            name: "t".into(),
                            arguments: "{\"x\":1}".into(),
                        },
                        ToolCall {
                            id: "b".into(),
                            name: "t".into(),
                            arguments: "not json".into(),
                        },
                    ],
                    provider_state: Some(json!({"anthropic": {"thinking": [thinking]}})),
                }),
                tool_result("a", "ok", false),
                tool_result("b", "bad arguments", true),
            ],
            tools: vec![],
            tool_choice: ToolChoice::Auto,
            effort: Effort::High,
            max_output_tokens: None,
            cache_key: None,
        };
        let body = AnthropicProvider::request_body(&request);
        assert_eq!(
            body["system"],
            json!([{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}])
        );
        assert_eq!(
            body["thinking"],
            json!({"type": "enabled", "budget_tokens": 16384})
        );
        assert_eq!(body["max_tokens"], 16384 + 8192);
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[1]["content"][0]["type"], "thinking");
        assert_eq!(messages[1]["content"][1]["type"], "text");
        assert_eq!(messages[1]["content"][2]["input"], json!({"x": 1}));
        assert_eq!(messages[1]["content"][3]["input"], json!({}));
        assert_eq!(messages[2]["role"], "user");
        assert_eq!(messages[2]["content"][0]["tool_use_id"], "a");
        assert_eq!(messages[2]["content"][1]["is_error"], true);
        assert!(body.get("tools").is_none());
    }

    #[test]
    fn tool_choice_none_keeps_the_tools_and_forbids_calling_them() {
        let mut request = CompletionRequest {
            model: "claude-test".into(),
            system: String::new(),
            messages: vec![Message::user("go")],
            tools: vec![crate::domain::ToolSpec {
                name: "t".into(),
                description: "a tool".into(),
                parameters: json!({"type": "object"}),
            }],
            tool_choice: ToolChoice::Auto,
            effort: Effort::On,
            max_output_tokens: None,
            cache_key: None,
        };
        assert!(
            AnthropicProvider::request_body(&request)
                .get("tool_choice")
                .is_none()
        );
        request.tool_choice = ToolChoice::None;
        let body = AnthropicProvider::request_body(&request);
        assert_eq!(body["tool_choice"], json!({"type": "none"}));
        assert_eq!(body["tools"][0]["name"], "t");
    }

    #[test]
    fn answer_keeps_thinking_blocks() {
        let provider =
            AnthropicProvider::new("anthropic", "http://x", None, reqwest::Client::new());
        let wire: MessagesResponse = serde_json::from_value(json!({
            "content": [
                {"type": "thinking", "thinking": "t", "signature": "s"},
                {"type": "redacted_thinking", "data": "d"},
                {"type": "text", "text": "hi"},
                {"type": "tool_use", "id": "tu_1", "name": "f", "input": {"q": "x"}}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 5, "output_tokens": 7,
                "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 200}
        }))
        .unwrap_or_else(|error| panic!("{error}"));
        let completion = provider
            .completion_from_wire(wire)
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(completion.stop, StopReason::ToolUse);
        assert_eq!(completion.message.text.as_deref(), Some("hi"));
        assert_eq!(completion.message.tool_calls[0].arguments, "{\"q\":\"x\"}");
        assert_eq!(
            completion.usage,
            Usage {
                input_tokens: 1205,
                output_tokens: 7,
                cached_input_tokens: 1000,
                cache_write_tokens: 200,
            }
        );
        let state = completion.message.provider_state.unwrap_or_default();
        assert_eq!(
            state["anthropic"]["thinking"][1]["type"],
            "redacted_thinking"
        );
    }

    /// Where the breakpoints of a body are: `(message, block)` indexes.
    fn breakpoints(body: &Value) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        for (m, message) in body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            for (b, block) in message["content"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                if block.get("cache_control").is_some() {
                    assert_eq!(block["cache_control"], json!({"type": "ephemeral"}));
                    found.push((m, b));
                }
            }
        }
        found
    }

    fn chat(messages: Vec<Message>, system: &str) -> CompletionRequest {
        CompletionRequest {
            model: "claude-test".into(),
            system: system.into(),
            messages,
            tools: vec![],
            tool_choice: ToolChoice::Auto,
            effort: Effort::Off,
            max_output_tokens: None,
            cache_key: None,
        }
    }

    #[test]
    fn breakpoints_on_system_stable_history_and_last_message() {
        let calling = Message::Assistant(AssistantMessage {
            text: None,
            tool_calls: vec![ToolCall {
                id: "a".into(),
                name: "t".into(),
                arguments: "{}".into(),
            }],
            provider_state: None,
        });
        // An earlier turn, the newest user message, then one tool round.
        let request = chat(
            vec![
                Message::user("first"),
                Message::assistant("answer one"),
                Message::user("second"),
                calling,
                tool_result("a", "ok", false),
            ],
            "sys",
        );
        let body = AnthropicProvider::request_body(&request);
        assert_eq!(body["system"][0]["cache_control"]["type"], "ephemeral");
        // "answer one" ends the stable history; the tool result ends the request.
        assert_eq!(breakpoints(&body), vec![(1, 0), (4, 0)]);

        // First round of a turn: the newest user message is the last one.
        let body = AnthropicProvider::request_body(&chat(
            vec![
                Message::user("first"),
                Message::assistant("answer one"),
                Message::user("second"),
            ],
            "",
        ));
        assert!(body.get("system").is_none());
        assert_eq!(breakpoints(&body), vec![(1, 0), (2, 0)]);

        // A single message: one breakpoint, on it.
        let body = AnthropicProvider::request_body(&chat(vec![Message::user("hi")], "sys"));
        assert_eq!(breakpoints(&body), vec![(0, 0)]);
    }

    #[test]
    fn breakpoints_stay_within_the_limit_and_skip_thinking_blocks() {
        let messages = vec![
            Message::user("a"),
            Message::assistant("b"),
            Message::user("c"),
            Message::assistant("d"),
        ];
        for limit in 0..=MAX_CACHE_BREAKPOINTS {
            let marked = cache_breakpoints(&messages, limit);
            assert!(marked.len() <= limit);
            assert_eq!(marked.last().copied(), (limit > 0).then_some(3));
        }
        assert_eq!(cache_breakpoints(&messages, 4), vec![1, 3]);
        assert!(cache_breakpoints(&[], 4).is_empty());

        let thinking_only = Message::Assistant(AssistantMessage {
            text: None,
            tool_calls: vec![],
            provider_state: Some(json!({"anthropic": {"thinking": [
                {"type": "thinking", "thinking": "t", "signature": "s"}
            ]}})),
        });
        let body =
            AnthropicProvider::request_body(&chat(vec![Message::user("a"), thinking_only], "s"));
        assert!(breakpoints(&body).is_empty());
        let total = breakpoints(&body).len() + 1;
        assert!(total <= MAX_CACHE_BREAKPOINTS);
    }
}
