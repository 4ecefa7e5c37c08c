//! Bot API failures sorted by what to do about them, with the bot token
//! kept out of every message.

use std::time::Duration;

use teloxide::{ApiError, RequestError};

/// A failed Bot API call, sorted by what the caller should do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Transient: flood control; try again after this long (per chat).
    #[error("rate limited by Telegram; retry after {0:?}")]
    RetryAfter(Duration),
    /// Transient: network trouble, a timeout, a 5xx, an unreadable answer.
    #[error("temporary Telegram failure: {0}")]
    Transient(String),
    /// Permanent for this text: Telegram rejected the formatting entities;
    /// the same text may go as plain text.
    #[error("Telegram rejected the formatting: {0}")]
    BadEntities(String),
    /// Another process is polling with the same token (409).
    #[error(
        "another process is receiving updates for this bot token (409 Conflict): stop the other \
         instance, or use one webhook for all"
    )]
    Conflict,
    /// Permanent: the chat is gone, the bot was blocked or removed, a bad
    /// request, a wrong token.
    #[error("Telegram refused the request: {0}")]
    Permanent(String),
}

impl Failure {
    /// Sorts a teloxide error; `token` is cut out of every message. An
    /// unreadable answer is described by its size and the parse error
    /// only: its body holds users' text, which must not reach the logs.
    pub fn from_request(error: &RequestError, token: &str) -> Failure {
        let text = redact(&error.to_string(), token);
        match error {
            RequestError::RetryAfter(seconds) => Failure::RetryAfter(seconds.duration()),
            RequestError::InvalidJson { source, raw } => Failure::Transient(format!(
                "unreadable answer ({} bytes): {}",
                raw.len(),
                crate::decode::describe(source)
            )),
            RequestError::Network(_) | RequestError::Io(_) => Failure::Transient(text),
            RequestError::Api(ApiError::CantParseEntities(_)) => Failure::BadEntities(text),
            RequestError::Api(ApiError::TerminatedByOtherGetUpdates) => Failure::Conflict,
            RequestError::Api(ApiError::Unknown(description)) if is_server_trouble(description) => {
                Failure::Transient(text)
            }
            RequestError::Api(_) | RequestError::MigrateToChatId(_) => Failure::Permanent(text),
        }
    }

    /// The HTTP status a failed call stands for, for the request metrics
    /// (`error` when no answer came).
    pub fn status(&self) -> String {
        match self {
            Failure::RetryAfter(_) => "429",
            Failure::Transient(_) => "error",
            Failure::BadEntities(_) => "400",
            Failure::Conflict => "409",
            Failure::Permanent(_) => "4xx",
        }
        .to_owned()
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Failure::RetryAfter(_) | Failure::Transient(_))
    }
}

fn is_server_trouble(description: &str) -> bool {
    let lower = description.to_ascii_lowercase();
    [
        "internal server error",
        "bad gateway",
        "gateway timeout",
        "service unavailable",
        "too many requests",
    ]
    .iter()
    .any(|what| lower.contains(what))
}

/// `text` with every occurrence of `token` replaced. teloxide already
/// hides tokens in the URLs of its network errors; this also covers tokens
/// that do not look like BotFather's and any other place one may appear.
pub fn redact(text: &str, token: &str) -> String {
    if token.is_empty() {
        return text.to_owned();
    }
    text.replace(token, "<token>")
}

/// Backoff before retry `attempt` (1-based) of a transient failure in the
/// long-poll loop: the shared [`baton_channel::backoff::pacing_delay`].
pub use baton_channel::backoff::pacing_delay as backoff;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_errors() {
        let token = "123:secret";
        let retry = RequestError::RetryAfter(teloxide::types::Seconds::from_seconds(3));
        assert_eq!(
            Failure::from_request(&retry, token),
            Failure::RetryAfter(Duration::from_secs(3))
        );
        let conflict = RequestError::Api(ApiError::TerminatedByOtherGetUpdates);
        assert_eq!(Failure::from_request(&conflict, token), Failure::Conflict);
        let entities = RequestError::Api(ApiError::CantParseEntities(
            "Bad Request: can't parse entities: unclosed tag".into(),
        ));
        assert!(matches!(
            Failure::from_request(&entities, token),
            Failure::BadEntities(_)
        ));
        let blocked = RequestError::Api(ApiError::BotBlocked);
        assert!(!Failure::from_request(&blocked, token).is_transient());
        let overloaded = RequestError::Api(ApiError::Unknown("Bad Gateway".into()));
        assert!(Failure::from_request(&overloaded, token).is_transient());
    }

    #[test]
    fn tokens_never_appear() {
        let error = RequestError::Api(ApiError::Unknown("bot123:secret is odd".into()));
        let text = Failure::from_request(&error, "123:secret").to_string();
        assert!(!text.contains("123:secret"), "{text}");
    }

    #[test]
    fn an_unreadable_answer_is_described_without_its_body() {
        let body = r#"{"ok":true,"result":[{"update_id":1,"message":{"text":"my password is hunter2 \ud800"}}]}"#;
        let source = serde_json::from_str::<serde_json::Value>(body).unwrap_err();
        let error = RequestError::InvalidJson {
            source: std::sync::Arc::new(source),
            raw: body.into(),
        };
        let failure = Failure::from_request(&error, "123:secret");
        assert!(failure.is_transient());
        let text = failure.to_string();
        assert!(!text.contains("hunter2"), "the body leaked: {text}");
        assert!(text.contains(&format!("{} bytes", body.len())), "{text}");
        assert!(
            text.contains("hex escape"),
            "the parse error is kept: {text}"
        );
    }
}
