//! A fake Discord speaking the real wire formats, for the real serenity
//! client pointed at it with its proxy setting.
//!
//! [`FakeDiscord::start`] binds two listeners on `127.0.0.1:0`: REST
//! (axum) under `/api/v10` — `/gateway`, `/gateway/bot`, `/users/@me`,
//! `/applications/@me`, create message, start thread from message, typing,
//! bulk-overwrite application commands (global and guild), interaction
//! callback, edit original response, follow-up — and a gateway websocket
//! that says HELLO, answers IDENTIFY with READY, RESUME with RESUMED and
//! heartbeats with ACKs, asks for a reconnect (op 7) when told, follows
//! READY with the guild's GUILD_CREATE when the bot asked for the GUILDS
//! intent ([`super::discord_guild`]), and dispatches the MESSAGE_CREATE,
//! INTERACTION_CREATE and CHANNEL_UPDATE events a test injects. Attachments of injected
//! messages are served at their `url` (`/attachments/...` on the REST
//! listener, as Discord's CDN would). Every REST call is recorded;
//! a test can make the next call of a route fail with a 429. A message
//! with files comes as multipart (`payload_json` and `files[n]`, matched
//! with the payload's `attachments`), and a channel can refuse files as
//! Discord does without the Attach Files permission. Starting a
//! thread in a thread or a DM channel is refused as Discord does. The
//! servers stop when the fake is dropped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::discord_guild;
use super::multipart::{self, Part};

/// The bot's user id at the fake.
pub const BOT_ID: u64 = 999;
/// The bot's application id at the fake.
pub const APPLICATION_ID: u64 = 888;
/// The bot's username.
pub const BOT_NAME: &str = "Baton";
/// The one guild of the tests.
pub const GUILD: u64 = 7000;
/// A text channel in it.
pub const CHANNEL: u64 = 7100;
/// A thread in that channel (Discord refuses threads in it).
pub const THREAD: u64 = 7200;

/// Discord's MANAGE_GUILD permission bit.
pub const MANAGE_GUILD: u64 = 1 << 5;

/// One REST call the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path under `/api/v10` (`/channels/7100/messages`).
    pub path: String,
    /// The JSON body (`Null` for none; a multipart form's `payload_json`).
    pub body: Value,
    /// A multipart form's `files[n]` parts, in order.
    pub files: Vec<Part>,
    /// The HTTP status answered.
    pub status: u16,
}

impl Call {
    /// Whether it succeeded.
    pub fn ok(&self) -> bool {
        self.status < 300
    }

    /// The message content it posted.
    pub fn content(&self) -> &str {
        self.body["content"].as_str().unwrap_or_default()
    }

    /// The message it references, if any.
    pub fn reference(&self) -> Option<u64> {
        self.body["message_reference"]["message_id"]
            .as_str()
            .and_then(|id| id.parse().ok())
    }

    /// The channel of a `/channels/{id}/...` call.
    pub fn channel(&self) -> Option<u64> {
        self.path
            .strip_prefix("/channels/")?
            .split('/')
            .next()?
            .parse()
            .ok()
    }

    /// Whether it created a message (`POST /channels/{id}/messages`).
    pub fn creates_message(&self) -> bool {
        self.method == "POST" && self.path.ends_with("/messages") && self.channel().is_some()
    }
}

#[derive(Default)]
struct FakeState {
    calls: Vec<Call>,
    /// Scripted 429s: route key (`POST /channels/{id}/messages`) to
    /// `retry_after` seconds.
    rate_limits: HashMap<String, VecDeque<f64>>,
    next_id: u64,
    /// Channels Discord would not start a thread in (threads, DMs).
    no_threads: HashSet<u64>,
    /// Channels where the bot may not attach files.
    no_files: HashSet<u64>,
    /// Gateway sessions that identified, to dispatch events to.
    sessions: Vec<mpsc::Sender<Value>>,
    seq: u64,
    last_dispatched: Value,
    /// How many IDENTIFYs the gateway answered.
    identified: usize,
    /// Every call is refused with a 401 (a wrong token).
    unauthorized: bool,
    /// How many RESUMEs the gateway answered.
    resumed: usize,
    /// Messages created, by (channel, nonce) where `enforce_nonce` was set:
    /// a repeat is answered with the first message, as Discord does.
    nonces: HashMap<(u64, String), Value>,
    /// Messages the fake created (after nonce deduplication).
    created: Vec<Value>,
    /// Channels whose next create is made but answered with a 500, as when
    /// the answer is lost on its way back.
    lose_answer: HashSet<u64>,
    /// Attachment bytes by URL path (`/attachments/...`).
    files: HashMap<String, Vec<u8>>,
    /// Attachment paths downloaded, in order.
    downloads: Vec<String>,
}

struct Shared {
    state: Mutex<FakeState>,
    /// Signalled on every call and every gateway change.
    changed: Notify,
    gateway_url: String,
}

/// A running fake Discord; stops when dropped.
pub struct FakeDiscord {
    shared: Arc<Shared>,
    address: SocketAddr,
    servers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeDiscord {
    fn drop(&mut self) {
        for server in &self.servers {
            server.abort();
        }
    }
}

impl FakeDiscord {
    /// Starts the fake.
    pub async fn start() -> FakeDiscord {
        let rest = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = rest.local_addr().unwrap();
        let shared = Arc::new(Shared {
            state: Mutex::new(FakeState {
                next_id: 1_000_000,
                no_threads: HashSet::from([THREAD]),
                ..FakeState::default()
            }),
            changed: Notify::new(),
            gateway_url: format!("ws://{}", gateway.local_addr().unwrap()),
        });
        let router = Router::new().fallback(answer).with_state(shared.clone());
        let rest_server = tokio::spawn(async move {
            let _ = axum::serve(rest, router).await;
        });
        let gateway_shared = shared.clone();
        let gateway_server = tokio::spawn(async move {
            while let Ok((stream, _)) = gateway.accept().await {
                tokio::spawn(session(stream, gateway_shared.clone()));
            }
        });
        FakeDiscord {
            shared,
            address,
            servers: vec![rest_server, gateway_server],
        }
    }

    /// The `api_url` to give the bot.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        lock(&self.shared)
    }

    /// Every REST call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// Messages successfully created in `channel`, in order.
    pub fn posted_in(&self, channel: u64) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.creates_message() && c.ok() && c.channel() == Some(channel))
            .collect()
    }

    /// Calls whose path starts with `prefix` (and method is `method`).
    pub fn calls_to(&self, method: &str, prefix: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method && c.path.starts_with(prefix))
            .collect()
    }

    /// The next call of `route` (`POST /channels/{id}/messages`) gets a
    /// 429 with `retry_after` seconds.
    pub fn rate_limit_next(&self, route: &str, retry_after: f64) {
        self.state()
            .rate_limits
            .entry(route.to_owned())
            .or_default()
            .push_back(retry_after);
    }

    /// Asks every connected bot to reconnect (op 7 RECONNECT), as Discord
    /// does before it moves a session.
    pub fn ask_reconnect(&self) {
        let state = self.state();
        for session in &state.sessions {
            let _ = session.try_send(json!({"op": 7, "d": null}));
        }
    }

    /// How many times a bot resumed its session.
    pub fn resumed(&self) -> usize {
        self.state().resumed
    }

    /// Creates the next message in `channel` but answers that create with
    /// a 500, as if the answer were lost: a client that retries without a
    /// nonce posts it twice.
    pub fn lose_next_create_answer(&self, channel: u64) {
        self.state().lose_answer.insert(channel);
    }

    /// The contents of the messages created in `channel` (a create Discord
    /// recognised by its nonce counts once).
    pub fn created_in(&self, channel: u64) -> Vec<String> {
        self.state()
            .created
            .iter()
            .filter(|m| m["channel_id"] == json!(channel.to_string()))
            .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Refuses every call from now on with a 401, as for a wrong token.
    pub fn refuse_token(&self) {
        self.state().unauthorized = true;
    }

    /// Makes `channel` one where the bot may not attach files: a message
    /// with files gets 403 Missing Permissions (50013).
    pub fn refuse_files_in(&self, channel: u64) {
        self.state().no_files.insert(channel);
    }

    /// Makes `channel` one Discord starts no threads in (a DM).
    pub fn refuse_threads_in(&self, channel: u64) {
        self.state().no_threads.insert(channel);
    }

    fn next_id(&self) -> u64 {
        next_id(&mut self.state())
    }

    /// How many times a bot identified on the gateway.
    pub fn identified(&self) -> usize {
        self.state().identified
    }

    /// Waits until the bot has identified on the gateway more than
    /// `before` times (it is ready).
    pub async fn wait_identified(&self, before: usize) {
        self.wait_until("the bot to identify on the gateway", |fake| {
            fake.identified() > before
        })
        .await;
    }

    /// A message from `user` in guild channel `channel`; `extra` is merged
    /// in (mentions, message_reference, ...). Returns its id.
    pub fn guild_message(&self, channel: u64, user: u64, content: &str, extra: Value) -> u64 {
        let id = self.next_id();
        let mut message = message_json(id, channel, user, content);
        message["guild_id"] = json!(GUILD.to_string());
        merge(&mut message, extra);
        self.dispatch("MESSAGE_CREATE", message);
        id
    }

    /// A message that mentions the bot, in guild channel `channel`.
    pub fn mention(&self, channel: u64, user: u64, text: &str) -> u64 {
        let content = format!("<@{BOT_ID}> {text}");
        self.guild_message(
            channel,
            user,
            &content,
            json!({"mentions": [user_json(BOT_ID, true)]}),
        )
    }

    /// A message from `user` in DM channel `channel`.
    pub fn dm(&self, channel: u64, user: u64, content: &str) -> u64 {
        self.refuse_threads_in(channel);
        let id = self.next_id();
        self.dispatch("MESSAGE_CREATE", message_json(id, channel, user, content));
        id
    }

    /// A DM from `user` in `channel` with one attachment (`name`, of
    /// `content_type`, holding `bytes`), served by the fake at its URL.
    /// Returns the message id.
    pub fn dm_with_file(
        &self,
        channel: u64,
        user: u64,
        content: &str,
        (name, content_type, bytes): (&str, &str, &[u8]),
    ) -> u64 {
        self.refuse_threads_in(channel);
        let id = self.next_id();
        let file_id = self.next_id();
        let path = format!("/attachments/{channel}/{file_id}/{name}");
        self.state().files.insert(path.clone(), bytes.to_vec());
        let url = format!("{}{path}", self.api_url());
        let mut message = message_json(id, channel, user, content);
        message["attachments"] = json!([{
            "id": file_id.to_string(), "filename": name, "size": bytes.len(),
            "url": url, "proxy_url": url, "content_type": content_type,
        }]);
        self.dispatch("MESSAGE_CREATE", message);
        id
    }

    /// The attachment paths downloaded so far.
    pub fn downloads(&self) -> Vec<String> {
        self.state().downloads.clone()
    }

    /// Renames guild channel `channel` (CHANNEL_UPDATE).
    pub fn rename_channel(&self, channel: u64, name: &str) {
        self.dispatch("CHANNEL_UPDATE", discord_guild::text_channel(channel, name));
    }

    /// Dispatches the same MESSAGE_CREATE again (a gateway redelivery).
    pub fn redispatch_last(&self) {
        let last = self.last_dispatched();
        self.dispatch("MESSAGE_CREATE", last);
    }

    /// `/name option:value` from `user` in guild channel `channel`, with
    /// the member's `permissions` bits. Returns the interaction id.
    pub fn slash(
        &self,
        channel: u64,
        user: u64,
        name: &str,
        option: Option<(&str, &str)>,
        permissions: u64,
    ) -> u64 {
        let id = self.next_id();
        let options: Vec<Value> = option
            .map(|(name, value)| json!({"name": name, "type": 3, "value": value}))
            .into_iter()
            .collect();
        let interaction = json!({
            "id": id.to_string(),
            "application_id": APPLICATION_ID.to_string(),
            "type": 2,
            "data": {"id": "1", "name": name, "type": 1, "options": options},
            "guild_id": GUILD.to_string(),
            "channel_id": channel.to_string(),
            "member": {
                "user": user_json(user, false),
                "roles": [], "joined_at": "2026-01-01T00:00:00.000Z",
                "deaf": false, "mute": false, "flags": 0,
                "permissions": permissions.to_string(),
            },
            "token": format!("interaction-token-{id}"),
            "version": 1,
            "app_permissions": "0",
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {},
            "context": 0,
            // serenity 0.12.5 cannot read an interaction without it.
            "attachment_size_limit": 8_388_608,
        });
        self.dispatch("INTERACTION_CREATE", interaction);
        id
    }

    fn last_dispatched(&self) -> Value {
        self.state().last_dispatched.clone()
    }

    /// Sends a dispatch event to every identified session.
    fn dispatch(&self, event: &str, data: Value) {
        let mut state = self.state();
        state.seq += 1;
        let payload = json!({"op": 0, "t": event, "s": state.seq, "d": data});
        state.last_dispatched = data;
        for session in &state.sessions {
            let _ = session.try_send(payload.clone());
        }
    }

    /// Waits (up to 20 s, then panics) until `done` holds.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&FakeDiscord) -> bool) {
        let waiting = async {
            loop {
                let notified = self.shared.changed.notified();
                if done(self) {
                    return;
                }
                let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(20), waiting)
            .await
            .is_err()
        {
            let calls: Vec<String> = self
                .calls()
                .iter()
                .map(|c| format!("{} {} {} {}", c.status, c.method, c.path, c.body))
                .collect();
            panic!("timed out waiting for {what}; calls: {calls:#?}");
        }
    }

    /// Waits until `n` messages were created in `channel`.
    pub async fn wait_for_posts(&self, channel: u64, n: usize) -> Vec<Call> {
        self.wait_until(&format!("{n} messages in {channel}"), |fake| {
            fake.posted_in(channel).len() >= n
        })
        .await;
        self.posted_in(channel)
    }
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, FakeState> {
    shared
        .state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn next_id(state: &mut FakeState) -> u64 {
    state.next_id += 1;
    state.next_id
}

fn merge(target: &mut Value, extra: Value) {
    if let (Some(target), Value::Object(extra)) = (target.as_object_mut(), extra) {
        target.extend(extra);
    }
}

/// A user; 42 is Ada.
pub fn user_json(user: u64, bot: bool) -> Value {
    let name = if user == 42 {
        "ada".to_owned()
    } else {
        format!("user{user}")
    };
    json!({"id": user.to_string(), "username": name, "discriminator": "0",
           "global_name": null, "avatar": null, "bot": bot})
}

/// A MESSAGE_CREATE payload.
pub fn message_json(id: u64, channel: u64, user: u64, content: &str) -> Value {
    json!({
        "id": id.to_string(),
        "channel_id": channel.to_string(),
        "author": user_json(user, false),
        "content": content,
        "timestamp": "2026-01-01T00:00:00.000Z",
        "edited_timestamp": null, "tts": false, "mention_everyone": false,
        "mentions": [], "mention_roles": [], "attachments": [], "embeds": [],
        "pinned": false, "type": 0,
    })
}

/// Answers one REST call and records it.
async fn answer(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if uri.path().starts_with("/attachments/") {
        let mut state = lock(&shared);
        state.downloads.push(uri.path().to_owned());
        let file = state.files.get(uri.path()).cloned();
        drop(state);
        shared.changed.notify_waiters();
        return match file {
            Some(bytes) => (StatusCode::OK, bytes).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        };
    }
    let path = uri
        .path()
        .strip_prefix("/api/v10")
        .unwrap_or(uri.path())
        .to_owned();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (body, files, form_error) = match multipart::parts(content_type, body.clone()).await {
        Some(Ok(parts)) => {
            let (payload, files) = payload_and_files(parts);
            let error = attachments_error(&payload, &files);
            (payload, files, error)
        }
        Some(Err(error)) => (Value::Null, Vec::new(), Some(error)),
        None => (
            serde_json::from_slice(&body).unwrap_or(Value::Null),
            Vec::new(),
            None,
        ),
    };
    let (status, answer) = match form_error {
        Some(error) => (
            StatusCode::BAD_REQUEST,
            json!({"message": format!("Invalid Form Body: {error}"), "code": 50035}),
        ),
        None => route(&shared, method.as_str(), &path, &body, &files),
    };
    lock(&shared).calls.push(Call {
        method: method.to_string(),
        path,
        body,
        files,
        status: status.as_u16(),
    });
    shared.changed.notify_waiters();
    match answer {
        Value::Null => status.into_response(),
        answer => (status, axum::Json(answer)).into_response(),
    }
}

/// A message form's `payload_json` (parsed) and its `files[n]` parts.
fn payload_and_files(parts: Vec<Part>) -> (Value, Vec<Part>) {
    let mut payload = Value::Null;
    let mut files = Vec::new();
    for part in parts {
        if part.name == "payload_json" {
            payload = serde_json::from_slice(&part.bytes).unwrap_or(Value::Null);
        } else if part.name.starts_with("files[") {
            files.push(part);
        }
    }
    (payload, files)
}

/// What Discord would say is wrong with a message form: a payload that is
/// not JSON, a file without a name, or an `attachments` entry with no
/// `files[id]` part.
fn attachments_error(payload: &Value, files: &[Part]) -> Option<String> {
    if !payload.is_object() {
        return Some("payload_json is not a JSON object".into());
    }
    if files.iter().any(|f| f.file_name.is_none()) {
        return Some("a file has no file name".into());
    }
    for attachment in payload["attachments"].as_array().into_iter().flatten() {
        let field = format!("files[{}]", attachment["id"]);
        if !files.iter().any(|f| f.name == field) {
            return Some(format!(
                "attachments names {field}, which is not in the form"
            ));
        }
    }
    None
}

/// What Discord would answer.
fn route(
    shared: &Shared,
    method: &str,
    path: &str,
    body: &Value,
    files: &[Part],
) -> (StatusCode, Value) {
    let mut state = lock(shared);
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let key = match parts.as_slice() {
        ["channels", _, rest @ ..] => format!("{method} /channels/{{id}}/{}", rest.join("/")),
        _ => format!("{method} {path}"),
    };
    if state.unauthorized {
        return (
            StatusCode::UNAUTHORIZED,
            json!({"message": "401: Unauthorized", "code": 0}),
        );
    }
    if let Some(retry_after) = state
        .rate_limits
        .get_mut(&key)
        .and_then(VecDeque::pop_front)
    {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            json!({"message": "You are being rate limited.", "retry_after": retry_after, "global": false}),
        );
    }
    match (method, parts.as_slice()) {
        ("GET", ["gateway"]) => (StatusCode::OK, json!({"url": shared.gateway_url})),
        ("GET", ["gateway", "bot"]) => (
            StatusCode::OK,
            json!({"url": shared.gateway_url, "shards": 1, "session_start_limit":
                {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}}),
        ),
        ("GET", ["users", "@me"]) => (StatusCode::OK, user_json(BOT_ID, true)),
        ("GET", ["applications", "@me"]) => (
            StatusCode::OK,
            json!({"id": APPLICATION_ID.to_string(), "name": BOT_NAME, "flags": 0}),
        ),
        ("POST", ["channels", channel, "messages"]) => {
            let channel: u64 = channel.parse().unwrap_or_default();
            if !files.is_empty() && state.no_files.contains(&channel) {
                return (
                    StatusCode::FORBIDDEN,
                    json!({"message": "Missing Permissions", "code": 50013}),
                );
            }
            let nonce = body["nonce"]
                .as_str()
                .filter(|_| body["enforce_nonce"] == json!(true))
                .map(|nonce| (channel, nonce.to_owned()));
            if let Some(earlier) = nonce.as_ref().and_then(|n| state.nonces.get(n)) {
                return (StatusCode::OK, earlier.clone());
            }
            let id = next_id(&mut state);
            let mut message =
                message_json(id, channel, BOT_ID, body["content"].as_str().unwrap_or(""));
            message["author"] = user_json(BOT_ID, true);
            message["attachments"] = files
                .iter()
                .map(|file| {
                    let attachment = next_id(&mut state);
                    json!({"id": attachment.to_string(), "filename": file.file_name,
                           "size": file.bytes.len()})
                })
                .collect();
            if let Some(nonce) = nonce {
                state.nonces.insert(nonce, message.clone());
            }
            state.created.push(message.clone());
            if state.lose_answer.remove(&channel) {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"message": "500: Internal Server Error", "code": 0}),
                );
            }
            (StatusCode::OK, message)
        }
        ("POST", ["channels", channel, "messages", message, "threads"]) => {
            let channel: u64 = channel.parse().unwrap_or_default();
            if state.no_threads.contains(&channel) {
                return (
                    StatusCode::BAD_REQUEST,
                    json!({"message": "Cannot execute action on this channel type", "code": 50024}),
                );
            }
            let thread = next_id(&mut state);
            state.no_threads.insert(thread);
            (
                StatusCode::CREATED,
                json!({"id": thread.to_string(), "type": 11, "parent_id": channel.to_string(),
                       "guild_id": GUILD.to_string(), "name": body["name"], "message_id": message}),
            )
        }
        ("POST", ["channels", _, "typing"]) => (StatusCode::NO_CONTENT, Value::Null),
        ("PUT", ["applications", _, "commands"])
        | ("PUT", ["applications", _, "guilds", _, "commands"]) => (StatusCode::OK, body.clone()),
        ("POST", ["interactions", _, _, "callback"]) => (StatusCode::NO_CONTENT, Value::Null),
        ("PATCH", ["webhooks", _, _, "messages", "@original"]) | ("POST", ["webhooks", _, _]) => {
            let id = next_id(&mut state);
            (
                StatusCode::OK,
                message_json(id, CHANNEL, BOT_ID, body["content"].as_str().unwrap_or("")),
            )
        }
        _ => (
            StatusCode::NOT_FOUND,
            json!({"message": "404: Not Found", "code": 0}),
        ),
    }
}

/// One gateway connection: HELLO, then READY on IDENTIFY, RESUMED on
/// RESUME, ACK on heartbeats, and the events the test dispatches.
async fn session(stream: tokio::net::TcpStream, shared: Arc<Shared>) {
    let Ok(socket) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (mut sink, mut incoming) = socket.split();
    let hello = json!({"op": 10, "d": {"heartbeat_interval": 41_250}});
    if sink.send(WsMessage::text(hello.to_string())).await.is_err() {
        return;
    }
    let (events, mut outgoing) = mpsc::channel::<Value>(64);
    loop {
        tokio::select! {
            frame = incoming.next() => {
                let Some(Ok(frame)) = frame else { break };
                let Ok(text) = frame.to_text() else { continue };
                let Ok(payload) = serde_json::from_str::<Value>(text) else { continue };
                let replies = match payload["op"].as_u64() {
                    Some(1) => vec![json!({"op": 11})],
                    Some(2) => identify(&shared, &payload, &events),
                    Some(6) => {
                        let mut state = lock(&shared);
                        state.sessions.retain(|s| !s.is_closed());
                        state.sessions.push(events.clone());
                        state.resumed += 1;
                        state.seq += 1;
                        let seq = state.seq;
                        drop(state);
                        shared.changed.notify_waiters();
                        vec![json!({"op": 0, "t": "RESUMED", "s": seq, "d": null})]
                    }
                    _ => Vec::new(),
                };
                for reply in replies {
                    if sink.send(WsMessage::text(reply.to_string())).await.is_err() {
                        return;
                    }
                }
            }
            Some(event) = outgoing.recv() => {
                if sink.send(WsMessage::text(event.to_string())).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// Answers an IDENTIFY: READY, then the guild's GUILD_CREATE when the bot
/// asked for the GUILDS intent (bit 0), as Discord does.
fn identify(shared: &Shared, payload: &Value, events: &mpsc::Sender<Value>) -> Vec<Value> {
    let mut state = lock(shared);
    state.sessions.retain(|s| !s.is_closed());
    state.sessions.push(events.clone());
    state.identified += 1;
    state.seq += 1;
    let ready_seq = state.seq;
    state.seq += 1;
    let guild_seq = state.seq;
    drop(state);
    shared.changed.notify_waiters();
    let ready = json!({"op": 0, "t": "READY", "s": ready_seq, "d": {
        "v": 10,
        "user": user_json(BOT_ID, true),
        "guilds": [{"id": GUILD.to_string(), "unavailable": true}],
        "session_id": "fake-session",
        "resume_gateway_url": shared.gateway_url,
        "shard": [0, 1],
        "application": {"id": APPLICATION_ID.to_string(), "flags": 0},
    }});
    let guilds_intent = payload["d"]["intents"].as_u64().unwrap_or(0) & 1 == 1;
    let guild =
        json!({"op": 0, "t": "GUILD_CREATE", "s": guild_seq, "d": discord_guild::guild_create()});
    if guilds_intent {
        vec![ready, guild]
    } else {
        vec![ready]
    }
}
