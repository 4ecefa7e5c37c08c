//! The fake's one handler: counts the requests in flight and refuses those
//! over the concurrency limit, reads a request in its wire's form, asks the
//! script, waits out delays and gates, and renders the reply (an error, a
//! body sent in chunks, or the wire's answer with its usage numbers).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};

use super::prompt_cache::{Counted, Rules};
use super::seen::SeenRequest;
use super::{FakeReply, Shared, Wire, anthropic, gemini, lock, openai};

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

pub(super) async fn answer(
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
        Wire::OpenAi => openai::parse(path, raw, header("authorization")),
        Wire::Anthropic => anthropic::parse(path, raw, header("x-api-key")),
        Wire::Gemini => gemini::parse(path, raw, header("x-goog-api-key")),
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

/// A reply with the delay already taken off.
pub(super) enum Answer {
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
            Wire::Anthropic => anthropic::cache(seen, input),
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
        Wire::OpenAi => openai::body(seen, answer, sequence, counted, output_tokens),
        Wire::Anthropic => anthropic::body(seen, answer, sequence, counted, output_tokens),
        Wire::Gemini => gemini::body(seen, answer, sequence, counted, output_tokens),
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
pub(super) fn arguments_object(arguments: &str) -> Value {
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
