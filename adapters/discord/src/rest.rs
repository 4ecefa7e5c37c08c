//! Discord REST for the adapter: the few endpoints Baton calls, sent with
//! reqwest so that Baton sees the rate-limit headers and 429 bodies that
//! serenity's `Http` hides (serenity's own ratelimiter is off because it
//! would ignore the proxy `api_url`). Every request goes through
//! [`RateLimits`]; a 429 is waited out and retried (nothing is dropped for
//! a rate limit), 5xx answers and network failures are retried with
//! backoff a few times, anything else is a permanent failure. Bodies are
//! JSON, or multipart (`payload_json` and `files[n]`) for a message with
//! files.

use baton_channel::backoff::{self, Retryable};
use baton_channel::{OutFile, Platform, metrics};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::ratelimit::{RateLimits, header_number, seconds};

/// Attempts for one request that keeps getting 429s. Discord's waits are
/// short; this only stops a request that would retry forever.
const MAX_RATE_LIMITED: u32 = 30;
/// Attempts for one request on server errors and network failures.
const MAX_FAILED: u32 = 4;
/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(30);
/// The REST API version (the same as serenity's).
const API: &str = "/api/v10";

/// The endpoints Baton calls. Interaction tokens are secrets of a sort
/// (they let anyone answer the interaction): they appear in paths only,
/// never in [`Endpoint::name`] or errors.
#[derive(Debug, Clone, Copy)]
pub enum Endpoint<'a> {
    /// `GET /users/@me`: the bot's own user (checks the token).
    CurrentUser,
    /// `GET /applications/@me`: the bot's application (its id).
    CurrentApplication,
    /// `POST /channels/{channel}/messages`.
    CreateMessage { channel: u64 },
    /// `POST /channels/{channel}/messages/{message}/threads`.
    StartThread { channel: u64, message: u64 },
    /// `POST /channels/{channel}/typing`.
    Typing { channel: u64 },
    /// `PUT /applications/{application}/commands`.
    GlobalCommands { application: u64 },
    /// `PUT /applications/{application}/guilds/{guild}/commands`.
    GuildCommands { application: u64, guild: u64 },
    /// `POST /interactions/{id}/{token}/callback`.
    InteractionCallback { id: u64, token: &'a str },
    /// `PATCH /webhooks/{application}/{token}/messages/@original`.
    EditOriginal { application: u64, token: &'a str },
    /// `POST /webhooks/{application}/{token}`.
    Followup { application: u64, token: &'a str },
}

impl Endpoint<'_> {
    /// The HTTP method.
    pub fn method(&self) -> Method {
        match self {
            Endpoint::CurrentUser | Endpoint::CurrentApplication => Method::GET,
            Endpoint::GlobalCommands { .. } | Endpoint::GuildCommands { .. } => Method::PUT,
            Endpoint::EditOriginal { .. } => Method::PATCH,
            _ => Method::POST,
        }
    }

    /// The path under `/api/v10`.
    fn path(&self) -> String {
        match self {
            Endpoint::CurrentUser => "/users/@me".into(),
            Endpoint::CurrentApplication => "/applications/@me".into(),
            Endpoint::CreateMessage { channel } => format!("/channels/{channel}/messages"),
            Endpoint::StartThread { channel, message } => {
                format!("/channels/{channel}/messages/{message}/threads")
            }
            Endpoint::Typing { channel } => format!("/channels/{channel}/typing"),
            Endpoint::GlobalCommands { application } => {
                format!("/applications/{application}/commands")
            }
            Endpoint::GuildCommands { application, guild } => {
                format!("/applications/{application}/guilds/{guild}/commands")
            }
            Endpoint::InteractionCallback { id, token } => {
                format!("/interactions/{id}/{token}/callback")
            }
            Endpoint::EditOriginal { application, token } => {
                format!("/webhooks/{application}/{token}/messages/@original")
            }
            Endpoint::Followup { application, token } => {
                format!("/webhooks/{application}/{token}")
            }
        }
    }

    /// The request's name for logs and errors, without any token.
    pub fn name(&self) -> &'static str {
        match self {
            Endpoint::CurrentUser => "GET /users/@me",
            Endpoint::CurrentApplication => "GET /applications/@me",
            Endpoint::CreateMessage { .. } => "create message",
            Endpoint::StartThread { .. } => "start thread",
            Endpoint::Typing { .. } => "typing indicator",
            Endpoint::GlobalCommands { .. } => "register global commands",
            Endpoint::GuildCommands { .. } => "register guild commands",
            Endpoint::InteractionCallback { .. } => "interaction response",
            Endpoint::EditOriginal { .. } => "edit interaction response",
            Endpoint::Followup { .. } => "interaction follow-up",
        }
    }

    /// The rate-limit bucket: the route and its major parameter (channel,
    /// application, interaction), as Discord counts them.
    fn bucket(&self) -> String {
        let major = match self {
            Endpoint::CurrentUser | Endpoint::CurrentApplication => 0,
            Endpoint::CreateMessage { channel }
            | Endpoint::StartThread { channel, .. }
            | Endpoint::Typing { channel } => *channel,
            Endpoint::GlobalCommands { application }
            | Endpoint::GuildCommands { application, .. }
            | Endpoint::EditOriginal { application, .. }
            | Endpoint::Followup { application, .. } => *application,
            Endpoint::InteractionCallback { id, .. } => *id,
        };
        format!("{} {major}", self.name())
    }

    /// Whether the request counts against the bot's global limit
    /// (interaction endpoints do not).
    fn global(&self) -> bool {
        !matches!(
            self,
            Endpoint::InteractionCallback { .. }
                | Endpoint::EditOriginal { .. }
                | Endpoint::Followup { .. }
        )
    }
}

/// A request that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestError {
    /// Permanent: Discord refused the request (4xx other than 429): no
    /// access, unknown channel, a bad body, a wrong token.
    #[error("Discord refused {what}: {status} {message}")]
    Refused {
        what: &'static str,
        status: u16,
        /// Discord's JSON error code, where it sent one.
        code: Option<i64>,
        message: String,
    },
    /// Transient: Discord failed or could not be reached, after retries.
    #[error("Discord unavailable for {what}: {reason}")]
    Unavailable { what: &'static str, reason: String },
    /// Transient: still rate limited after many waits.
    #[error("Discord kept rate limiting {what}")]
    RateLimited { what: &'static str },
}

impl RestError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RestError::Unavailable { .. } | RestError::RateLimited { .. }
        )
    }

    /// As the engine's delivery error.
    pub fn into_channel(self) -> baton_channel::ChannelError {
        if self.is_transient() {
            baton_channel::ChannelError::Transient(self.to_string())
        } else {
            baton_channel::ChannelError::Permanent(self.to_string())
        }
    }
}

/// The adapter's REST client.
#[derive(Debug)]
pub struct Rest {
    client: reqwest::Client,
    /// `Bot <token>`.
    authorization: SecretString,
    /// `api_url` without a trailing slash.
    base: String,
    limits: RateLimits,
}

impl Rest {
    /// A client for the bot with `token` at `api_url`, sending at most
    /// `per_second` requests a second (interaction answers apart).
    pub fn new(
        client: reqwest::Client,
        token: &SecretString,
        api_url: &str,
        per_second: u32,
    ) -> Self {
        Self {
            client,
            authorization: SecretString::from(format!("Bot {}", token.expose_secret().trim())),
            base: api_url.trim_end_matches('/').to_owned(),
            limits: RateLimits::new(per_second),
        }
    }

    /// Sends a request and returns its JSON answer (`Null` for none).
    ///
    /// Server errors and network failures are retried with backoff
    /// ([`backoff`](baton_channel::backoff): 0.5 s, 1 s, 2 s; [`MAX_FAILED`]
    /// attempts). A 429 is not a backoff: [`Rest::send`] waits it out in
    /// the route's bucket ([`RateLimits`]), which every other request on
    /// that route (or every route, for a global limit) must respect too.
    pub async fn call(
        &self,
        endpoint: Endpoint<'_>,
        body: Option<&Value>,
    ) -> Result<Value, RestError> {
        let body = body.map_or(Body::Empty, Body::Json);
        self.call_with(endpoint, body).await
    }

    /// [`Rest::call`] for a message with attachments: a multipart body of
    /// `payload_json` (`payload` with an `attachments` entry for each file)
    /// and one `files[n]` part per file, built anew for every attempt.
    pub async fn call_with_files(
        &self,
        endpoint: Endpoint<'_>,
        payload: &Value,
        files: &[OutFile],
    ) -> Result<Value, RestError> {
        let mut payload = payload.clone();
        payload["attachments"] = files
            .iter()
            .enumerate()
            .map(|(id, file)| json!({"id": id, "filename": file.name}))
            .collect();
        self.call_with(endpoint, Body::Files(&payload, files)).await
    }

    async fn call_with(&self, endpoint: Endpoint<'_>, body: Body<'_>) -> Result<Value, RestError> {
        let what = endpoint.name();
        let route = Route {
            what,
            bucket: endpoint.bucket(),
            global: endpoint.global(),
            url: format!("{}{API}{}", self.base, endpoint.path()),
        };
        let rate_limited = AtomicU32::new(0);
        let mut failed = 0;
        (|| self.send(endpoint, body, &route, &rate_limited))
            .retry(backoff::exponential(
                Duration::from_millis(500),
                Duration::from_secs(8),
                MAX_FAILED - 1,
            ))
            .when(|error| matches!(error, RestError::Unavailable { .. }))
            .notify(|error, _| {
                failed += 1;
                if let RestError::Unavailable { reason, .. } = error {
                    tracing::info!(request = what, attempt = failed, error = %reason, "Discord request failed; retrying");
                }
            })
            .await
    }

    /// One attempt at a request: waits for its route's bucket, sends it,
    /// and waits out 429s (counted in `rate_limited` across attempts, at
    /// most [`MAX_RATE_LIMITED`]). A server error or network failure is
    /// [`RestError::Unavailable`], for [`Rest::call`] to retry.
    async fn send(
        &self,
        endpoint: Endpoint<'_>,
        body: Body<'_>,
        route: &Route,
        rate_limited: &AtomicU32,
    ) -> Result<Value, RestError> {
        let Route {
            what,
            bucket,
            global,
            url,
        } = route;
        let (what, global) = (*what, *global);
        loop {
            self.limits.acquire(bucket, global).await;
            let mut request = self
                .client
                .request(endpoint.method(), url)
                .header("authorization", self.authorization.expose_secret())
                .timeout(TIMEOUT);
            request = match body {
                Body::Json(body) => request.json(body),
                Body::Files(payload, files) => request.multipart(form(payload, files)),
                Body::Empty => request.header("content-length", "0"),
            };
            let reason = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    metrics::platform_request(Platform::Discord, what, status.as_u16().to_string());
                    let headers = response.headers().clone();
                    self.limits.observe(bucket, &headers);
                    let text = response.text().await.unwrap_or_default();
                    if status.is_success() {
                        return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
                    }
                    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        metrics::platform_rate_limited(Platform::Discord);
                        let times = rate_limited.fetch_add(1, Ordering::Relaxed) + 1;
                        let wait = body["retry_after"]
                            .as_f64()
                            .or_else(|| header_number(&headers, "retry-after"))
                            .map_or(Duration::from_secs(1), seconds);
                        let is_global = body["global"].as_bool().unwrap_or(false)
                            || headers
                                .get("x-ratelimit-global")
                                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
                        tracing::info!(
                            request = what,
                            wait_ms = wait.as_millis() as u64,
                            global = is_global,
                            "rate limited by Discord; waiting"
                        );
                        self.limits.limited(bucket, is_global, wait);
                        if times >= MAX_RATE_LIMITED {
                            return Err(RestError::RateLimited { what });
                        }
                        continue;
                    }
                    if !status.is_server_error() {
                        return Err(RestError::Refused {
                            what,
                            status: status.as_u16(),
                            code: body["code"].as_i64(),
                            message: body["message"].as_str().unwrap_or("").to_owned(),
                        });
                    }
                    status.to_string()
                }
                // Without the URL: interaction URLs hold their token.
                Err(error) => error.without_url().to_string(),
            };
            return Err(RestError::Unavailable { what, reason });
        }
    }
}

/// What a request carries.
#[derive(Debug, Clone, Copy)]
enum Body<'a> {
    /// Nothing.
    Empty,
    /// A JSON body.
    Json(&'a Value),
    /// A message with attachments: its JSON payload and the files.
    Files(&'a Value, &'a [OutFile]),
}

/// The multipart form Discord takes for a message with files:
/// `payload_json`, then `files[0]`, `files[1]`, ...
fn form(payload: &Value, files: &[OutFile]) -> Form {
    let mut form = Form::new().text("payload_json", payload.to_string());
    for (index, file) in files.iter().enumerate() {
        let part = Part::bytes(file.bytes.clone()).file_name(file.name.clone());
        let part = match part.mime_str(file.mime) {
            Ok(part) => part,
            Err(_) => Part::bytes(file.bytes.clone()).file_name(file.name.clone()),
        };
        form = form.part(format!("files[{index}]"), part);
    }
    form
}

/// Where one request goes, worked out once for all its attempts.
#[derive(Debug)]
struct Route {
    what: &'static str,
    /// The rate-limit bucket ([`Endpoint::bucket`]).
    bucket: String,
    /// Whether the global limit applies ([`Endpoint::global`]).
    global: bool,
    url: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server answering each request (one per connection) with the next
    /// of `statuses`, the last one repeated; returns its URL and the count
    /// of requests it has seen.
    async fn server(statuses: &'static [u16]) -> (String, Arc<AtomicU32>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(AtomicU32::new(0));
        let counter = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let n = counter.fetch_add(1, Ordering::SeqCst) as usize;
                let status = statuses[n.min(statuses.len() - 1)];
                let body = if status == 200 {
                    "{\"id\":\"1\"}"
                } else {
                    "{}"
                };
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        (url, seen)
    }

    fn rest(url: &str) -> Rest {
        Rest::new(
            reqwest::Client::builder().no_proxy().build().unwrap(),
            &SecretString::from("token"),
            url,
            50,
        )
    }

    #[tokio::test]
    async fn server_errors_are_retried_with_backoff() {
        let (url, seen) = server(&[503, 502, 200]).await;
        let started = tokio::time::Instant::now();
        let answer = rest(&url).call(Endpoint::CurrentUser, None).await.unwrap();
        assert_eq!(answer["id"], "1");
        assert_eq!(seen.load(Ordering::SeqCst), 3);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(1500), "{waited:?}");
    }

    #[tokio::test]
    async fn a_refusal_is_not_retried() {
        let (url, seen) = server(&[403]).await;
        let error = rest(&url)
            .call(Endpoint::CurrentUser, None)
            .await
            .unwrap_err();
        assert!(
            matches!(error, RestError::Refused { status: 403, .. }),
            "{error:?}"
        );
        assert_eq!(seen.load(Ordering::SeqCst), 1);
    }
}
