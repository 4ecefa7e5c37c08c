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
//!
//! Its parts: `seen.rs` (a request as the tests read it), `serve.rs` (the
//! one handler: counting, the script, delays and gates, chunked bodies and
//! errors), one module per wire format (`openai.rs`, `anthropic.rs`,
//! `gemini.rs`: reading its requests, writing its answers), and
//! `prompt_cache.rs` (usage under each provider's caching rules).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use serde_json::Value;

mod anthropic;
mod gemini;
mod openai;
pub mod prompt_cache;
mod seen;
mod serve;

use prompt_cache::PromptCache;
pub use seen::{SeenImage, SeenMessage, SeenRequest};

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
        let router = Router::new()
            .fallback(serve::answer)
            .with_state(shared.clone());
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
