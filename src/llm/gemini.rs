//! The Gemini generateContent wire format
//! (`POST {base_url}/v1beta/models/{model}:generateContent`): [`GeminiProvider`].
//!
//! Owns the translation to Gemini `contents` (roles `user`/`model`,
//! `functionCall`/`functionResponse` parts), the effort → `thinkingBudget`
//! mapping, generated tool-call ids (Gemini has none; results are matched by
//! name), and keeping `thoughtSignature`s in
//! [`AssistantMessage::provider_state`] so they go back on the matching parts.

use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::http::{Endpoint, ProviderOptions};
use super::{
    AssistantMessage, Completion, CompletionRequest, Effort, Message, Provider, ProviderError,
    Quota, StopReason, ToolCall, ToolChoice, ToolResult,
};
use crate::domain::Usage;

/// The key under which this provider keeps its state in
/// [`AssistantMessage::provider_state`]:
/// `{"gemini": {"text_signature": "..", "call_signatures": ["..", null]}}`,
/// one entry in `call_signatures` per tool call, in order.
const STATE_KEY: &str = "gemini";

/// A provider speaking the Gemini API's generateContent (non-streaming).
#[derive(Debug, Clone)]
pub struct GeminiProvider {
    endpoint: Endpoint,
}

impl GeminiProvider {
    /// A provider called `name` at `base_url` (e.g.
    /// `https://generativelanguage.googleapis.com`; a trailing `/` is
    /// ignored). The key, when given, goes in `x-goog-api-key`.
    pub fn new(
        name: impl Into<String>,
        base_url: impl Into<String>,
        api_key: Option<SecretString>,
        http: reqwest::Client,
    ) -> Self {
        GeminiProvider {
            endpoint: Endpoint::new(name, base_url, api_key, http),
        }
    }

    /// This provider with `options`: the bounds on its answers, and what
    /// its error messages are cleaned of.
    pub fn with_options(mut self, options: ProviderOptions) -> Self {
        self.endpoint = self.endpoint.with_options(options);
        self
    }

    /// The request body for `request`, in the generateContent format.
    pub fn request_body(request: &CompletionRequest) -> Value {
        let mut generation_config = json!({
            "thinkingConfig": {"thinkingBudget": thinking_budget(request.effort)},
        });
        if let Some(max) = request.max_output_tokens {
            generation_config["maxOutputTokens"] = json!(max);
        }
        let mut body = json!({
            "contents": wire_contents(&request.messages),
            "generationConfig": generation_config,
        });
        if !request.system.is_empty() {
            body["systemInstruction"] = json!({"parts": [{"text": request.system}]});
        }
        if !request.tools.is_empty() {
            let declarations: Vec<Value> = request
                .tools
                .iter()
                .map(|tool| {
                    json!({
                        "name": tool.name,
                        "description": tool.description,
                        "parametersJsonSchema": tool.parameters,
                    })
                })
                .collect();
            body["tools"] = json!([{"functionDeclarations": declarations}]);
            if request.tool_choice == ToolChoice::None {
                body["toolConfig"] = json!({"functionCallingConfig": {"mode": "NONE"}});
            }
        }
        body
    }
}

/// The `thinkingBudget` for an effort level (0 turns thinking off).
pub fn thinking_budget(effort: Effort) -> u32 {
    match effort {
        Effort::Off => 0,
        Effort::On => 4096,
        Effort::High => 16384,
        Effort::Max => 24576,
    }
}

/// The conversation as Gemini contents; parts of the same role in a row
/// (several function responses, say) share one content.
fn wire_contents(messages: &[Message]) -> Vec<Value> {
    let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for message in messages {
        let (role, parts) = match message {
            Message::User { text, images } => {
                let mut parts: Vec<Value> = images
                    .iter()
                    .map(|image| {
                        json!({"inline_data": {
                            "mime_type": image.media_type,
                            "data": &*image.base64,
                        }})
                    })
                    .collect();
                parts.push(json!({"text": text}));
                ("user", parts)
            }
            Message::ToolResult(result) => ("user", vec![function_response(result)]),
            Message::Assistant(assistant) => ("model", model_parts(assistant)),
        };
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some((last_role, last_parts)) if *last_role == role => last_parts.extend(parts),
            _ => contents.push((role, parts)),
        }
    }
    contents
        .into_iter()
        .map(|(role, parts)| json!({"role": role, "parts": parts}))
        .collect()
}

/// A tool result as a `functionResponse` part. Its `response` must be an
/// object: an object result is sent as it is, anything else as
/// `{"result": ...}`, and a failure as `{"error": ...}`.
fn function_response(result: &ToolResult) -> Value {
    let content = serde_json::from_str::<Value>(&result.content)
        .unwrap_or_else(|_| Value::String(result.content.clone()));
    let response = match content {
        content if result.is_error => json!({"error": content}),
        object @ Value::Object(_) => object,
        other => json!({"result": other}),
    };
    json!({"functionResponse": {"name": result.name, "response": response}})
}

/// A model message's parts: its text, then its function calls, each with
/// the thought signature it came with.
fn model_parts(assistant: &AssistantMessage) -> Vec<Value> {
    let state = assistant
        .provider_state
        .as_ref()
        .and_then(|state| state.get(STATE_KEY));
    let signature_at = |pointer: &str| -> Option<Value> {
        state
            .and_then(|state| state.pointer(pointer))
            .filter(|signature| signature.is_string())
            .cloned()
    };
    let mut parts = Vec::new();
    if let Some(text) = assistant.text.as_deref().filter(|text| !text.is_empty()) {
        let mut part = json!({"text": text});
        if let Some(signature) = signature_at("/text_signature") {
            part["thoughtSignature"] = signature;
        }
        parts.push(part);
    }
    for (index, call) in assistant.tool_calls.iter().enumerate() {
        let args = match serde_json::from_str::<Value>(&call.arguments) {
            Ok(object @ Value::Object(_)) => object,
            _ => json!({}),
        };
        let mut part = json!({"functionCall": {"name": call.name, "args": args}});
        if let Some(signature) = signature_at(&format!("/call_signatures/{index}")) {
            part["thoughtSignature"] = signature;
        }
        parts.push(part);
    }
    parts
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateContentResponse {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    content: Option<CandidateContent>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CandidateContent {
    #[serde(default)]
    parts: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    thoughts_token_count: u64,
    #[serde(default)]
    cached_content_token_count: u64,
}

impl GeminiProvider {
    fn completion_from_wire(
        &self,
        wire: GenerateContentResponse,
    ) -> Result<Completion, ProviderError> {
        let Some(candidate) = wire.candidates.into_iter().next() else {
            let block_reason = wire
                .prompt_feedback
                .and_then(|feedback| feedback.block_reason);
            return Err(match block_reason {
                Some(reason) => ProviderError::BadRequest {
                    provider: self.endpoint.name.clone(),
                    status: 200,
                    message: format!("Gemini blocked the prompt (blockReason {reason})"),
                },
                None => ProviderError::InvalidResponse {
                    provider: self.endpoint.name.clone(),
                    message: "the answer has no candidates".into(),
                },
            });
        };
        let mut text = String::new();
        let mut text_signature: Option<Value> = None;
        let mut tool_calls = Vec::new();
        let mut call_signatures = Vec::new();
        for part in candidate
            .content
            .map(|content| content.parts)
            .unwrap_or_default()
        {
            let signature = part.get("thoughtSignature").cloned();
            if part.get("thought").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            if let Some(call) = part.get("functionCall") {
                tool_calls.push(self.tool_call(call, tool_calls.len())?);
                call_signatures.push(signature.unwrap_or(Value::Null));
            } else if let Some(part_text) = part.get("text").and_then(Value::as_str) {
                text.push_str(part_text);
                if text_signature.is_none() {
                    text_signature = signature;
                }
            }
        }
        let stop = match candidate.finish_reason.as_deref() {
            _ if !tool_calls.is_empty() => StopReason::ToolUse,
            Some("STOP") | None => StopReason::EndTurn,
            Some("MAX_TOKENS") => StopReason::MaxTokens,
            Some(_) => StopReason::Other,
        };
        let usage = wire
            .usage_metadata
            .map_or_else(Usage::default, |usage| Usage {
                input_tokens: usage.prompt_token_count,
                output_tokens: usage.candidates_token_count + usage.thoughts_token_count,
                cached_input_tokens: usage.cached_content_token_count,
                cache_write_tokens: 0,
            });
        let has_signature =
            text_signature.is_some() || call_signatures.iter().any(|s| !s.is_null());
        let provider_state = has_signature.then(|| {
            let mut state = Map::new();
            if let Some(signature) = text_signature {
                state.insert("text_signature".into(), signature);
            }
            state.insert("call_signatures".into(), Value::Array(call_signatures));
            json!({STATE_KEY: state})
        });
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

    fn tool_call(&self, call: &Value, index: usize) -> Result<ToolCall, ProviderError> {
        let name = call.get("name").and_then(Value::as_str).ok_or_else(|| {
            ProviderError::InvalidResponse {
                provider: self.endpoint.name.clone(),
                message: "a functionCall part has no name".into(),
            }
        })?;
        let arguments = match call.get("args") {
            Some(args) if !args.is_null() => args.to_string(),
            _ => String::from("{}"),
        };
        Ok(ToolCall {
            id: format!("call_{index}"),
            name: name.to_owned(),
            arguments,
        })
    }
}

#[async_trait::async_trait]
impl Provider for GeminiProvider {
    fn name(&self) -> &str {
        &self.endpoint.name
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, ProviderError> {
        let model = request
            .model
            .strip_prefix("models/")
            .unwrap_or(&request.model);
        let body = Self::request_body(request);
        let path = format!("/v1beta/models/{model}:generateContent");
        let http = self
            .endpoint
            .post(&path, &body, |http, key| http.header("x-goog-api-key", key));
        let (wire, quota): (GenerateContentResponse, _) = self.endpoint.send(http).await?;
        Ok(Completion {
            quota,
            ..self.completion_from_wire(wire)?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> GeminiProvider {
        GeminiProvider::new("gemini", "http://x", None, reqwest::Client::new())
    }

    fn parse(value: Value) -> GenerateContentResponse {
        serde_json::from_value(value).unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn signatures_round_trip_onto_matching_parts() {
        let wire = parse(json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "let me look", "thoughtSignature": "t-sig"},
                {"functionCall": {"name": "a", "args": {"x": 1}}, "thoughtSignature": "a-sig"},
                {"functionCall": {"name": "b", "args": {}}}
            ]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4, "thoughtsTokenCount": 5,
                "cachedContentTokenCount": 2}
        }));
        let completion = provider()
            .completion_from_wire(wire)
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(completion.stop, StopReason::ToolUse);
        assert_eq!(completion.usage.output_tokens, 9);
        assert_eq!(completion.usage.input_tokens, 3);
        assert_eq!(completion.usage.cached_input_tokens, 2);
        assert_eq!(completion.message.tool_calls[1].id, "call_1");
        let parts = model_parts(&completion.message);
        assert_eq!(parts[0]["thoughtSignature"], "t-sig");
        assert_eq!(parts[1]["thoughtSignature"], "a-sig");
        assert_eq!(parts[1]["functionCall"]["args"], json!({"x": 1}));
        assert!(parts[2].get("thoughtSignature").is_none());
    }

    #[test]
    fn function_responses_are_objects_and_share_a_content() {
        let result = |content: &str, is_error: bool| {
            Message::ToolResult(ToolResult {
                call_id: "call_0".into(),
                name: "f".into(),
                content: content.into(),
                is_error,
            })
        };
        let contents = wire_contents(&[
            Message::user("hi"),
            result("{\"ok\":true}", false),
            result("plain text", false),
            result("no such tool", true),
        ]);
        assert_eq!(contents.len(), 1);
        let parts = &contents[0]["parts"];
        assert_eq!(
            parts[1]["functionResponse"]["response"],
            json!({"ok": true})
        );
        assert_eq!(
            parts[2]["functionResponse"]["response"],
            json!({"result": "plain text"})
        );
        assert_eq!(
            parts[3]["functionResponse"]["response"],
            json!({"error": "no such tool"})
        );
    }

    #[test]
    fn blocked_prompt_is_a_clear_error() {
        let wire = parse(json!({"promptFeedback": {"blockReason": "SAFETY"}}));
        let error = provider().completion_from_wire(wire);
        assert!(
            matches!(error, Err(ProviderError::BadRequest { ref message, .. }) if message.contains("SAFETY")),
            "{error:?}"
        );
        let empty = provider().completion_from_wire(parse(json!({})));
        assert!(matches!(empty, Err(ProviderError::InvalidResponse { .. })));
    }

    #[test]
    fn effort_maps_to_thinking_budget() {
        let request = CompletionRequest {
            model: "gemini-test".into(),
            system: String::new(),
            messages: vec![Message::user("hi")],
            tools: vec![],
            tool_choice: ToolChoice::Auto,
            effort: Effort::Max,
            max_output_tokens: Some(50),
            cache_key: None,
        };
        let body = GeminiProvider::request_body(&request);
        assert_eq!(
            body["generationConfig"]["thinkingConfig"]["thinkingBudget"],
            24576
        );
        assert_eq!(body["generationConfig"]["maxOutputTokens"], 50);
        assert!(body.get("systemInstruction").is_none());
        assert!(body.get("tools").is_none());
    }

    #[test]
    fn tool_choice_none_sets_function_calling_mode_none() {
        let mut request = CompletionRequest {
            model: "gemini-test".into(),
            system: String::new(),
            messages: vec![Message::user("hi")],
            tools: vec![crate::domain::ToolSpec {
                name: "t".into(),
                description: "a tool".into(),
                parameters: json!({"type": "object"}),
            }],
            tool_choice: ToolChoice::Auto,
            effort: Effort::Off,
            max_output_tokens: None,
            cache_key: None,
        };
        assert!(
            GeminiProvider::request_body(&request)
                .get("toolConfig")
                .is_none()
        );
        request.tool_choice = ToolChoice::None;
        let body = GeminiProvider::request_body(&request);
        assert_eq!(
            body["toolConfig"],
            json!({"functionCallingConfig": {"mode": "NONE"}})
        );
        assert_eq!(body["tools"][0]["functionDeclarations"][0]["name"], "t");
    }
}
