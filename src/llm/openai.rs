//! The OpenAI Chat Completions wire format (`POST {base_url}/chat/completions`),
//! which also serves Ollama, OpenRouter and vLLM: [`OpenAiProvider`].
//!
//! Owns the translation of the provider-neutral request to OpenAI messages,
//! tools, `tool_choice` and `reasoning_effort`, and of the answer back to a [`Completion`].

use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{Endpoint, ProviderOptions};
use super::{
    AssistantMessage, Completion, CompletionRequest, Effort, Message, Provider, ProviderError,
    Quota, StopReason, ToolCall, ToolChoice,
};
use crate::domain::Usage;

/// A provider speaking OpenAI Chat Completions (non-streaming).
#[derive(Debug, Clone)]
pub struct OpenAiProvider {
    endpoint: Endpoint,
}

impl OpenAiProvider {
    /// A provider called `name` (as the config names it) at `base_url`
    /// (e.g. `https://api.openai.com/v1`; a trailing `/` is ignored). The key,
    /// when given, is sent as a bearer token; local servers need none.
    pub fn new(
        name: impl Into<String>,
        base_url: impl Into<String>,
        api_key: Option<SecretString>,
        http: reqwest::Client,
    ) -> Self {
        OpenAiProvider {
            endpoint: Endpoint::new(name, base_url, api_key, http),
        }
    }

    /// This provider with `options`: the bounds on its answers, and what
    /// its error messages are cleaned of.
    pub fn with_options(mut self, options: ProviderOptions) -> Self {
        self.endpoint = self.endpoint.with_options(options);
        self
    }

    /// The request body for `request`, in the Chat Completions format.
    pub fn request_body(request: &CompletionRequest) -> Value {
        let mut messages = Vec::with_capacity(request.messages.len() + 1);
        if !request.system.is_empty() {
            messages.push(json!({"role": "system", "content": request.system}));
        }
        messages.extend(request.messages.iter().map(wire_message));
        let mut body = json!({"model": request.model, "messages": messages});
        if !request.tools.is_empty() {
            body["tools"] = request
                .tools
                .iter()
                .map(|tool| {
                    json!({
                        "type": "function",
                        "function": {
                            "name": tool.name,
                            "description": tool.description,
                            "parameters": tool.parameters,
                        }
                    })
                })
                .collect();
            if request.tool_choice == ToolChoice::None {
                body["tool_choice"] = json!("none");
            }
        }
        if let Some(effort) = reasoning_effort(request.effort) {
            body["reasoning_effort"] = json!(effort);
        }
        if let Some(max) = request.max_output_tokens {
            body["max_completion_tokens"] = json!(max);
        }
        if let Some(key) = request.cache_key.as_deref().filter(|key| !key.is_empty()) {
            body["prompt_cache_key"] = json!(key);
        }
        body
    }
}

/// The `reasoning_effort` value for an effort level; `None` leaves it out.
pub fn reasoning_effort(effort: Effort) -> Option<&'static str> {
    match effort {
        Effort::Off => None,
        Effort::On => Some("medium"),
        Effort::High => Some("high"),
        Effort::Max => Some("xhigh"),
    }
}

fn wire_message(message: &Message) -> Value {
    match message {
        Message::User { text, images } if images.is_empty() => {
            json!({"role": "user", "content": text})
        }
        Message::User { text, images } => {
            let mut parts = vec![json!({"type": "text", "text": text})];
            parts.extend(
                images.iter().map(
                    |image| json!({"type": "image_url", "image_url": {"url": image.data_url()}}),
                ),
            );
            json!({"role": "user", "content": parts})
        }
        Message::Assistant(assistant) => {
            // `content` may be null only beside tool calls.
            let text = assistant.text.as_deref().filter(|text| !text.is_empty());
            let content = match text {
                None if assistant.tool_calls.is_empty() => Some(""),
                text => text,
            };
            let mut wire = json!({"role": "assistant", "content": content});
            if !assistant.tool_calls.is_empty() {
                wire["tool_calls"] = assistant
                    .tool_calls
                    .iter()
                    .map(|call| {
                        json!({
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": call.arguments},
                        })
                    })
                    .collect();
            }
            wire
        }
        Message::ToolResult(result) => json!({
            "role": "tool",
            "tool_call_id": result.call_id,
            "content": result.content,
        }),
    }
}

#[derive(Debug, Deserialize)]
struct ChatCompletion {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    message: ChoiceMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireToolCall>,
}

#[derive(Debug, Deserialize)]
struct WireToolCall {
    #[serde(default)]
    id: Option<String>,
    function: WireFunction,
}

#[derive(Debug, Deserialize)]
struct WireFunction {
    name: String,
    /// A JSON string on OpenAI; some compatible servers send an object.
    #[serde(default)]
    arguments: Value,
}

#[derive(Debug, Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Debug, Deserialize)]
struct PromptTokensDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl OpenAiProvider {
    fn completion_from_wire(&self, wire: ChatCompletion) -> Result<Completion, ProviderError> {
        let Some(choice) = wire.choices.into_iter().next() else {
            return Err(ProviderError::InvalidResponse {
                provider: self.endpoint.name.clone(),
                message: "the answer has no choices".into(),
            });
        };
        let tool_calls: Vec<ToolCall> = choice
            .message
            .tool_calls
            .into_iter()
            .enumerate()
            .map(|(index, call)| ToolCall {
                id: call
                    .id
                    .filter(|id| !id.is_empty())
                    .unwrap_or_else(|| format!("call_{index}")),
                name: call.function.name,
                arguments: match call.function.arguments {
                    Value::String(text) => text,
                    Value::Null => String::from("{}"),
                    other => other.to_string(),
                },
            })
            .collect();
        let stop = match choice.finish_reason.as_deref() {
            _ if !tool_calls.is_empty() => StopReason::ToolUse,
            Some("stop") | None => StopReason::EndTurn,
            Some("tool_calls" | "function_call") => StopReason::ToolUse,
            Some("length") => StopReason::MaxTokens,
            Some(_) => StopReason::Other,
        };
        let usage = wire.usage.map_or_else(Usage::default, |usage| Usage {
            input_tokens: usage.prompt_tokens,
            output_tokens: usage.completion_tokens,
            cached_input_tokens: usage
                .prompt_tokens_details
                .and_then(|details| details.cached_tokens)
                .unwrap_or(0),
            cache_write_tokens: 0,
        });
        Ok(Completion {
            message: AssistantMessage {
                text: choice.message.content.filter(|text| !text.is_empty()),
                tool_calls,
                provider_state: None,
            },
            usage,
            stop,
            quota: Quota::default(),
        })
    }
}

#[async_trait::async_trait]
impl Provider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.endpoint.name
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, ProviderError> {
        let body = Self::request_body(request);
        let http = self.endpoint.post("/chat/completions", &body, |http, key| {
            http.bearer_auth(key)
        });
        let (wire, quota): (ChatCompletion, _) = self.endpoint.send(http).await?;
        Ok(Completion {
            quota,
            ..self.completion_from_wire(wire)?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ToolSpec;
    use crate::llm::ToolResult;

    fn request() -> CompletionRequest {
        CompletionRequest {
            model: "gpt-test".into(),
            system: "be brief".into(),
            messages: vec![
                Message::user("weather?"),
                Message::Assistant(AssistantMessage {
                    text: None,
                    tool_calls: vec![ToolCall {
                        id: "call_1".into(),
                        name: "weather".into(),
                        arguments: "{\"city\":".into(),
                    }],
                    provider_state: None,
                }),
                Message::ToolResult(ToolResult {
                    call_id: "call_1".into(),
                    name: "weather".into(),
                    content: "sunny".into(),
                    is_error: false,
                }),
            ],
            tools: vec![ToolSpec {
                name: "weather".into(),
                description: "the weather".into(),
                parameters: json!({"type": "object"}),
            }],
            tool_choice: ToolChoice::Auto,
            effort: Effort::Max,
            max_output_tokens: Some(100),
            cache_key: Some("conv-1".into()),
        }
    }

    #[test]
    fn tool_choice_none_keeps_the_tools_and_forbids_calling_them() {
        let mut request = request();
        assert!(
            OpenAiProvider::request_body(&request)
                .get("tool_choice")
                .is_none()
        );
        request.tool_choice = ToolChoice::None;
        let body = OpenAiProvider::request_body(&request);
        assert_eq!(body["tool_choice"], "none");
        assert_eq!(body["tools"][0]["function"]["name"], "weather");
        request.tools.clear();
        let body = OpenAiProvider::request_body(&request);
        assert!(
            body.get("tool_choice").is_none(),
            "no tools, no tool_choice"
        );
    }

    #[test]
    fn body_has_every_part() {
        let body = OpenAiProvider::request_body(&request());
        assert_eq!(
            body["messages"][0],
            json!({"role": "system", "content": "be brief"})
        );
        assert_eq!(body["messages"][2]["content"], Value::Null);
        assert_eq!(
            body["messages"][2]["tool_calls"][0]["function"]["arguments"],
            "{\"city\":"
        );
        assert_eq!(
            body["messages"][3],
            json!({"role": "tool", "tool_call_id": "call_1", "content": "sunny"})
        );
        assert_eq!(body["tools"][0]["function"]["name"], "weather");
        assert_eq!(body["reasoning_effort"], "xhigh");
        assert_eq!(body["max_completion_tokens"], 100);
        assert_eq!(body["prompt_cache_key"], "conv-1");
    }

    #[test]
    fn cached_prompt_tokens_are_read() {
        let provider = OpenAiProvider::new("openai", "http://x/v1/", None, reqwest::Client::new());
        let wire: ChatCompletion = serde_json::from_value(json!({
            "choices": [{"message": {"role": "assistant", "content": "hi"},
                "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 2000, "completion_tokens": 5,
                "prompt_tokens_details": {"cached_tokens": 1536, "audio_tokens": 0}}
        }))
        .unwrap_or_else(|error| panic!("{error}"));
        let completion = provider
            .completion_from_wire(wire)
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(
            completion.usage,
            Usage {
                input_tokens: 2000,
                output_tokens: 5,
                cached_input_tokens: 1536,
                cache_write_tokens: 0,
            }
        );
    }

    #[test]
    fn off_effort_and_no_tools_are_left_out() {
        let mut request = request();
        request.effort = Effort::Off;
        request.tools.clear();
        request.max_output_tokens = None;
        request.cache_key = None;
        let body = OpenAiProvider::request_body(&request);
        assert!(body.get("reasoning_effort").is_none());
        assert!(body.get("tools").is_none());
        assert!(body.get("max_completion_tokens").is_none());
        assert!(body.get("prompt_cache_key").is_none());
    }

    #[test]
    fn answer_with_object_arguments_and_no_ids() {
        let provider = OpenAiProvider::new("ollama", "http://x/v1/", None, reqwest::Client::new());
        let wire: ChatCompletion = serde_json::from_value(json!({
            "choices": [{"message": {"role": "assistant", "content": "",
                "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]},
                "finish_reason": "stop"}]
        }))
        .unwrap_or_else(|error| panic!("{error}"));
        let completion = provider
            .completion_from_wire(wire)
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(completion.stop, StopReason::ToolUse);
        assert_eq!(completion.message.text, None);
        assert_eq!(completion.message.tool_calls[0].id, "call_0");
        assert_eq!(completion.message.tool_calls[0].arguments, "{\"a\":1}");
        assert_eq!(completion.usage, Usage::default());
    }
}
