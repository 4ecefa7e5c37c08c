//! The HTTP exchange every provider shares: sending a JSON request, reading
//! the answer within its bounds ([`ProviderOptions`]: an idle timeout and a
//! size limit), reading its quota headers ([`Quota`]), and turning HTTP
//! statuses, `Retry-After` headers, JSON error bodies and transport
//! failures into [`ProviderError`]s, the same way for all wires. Every error message is redacted ([`Redactor`]) before it
//! leaves this module: provider error bodies may quote the key.

use std::time::Duration;

use reqwest::RequestBuilder;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use super::ProviderError;
use super::quota::Quota;
use crate::redact::Redactor;

/// How a provider's answers are bounded and its errors cleaned; from its
/// `[providers.NAME]` section (see [`crate::llm::models::build_provider`]).
#[derive(Debug, Clone)]
pub struct ProviderOptions {
    /// The environment variable holding the key, named in the message a
    /// user gets when the provider refuses the key.
    pub key_env: Option<String>,
    /// No byte of an answer's body for this long fails the call as
    /// [`ProviderError::Network`] (transient).
    pub idle_timeout: Duration,
    /// The largest answer body read; a larger one fails the call as
    /// [`ProviderError::TooLarge`] (permanent) and is not read further.
    pub max_response_bytes: usize,
    /// Secrets to take out of error messages; the provider's own key is
    /// always added.
    pub redactor: Redactor,
}

impl Default for ProviderOptions {
    /// No key variable, 60 s idle timeout, 4 MB answers, key shapes only.
    fn default() -> Self {
        ProviderOptions {
            key_env: None,
            idle_timeout: Duration::from_secs(60),
            max_response_bytes: 4_000_000,
            redactor: Redactor::default(),
        }
    }
}

/// Where and as whom a provider calls: its configured name, base URL, API
/// key, HTTP client and the bounds on its answers.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// The name the config gives the provider (used in error messages).
    pub name: String,
    base_url: String,
    api_key: Option<SecretString>,
    http: reqwest::Client,
    options: ProviderOptions,
}

impl Endpoint {
    /// An endpoint at `base_url` (a trailing `/` is ignored), with the
    /// default [`ProviderOptions`].
    pub fn new(
        name: impl Into<String>,
        base_url: impl Into<String>,
        api_key: Option<SecretString>,
        http: reqwest::Client,
    ) -> Self {
        let options = ProviderOptions {
            redactor: Redactor::default().with_secret(api_key.as_ref()),
            ..ProviderOptions::default()
        };
        Endpoint {
            name: name.into(),
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            api_key,
            http,
            options,
        }
    }

    /// This endpoint with `options` (its own key added to the redactor).
    pub fn with_options(mut self, mut options: ProviderOptions) -> Self {
        options.redactor = options.redactor.with_secret(self.api_key.as_ref());
        self.options = options;
        self
    }

    /// A POST of the JSON `body` to `path` under the base URL; `authorize`
    /// adds the API key the way the wire wants it, when there is a key.
    pub fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
        authorize: impl FnOnce(RequestBuilder, &str) -> RequestBuilder,
    ) -> RequestBuilder {
        let request = self
            .http
            .post(format!("{}{path}", self.base_url))
            .json(body);
        match &self.api_key {
            Some(key) => authorize(request, key.expose_secret()),
            None => request,
        }
    }

    /// Sends `request` and parses a 2xx answer as `T`, with its quota
    /// headers (see [`send_json`]); an [`ProviderError::Auth`] names the
    /// key's variable.
    pub async fn send<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<(T, Quota), ProviderError> {
        send_json(&self.name, request, &self.options)
            .await
            .map_err(|mut error| {
                if let ProviderError::Auth { key_env, .. } = &mut error {
                    key_env.clone_from(&self.options.key_env);
                }
                error
            })
    }
}

/// The longest provider message kept in an error, in characters.
pub(crate) const MAX_ERROR_MESSAGE_CHARS: usize = 300;
/// The most of an error answer's body read, in bytes (the status decides;
/// the body only adds words).
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// Sends `request` and parses a 2xx answer as `T`, reading its body within
/// `options`' bounds; the answer's quota headers come with it.
///
/// Non-2xx answers become the matching [`ProviderError`] (see
/// [`classify_status`]); transport failures and an idle body become
/// [`ProviderError::Network`]; a body over `max_response_bytes` becomes
/// [`ProviderError::TooLarge`]; a 2xx body that is not a `T` becomes
/// [`ProviderError::InvalidResponse`]. Every message is redacted. A 429
/// without `Retry-After` waits for the used-up budget its quota headers
/// name, if they name one.
pub(crate) async fn send_json<T: DeserializeOwned>(
    provider: &str,
    request: reqwest::RequestBuilder,
    options: &ProviderOptions,
) -> Result<(T, Quota), ProviderError> {
    let redactor = &options.redactor;
    let mut response = request
        .send()
        .await
        .map_err(|error| transport_error(provider, &error, redactor))?;
    let status = response.status().as_u16();
    let quota = Quota::from_headers(response.headers());
    let retry_after = retry_after_from_headers(response.headers());
    if !(200..300).contains(&status) {
        let retry_after = retry_after.or(quota.exhausted_for.filter(|_| status == 429));
        // The status decides; a body that cannot be read only adds nothing.
        let limit = options.max_response_bytes.min(MAX_ERROR_BODY_BYTES);
        let body = read_body(provider, &mut response, options, Overflow::Truncate(limit))
            .await
            .unwrap_or_default();
        let body = redactor.redact(&String::from_utf8_lossy(&body));
        return Err(classify_status(provider, status, retry_after, &body).redacted(redactor));
    }
    let limit = options.max_response_bytes;
    let body = read_body(provider, &mut response, options, Overflow::Fail(limit)).await?;
    let parsed = serde_json::from_slice(&body).map_err(|error| {
        let start = redactor.redact(&String::from_utf8_lossy(&body[..body.len().min(4096)]));
        ProviderError::InvalidResponse {
            provider: provider.to_owned(),
            message: format!("{error}; body starts with {:?}", cap_message(&start, 200)),
        }
    })?;
    Ok((parsed, quota))
}

/// What [`read_body`] does at its limit.
#[derive(Debug, Clone, Copy)]
enum Overflow {
    /// Fail with [`ProviderError::TooLarge`].
    Fail(usize),
    /// Keep what fits and stop reading.
    Truncate(usize),
}

/// Reads `response`'s body chunk by chunk, never holding more than the
/// limit, and failing when no chunk comes for `options.idle_timeout`.
async fn read_body(
    provider: &str,
    response: &mut reqwest::Response,
    options: &ProviderOptions,
    overflow: Overflow,
) -> Result<Vec<u8>, ProviderError> {
    let too_large = |limit: usize| ProviderError::TooLarge {
        provider: provider.to_owned(),
        limit,
    };
    let limit = match overflow {
        Overflow::Fail(limit) | Overflow::Truncate(limit) => limit,
    };
    let announced = response.content_length().unwrap_or(0);
    if let Overflow::Fail(limit) = overflow
        && usize::try_from(announced).map_or(true, |announced| announced > limit)
    {
        return Err(too_large(limit));
    }
    let mut body = Vec::with_capacity(usize::try_from(announced).unwrap_or(0).min(limit));
    loop {
        let chunk = match tokio::time::timeout(options.idle_timeout, response.chunk()).await {
            Err(_idle) => {
                return Err(ProviderError::Network {
                    provider: provider.to_owned(),
                    connect_timeout: false,
                    message: format!(
                        "the answer stalled: no data for {} s (idle_timeout_secs)",
                        options.idle_timeout.as_secs_f64()
                    ),
                });
            }
            Ok(Err(error)) => return Err(transport_error(provider, &error, &options.redactor)),
            Ok(Ok(None)) => return Ok(body),
            Ok(Ok(Some(chunk))) => chunk,
        };
        let room = limit - body.len();
        if chunk.len() > room {
            return match overflow {
                Overflow::Fail(limit) => Err(too_large(limit)),
                Overflow::Truncate(_) => {
                    body.extend_from_slice(&chunk[..room]);
                    Ok(body)
                }
            };
        }
        body.extend_from_slice(&chunk);
    }
}

/// Maps a reqwest failure (no usable HTTP answer) to a [`ProviderError`].
///
/// Timeouts, refused or reset connections and broken bodies are
/// [`ProviderError::Network`] (transient; `connect_timeout` when no
/// connection was made in time); a request that could not even be
/// built (a malformed base URL, say) is a permanent
/// [`ProviderError::BadRequest`] with status 0.
pub(crate) fn transport_error(
    provider: &str,
    error: &reqwest::Error,
    redactor: &Redactor,
) -> ProviderError {
    let message = cap_message(
        &redactor.redact(&error_chain(error)),
        MAX_ERROR_MESSAGE_CHARS,
    );
    if error.is_builder() {
        return ProviderError::BadRequest {
            provider: provider.to_owned(),
            status: 0,
            message,
        };
    }
    ProviderError::Network {
        provider: provider.to_owned(),
        connect_timeout: error.is_connect() && error.is_timeout(),
        message,
    }
}

/// An error and its sources on one line ("error sending request: connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Classifies a non-2xx answer by its status and JSON error body.
///
/// - 429: [`ProviderError::RateLimited`] with `retry_after` (from the headers,
///   else from a Gemini `RetryInfo.retryDelay` in the body), except OpenAI's
///   `insufficient_quota` (out of credit): [`ProviderError::BadRequest`];
/// - 500–599 (Anthropic's 529 "overloaded" included):
///   [`ProviderError::Server`];
/// - 408: [`ProviderError::Network`] (the request timed out on the way);
/// - 401, 403, and Gemini's 400 `API_KEY_INVALID`: [`ProviderError::Auth`]
///   (its `key_env` is left for the endpoint to fill in);
/// - 400, 413 whose body says the prompt is longer than the context:
///   [`ProviderError::ContextTooLong`];
/// - any other 4xx: [`ProviderError::BadRequest`];
/// - anything else: [`ProviderError::InvalidResponse`].
pub(crate) fn classify_status(
    provider: &str,
    status: u16,
    retry_after: Option<Duration>,
    body: &str,
) -> ProviderError {
    let provider = provider.to_owned();
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let message = error_message(parsed.as_ref(), body, status);
    match status {
        // OpenAI's "out of credit" is a 429 too, but waiting will not help.
        429 if is_insufficient_quota(parsed.as_ref()) => ProviderError::BadRequest {
            provider,
            status,
            message,
        },
        429 => ProviderError::RateLimited {
            provider,
            retry_after: retry_after.or_else(|| parsed.as_ref().and_then(gemini_retry_delay)),
            message,
        },
        500..=599 => ProviderError::Server {
            provider,
            status,
            message,
        },
        408 => ProviderError::Network {
            provider,
            connect_timeout: false,
            message,
        },
        401 | 403 => ProviderError::Auth {
            provider,
            status,
            message,
            key_env: None,
        },
        // Gemini refuses a bad key with 400 INVALID_ARGUMENT.
        400 if is_invalid_key(parsed.as_ref()) => ProviderError::Auth {
            provider,
            status,
            message,
            key_env: None,
        },
        400 | 413 if says_context_too_long(parsed.as_ref(), body) => {
            ProviderError::ContextTooLong { provider, message }
        }
        400..=499 => ProviderError::BadRequest {
            provider,
            status,
            message,
        },
        _ => ProviderError::InvalidResponse {
            provider,
            message: format!("unexpected HTTP status {status}: {message}"),
        },
    }
}

/// How long the answer's headers ask us to wait: OpenAI's `retry-after-ms`
/// (milliseconds) first, else `Retry-After` in (possibly fractional) seconds.
/// The HTTP-date form of `Retry-After` is not understood and ignored.
pub(crate) fn retry_after_from_headers(headers: &HeaderMap) -> Option<Duration> {
    let header_number = |name: &str| -> Option<f64> {
        let value = headers
            .get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()?;
        (value.is_finite() && value >= 0.0).then_some(value)
    };
    if let Some(millis) = header_number("retry-after-ms") {
        return Some(Duration::from_secs_f64(millis / 1000.0));
    }
    header_number("retry-after").map(Duration::from_secs_f64)
}

/// Gemini puts the wait in the body: `error.details[].retryDelay = "30s"`.
fn gemini_retry_delay(body: &serde_json::Value) -> Option<Duration> {
    let details = body.pointer("/error/details")?.as_array()?;
    details.iter().find_map(|detail| {
        let delay = detail.get("retryDelay")?.as_str()?;
        let seconds = delay.strip_suffix('s')?.parse::<f64>().ok()?;
        (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
    })
}

/// Whether a 429 body is OpenAI's `insufficient_quota` (billing, not load).
fn is_insufficient_quota(parsed: Option<&serde_json::Value>) -> bool {
    let field = |pointer: &str| {
        parsed
            .and_then(|value| value.pointer(pointer))
            .and_then(serde_json::Value::as_str)
    };
    field("/error/code") == Some("insufficient_quota")
        || field("/error/type") == Some("insufficient_quota")
}

/// Whether a 400 body is Gemini's refusal of the key
/// (`error.details[].reason = "API_KEY_INVALID"`).
fn is_invalid_key(parsed: Option<&serde_json::Value>) -> bool {
    parsed
        .and_then(|value| value.pointer("/error/details"))
        .and_then(serde_json::Value::as_array)
        .is_some_and(|details| {
            details.iter().any(|detail| {
                detail.get("reason").and_then(serde_json::Value::as_str) == Some("API_KEY_INVALID")
            })
        })
}

/// Whether an error body says the prompt does not fit the context window,
/// in any of the three providers' words.
fn says_context_too_long(parsed: Option<&serde_json::Value>, body: &str) -> bool {
    let code_says_so = parsed
        .and_then(|value| value.pointer("/error/code"))
        .and_then(serde_json::Value::as_str)
        .is_some_and(|code| code == "context_length_exceeded");
    if code_says_so {
        return true;
    }
    let lower = body.to_lowercase();
    [
        "context_length_exceeded",
        "prompt is too long",
        "exceeds the maximum number of tokens",
        "maximum context length",
        "context window",
    ]
    .iter()
    .any(|phrase| lower.contains(phrase))
}

/// The provider's own error message from its JSON error body, capped.
///
/// Understands `{"error": {"message": ...}}` (OpenAI, Anthropic, Gemini),
/// `{"error": "..."}` (Ollama) and `{"message": ...}`; falls back to the raw
/// body, and to the status when the body is empty.
fn error_message(parsed: Option<&serde_json::Value>, body: &str, status: u16) -> String {
    let from_json = parsed.and_then(|value| {
        value
            .pointer("/error/message")
            .or_else(|| value.get("error"))
            .or_else(|| value.get("message"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    });
    let message = match from_json {
        Some(message) => message,
        None if body.trim().is_empty() => format!("HTTP {status} with an empty body"),
        None => body.trim().to_owned(),
    };
    cap_message(&message, MAX_ERROR_MESSAGE_CHARS)
}

/// `text` cut to at most `max_chars` characters, marked with `…` when cut.
pub(crate) fn cap_message(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn rate_limit_keeps_retry_after() {
        let error = classify_status(
            "openai",
            429,
            Some(Duration::from_secs(3)),
            r#"{"error":{"message":"slow down","type":"rate_limit"}}"#,
        );
        assert_eq!(
            error,
            ProviderError::RateLimited {
                provider: "openai".into(),
                retry_after: Some(Duration::from_secs(3)),
                message: "slow down".into(),
            }
        );
        assert!(error.is_transient());
    }

    #[test]
    fn insufficient_quota_is_not_retried() {
        let body = r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#;
        let error = classify_status("openai", 429, None, body);
        assert!(matches!(
            error,
            ProviderError::BadRequest { status: 429, .. }
        ));
        assert!(!error.is_transient());
    }

    #[test]
    fn gemini_retry_delay_is_read_from_the_body() {
        let body = r#"{"error":{"code":429,"message":"quota","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"12s"}]}}"#;
        let error = classify_status("gemini", 429, None, body);
        assert_eq!(error.retry_after(), Some(Duration::from_secs(12)));
    }

    #[test]
    fn statuses_map_to_variants() {
        let overloaded =
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert!(matches!(
            classify_status("anthropic", 529, None, overloaded),
            ProviderError::Server { status: 529, ref message, .. } if message == "Overloaded"
        ));
        assert!(matches!(
            classify_status("x", 503, None, ""),
            ProviderError::Server { status: 503, .. }
        ));
        assert!(matches!(
            classify_status("x", 401, None, "{}"),
            ProviderError::Auth { status: 401, .. }
        ));
        assert!(matches!(
            classify_status("x", 403, None, "{}"),
            ProviderError::Auth { status: 403, .. }
        ));
        assert!(matches!(
            classify_status("x", 404, None, r#"{"error":"model not found"}"#),
            ProviderError::BadRequest { status: 404, ref message, .. } if message == "model not found"
        ));
    }

    #[test]
    fn gemini_refuses_a_bad_key_with_400() {
        let body = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}"#;
        assert!(matches!(
            classify_status("gemini", 400, None, body),
            ProviderError::Auth { status: 400, .. }
        ));
    }

    #[test]
    fn context_too_long_in_each_providers_words() {
        let openai = r#"{"error":{"message":"This model's maximum context length is 128000 tokens.","type":"invalid_request_error","code":"context_length_exceeded"}}"#;
        let anthropic = r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#;
        let gemini = r#"{"error":{"code":400,"message":"The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}"#;
        for body in [openai, anthropic, gemini] {
            assert!(
                matches!(
                    classify_status("p", 400, None, body),
                    ProviderError::ContextTooLong { .. }
                ),
                "{body}"
            );
        }
        assert!(matches!(
            classify_status("p", 400, None, r#"{"error":{"message":"bad temperature"}}"#),
            ProviderError::BadRequest { .. }
        ));
    }

    #[test]
    fn long_messages_are_capped() {
        let body = format!(r#"{{"error":{{"message":"{}"}}}}"#, "é".repeat(2000));
        let ProviderError::BadRequest { message, .. } = classify_status("p", 400, None, &body)
        else {
            panic!("expected BadRequest");
        };
        assert_eq!(message.chars().count(), MAX_ERROR_MESSAGE_CHARS + 1);
    }

    #[test]
    fn retry_after_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after_from_headers(&headers), None);
        headers.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(
            retry_after_from_headers(&headers),
            Some(Duration::from_secs(7))
        );
        headers.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(
            retry_after_from_headers(&headers),
            Some(Duration::from_millis(250))
        );
        let mut dated = HeaderMap::new();
        dated.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after_from_headers(&dated), None);
    }
}
