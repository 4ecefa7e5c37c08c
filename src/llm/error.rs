//! Provider errors, classified as transient (retried) or permanent.

use std::time::Duration;

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
    #[error("could not reach {provider}: {message}")]
    Network { provider: String, message: String },
    /// Permanent: 401 or 403. The API key is missing, wrong or lacks access.
    #[error(
        "{provider} rejected the API key ({status}): {message}; check the key variable named in the config"
    )]
    Auth {
        provider: String,
        status: u16,
        message: String,
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
}
