//! Provider errors, classified as transient (retried) or permanent, with
//! what a user is told about each ([`ProviderError::user_message`]).
//!
//! Messages hold the provider's own words, redacted and capped where they
//! are built (`http.rs`); they go to the log and the store, never to a chat.

use std::time::Duration;

use crate::redact::Redactor;

/// Why a model call failed. Each variant says whether it is retried.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// Transient: 429. Retried after `retry_after` when the provider gave one.
    #[error("{provider} is rate limiting requests{}: {message}", retry_hint(*retry_after))]
    RateLimited {
        provider: String,
        retry_after: Option<Duration>,
        message: String,
    },
    /// Transient: 5xx or "overloaded". Retried with backoff.
    #[error("{provider} had a server error ({status}): {message}")]
    Server {
        provider: String,
        status: u16,
        message: String,
    },
    /// Transient: timeout, connection refused or reset. Retried with backoff.
    /// `connect_timeout`: no connection could be made in time (a sign of
    /// overload: the model-call limiter lowers the provider's limit).
    #[error("could not reach {provider}: {message}")]
    Network {
        provider: String,
        connect_timeout: bool,
        message: String,
    },
    /// Permanent: 401 or 403 (Gemini: 400 `API_KEY_INVALID`). The API key
    /// is missing, wrong or lacks access. `key_env` is the variable that
    /// holds it, where the config names one.
    #[error("{provider} rejected the API key ({status}): {message}; check {}", key_hint(key_env.as_deref()))]
    Auth {
        provider: String,
        status: u16,
        message: String,
        key_env: Option<String>,
    },
    /// Permanent: the conversation is longer than the model's context window.
    #[error(
        "the conversation is too long for the model ({provider}): {message}; /reset starts a new context"
    )]
    ContextTooLong { provider: String, message: String },
    /// Permanent: any other 4xx (bad model name, bad parameters).
    #[error("{provider} refused the request ({status}): {message}")]
    BadRequest {
        provider: String,
        status: u16,
        message: String,
    },
    /// Permanent: a 2xx answer that does not parse as the wire format.
    #[error("{provider} sent an answer Baton could not read: {message}")]
    InvalidResponse { provider: String, message: String },
    /// Permanent: the answer's body is larger than `limit` bytes (the
    /// provider's `max_response_bytes`); reading stopped there.
    #[error(
        "{provider} sent an answer larger than {limit} bytes (max_response_bytes); it was not read"
    )]
    TooLarge { provider: String, limit: usize },
}

fn key_hint(key_env: Option<&str>) -> String {
    match key_env {
        Some(var) => format!("the key in {var}"),
        None => "the provider's api_key_env".to_owned(),
    }
}

fn retry_hint(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(after) => format!(" (retry after {}s)", after.as_secs_f64()),
        None => String::new(),
    }
}

impl ProviderError {
    /// Whether the same request may succeed if tried again.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ProviderError::RateLimited { .. }
                | ProviderError::Server { .. }
                | ProviderError::Network { .. }
        )
    }

    /// How long the provider asked us to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// What a chat user is told: short and plain, never the provider's own
    /// words (which may quote a key); the operator finds those in the log.
    pub fn user_message(&self) -> String {
        match self {
            ProviderError::Auth {
                key_env: Some(var), ..
            } => format!(
                "the model provider rejected Baton's API key; the operator must check {var}"
            ),
            ProviderError::Auth { provider, .. } => format!(
                "the model provider rejected Baton's access; the operator must set an API key \
                 ([providers.{provider}] api_key_env)"
            ),
            ProviderError::RateLimited { .. } | ProviderError::Server { .. } => {
                "the model provider is overloaded; please try again in a minute".to_owned()
            }
            ProviderError::Network { .. } => {
                "the model provider could not be reached or stopped answering; please try again \
                 in a minute"
                    .to_owned()
            }
            ProviderError::ContextTooLong { .. } => {
                "the conversation is too long for the model; /reset starts a new context".to_owned()
            }
            ProviderError::BadRequest { status: 0, .. } => {
                "Baton could not build a request to the model provider; the operator must check \
                 its base_url"
                    .to_owned()
            }
            ProviderError::BadRequest { status: 429, .. } => {
                "the model provider's account has no credit left; the operator must check its \
                 billing"
                    .to_owned()
            }
            ProviderError::BadRequest { status, .. } => format!(
                "the model provider refused the request (HTTP {status}); the details are in \
                 Baton's log"
            ),
            ProviderError::InvalidResponse { .. } => {
                "the model provider sent an answer I could not read; please try again".to_owned()
            }
            ProviderError::TooLarge { limit, .. } => format!(
                "the model's answer was larger than the {limit} bytes I accept; please ask for \
                 a shorter answer"
            ),
        }
    }

    /// A few words on why a transient failure is retried, for the notice a
    /// user gets (no provider text).
    pub fn retry_reason(&self) -> &'static str {
        match self {
            ProviderError::RateLimited { .. } => "the provider is rate limiting",
            ProviderError::Server { .. } => "the provider is overloaded",
            ProviderError::Network { .. } => "no answer in time",
            _ => "an error",
        }
    }

    /// This error with its message passed through `redactor`.
    pub fn redacted(mut self, redactor: &Redactor) -> Self {
        match &mut self {
            ProviderError::RateLimited { message, .. }
            | ProviderError::Server { message, .. }
            | ProviderError::Network { message, .. }
            | ProviderError::Auth { message, .. }
            | ProviderError::ContextTooLong { message, .. }
            | ProviderError::BadRequest { message, .. }
            | ProviderError::InvalidResponse { message, .. } => {
                *message = redactor.redact(message);
            }
            ProviderError::TooLarge { .. } => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_get_plain_words_never_the_providers() {
        let secret = "sk-proj-abcdef1234567890";
        let message = format!("Incorrect API key provided: {secret}");
        let auth = ProviderError::Auth {
            provider: "openai".into(),
            status: 401,
            message: message.clone(),
            key_env: Some("OPENAI_API_KEY".into()),
        };
        assert_eq!(
            auth.user_message(),
            "the model provider rejected Baton's API key; the operator must check OPENAI_API_KEY"
        );
        let redacted = auth.clone().redacted(&Redactor::default());
        assert!(!redacted.to_string().contains(secret), "{redacted}");
        assert!(
            redacted.to_string().contains("OPENAI_API_KEY"),
            "{redacted}"
        );
        let errors = [
            ProviderError::RateLimited {
                provider: "p".into(),
                retry_after: None,
                message: message.clone(),
            },
            ProviderError::Server {
                provider: "p".into(),
                status: 503,
                message: message.clone(),
            },
            ProviderError::Network {
                provider: "p".into(),
                connect_timeout: false,
                message: message.clone(),
            },
            ProviderError::BadRequest {
                provider: "p".into(),
                status: 404,
                message: message.clone(),
            },
            ProviderError::ContextTooLong {
                provider: "p".into(),
                message: message.clone(),
            },
            ProviderError::InvalidResponse {
                provider: "p".into(),
                message: message.clone(),
            },
            ProviderError::Auth {
                provider: "p".into(),
                status: 403,
                message: message.clone(),
                key_env: None,
            },
        ];
        for error in errors {
            let told = error.user_message();
            assert!(!told.contains("Incorrect"), "{told}");
            assert!(!told.contains(secret), "{told}");
        }
    }
}
