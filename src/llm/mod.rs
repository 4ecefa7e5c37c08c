//! Language-model providers behind one [`Provider`] trait.
//!
//! The engine speaks the provider-neutral types below; `openai.rs` (also
//! Ollama, OpenRouter, vLLM), `anthropic.rs` and `gemini.rs` translate them to
//! their wire formats over reqwest; `http.rs` owns what they share (sending
//! JSON, reading answers within their bounds, classifying and redacting
//! HTTP errors); `quota.rs` reads the rate-limit headers an answer carries.
//! `retry.rs` owns the retry policy for
//! transient errors; `effort.rs` clamps reasoning effort (each provider maps
//! it to its own wire field).

pub mod anthropic;
pub mod effort;
mod error;
pub mod gemini;
mod http;
pub mod models;
pub mod openai;
mod quota;
pub mod retry;

pub use baton_channel::Effort;
pub use error::ProviderError;
pub use http::ProviderOptions;
pub use quota::Quota;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::domain::{ToolSpec, Usage};

/// One model call: everything a provider needs to answer.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionRequest {
    /// The provider's model name (without the `provider:` prefix).
    pub model: String,
    /// The system prompt.
    pub system: String,
    /// The conversation so far, oldest first.
    pub messages: Vec<Message>,
    /// Tools offered to the model; empty means none are offered.
    pub tools: Vec<ToolSpec>,
    /// Whether the model may call the offered tools. [`ToolChoice::None`]
    /// keeps them declared (a history with tool calls needs that on some
    /// providers) but forbids calling them.
    pub tool_choice: ToolChoice,
    /// Reasoning effort, already clamped to what the model supports.
    pub effort: Effort,
    /// An upper bound on output tokens, where the caller wants one.
    pub max_output_tokens: Option<u32>,
    /// A stable key for the conversation the call belongs to, for providers
    /// that route requests sharing it to the same prompt cache (OpenAI
    /// `prompt_cache_key`); `None` sends none.
    pub cache_key: Option<String>,
}

/// Whether a model call may call the tools it is offered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides (each wire's default; nothing is sent).
    #[default]
    Auto,
    /// The model must answer with text: OpenAI `"tool_choice": "none"`,
    /// Anthropic `{"type": "none"}`, Gemini function calling mode `NONE`.
    None,
}

/// One entry of a model's context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Message {
    /// Something the user (or, for a worker, the orchestrator's brief) said,
    /// with the images that came with it (sent only to vision models).
    User {
        text: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        images: Vec<Image>,
    },
    /// What the model answered: text, tool calls, or both.
    Assistant(AssistantMessage),
    /// The result of one tool call, answering the call with the same id.
    ToolResult(ToolResult),
}

impl Message {
    /// A user message.
    pub fn user(text: impl Into<String>) -> Self {
        Message::User {
            text: text.into(),
            images: Vec::new(),
        }
    }

    /// An assistant message with text only.
    pub fn assistant(text: impl Into<String>) -> Self {
        Message::Assistant(AssistantMessage {
            text: Some(text.into()),
            ..AssistantMessage::default()
        })
    }

    /// How much text it carries, in bytes (for estimating its tokens).
    pub fn text_len(&self) -> usize {
        match self {
            Message::User { text, images } => text.len() + images.len() * IMAGE_TEXT_EQUIVALENT,
            Message::Assistant(assistant) => {
                let calls: usize = assistant
                    .tool_calls
                    .iter()
                    .map(|call| call.name.len() + call.arguments.len())
                    .sum();
                assistant.text.as_ref().map_or(0, String::len) + calls
            }
            Message::ToolResult(result) => result.content.len(),
        }
    }
}

/// What one image counts as in [`Message::text_len`], in bytes of text:
/// about 1,500 tokens, what the providers charge for a mid-sized picture.
pub const IMAGE_TEXT_EQUIVALENT: usize = 6_000;

/// An image for a vision model, in the form every wire format takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// Its MIME type (`image/png`, `image/jpeg`, ...).
    pub media_type: String,
    /// Its bytes, base64-encoded (standard alphabet, padded); shared, as a
    /// context is copied into every round's request.
    pub base64: Arc<str>,
}

impl Image {
    /// `bytes` of type `media_type`.
    pub fn from_bytes(media_type: impl Into<String>, bytes: &[u8]) -> Self {
        use base64::Engine as _;
        Self {
            media_type: media_type.into(),
            base64: base64::engine::general_purpose::STANDARD
                .encode(bytes)
                .into(),
        }
    }

    /// The image as a `data:` URL (OpenAI's `image_url`).
    pub fn data_url(&self) -> String {
        format!("data:{};base64,{}", self.media_type, self.base64)
    }
}

/// The model's side of one round.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AssistantMessage {
    /// Text written to the reader, if any.
    pub text: Option<String>,
    /// Tools the model asked to call, in order.
    pub tool_calls: Vec<ToolCall>,
    /// Provider-specific state that must be sent back with this message on
    /// the next round (Anthropic thinking blocks, Gemini thought signatures).
    /// Opaque to everyone but the provider that produced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_state: Option<serde_json::Value>,
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The id the result must answer (generated where the wire has none).
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments as JSON text, exactly as the model wrote them: they may
    /// be malformed, and the agent loop reports that back to the model.
    pub arguments: String,
}

/// The result of one tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    /// The id of the call it answers.
    pub call_id: String,
    /// The tool's name (Gemini matches results by name).
    pub name: String,
    /// The result, usually JSON text.
    pub content: String,
    /// Whether the call failed (unknown tool, bad arguments, tool error).
    pub is_error: bool,
}

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// It finished its answer.
    EndTurn,
    /// It wants tool results.
    ToolUse,
    /// It hit the output token limit.
    MaxTokens,
    /// Anything else the provider reported (content filter, ...).
    Other,
}

/// A provider's answer to one [`CompletionRequest`].
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The model's message.
    pub message: AssistantMessage,
    /// Tokens this call used.
    pub usage: Usage,
    /// Why it stopped.
    pub stop: StopReason,
    /// What the answer's rate-limit headers said (empty where there were
    /// none, or no HTTP).
    pub quota: Quota,
}

/// A language-model API.
#[async_trait::async_trait]
pub trait Provider: Send + Sync + std::fmt::Debug {
    /// The name the config gives this provider (`openai`, `anthropic`, ...).
    fn name(&self) -> &str;

    /// Makes one model call. No retries here: see [`retry`].
    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, ProviderError>;
}

#[cfg(test)]
mod image_tests {
    use super::*;
    use serde_json::json;

    fn request() -> CompletionRequest {
        CompletionRequest {
            model: "m".into(),
            system: String::new(),
            messages: vec![Message::User {
                text: "what is this?".into(),
                images: vec![Image::from_bytes("image/png", b"png-bytes")],
            }],
            tools: Vec::new(),
            tool_choice: ToolChoice::Auto,
            effort: Effort::Off,
            max_output_tokens: None,
            cache_key: None,
        }
    }

    #[test]
    fn an_image_goes_out_in_each_wire_format() {
        let data = "cG5nLWJ5dGVz";
        let openai = openai::OpenAiProvider::request_body(&request());
        assert_eq!(
            openai["messages"][0]["content"],
            json!([
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{data}")}}
            ])
        );
        let anthropic = anthropic::AnthropicProvider::request_body(&request());
        let blocks = &anthropic["messages"][0]["content"];
        assert_eq!(
            blocks[0],
            json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}})
        );
        assert_eq!(blocks[1]["text"], "what is this?");
        let gemini = gemini::GeminiProvider::request_body(&request());
        assert_eq!(
            gemini["contents"][0]["parts"],
            json!([
                {"inline_data": {"mime_type": "image/png", "data": data}},
                {"text": "what is this?"}
            ])
        );
        // A message without images keeps the plain form.
        let mut plain = request();
        plain.messages = vec![Message::user("hi")];
        let openai = openai::OpenAiProvider::request_body(&plain);
        assert_eq!(openai["messages"][0]["content"], "hi");
    }
}
