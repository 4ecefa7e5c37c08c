//! The one retry mechanism Baton uses: [`backon`], re-exported here so that
//! the core and every adapter build their backoff the same way.
//!
//! A retry loop is `call.retry(builder).when(..).adjust(..).notify(..)`:
//! `when` picks the errors worth retrying, `adjust` replaces the backoff's
//! delay with the server's `Retry-After` where it gave one, and `notify`
//! logs each retry. Loops that pace rather than retry (a long-poll loop, a
//! queue's per-job "not before") take their waits from [`nth_delay`].

use std::time::Duration;

pub use backon::{BackoffBuilder, ExponentialBuilder, Retryable};

/// Exponential backoff without jitter: `first` before the first retry,
/// doubling for each later one, never more than `max`, and at most
/// `retries` retries (attempts in all minus one).
pub fn exponential(first: Duration, max: Duration, retries: u32) -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_factor(2.0)
        .with_min_delay(first)
        .with_max_delay(max)
        .with_max_times(usize::try_from(retries).unwrap_or(usize::MAX))
}

/// The delay `builder` gives before retry `retry` (1-based; 0 counts as
/// 1), ignoring its limit on retries; [`Duration::ZERO`] should it give
/// none.
pub fn nth_delay(builder: ExponentialBuilder, retry: u32) -> Duration {
    let skip = usize::try_from(retry.saturating_sub(1)).unwrap_or(usize::MAX);
    builder
        .without_max_times()
        .build()
        .nth(skip)
        .unwrap_or(Duration::ZERO)
}

/// The delay before retry `attempt` (1-based) of a transient failure in a
/// loop that paces rather than retries in place: 1 s, 2 s, 4 s, ... up to
/// 30 s. Telegram's long-poll loop runs for as long as the bot does, and an
/// outbox sets a job's "not before" so that other jobs go on meanwhile.
pub fn pacing_delay(attempt: u32) -> Duration {
    nth_delay(
        exponential(Duration::from_secs(1), Duration::from_secs(30), 0),
        attempt,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_delay_grows_and_is_capped() {
        assert_eq!(pacing_delay(1), Duration::from_secs(1));
        assert_eq!(pacing_delay(3), Duration::from_secs(4));
        assert_eq!(pacing_delay(40), Duration::from_secs(30));
    }

    #[test]
    fn exponential_doubles_up_to_its_cap_and_stops() {
        let delays: Vec<_> = exponential(Duration::from_millis(500), Duration::from_secs(2), 4)
            .build()
            .collect();
        assert_eq!(
            delays,
            [
                Duration::from_millis(500),
                Duration::from_secs(1),
                Duration::from_secs(2),
                Duration::from_secs(2)
            ]
        );
    }

    #[test]
    fn nth_delay_ignores_the_retry_limit() {
        let builder = exponential(Duration::from_secs(1), Duration::from_secs(30), 1);
        assert_eq!(nth_delay(builder, 0), Duration::from_secs(1));
        assert_eq!(nth_delay(builder, 1), Duration::from_secs(1));
        assert_eq!(nth_delay(builder, 3), Duration::from_secs(4));
        assert_eq!(nth_delay(builder, 40), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn adjust_can_wait_retry_after_instead() {
        let started = tokio::time::Instant::now();
        let mut calls = 0;
        let result: Result<(), u64> = (|| {
            calls += 1;
            let attempt = calls;
            async move { Err(attempt) }
        })
        .retry(exponential(
            Duration::from_millis(10),
            Duration::from_secs(1),
            2,
        ))
        .adjust(|_, delay| delay.map(|_| Duration::from_secs(3)))
        .await;
        assert_eq!(result, Err(3));
        assert_eq!(started.elapsed(), Duration::from_secs(6));
    }
}
