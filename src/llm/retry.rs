//! Retrying model calls that failed for a transient reason (rate limits,
//! server errors, network failures): [`RetryPolicy`] and [`with_retry`].
//!
//! Permanent errors (auth, bad request, context too long, unreadable answer)
//! are returned at once.

use std::future::Future;
use std::time::Duration;

use baton_channel::backoff::{ExponentialBuilder, Retryable, nth_delay};

use super::ProviderError;
use crate::config::EngineConfig;

/// How often and how patiently a call is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (0 is treated as 1).
    pub max_attempts: u32,
    /// The backoff before the first retry; it doubles for each later one.
    pub base_delay: Duration,
    /// The longest wait between two attempts, `Retry-After` included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, 500 ms base delay, 30 s cap.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl From<&EngineConfig> for RetryPolicy {
    /// The policy for orchestrator model calls: `[engine] retry_attempts`
    /// (at least 1), `retry_base_delay_ms` and `retry_max_delay_ms`.
    fn from(engine: &EngineConfig) -> Self {
        RetryPolicy {
            max_attempts: engine.retry_attempts.max(1),
            base_delay: Duration::from_millis(engine.retry_base_delay_ms),
            max_delay: Duration::from_millis(engine.retry_max_delay_ms),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first retry) after
    /// `error`: the provider's `Retry-After` when it gave one, else
    /// exponential backoff with jitter; never more than `max_delay`.
    pub fn delay_before_retry(&self, retry: u32, error: &ProviderError) -> Duration {
        match error.retry_after() {
            Some(after) => self.cap_retry_after(after),
            None => self.backoff(retry),
        }
    }

    /// Exponential backoff with "equal jitter": half of
    /// `base_delay * 2^(retry-1)` (capped at `max_delay`) plus a random
    /// part of the other half.
    pub fn backoff(&self, retry: u32) -> Duration {
        nth_delay(self.backoff_builder(), retry).min(self.max_delay)
    }

    /// The backoff as a [`backon`](baton_channel::backoff) builder: backon's
    /// jitter adds a random part of the current delay, so starting from half
    /// of `base_delay` and capping at half of `max_delay` gives equal jitter.
    fn backoff_builder(&self) -> ExponentialBuilder {
        ExponentialBuilder::new()
            .with_factor(2.0)
            .with_min_delay(self.base_delay / 2)
            .with_max_delay(self.max_delay / 2)
            .with_jitter()
            .with_max_times(usize::try_from(self.max_attempts.max(1) - 1).unwrap_or(usize::MAX))
    }

    fn cap_retry_after(&self, after: Duration) -> Duration {
        after.min(self.max_delay)
    }
}

/// Runs `call` until it succeeds, fails permanently, or `policy.max_attempts`
/// attempts are used up; returns the last error then.
///
/// Only [`ProviderError::is_transient`] errors are retried. Each retry is
/// logged at warn level with the error (redacted where it was built).
pub async fn with_retry<T, F, Fut>(policy: &RetryPolicy, call: F) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    with_retry_notify(policy, call, |_, _| {}).await
}

/// [`with_retry`], calling `on_retry(next_attempt, &error)` when a retry is
/// decided, before its backoff (`next_attempt` is 2 for the first retry).
pub async fn with_retry_notify<T, F, Fut>(
    policy: &RetryPolicy,
    call: F,
    mut on_retry: impl FnMut(u32, &ProviderError),
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    let max_attempts = policy.max_attempts.max(1);
    let mut attempt = 1;
    call.retry(policy.backoff_builder())
        .when(ProviderError::is_transient)
        .adjust(|error, backoff| {
            backoff.map(|delay| match error.retry_after() {
                Some(after) => policy.cap_retry_after(after),
                None => delay.min(policy.max_delay),
            })
        })
        .notify(|error, delay| {
            tracing::warn!(
                attempt,
                max_attempts,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                %error,
                "model call failed; retrying"
            );
            attempt += 1;
            on_retry(attempt, error);
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tokio::time::Instant;

    fn server_error() -> ProviderError {
        ProviderError::Server {
            provider: "test".into(),
            status: 503,
            message: "unavailable".into(),
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let result = with_retry(&policy(), || async {
            let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
            if call < 3 {
                Err(server_error())
            } else {
                Ok(call)
            }
        })
        .await;
        assert_eq!(result, Ok(3));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let auth = ProviderError::Auth {
            provider: "test".into(),
            status: 401,
            message: "bad key".into(),
            key_env: None,
        };
        let result: Result<(), _> = with_retry(&policy(), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(auth.clone())
        })
        .await;
        assert_eq!(result, Err(auth));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_attempts_with_last_error() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = with_retry(&policy(), || async {
            let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
            Err(ProviderError::Network {
                provider: "test".into(),
                connect_timeout: false,
                message: format!("reset {call}"),
            })
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert!(
            matches!(result, Err(ProviderError::Network { message, .. }) if message == "reset 4")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn waits_retry_after_capped_by_max_delay() {
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let result = with_retry(&policy(), || async {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(ProviderError::RateLimited {
                    provider: "test".into(),
                    retry_after: Some(Duration::from_secs(2)),
                    message: "slow down".into(),
                })
            } else {
                Ok(())
            }
        })
        .await;
        assert_eq!(result, Ok(()));
        let waited = started.elapsed();
        assert!(waited >= Duration::from_secs(2), "{waited:?}");
        assert!(waited < Duration::from_millis(2100), "{waited:?}");

        let long = ProviderError::RateLimited {
            provider: "test".into(),
            retry_after: Some(Duration::from_secs(600)),
            message: String::new(),
        };
        assert_eq!(
            policy().delay_before_retry(1, &long),
            Duration::from_secs(5)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn each_retry_is_announced_with_its_attempt_number() {
        let calls = AtomicU32::new(0);
        let mut announced = Vec::new();
        let result = with_retry_notify(
            &policy(),
            || async {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(server_error())
                } else {
                    Ok(())
                }
            },
            |attempt, error| announced.push((attempt, error.retry_reason())),
        )
        .await;
        assert_eq!(result, Ok(()));
        assert_eq!(
            announced,
            [
                (2, "the provider is overloaded"),
                (3, "the provider is overloaded")
            ]
        );
    }

    #[test]
    fn backoff_grows_and_stays_within_bounds() {
        let policy = policy();
        for retry in 1..=10 {
            let exponential = (policy.base_delay * 2u32.pow(retry - 1)).min(policy.max_delay);
            let delay = policy.backoff(retry);
            assert!(delay >= exponential / 2, "retry {retry}: {delay:?}");
            assert!(delay <= exponential, "retry {retry}: {delay:?}");
        }
        assert!(policy.backoff(100) <= policy.max_delay);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_attempts_still_calls_once() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy {
            max_attempts: 0,
            ..policy()
        };
        let _: Result<(), _> = with_retry(&policy, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(server_error())
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
