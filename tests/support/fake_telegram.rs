//! A fake Telegram Bot API server speaking the real wire format, for the
//! real teloxide client pointed at it with `api_url`.
//!
//! [`FakeTelegram::start`] binds `127.0.0.1:0` and answers `getMe`,
//! `getUpdates` (long poll with offset confirmation), `sendMessage`,
//! `sendDocument` (multipart: the file, named by `attach://`, is kept with
//! the call), `editMessageText`, `sendChatAction`, `setMyCommands`,
//! `deleteWebhook`, `setWebhook`, `getWebhookInfo`, `getChatMember` and
//! `getFile` at `/bot<token>/<Method>` (method names matched
//! case-insensitively), and serves the files a test adds at
//! `/file/bot<token>/<file_path>`. It
//! records every call, lets a test inject updates, and answers a call with
//! a 429, 400 or 409 when told to. The server stops when dropped.
//!
//! Pending updates are kept as their JSON text and the `getUpdates` answer
//! is written by hand, so that a test can inject text no `serde_json::Value`
//! can hold (a lone UTF-16 surrogate escape, a duplicate key) with
//! [`FakeTelegram::push_raw_update`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::multipart::{self, Part};

/// The bot's user id at the fake.
pub const BOT_ID: u64 = 999;
/// The bot's username at the fake.
pub const BOT_USERNAME: &str = "baton_bot";

/// A scripted failure for the next call of a method.
#[derive(Debug, Clone)]
pub enum FakeFailure {
    /// 429 with `parameters.retry_after`.
    TooManyRequests { retry_after: u64 },
    /// 400 with this description (e.g. "Bad Request: can't parse entities: ...").
    BadRequest(String),
    /// 409: another getUpdates consumer.
    Conflict,
}

/// One call the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    /// The method, lowercased (`sendmessage`).
    pub method: String,
    /// The JSON body (a multipart form's text fields, values that are
    /// JSON parsed).
    pub body: Value,
    /// A multipart form's files.
    pub files: Vec<Part>,
    /// The HTTP status answered.
    pub status: u16,
    /// When it arrived.
    pub at: Instant,
}

impl Call {
    /// The `chat_id` it was for.
    pub fn chat(&self) -> Option<i64> {
        self.body["chat_id"].as_i64()
    }

    /// The message id it replies to, if any.
    pub fn reply_to(&self) -> Option<i64> {
        self.body["reply_parameters"]["message_id"].as_i64()
    }

    /// Its text.
    pub fn text(&self) -> &str {
        self.body["text"].as_str().unwrap_or_default()
    }

    /// A document's caption.
    pub fn caption(&self) -> &str {
        self.body["caption"].as_str().unwrap_or_default()
    }

    /// The file a `sendDocument` uploaded: the part its `document` field
    /// names with `attach://`, as Telegram reads it.
    pub fn document(&self) -> Option<&Part> {
        document(&self.body, &self.files)
    }

    /// Whether it succeeded.
    pub fn ok(&self) -> bool {
        self.status == 200
    }
}

#[derive(Default)]
struct State_ {
    /// Updates not confirmed yet: (update id, JSON text).
    pending: Vec<(u32, String)>,
    /// Every update ever delivered: (update id, JSON text).
    delivered: Vec<(u32, String)>,
    next_update: u32,
    next_message: i64,
    confirmed: i64,
    calls: Vec<Call>,
    failures: HashMap<String, VecDeque<FakeFailure>>,
    /// getUpdates calls in flight now, and the most at once.
    polling: usize,
    most_polling: usize,
    admins: HashSet<(i64, u64)>,
    /// Files by `file_id`: (file_path, bytes, size reported by getFile).
    files: HashMap<String, (String, Vec<u8>, usize)>,
    /// Paths of the files downloaded, in order.
    downloads: Vec<String>,
    /// File downloads hang (a stalled connection).
    stall_downloads: bool,
}

struct Shared {
    state: Mutex<State_>,
    /// Signalled on every call and every injected update.
    changed: Notify,
}

/// A running fake Bot API; stops when dropped.
pub struct FakeTelegram {
    shared: Arc<Shared>,
    address: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeTelegram {
    /// Starts the fake.
    pub async fn start() -> FakeTelegram {
        let shared = Arc::new(Shared {
            state: Mutex::new(State_ {
                next_update: 100,
                next_message: 1,
                ..State_::default()
            }),
            changed: Notify::new(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = Router::new().fallback(answer).with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeTelegram {
            shared,
            address,
            server,
        }
    }

    /// The `api_url` to give the bot.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State_> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// The calls of `method` (any case), in order.
    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        let method = method.to_ascii_lowercase();
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }

    /// Successful `sendDocument` calls to `chat`, in order.
    pub fn documents_to(&self, chat: i64) -> Vec<Call> {
        self.calls_of("sendDocument")
            .into_iter()
            .filter(|c| c.ok() && c.chat() == Some(chat))
            .collect()
    }

    /// Successful `sendMessage` calls to `chat`, in order.
    pub fn sent_to(&self, chat: i64) -> Vec<Call> {
        self.calls_of("sendMessage")
            .into_iter()
            .filter(|c| c.ok() && c.chat() == Some(chat))
            .collect()
    }

    /// The next call of `method` fails with `failure`.
    pub fn fail_next(&self, method: &str, failure: FakeFailure) {
        self.state()
            .failures
            .entry(method.to_ascii_lowercase())
            .or_default()
            .push_back(failure);
    }

    /// Makes `user` an administrator of `chat`.
    pub fn make_admin(&self, chat: i64, user: u64) {
        self.state().admins.insert((chat, user));
    }

    /// The most getUpdates calls that were in flight at once.
    pub fn most_polling_at_once(&self) -> usize {
        self.state().most_polling
    }

    /// Adds a file `getFile` finds by `file_id` and the fake serves.
    pub fn add_file(&self, file_id: &str, bytes: &[u8]) {
        self.add_file_reporting(file_id, bytes, bytes.len());
    }

    /// Like [`FakeTelegram::add_file`], with `getFile` reporting `size`.
    pub fn add_file_reporting(&self, file_id: &str, bytes: &[u8], size: usize) {
        let path = format!("documents/file_{file_id}");
        self.state()
            .files
            .insert(file_id.to_owned(), (path, bytes.to_vec(), size));
    }

    /// Makes every file download from now on hang without an answer.
    pub fn stall_downloads(&self) {
        self.state().stall_downloads = true;
    }

    /// The paths of the files downloaded so far.
    pub fn downloads(&self) -> Vec<String> {
        self.state().downloads.clone()
    }

    /// A photo from `user` in a private chat, as Telegram sends one: three
    /// sizes, the largest being `file_id` (added as a file with `bytes`).
    pub fn photo(
        &self,
        user: u64,
        file_id: &str,
        bytes: &[u8],
        caption: Option<&str>,
    ) -> (u32, i64) {
        self.add_file(file_id, bytes);
        self.add_file(&format!("{file_id}-small"), b"small");
        let mut fields = json!({ "photo": [
            {"file_id": format!("{file_id}-small"), "file_unique_id": "s", "width": 90, "height": 60, "file_size": 5},
            {"file_id": file_id, "file_unique_id": "l", "width": 1280, "height": 960, "file_size": bytes.len()},
        ]});
        if let Some(caption) = caption {
            fields["caption"] = json!(caption);
        }
        self.message(private_chat(user), user, fields)
    }

    /// A document from `user` in a private chat; `size` is what the message
    /// reports. Add its bytes with [`FakeTelegram::add_file`].
    pub fn document(
        &self,
        user: u64,
        file_id: &str,
        name: &str,
        mime: &str,
        size: usize,
        caption: Option<&str>,
    ) -> (u32, i64) {
        let mut fields = json!({ "document": {
            "file_id": file_id, "file_unique_id": format!("u-{file_id}"),
            "file_name": name, "mime_type": mime, "file_size": size,
        }});
        if let Some(caption) = caption {
            fields["caption"] = json!(caption);
        }
        self.message(private_chat(user), user, fields)
    }

    /// The highest offset a getUpdates call has confirmed.
    pub fn confirmed_offset(&self) -> i64 {
        self.state().confirmed
    }

    /// Queues an update whose payload is `kind` (`{"message": ...}`);
    /// returns its update id.
    pub fn push_update(&self, kind: Value) -> u32 {
        self.push_raw_update(|id| {
            let mut update = kind;
            update["update_id"] = json!(id);
            update.to_string()
        })
    }

    /// Queues an update given as raw JSON text, written by `raw` for the
    /// update id it is given (sent as is, even if it is not valid for
    /// `serde_json`); returns its update id.
    pub fn push_raw_update(&self, raw: impl FnOnce(u32) -> String) -> u32 {
        let mut state = self.state();
        let id = state.next_update;
        state.next_update += 1;
        state.pending.push((id, raw(id)));
        drop(state);
        self.shared.changed.notify_waiters();
        id
    }

    /// A private message from `user` whose `text` is `raw_text`, a JSON
    /// string literal written as is (`r#""hi \ud800""#`); returns (update
    /// id, message id).
    pub fn raw_dm(&self, user: u64, raw_text: &str) -> (u32, i64) {
        let message_id = self.message_id();
        let update = self.push_raw_update(|id| {
            raw_message_update(id, message_id, user, &format!(r#""text":{raw_text}"#))
        });
        (update, message_id)
    }

    /// Delivers the update `id` again, as Telegram does when it was not
    /// confirmed (a process stopped before asking for the next offset).
    pub fn redeliver(&self, id: u32) {
        let mut state = self.state();
        let again = state.delivered.iter().find(|(i, _)| *i == id).cloned();
        if let Some(update) = again {
            state.pending.push(update);
            state.pending.sort_by_key(|(i, _)| *i);
            state.confirmed = state.confirmed.min(i64::from(id));
        }
        drop(state);
        self.shared.changed.notify_waiters();
    }

    /// A new message id for a user's message.
    fn message_id(&self) -> i64 {
        let mut state = self.state();
        state.next_message += 1;
        state.next_message
    }

    /// A text message from `user` in a private chat; returns (update id,
    /// message id).
    pub fn dm(&self, user: u64, text: &str) -> (u32, i64) {
        self.message(private_chat(user), user, json!({ "text": text }))
    }

    /// A text message from `user` in supergroup `chat`; `extra` is merged
    /// into the message (reply_to_message, message_thread_id, ...).
    pub fn group_message(&self, chat: i64, user: u64, text: &str, extra: Value) -> (u32, i64) {
        let mut fields = json!({ "text": text });
        merge(&mut fields, extra);
        self.message(group_chat(chat), user, fields)
    }

    /// A message from `user` in `chat` with `fields` (text, sticker, ...).
    pub fn message(&self, chat: Value, user: u64, fields: Value) -> (u32, i64) {
        let id = self.message_id();
        let mut message = json!({
            "message_id": id,
            "date": 1_700_000_000,
            "chat": chat,
            "from": user_json(user),
        });
        merge(&mut message, fields);
        (self.push_update(json!({ "message": message })), id)
    }

    /// An edit of an earlier message.
    pub fn edit(&self, user: u64, message_id: i64, text: &str) -> u32 {
        self.push_update(json!({ "edited_message": {
            "message_id": message_id,
            "date": 1_700_000_000,
            "edit_date": 1_700_000_100,
            "chat": private_chat(user),
            "from": user_json(user),
            "text": text,
        }}))
    }

    /// Waits (up to 20 s, then panics) until `done` holds for the calls.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Call]) -> bool) {
        let waiting = async {
            loop {
                let notified = self.shared.changed.notified();
                if done(&self.calls()) {
                    return;
                }
                let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(20), waiting)
            .await
            .is_err()
        {
            let calls: Vec<(String, String)> = self
                .calls()
                .into_iter()
                .filter(|c| c.method != "getupdates")
                .map(|c| (c.method.clone(), c.body.to_string()))
                .collect();
            panic!("timed out waiting for {what}; calls: {calls:#?}");
        }
    }

    /// Waits until `n` messages were delivered to `chat`.
    pub async fn wait_for_sent(&self, chat: i64, n: usize) -> Vec<Call> {
        self.wait_for(&format!("{n} messages to {chat}"), |calls| {
            calls
                .iter()
                .filter(|c| c.method == "sendmessage" && c.ok() && c.chat() == Some(chat))
                .count()
                >= n
        })
        .await;
        self.sent_to(chat)
    }

    /// Waits until update `id` is confirmed (a getUpdates asked past it).
    pub async fn wait_confirmed(&self, id: u32) {
        let id = i64::from(id);
        let shared = self.shared.clone();
        self.wait_for(&format!("update {id} confirmed"), move |_| {
            shared
                .state
                .lock()
                .map(|s| s.confirmed > id)
                .unwrap_or(false)
        })
        .await;
    }
}

/// The JSON text of an update `id` holding a private message `message_id`
/// from `user`, with `raw_fields` (JSON members, written as is) added to
/// the message.
pub fn raw_message_update(id: u32, message_id: i64, user: u64, raw_fields: &str) -> String {
    let head = json!({
        "message_id": message_id,
        "date": 1_700_000_000,
        "chat": private_chat(user),
        "from": user_json(user),
    })
    .to_string();
    let head = head.strip_suffix('}').unwrap_or(&head);
    format!(r#"{{"update_id":{id},"message":{head},{raw_fields}}}}}"#)
}

/// A private chat with `user`.
pub fn private_chat(user: u64) -> Value {
    json!({ "id": user, "type": "private", "first_name": format!("User{user}") })
}

/// A supergroup.
pub fn group_chat(chat: i64) -> Value {
    json!({ "id": chat, "type": "supergroup", "title": "Test group", "is_forum": true })
}

/// A human user.
pub fn user_json(user: u64) -> Value {
    let name = if user == 42 {
        "Ada".to_owned()
    } else {
        format!("User{user}")
    };
    json!({ "id": user, "is_bot": false, "first_name": name })
}

/// The bot as a user.
pub fn bot_json() -> Value {
    json!({ "id": BOT_ID, "is_bot": true, "first_name": "Baton", "username": BOT_USERNAME })
}

fn merge(into: &mut Value, extra: Value) {
    if let (Some(into), Value::Object(extra)) = (into.as_object_mut(), extra) {
        into.extend(extra);
    }
}

fn chat_for(id: i64) -> Value {
    if id > 0 {
        private_chat(id as u64)
    } else {
        group_chat(id)
    }
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(rest) = uri.path().strip_prefix("/file/bot") {
        return download(&shared, rest).await;
    }
    let method = uri
        .path()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (body, files) = match multipart::parts(content_type, body.clone()).await {
        Some(Ok(parts)) => form_fields(parts),
        Some(Err(error)) => {
            let reply = json!({ "ok": false, "error_code": 400, "description": format!("Bad Request: {error}") });
            return (StatusCode::BAD_REQUEST, reply.to_string()).into_response();
        }
        None if body.is_empty() => (json!({}), Vec::new()),
        None => (
            serde_json::from_slice(&body).unwrap_or(json!({})),
            Vec::new(),
        ),
    };
    let failure = {
        let mut state = shared.state.lock().unwrap();
        state
            .failures
            .get_mut(&method)
            .and_then(VecDeque::pop_front)
    }
    .or_else(|| {
        (method == "senddocument" && document(&body, &files).is_none()).then(|| {
            FakeFailure::BadRequest("Bad Request: there is no document in the request".into())
        })
    });
    let (status, reply) = match failure {
        Some(failure) => {
            let (status, reply) = failed(failure);
            (status, reply.to_string())
        }
        None => (200, succeed(&shared, &method, &body, &files).await),
    };
    shared.state.lock().unwrap().calls.push(Call {
        method,
        body,
        files,
        status,
        at: Instant::now(),
    });
    shared.changed.notify_waiters();
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        reply,
    )
        .into_response()
}

/// A file download: `rest` is `<token>/<file_path>`.
async fn download(shared: &Arc<Shared>, rest: &str) -> Response {
    let path = rest
        .split_once('/')
        .map(|(_, path)| path)
        .unwrap_or_default();
    let (found, stall) = {
        let mut state = shared.state.lock().unwrap();
        state.downloads.push(path.to_owned());
        let found = state
            .files
            .values()
            .find(|(file_path, _, _)| file_path == path)
            .map(|(_, bytes, _)| bytes.clone());
        (found, state.stall_downloads)
    };
    shared.changed.notify_waiters();
    if stall {
        std::future::pending::<()>().await;
    }
    match found {
        Some(bytes) => (StatusCode::OK, bytes).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A multipart form (teloxide sends `setWebhook` and `sendDocument` so)
/// as its text fields, a JSON object whose values that are JSON are
/// parsed, and its files.
fn form_fields(parts: Vec<Part>) -> (Value, Vec<Part>) {
    let mut fields = serde_json::Map::new();
    let mut files = Vec::new();
    for part in parts {
        if part.file_name.is_some() {
            files.push(part);
            continue;
        }
        let text = part.text();
        let value = serde_json::from_str(&text).unwrap_or_else(|_| json!(text));
        fields.insert(part.name, value);
    }
    (Value::Object(fields), files)
}

/// The file a `document` field names (`attach://<part name>`).
fn document<'a>(body: &Value, files: &'a [Part]) -> Option<&'a Part> {
    let name = body["document"].as_str()?.strip_prefix("attach://")?;
    files.iter().find(|part| part.name == name)
}

fn failed(failure: FakeFailure) -> (u16, Value) {
    match failure {
        FakeFailure::TooManyRequests { retry_after } => (
            429,
            json!({
                "ok": false,
                "error_code": 429,
                "description": format!("Too Many Requests: retry after {retry_after}"),
                "parameters": { "retry_after": retry_after },
            }),
        ),
        FakeFailure::BadRequest(description) => (
            400,
            json!({ "ok": false, "error_code": 400, "description": description }),
        ),
        FakeFailure::Conflict => (
            409,
            json!({
                "ok": false,
                "error_code": 409,
                "description": "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
            }),
        ),
    }
}

fn ok(result: Value) -> Value {
    json!({ "ok": true, "result": result })
}

/// The answer's JSON text.
async fn succeed(shared: &Arc<Shared>, method: &str, body: &Value, files: &[Part]) -> String {
    if method == "getupdates" {
        // Written by hand: the updates are JSON text that may not parse.
        let updates = updates(shared, body).await;
        return format!(r#"{{"ok":true,"result":[{}]}}"#, updates.join(","));
    }
    let reply = match method {
        "getme" => {
            let mut me = bot_json();
            merge(
                &mut me,
                json!({
                    "can_join_groups": true,
                    "can_read_all_group_messages": false,
                    "supports_inline_queries": false,
                    "has_main_web_app": false,
                }),
            );
            ok(me)
        }
        "sendmessage" | "editmessagetext" => {
            let chat = body["chat_id"].as_i64().unwrap_or_default();
            let id = {
                let mut state = shared.state.lock().unwrap();
                state.next_message += 1;
                state.next_message
            };
            let id = body["message_id"].as_i64().unwrap_or(id);
            ok(json!({
                "message_id": id,
                "date": 1_700_000_000,
                "chat": chat_for(chat),
                "from": bot_json(),
                "text": body["text"],
            }))
        }
        "senddocument" => {
            // `answer` refused a call without one.
            let file = document(body, files);
            let chat = body["chat_id"].as_i64().unwrap_or_default();
            let id = {
                let mut state = shared.state.lock().unwrap();
                state.next_message += 1;
                state.next_message
            };
            ok(json!({
                "message_id": id,
                "date": 1_700_000_000,
                "chat": chat_for(chat),
                "from": bot_json(),
                "caption": body["caption"],
                "document": {
                    "file_id": format!("document-{id}"),
                    "file_unique_id": format!("unique-{id}"),
                    "file_name": file.and_then(|f| f.file_name.clone()),
                    "mime_type": "text/plain",
                    "file_size": file.map_or(0, |f| f.bytes.len()),
                },
            }))
        }
        "getchatmember" => {
            let chat = body["chat_id"].as_i64().unwrap_or_default();
            let user = body["user_id"].as_u64().unwrap_or_default();
            let admin = shared.state.lock().unwrap().admins.contains(&(chat, user));
            if admin {
                ok(json!({ "status": "creator", "user": user_json(user), "is_anonymous": false }))
            } else {
                ok(json!({ "status": "member", "user": user_json(user) }))
            }
        }
        "getfile" => {
            let id = body["file_id"].as_str().unwrap_or_default();
            let file = shared.state.lock().unwrap().files.get(id).cloned();
            match file {
                Some((path, _, size)) => ok(json!({
                    "file_id": id,
                    "file_unique_id": format!("u-{id}"),
                    "file_size": size,
                    "file_path": path,
                })),
                None => json!({
                    "ok": false,
                    "error_code": 400,
                    "description": "Bad Request: invalid file_id",
                }),
            }
        }
        "getwebhookinfo" => ok(json!({
            "url": "",
            "has_custom_certificate": false,
            "pending_update_count": shared.state.lock().unwrap().pending.len(),
        })),
        _ => ok(json!(true)),
    };
    reply.to_string()
}

/// Counts a getUpdates call in flight while it lives. Telegram answers a
/// second concurrent poller with 409; the fake records how many polled at
/// once instead, so a test can assert that it never happened.
struct Polling<'a>(&'a Shared);

impl<'a> Polling<'a> {
    fn start(shared: &'a Shared) -> Self {
        let mut state = shared.state.lock().unwrap();
        state.polling += 1;
        state.most_polling = state.most_polling.max(state.polling);
        Polling(shared)
    }
}

impl Drop for Polling<'_> {
    fn drop(&mut self) {
        if let Ok(mut state) = self.0.state.lock() {
            state.polling -= 1;
        }
    }
}

/// getUpdates: confirms everything below `offset`, then returns what is
/// left (as JSON text), waiting up to `timeout` seconds for something to
/// arrive.
async fn updates(shared: &Arc<Shared>, body: &Value) -> Vec<String> {
    let offset = body["offset"].as_i64().unwrap_or(0);
    let timeout = body["timeout"].as_u64().unwrap_or(0);
    let _polling = Polling::start(shared);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    loop {
        let notified = shared.changed.notified();
        {
            let mut state = shared.state.lock().unwrap();
            if offset > 0 {
                state.pending.retain(|(id, _)| i64::from(*id) >= offset);
                state.confirmed = state.confirmed.max(offset);
            }
            if !state.pending.is_empty() {
                let batch = state.pending.clone();
                for update in &batch {
                    if !state.delivered.iter().any(|(id, _)| *id == update.0) {
                        state.delivered.push(update.clone());
                    }
                }
                return batch.into_iter().map(|(_, update)| update).collect();
            }
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return Vec::new();
        }
    }
}
