//! A scripted fake model server speaking the real wire formats: OpenAI Chat
//! Completions, Anthropic Messages and Gemini generateContent.
//!
//! [`FakeLlm::start`] binds `127.0.0.1:0` and answers every request with
//! what the test's script returns for it. Each request is parsed into a
//! provider-neutral [`SeenRequest`] (and kept for [`FakeLlm::requests`]); each
//! [`FakeReply`] is rendered in the wire format, with plausible usage numbers
//! (input = messages × 10, output = text length / 4 + 1). Each answer also
//! reports prompt-cache tokens, as each wire does: on OpenAI and Gemini the
//! messages before the last one count as cached (10 each); on Anthropic
//! those before the last message with a `cache_control` breakpoint are read
//! from the cache, that message is written to it (10 each), and none when the
//! request has no breakpoint in its messages. With
//! [`FakeLlm::model_prompt_caching`] the usage follows the request instead
//! (bytes / 4, and each provider's caching rules: `prompt_cache.rs`). The
//! server stops when the `FakeLlm` is dropped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};

#[path = "prompt_cache.rs"]
pub mod prompt_cache;
use prompt_cache::{Counted, PromptCache, Rules};

/// Which wire format the fake speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// OpenAI Chat Completions at `/v1/chat/completions`.
    OpenAi,
    /// Anthropic Messages at `/v1/messages`.
    Anthropic,
    /// Gemini at `/v1beta/models/{model}:generateContent`.
    Gemini,
}

/// What the fake answers to one request.
#[derive(Debug, Clone)]
pub enum FakeReply {
    /// A text answer that ends the turn.
    Text(String),
    /// Tool calls: (name, arguments object), in order.
    ToolCalls(Vec<(String, Value)>),
    /// One tool call whose arguments may be malformed JSON. OpenAI sends them
    /// verbatim; the other wires need an object, so they send the arguments
    /// parsed when they are a JSON object and `{}` otherwise.
    RawToolCall { name: String, arguments: String },
    /// An HTTP error: status, JSON body, and a `Retry-After` header (seconds)
    /// when given.
    Error {
        status: u16,
        body: Value,
        retry_after: Option<u64>,
    },
    /// The inner reply after sleeping (tokio time) this long.
    Delayed(Duration, Box<FakeReply>),
    /// The inner reply once the gate is open (at once if it already is).
    After(Gate, Box<FakeReply>),
    /// The inner reply (its delays ignored) without a Content-Length, its
    /// body in chunks: one byte, then up to 1 KiB each. With `stall`, the
    /// headers and the first byte go out, then nothing for that long.
    Chunked {
        stall: Option<Duration>,
        reply: Box<FakeReply>,
    },
    /// The inner reply with these headers added (rate-limit headers, say).
    Headers(Vec<(&'static str, String)>, Box<FakeReply>),
}

/// A gate replies can wait on ([`FakeReply::After`]); the test (or its
/// script, on seeing some request) opens it. Clones share the gate.
#[derive(Debug, Clone)]
pub struct Gate {
    open: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            open: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens the gate: every reply waiting on it goes ahead.
    pub fn open(&self) {
        self.open.send_replace(true);
    }

    async fn wait(&self) {
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|open| *open).await;
    }
}

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

fn seen_image(media_type: String, base64_data: &str) -> SeenImage {
    use base64::Engine as _;
    SeenImage {
        media_type,
        bytes: base64::engine::general_purpose::STANDARD
            .decode(base64_data)
            .unwrap_or_default(),
    }
}

/// The images in an OpenAI message's `content` parts.
fn openai_images(content: Option<&Value>) -> Vec<SeenImage> {
    let parts = content
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    parts
        .iter()
        .filter(|part| part.get("type").and_then(Value::as_str) == Some("image_url"))
        .filter_map(|part| part.pointer("/image_url/url").and_then(Value::as_str))
        .filter_map(|url| url.strip_prefix("data:"))
        .filter_map(|rest| rest.split_once(";base64,"))
        .map(|(media_type, data)| seen_image(media_type.to_owned(), data))
        .collect()
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

type Script = dyn Fn(&SeenRequest) -> FakeReply + Send + Sync;

struct Shared {
    wire: Wire,
    script: Box<Script>,
    requests: Mutex<Vec<SeenRequest>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Requests answered at once beyond which a request gets a 429
    /// (`usize::MAX`: no limit); see [`FakeLlm::limit_concurrency`].
    capacity: AtomicUsize,
    /// Requests being answered (not refused) now, and at most.
    served: AtomicUsize,
    max_served: AtomicUsize,
    /// Requests refused for being over `capacity`.
    refused: AtomicUsize,
    /// With [`FakeLlm::model_prompt_caching`]: usage from the request's
    /// bytes and a model of the provider's prompt cache.
    prompt_cache: Mutex<Option<PromptCache>>,
}

/// A running fake model server; stops when dropped.
pub struct FakeLlm {
    shared: Arc<Shared>,
    address: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeLlm {
    /// Starts a fake speaking `wire` that answers each request with
    /// `script(&request)`.
    pub async fn start(
        wire: Wire,
        script: impl Fn(&SeenRequest) -> FakeReply + Send + Sync + 'static,
    ) -> FakeLlm {
        let shared = Arc::new(Shared {
            wire,
            script: Box::new(script),
            requests: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            capacity: AtomicUsize::new(usize::MAX),
            served: AtomicUsize::new(0),
            max_served: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            prompt_cache: Mutex::new(None),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|error| panic!("fake LLM cannot bind: {error}"));
        let address = listener
            .local_addr()
            .unwrap_or_else(|error| panic!("fake LLM has no address: {error}"));
        let router = Router::new().fallback(answer).with_state(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                eprintln!("fake LLM stopped: {error}");
            }
        });
        FakeLlm {
            shared,
            address,
            server,
        }
    }

    /// The base URL to give the provider: `http://127.0.0.1:PORT/v1` for
    /// OpenAI, `http://127.0.0.1:PORT` for the others.
    pub fn base_url(&self) -> String {
        match self.shared.wire {
            Wire::OpenAi => format!("http://{}/v1", self.address),
            Wire::Anthropic | Wire::Gemini => format!("http://{}", self.address),
        }
    }

    /// Every request received, in arrival order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        lock(&self.shared.requests).clone()
    }

    /// The most requests that were being answered at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// From now on, a request that arrives while `capacity` others are
    /// being answered gets a 429 at once (a rate-limit error body, no
    /// `Retry-After`), is not kept in [`FakeLlm::requests`] and never
    /// reaches the script. `usize::MAX` lifts the limit.
    pub fn limit_concurrency(&self, capacity: usize) {
        self.shared.capacity.store(capacity, Ordering::SeqCst);
    }

    /// From now on, usage follows the request as a real provider would
    /// report it: input tokens are the prompt's bytes / 4, and cached ones
    /// what this fake has seen before under the wire's caching rules
    /// (`prompt_cache.rs`); `ignore_breakpoints` makes Anthropic requests
    /// count as if they had no `cache_control`. Starts with an empty cache.
    pub fn model_prompt_caching(&self, ignore_breakpoints: bool) {
        *lock(&self.shared.prompt_cache) = Some(PromptCache::new(ignore_breakpoints));
    }

    /// Requests refused for being over the concurrency limit.
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// The most requests answered (not refused) at the same time.
    pub fn max_served(&self) -> usize {
        self.shared.max_served.load(Ordering::SeqCst)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Counts a request as in flight for as long as it lives.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts a request as being answered for as long as it lives; `None`
/// (and a refusal counted) when the concurrency limit is reached.
struct Served<'a>(&'a Shared);

impl<'a> Served<'a> {
    fn enter(shared: &'a Shared) -> Option<Self> {
        let capacity = shared.capacity.load(Ordering::SeqCst);
        let taken = shared
            .served
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |served| {
                (served < capacity).then_some(served + 1)
            });
        match taken {
            Ok(before) => {
                shared.max_served.fetch_max(before + 1, Ordering::SeqCst);
                Some(Served(shared))
            }
            Err(_) => {
                shared.refused.fetch_add(1, Ordering::SeqCst);
                None
            }
        }
    }
}

impl Drop for Served<'_> {
    fn drop(&mut self) {
        self.0.served.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _in_flight = InFlight::enter(&shared);
    let Some(_served) = Served::enter(&shared) else {
        let body = json!({"type": "error", "error": {"type": "rate_limit_error", "message": "fake LLM: too many requests at once"}});
        return (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    };
    let raw: Value = match serde_json::from_slice(&body) {
        Ok(raw) => raw,
        Err(error) => {
            let body =
                json!({"error": {"message": format!("fake LLM: body is not JSON: {error}")}});
            return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
        }
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let path = uri.path().to_owned();
    let seen = match shared.wire {
        Wire::OpenAi => parse_openai(path, raw, header("authorization")),
        Wire::Anthropic => parse_anthropic(path, raw, header("x-api-key")),
        Wire::Gemini => parse_gemini(path, raw, header("x-goog-api-key")),
    };
    let sequence = {
        let mut requests = lock(&shared.requests);
        requests.push(seen.clone());
        requests.len()
    };
    let counted = lock(&shared.prompt_cache).as_mut().map(|cache| {
        let rules = match shared.wire {
            Wire::OpenAi => Rules::OpenAi,
            Wire::Anthropic => Rules::Anthropic,
            Wire::Gemini => Rules::Gemini,
        };
        cache.count(rules, &seen.raw)
    });
    let mut reply = (shared.script)(&seen);
    let mut extra_headers = Vec::new();
    let mut response = loop {
        match reply {
            FakeReply::Headers(headers, inner) => {
                extra_headers.extend(headers);
                reply = *inner;
            }
            FakeReply::Delayed(delay, inner) => {
                tokio::time::sleep(delay).await;
                reply = *inner;
            }
            FakeReply::After(gate, inner) => {
                gate.wait().await;
                reply = *inner;
            }
            FakeReply::Chunked { stall, reply } => {
                break chunked(render(shared.wire, &seen, *reply, sequence, counted), stall).await;
            }
            ready => break render(shared.wire, &seen, ready, sequence, counted),
        }
    };
    for (name, value) in extra_headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// Tool-call arguments as a JSON value; a string value when not valid JSON.
fn arguments_value(arguments: &str) -> Value {
    serde_json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.to_owned()))
}

/// Text from a string, or from an array of `{"text": ..}` blocks/parts.
fn text_of(content: &Value) -> String {
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

fn str_at(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn array_at<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn message(role: &str, text: String) -> SeenMessage {
    SeenMessage {
        role: role.to_owned(),
        text,
        tool_calls: Vec::new(),
        tool_name: None,
        images: Vec::new(),
    }
}

fn parse_openai(path: String, raw: Value, auth: Option<String>) -> SeenRequest {
    let mut system = Vec::new();
    let mut messages = Vec::new();
    let mut call_names: HashMap<String, String> = HashMap::new();
    for wire in array_at(&raw, "messages") {
        let text = wire.get("content").map(text_of).unwrap_or_default();
        match wire.get("role").and_then(Value::as_str).unwrap_or_default() {
            "system" | "developer" => system.push(text),
            "assistant" => {
                let mut seen = message("assistant", text);
                for call in array_at(wire, "tool_calls") {
                    let function = call.get("function").cloned().unwrap_or_default();
                    let name = str_at(&function, "name");
                    call_names.insert(str_at(call, "id"), name.clone());
                    seen.tool_calls
                        .push((name, arguments_value(&str_at(&function, "arguments"))));
                }
                messages.push(seen);
            }
            "tool" => {
                let mut seen = message("tool", text);
                seen.tool_name = call_names.get(&str_at(wire, "tool_call_id")).cloned();
                messages.push(seen);
            }
            _ => {
                let mut seen = message("user", text);
                seen.images = openai_images(wire.get("content"));
                messages.push(seen);
            }
        }
    }
    let tool_names = array_at(&raw, "tools")
        .iter()
        .map(|tool| {
            tool.pointer("/function/name")
                .map(text_of)
                .unwrap_or_default()
        })
        .collect();
    SeenRequest {
        path,
        model: str_at(&raw, "model"),
        system: system.join("\n"),
        tool_names,
        messages,
        raw,
        auth,
    }
}

fn parse_anthropic(path: String, raw: Value, auth: Option<String>) -> SeenRequest {
    let mut messages = Vec::new();
    let mut call_names: HashMap<String, String> = HashMap::new();
    for wire in array_at(&raw, "messages") {
        let role = str_at(wire, "role");
        let content = wire.get("content").cloned().unwrap_or_default();
        let blocks = match content {
            Value::String(text) => vec![json!({"type": "text", "text": text})],
            Value::Array(blocks) => blocks,
            _ => Vec::new(),
        };
        let mut seen = message(
            if role == "assistant" {
                "assistant"
            } else {
                "user"
            },
            String::new(),
        );
        let mut has_text = false;
        for block in &blocks {
            match block
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
            {
                "text" => {
                    seen.text.push_str(&str_at(block, "text"));
                    has_text = true;
                }
                "tool_use" => {
                    let name = str_at(block, "name");
                    call_names.insert(str_at(block, "id"), name.clone());
                    let input = block.get("input").cloned().unwrap_or_default();
                    seen.tool_calls.push((name, input));
                }
                "image" => {
                    let source = block.get("source").cloned().unwrap_or_default();
                    if str_at(&source, "type") == "base64" {
                        seen.images.push(seen_image(
                            str_at(&source, "media_type"),
                            &str_at(&source, "data"),
                        ));
                    }
                }
                "tool_result" => {
                    let text = block.get("content").map(text_of).unwrap_or_default();
                    let mut result = message("tool", text);
                    result.tool_name = call_names.get(&str_at(block, "tool_use_id")).cloned();
                    messages.push(result);
                }
                _ => {}
            }
        }
        if seen.role == "assistant" || has_text {
            messages.push(seen);
        }
    }
    let tool_names = array_at(&raw, "tools")
        .iter()
        .map(|tool| str_at(tool, "name"))
        .collect();
    SeenRequest {
        path,
        model: str_at(&raw, "model"),
        system: raw.get("system").map(text_of).unwrap_or_default(),
        tool_names,
        messages,
        raw,
        auth,
    }
}

/// A Gemini `functionResponse.response` as text: the `result` or `error`
/// it wraps (a string as it is, anything else as JSON), else the object.
fn function_response_text(response: &Value) -> String {
    let inner = match response.as_object() {
        Some(object) if object.len() == 1 => object.get("result").or_else(|| object.get("error")),
        _ => None,
    };
    match inner.unwrap_or(response) {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn parse_gemini(path: String, raw: Value, auth: Option<String>) -> SeenRequest {
    let model = path
        .strip_prefix("/v1beta/models/")
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_default()
        .to_owned();
    let mut messages = Vec::new();
    for content in array_at(&raw, "contents") {
        let is_model = str_at(content, "role") == "model";
        let mut seen = message(if is_model { "assistant" } else { "user" }, String::new());
        let mut has_text = false;
        for part in array_at(content, "parts") {
            if let Some(text) = part.get("text").and_then(Value::as_str) {
                seen.text.push_str(text);
                has_text = true;
            } else if let Some(inline) = part.get("inline_data").or_else(|| part.get("inlineData"))
            {
                let media_type = inline
                    .get("mime_type")
                    .or_else(|| inline.get("mimeType"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                seen.images
                    .push(seen_image(media_type.to_owned(), &str_at(inline, "data")));
            } else if let Some(call) = part.get("functionCall") {
                let args = call.get("args").cloned().unwrap_or_else(|| json!({}));
                seen.tool_calls.push((str_at(call, "name"), args));
            } else if let Some(response) = part.get("functionResponse") {
                let text = response
                    .get("response")
                    .map(function_response_text)
                    .unwrap_or_default();
                let mut result = message("tool", text);
                result.tool_name = Some(str_at(response, "name"));
                messages.push(result);
            }
        }
        if is_model || has_text {
            messages.push(seen);
        }
    }
    let tool_names = array_at(&raw, "tools")
        .iter()
        .flat_map(|tool| array_at(tool, "functionDeclarations"))
        .map(|declaration| str_at(declaration, "name"))
        .collect();
    let system = raw
        .pointer("/systemInstruction/parts")
        .map(text_of)
        .unwrap_or_default();
    SeenRequest {
        path,
        model,
        system,
        tool_names,
        messages,
        raw,
        auth,
    }
}

/// A reply with the delay already taken off.
enum Answer {
    Text(String),
    Calls(Vec<(String, String)>),
}

fn render(
    wire: Wire,
    seen: &SeenRequest,
    reply: FakeReply,
    sequence: usize,
    counted: Option<Counted>,
) -> Response {
    let answer = match reply {
        FakeReply::Text(text) => Answer::Text(text),
        FakeReply::ToolCalls(calls) => Answer::Calls(
            calls
                .into_iter()
                .map(|(name, arguments)| (name, arguments.to_string()))
                .collect(),
        ),
        FakeReply::RawToolCall { name, arguments } => Answer::Calls(vec![(name, arguments)]),
        FakeReply::Error {
            status,
            body,
            retry_after,
        } => return error_response(status, body, retry_after),
        FakeReply::Delayed(_, inner)
        | FakeReply::After(_, inner)
        | FakeReply::Headers(_, inner)
        | FakeReply::Chunked { reply: inner, .. } => {
            return render(wire, seen, *inner, sequence, counted);
        }
    };
    let counted = counted.unwrap_or_else(|| {
        let input = seen.messages.len() * 10;
        let (cached, written) = match wire {
            Wire::Anthropic => anthropic_cache(seen, input),
            Wire::OpenAi | Wire::Gemini => (cached_prefix(seen), 0),
        };
        Counted {
            input,
            cached,
            written,
        }
    });
    let output_tokens = match &answer {
        Answer::Text(text) => text.len() / 4 + 1,
        Answer::Calls(calls) => calls.iter().map(|(_, args)| args.len()).sum::<usize>() / 4 + 1,
    };
    let body = match wire {
        Wire::OpenAi => openai_body(seen, answer, sequence, counted, output_tokens),
        Wire::Anthropic => anthropic_body(seen, answer, sequence, counted, output_tokens),
        Wire::Gemini => gemini_body(seen, answer, sequence, counted, output_tokens),
    };
    axum::Json(body).into_response()
}

/// `response` with its body re-sent in chunks (see [`FakeReply::Chunked`]).
async fn chunked(response: Response, stall: Option<Duration>) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let (first, rest) = bytes.split_at(bytes.len().min(1));
    let pieces: Vec<Bytes> = std::iter::once(first)
        .chain(rest.chunks(1024))
        .map(Bytes::copy_from_slice)
        .collect();
    let stream = futures::stream::iter(pieces.into_iter().enumerate()).then(
        move |(index, piece)| async move {
            if index == 1
                && let Some(stall) = stall
            {
                tokio::time::sleep(stall).await;
            }
            Ok::<_, std::convert::Infallible>(piece)
        },
    );
    Response::from_parts(parts, axum::body::Body::from_stream(stream))
}

fn error_response(status: u16, body: Value, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from(seconds));
    }
    response
}

/// Arguments as a JSON object for wires that need one: `{}` when malformed.
fn arguments_object(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(object @ Value::Object(_)) => object,
        _ => json!({}),
    }
}

/// Tokens the fake says were read from the cache on OpenAI and Gemini: the
/// messages before the last one.
fn cached_prefix(seen: &SeenRequest) -> usize {
    seen.messages.len().saturating_sub(1) * 10
}

/// Anthropic cache tokens `(read, written)` out of `input`: the wire
/// messages before the last one with a breakpoint are read, that one is
/// written.
fn anthropic_cache(seen: &SeenRequest, input: usize) -> (usize, usize) {
    let last_marked = array_at(&seen.raw, "messages").iter().rposition(|message| {
        message
            .get("content")
            .and_then(Value::as_array)
            .is_some_and(|blocks| {
                blocks
                    .iter()
                    .any(|block| block.get("cache_control").is_some())
            })
    });
    match last_marked {
        None => (0, 0),
        Some(index) => {
            let read = (index * 10).min(input);
            (read, 10.min(input - read))
        }
    }
}

fn openai_body(
    seen: &SeenRequest,
    answer: Answer,
    sequence: usize,
    counted: Counted,
    output: usize,
) -> Value {
    let input = counted.input;
    let (message, finish_reason) = match answer {
        Answer::Text(text) => (json!({"role": "assistant", "content": text}), "stop"),
        Answer::Calls(calls) => {
            let tool_calls: Vec<Value> = calls
                .into_iter()
                .enumerate()
                .map(|(index, (name, arguments))| {
                    json!({
                        "id": format!("call_{sequence}_{index}"),
                        "type": "function",
                        "function": {"name": name, "arguments": arguments},
                    })
                })
                .collect();
            let message = json!({"role": "assistant", "content": null, "tool_calls": tool_calls});
            (message, "tool_calls")
        }
    };
    json!({
        "id": format!("chatcmpl-fake-{sequence}"),
        "object": "chat.completion",
        "created": 0,
        "model": seen.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": input,
            "completion_tokens": output,
            "total_tokens": input + output,
            "prompt_tokens_details": {"cached_tokens": counted.cached, "audio_tokens": 0},
        },
    })
}

fn anthropic_body(
    seen: &SeenRequest,
    answer: Answer,
    sequence: usize,
    counted: Counted,
    output: usize,
) -> Value {
    let input = counted.input;
    let (read, written) = (counted.cached, counted.written);
    let mut content = Vec::new();
    if seen.raw.pointer("/thinking/type").and_then(Value::as_str) == Some("enabled") {
        content.push(json!({
            "type": "thinking",
            "thinking": "fake thoughts",
            "signature": format!("fake-signature-{sequence}"),
        }));
    }
    let stop_reason = match answer {
        Answer::Text(text) => {
            content.push(json!({"type": "text", "text": text}));
            "end_turn"
        }
        Answer::Calls(calls) => {
            for (index, (name, arguments)) in calls.into_iter().enumerate() {
                content.push(json!({
                    "type": "tool_use",
                    "id": format!("toolu_{sequence}_{index}"),
                    "name": name,
                    "input": arguments_object(&arguments),
                }));
            }
            "tool_use"
        }
    };
    json!({
        "id": format!("msg_fake_{sequence}"),
        "type": "message",
        "role": "assistant",
        "model": seen.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": {
            "input_tokens": input - read - written,
            "cache_read_input_tokens": read,
            "cache_creation_input_tokens": written,
            "output_tokens": output,
        },
    })
}

fn gemini_body(
    seen: &SeenRequest,
    answer: Answer,
    sequence: usize,
    counted: Counted,
    output: usize,
) -> Value {
    let input = counted.input;
    let thinking = seen
        .raw
        .pointer("/generationConfig/thinkingConfig/thinkingBudget")
        .and_then(Value::as_u64)
        != Some(0);
    let parts: Vec<Value> = match answer {
        Answer::Text(text) => vec![json!({"text": text})],
        Answer::Calls(calls) => calls
            .into_iter()
            .enumerate()
            .map(|(index, (name, arguments))| {
                let mut part =
                    json!({"functionCall": {"name": name, "args": arguments_object(&arguments)}});
                if thinking {
                    part["thoughtSignature"] = json!(format!("fake-signature-{sequence}-{index}"));
                }
                part
            })
            .collect(),
    };
    json!({
        "candidates": [{
            "content": {"role": "model", "parts": parts},
            "finishReason": "STOP",
            "index": 0,
        }],
        "usageMetadata": {
            "promptTokenCount": input,
            "candidatesTokenCount": output,
            "totalTokenCount": input + output,
            "cachedContentTokenCount": counted.cached,
        },
        "modelVersion": seen.model,
    })
}
