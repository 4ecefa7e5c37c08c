//! Webhook mode: the route Telegram POSTs updates to, mounted on Baton's
//! own HTTP server.
//!
//! Every request must carry the secret given to `setWebhook` in
//! `X-Telegram-Bot-Api-Secret-Token` (checked in constant time, before the
//! body is read); others get 401. The body is then read up to axum's body
//! limit (2 MB unless a `DefaultBodyLimit` layer says otherwise; more gets
//! 413) and decoded by [`decode::webhook_body`]: lone UTF-16 surrogates
//! become U+FFFD, and a body that still is not an update is taken (200)
//! and logged with its `update_id`, since Telegram would only send it
//! again. The answer is sent only after the update is handled (stored by the
//! engine): a 200 confirms it, a 503 (transient store failure) makes
//! Telegram deliver it again later. teloxide's own webhook router answers
//! before the update is handled, which is why this route is Baton's.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::routing::post;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::decode;
use crate::inbound::Intake;

/// The header Telegram puts the secret token in.
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

struct Hook {
    intake: Arc<Intake>,
    secret: SecretString,
}

/// A router answering `POST path` with `intake`.
pub(crate) fn router(path: &str, intake: Arc<Intake>, secret: SecretString) -> Router {
    let hook = Arc::new(Hook { intake, secret });
    Router::new().route(path, post(receive)).with_state(hook)
}

async fn receive(State(hook): State<Arc<Hook>>, request: Request) -> StatusCode {
    let given = request
        .headers()
        .get(SECRET_HEADER)
        .map(|value| value.as_bytes())
        .unwrap_or_default();
    if !constant_time_eq(given, hook.secret.expose_secret().as_bytes()) {
        tracing::warn!("webhook request without the right secret token refused");
        return StatusCode::UNAUTHORIZED;
    }
    // Only now is the body read (within the body limit).
    let body = match Bytes::from_request(request, &()).await {
        Ok(body) => body,
        Err(rejection) => {
            tracing::warn!(status = %rejection.status(), "webhook body cannot be read; refused");
            return rejection.status();
        }
    };
    let update = match decode::webhook_body(&body) {
        Ok(update) => update,
        Err(unreadable) => {
            // Telegram would only send it again: take it and say why.
            match unreadable.id {
                Some(id) => {
                    tracing::warn!(update = id, error = %unreadable.reason, "webhook update cannot be read; ignored");
                }
                None => {
                    tracing::warn!(error = %unreadable.reason, "webhook body is not an update; ignored");
                }
            }
            return StatusCode::OK;
        }
    };
    match hook.intake.handle(update).await {
        Ok(()) => StatusCode::OK,
        Err(error) => {
            tracing::warn!(error = %error, "cannot take an update now; Telegram will send it again");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// Whether `given` is the secret, in time that does not depend on where
/// they differ.
fn constant_time_eq(given: &[u8], secret: &[u8]) -> bool {
    given.ct_eq(secret).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_secrets_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"abc"));
    }
}
