//! A request as the tests read it, whatever its wire: [`SeenRequest`] with
//! its [`SeenMessage`]s and [`SeenImage`]s, and the JSON helpers the wire
//! modules read requests with.

use serde_json::{Value, json};

/// One message of a request, provider-neutral.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenMessage {
    /// `"user"`, `"assistant"` or `"tool"` (a tool result).
    pub role: String,
    /// The text (for a tool result: its content; Gemini's `{"result": ..}`
    /// and `{"error": ..}` wrappers are taken off).
    pub text: String,
    /// The assistant's tool calls: (name, arguments; a JSON string value
    /// when the arguments were not valid JSON).
    pub tool_calls: Vec<(String, Value)>,
    /// For tool results: the name of the tool they answer.
    pub tool_name: Option<String>,
    /// The images it carries, decoded from the wire's own form (OpenAI
    /// `image_url` data URLs, Anthropic `image` blocks, Gemini
    /// `inline_data` parts).
    pub images: Vec<SeenImage>,
}

/// An image part of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenImage {
    /// Its MIME type as sent.
    pub media_type: String,
    /// Its bytes (empty when the base64 did not decode).
    pub bytes: Vec<u8>,
}

/// One request the fake received, provider-neutral, with the raw body.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// The request path (`/v1/chat/completions`, ...).
    pub path: String,
    /// The model asked for (from the body, or the path for Gemini).
    pub model: String,
    /// The system prompt.
    pub system: String,
    /// The names of the tools offered.
    pub tool_names: Vec<String>,
    /// The conversation, oldest first (the system prompt not included).
    pub messages: Vec<SeenMessage>,
    /// The JSON body as sent.
    pub raw: Value,
    /// The auth header value seen: `authorization` (OpenAI), `x-api-key`
    /// (Anthropic), `x-goog-api-key` (Gemini).
    pub auth: Option<String>,
}

impl SeenRequest {
    /// The text of the last user message.
    pub fn last_user_text(&self) -> Option<&str> {
        self.messages
            .iter()
            .rev()
            .find(|message| message.role == "user")
            .map(|message| message.text.as_str())
    }

    /// All tool-result messages, in order.
    pub fn tool_results(&self) -> Vec<&SeenMessage> {
        self.messages
            .iter()
            .filter(|message| message.role == "tool")
            .collect()
    }

    /// Whether a tool of this name was offered.
    pub fn has_tool(&self, name: &str) -> bool {
        self.tool_names.iter().any(|tool| tool == name)
    }

    /// Every worker result the `await_workers` calls in this request
    /// returned (`{"finished": [..], "still_running": [..]}` each), in
    /// order, each with its call's `still_running` copied in.
    pub fn awaited(&self) -> Vec<Value> {
        self.tool_results()
            .into_iter()
            .filter(|m| m.tool_name.as_deref() == Some("await_workers"))
            .filter_map(|m| serde_json::from_str::<Value>(&m.text).ok())
            .flat_map(|call| {
                let still = call["still_running"].clone();
                let finished = call["finished"].as_array().cloned().unwrap_or_default();
                finished.into_iter().map(move |mut worker| {
                    worker["still_running"] = still.clone();
                    worker
                })
            })
            .collect()
    }

    /// Whether the request forbids calling the tools it offers, in its
    /// wire's words: OpenAI `"tool_choice": "none"`, Anthropic
    /// `{"type": "none"}`, Gemini function calling mode `NONE`.
    pub fn tools_forbidden(&self) -> bool {
        self.raw.get("tool_choice") == Some(&json!("none"))
            || self.raw.pointer("/tool_choice/type") == Some(&json!("none"))
            || self.raw.pointer("/toolConfig/functionCallingConfig/mode") == Some(&json!("NONE"))
    }

    /// The `enum` of an offered tool's argument, by tool and argument name.
    pub fn argument_enum(&self, tool: &str, argument: &str) -> Option<Vec<String>> {
        let tools = self.raw.get("tools")?.as_array()?;
        // OpenAI: {"function": {..}}; Anthropic: the tool itself; Gemini:
        // {"functionDeclarations": [..]}.
        let schemas = tools.iter().flat_map(|tool| {
            tool.get("functionDeclarations")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_else(|| vec![tool.get("function").unwrap_or(tool).clone()])
        });
        let schema = schemas.into_iter().find(|schema| schema["name"] == tool)?;
        let parameters = ["parameters", "input_schema", "parametersJsonSchema"]
            .iter()
            .find_map(|key| schema.get(*key))?;
        let values = parameters
            .pointer(&format!("/properties/{argument}/enum"))?
            .as_array()?;
        Some(
            values
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        )
    }
}

pub(super) fn seen_image(media_type: String, base64_data: &str) -> SeenImage {
    use base64::Engine as _;
    SeenImage {
        media_type,
        bytes: base64::engine::general_purpose::STANDARD
            .decode(base64_data)
            .unwrap_or_default(),
    }
}

/// Tool-call arguments as a JSON value; a string value when not valid JSON.
pub(super) fn arguments_value(arguments: &str) -> Value {
    serde_json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.to_owned()))
}

/// Text from a string, or from an array of `{"text": ..}` blocks/parts.
pub(super) fn text_of(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|block| block.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

pub(super) fn str_at(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

pub(super) fn array_at<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

pub(super) fn message(role: &str, text: String) -> SeenMessage {
    SeenMessage {
        role: role.to_owned(),
        text,
        tool_calls: Vec::new(),
        tool_name: None,
        images: Vec::new(),
    }
}
