//! One provider's adaptive limit on model calls in flight: additive
//! increase while calls succeed, multiplicative decrease (halving) on
//! overload, under the provider's configured ceiling; and the pauses its
//! `Retry-After` and quota headers ask for.
//!
//! The rules, in the order they matter:
//! - **What counts as overload** ([`Signal::of`]): a 429, a 529 or a 5xx
//!   whose message says "overloaded", and a connect timeout. Other errors
//!   (a bad request, a refused key, a slow body) say nothing about load.
//! - **One decrease per window.** Each call remembers the limit's epoch
//!   when it started. Only a call started since the last decrease can
//!   decrease again: a burst of 429s from calls sent at the old limit
//!   halves it once, not once per call (TCP's rule, for the same reason).
//! - **Halving what was really in flight**: the new limit is half of the
//!   smaller of the limit and the calls in flight (a limit of 256 with 30
//!   calls in flight that sees a 429 goes to 15, not 128).
//! - **Growth**: while below 90% of the level it last halved from, the
//!   limit grows one slot per success (back to where it worked within
//!   about one round trip); above that, one slot per limit's worth of
//!   successes (about one per round trip: AIMD's probing). It stays one
//!   below the level that failed for [`HOLD_ROUNDS`] limits' worth of
//!   successes before it probes that level again, so a provider that takes
//!   N calls at once sees N most of the time and a refused call now and
//!   then, not a steady sawtooth. Only calls started since the last
//!   decrease count, and not while the provider's
//!   `x-ratelimit-remaining-requests` is below the limit.
//! - **Pauses**: `Retry-After` (and a quota header at zero, with its reset)
//!   stops new calls to the provider for that long, at most [`MAX_PAUSE`].

use std::time::Duration;

use tokio::time::Instant;

use crate::llm::{Completion, ProviderError, Quota};

/// What a halving multiplies by.
const DECREASE_FACTOR: f64 = 0.5;
/// Below this share of the level last halved from, the limit grows one
/// slot per success.
const RECOVER_SHARE: f64 = 0.9;
/// After a halving from N, the limit stays at most N - 1 for this many
/// times N successes (about as many round trips) before it probes N again.
const HOLD_ROUNDS: u64 = 10;
/// The longest a provider is paused for one `Retry-After` or used-up quota.
pub const MAX_PAUSE: Duration = Duration::from_secs(60);

/// What one finished call says about the provider's load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Signal {
    /// It answered; its quota headers came with it.
    Answered(Quota),
    /// It refused for load: `reason` for the log, and how long it asked us
    /// to wait, if it said.
    Overloaded {
        reason: &'static str,
        retry_after: Option<Duration>,
    },
    /// It failed for a reason that says nothing about load.
    Neutral,
}

impl Signal {
    /// Reads a call's result.
    pub fn of(result: &Result<Completion, ProviderError>) -> Signal {
        match result {
            Ok(completion) => Signal::Answered(completion.quota),
            Err(ProviderError::RateLimited { retry_after, .. }) => Signal::Overloaded {
                reason: "rate limited (429)",
                retry_after: *retry_after,
            },
            Err(ProviderError::Server { status: 529, .. }) => Signal::Overloaded {
                reason: "overloaded (529)",
                retry_after: None,
            },
            Err(ProviderError::Server { message, .. })
                if message.to_ascii_lowercase().contains("overloaded") =>
            {
                Signal::Overloaded {
                    reason: "overloaded",
                    retry_after: None,
                }
            }
            Err(ProviderError::Network {
                connect_timeout: true,
                ..
            }) => Signal::Overloaded {
                reason: "connect timeout",
                retry_after: None,
            },
            Err(_) => Signal::Neutral,
        }
    }
}

/// What recording a signal changed, for the log.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Change {
    /// The limit was halved: (from, to).
    pub halved: Option<(usize, usize)>,
    /// New calls wait this long, and why.
    pub paused: Option<(Duration, &'static str)>,
    /// The limit grew by at least one slot.
    pub grew: bool,
}

/// One provider's limit.
#[derive(Debug, Clone)]
pub(crate) struct AdaptiveLimit {
    /// `max_concurrency`: the limit never goes above it.
    ceiling: usize,
    /// The limit, with the fraction that additive increase builds up.
    limit: f64,
    /// Below this the limit grows fast (90% of the level last halved from).
    recover_to: f64,
    /// The level that last failed (calls in flight at the last halving).
    failed_at: f64,
    /// Successes left before the limit may grow to `failed_at` again.
    hold: u64,
    /// Decreases so far; a call started in an earlier epoch neither
    /// decreases nor grows the limit.
    epoch: u64,
    /// No new call before this.
    paused_until: Option<Instant>,
    /// Why the provider is paused.
    pause_reason: &'static str,
}

impl AdaptiveLimit {
    /// Starts at the ceiling (at least one): the provider has not asked
    /// for less yet.
    pub fn new(ceiling: usize) -> Self {
        let ceiling = ceiling.max(1);
        AdaptiveLimit {
            ceiling,
            limit: as_f64(ceiling),
            recover_to: 0.0,
            failed_at: 0.0,
            hold: 0,
            epoch: 0,
            paused_until: None,
            pause_reason: "",
        }
    }

    /// The configured ceiling.
    pub fn ceiling(&self) -> usize {
        self.ceiling
    }

    /// Calls that may be in flight now.
    pub fn current(&self) -> usize {
        whole(self.limit).clamp(1, self.ceiling)
    }

    /// The epoch a call starting now belongs to.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// How much longer new calls wait, and why, if the provider is paused.
    pub fn paused_for(&self, now: Instant) -> Option<(Duration, &'static str)> {
        self.paused_until
            .filter(|until| *until > now)
            .map(|until| (until - now, self.pause_reason))
    }

    /// When the current pause ends, if there is one.
    pub fn paused_until(&self, now: Instant) -> Option<Instant> {
        self.paused_until.filter(|until| *until > now)
    }

    /// Whether one more call may start, with `in_flight` already running.
    pub fn admits(&self, in_flight: usize, now: Instant) -> bool {
        self.paused_until(now).is_none() && in_flight < self.current()
    }

    /// Takes in what a call started in `call_epoch` said; `in_flight`
    /// counts the provider's calls running, this one included.
    pub fn record(
        &mut self,
        signal: &Signal,
        call_epoch: u64,
        in_flight: usize,
        now: Instant,
    ) -> Change {
        let mut change = Change::default();
        match *signal {
            Signal::Neutral => {}
            Signal::Answered(quota) => {
                if let Some(wait) = quota.exhausted_for {
                    change.paused = self.pause(now, wait, "its quota is used up");
                }
                if call_epoch == self.epoch && !self.quota_below_limit(quota) {
                    let before = self.current();
                    self.grow();
                    change.grew = self.current() > before;
                }
            }
            Signal::Overloaded { retry_after, .. } => {
                if let Some(wait) = retry_after {
                    change.paused = self.pause(now, wait, "Retry-After");
                }
                if call_epoch == self.epoch {
                    let before = self.current();
                    self.halve(in_flight);
                    if self.current() < before {
                        change.halved = Some((before, self.current()));
                    }
                }
            }
        }
        change
    }

    fn quota_below_limit(&self, quota: Quota) -> bool {
        quota
            .requests_remaining
            .is_some_and(|left| as_f64_u64(left) < self.limit)
    }

    fn grow(&mut self) {
        let step = if self.limit < self.recover_to {
            1.0
        } else {
            1.0 / self.limit.max(1.0)
        };
        let mut grown = (self.limit + step).min(as_f64(self.ceiling));
        if self.hold > 0 {
            self.hold -= 1;
            grown = grown.min((self.failed_at - 1.0).max(1.0)).max(self.limit);
        }
        self.limit = grown;
    }

    fn halve(&mut self, in_flight: usize) {
        let base = self.limit.min(as_f64(in_flight)).max(1.0);
        self.recover_to = base * RECOVER_SHARE;
        self.failed_at = base;
        self.hold = HOLD_ROUNDS * u64::try_from(whole(base)).unwrap_or(u64::MAX);
        self.limit = (base * DECREASE_FACTOR).floor().max(1.0);
        self.epoch += 1;
    }

    fn pause(
        &mut self,
        now: Instant,
        wait: Duration,
        reason: &'static str,
    ) -> Option<(Duration, &'static str)> {
        let wait = wait.min(MAX_PAUSE);
        if wait.is_zero() {
            return None;
        }
        let until = now + wait;
        if self.paused_until.is_some_and(|known| known >= until) {
            return None;
        }
        self.paused_until = Some(until);
        self.pause_reason = reason;
        Some((wait, reason))
    }
}

/// A count as an `f64` (limits are far below 2^52).
fn as_f64(count: usize) -> f64 {
    as_f64_u64(u64::try_from(count).unwrap_or(u64::MAX))
}

fn as_f64_u64(count: u64) -> f64 {
    // Counts this large do not occur; precision past 2^52 does not matter.
    #[allow(clippy::cast_precision_loss)]
    let value = count as f64;
    value
}

/// The whole part of a non-negative limit.
fn whole(limit: f64) -> usize {
    // The limit is kept between 1 and the ceiling.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let value = limit.max(0.0).floor() as usize;
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overloaded(retry_after: Option<Duration>) -> Signal {
        Signal::Overloaded {
            reason: "rate limited (429)",
            retry_after,
        }
    }

    fn answered() -> Signal {
        Signal::Answered(Quota::default())
    }

    #[test]
    fn overload_is_429_529_overloaded_and_connect_timeouts_only() {
        let server = |status: u16, message: &str| {
            Signal::of(&Err(ProviderError::Server {
                provider: "p".into(),
                status,
                message: message.into(),
            }))
        };
        assert!(matches!(server(529, "x"), Signal::Overloaded { .. }));
        assert!(matches!(
            server(503, "The engine is currently Overloaded"),
            Signal::Overloaded { .. }
        ));
        assert_eq!(server(500, "boom"), Signal::Neutral);
        let rate_limited = Signal::of(&Err(ProviderError::RateLimited {
            provider: "p".into(),
            retry_after: Some(Duration::from_secs(2)),
            message: String::new(),
        }));
        assert_eq!(rate_limited, overloaded(Some(Duration::from_secs(2))));
        let network = |connect_timeout| {
            Signal::of(&Err(ProviderError::Network {
                provider: "p".into(),
                connect_timeout,
                message: String::new(),
            }))
        };
        assert!(matches!(network(true), Signal::Overloaded { .. }));
        assert_eq!(network(false), Signal::Neutral);
        let bad = Signal::of(&Err(ProviderError::BadRequest {
            provider: "p".into(),
            status: 400,
            message: String::new(),
        }));
        assert_eq!(bad, Signal::Neutral);
    }

    #[test]
    fn halves_what_was_in_flight_once_per_window() {
        let now = Instant::now();
        let mut limit = AdaptiveLimit::new(256);
        assert_eq!(limit.current(), 256);
        let epoch = limit.epoch();
        // 100 calls were in flight at 256; the first 429 halves 100.
        let change = limit.record(&overloaded(None), epoch, 100, now);
        assert_eq!(change.halved, Some((256, 50)));
        // The rest of that burst started before the decrease: no effect.
        for in_flight in (1..100).rev() {
            let change = limit.record(&overloaded(None), epoch, in_flight, now);
            assert_eq!(change.halved, None);
        }
        assert_eq!(limit.current(), 50);
        // A call started at the new limit that is refused halves again.
        let change = limit.record(&overloaded(None), limit.epoch(), 50, now);
        assert_eq!(change.halved, Some((50, 25)));
        // Never below one.
        for _ in 0..10 {
            limit.record(&overloaded(None), limit.epoch(), 1, now);
        }
        assert_eq!(limit.current(), 1);
    }

    #[test]
    fn grows_fast_back_to_where_it_worked_then_one_per_round() {
        let now = Instant::now();
        let mut limit = AdaptiveLimit::new(64);
        limit.record(&overloaded(None), 0, 21, now);
        assert_eq!(limit.current(), 10);
        // Successes from calls started before the halving do not count.
        limit.record(&answered(), 0, 10, now);
        assert_eq!(limit.current(), 10);
        // One slot per success up to 90% of 21.
        let epoch = limit.epoch();
        for _ in 0..9 {
            limit.record(&answered(), epoch, 10, now);
        }
        assert_eq!(limit.current(), 19);
        // Then one slot per limit's worth of successes.
        for _ in 0..18 {
            limit.record(&answered(), epoch, 19, now);
        }
        assert_eq!(limit.current(), 19);
        for _ in 0..2 {
            limit.record(&answered(), epoch, 19, now);
        }
        assert_eq!(limit.current(), 20);
        // It stays below 21, which failed, for 10 × 21 successes in all.
        for _ in 0..150 {
            limit.record(&answered(), epoch, 20, now);
        }
        assert_eq!(limit.current(), 20);
        for _ in 0..60 {
            limit.record(&answered(), epoch, 20, now);
        }
        assert_eq!(limit.current(), 21);
        // And never above the ceiling.
        for _ in 0..10_000 {
            limit.record(&answered(), epoch, 20, now);
        }
        assert_eq!(limit.current(), 64);
    }

    #[test]
    fn a_provider_that_says_few_requests_are_left_is_not_probed() {
        let now = Instant::now();
        let mut limit = AdaptiveLimit::new(64);
        limit.record(&overloaded(None), 0, 8, now);
        assert_eq!(limit.current(), 4);
        let scarce = Signal::Answered(Quota {
            requests_remaining: Some(3),
            exhausted_for: None,
        });
        for _ in 0..100 {
            limit.record(&scarce, limit.epoch(), 4, now);
        }
        assert_eq!(limit.current(), 4);
    }

    #[test]
    fn retry_after_and_used_up_quotas_pause_new_calls() {
        let now = Instant::now();
        let mut limit = AdaptiveLimit::new(8);
        let change = limit.record(&overloaded(Some(Duration::from_secs(3))), 0, 1, now);
        assert_eq!(change.paused, Some((Duration::from_secs(3), "Retry-After")));
        assert!(!limit.admits(0, now));
        assert!(!limit.admits(0, now + Duration::from_millis(2999)));
        assert!(limit.admits(0, now + Duration::from_secs(3)));
        // A shorter pause does not cut a longer one short.
        let change = limit.record(&overloaded(Some(Duration::from_secs(1))), 9, 1, now);
        assert_eq!(change.paused, None);
        // An hour is capped.
        let change = limit.record(&overloaded(Some(Duration::from_secs(3600))), 9, 1, now);
        assert_eq!(change.paused, Some((MAX_PAUSE, "Retry-After")));
        // A quota at zero pauses without halving.
        let mut limit = AdaptiveLimit::new(8);
        let used_up = Signal::Answered(Quota {
            requests_remaining: Some(0),
            exhausted_for: Some(Duration::from_secs(2)),
        });
        let change = limit.record(&used_up, 0, 1, now);
        assert_eq!(
            change.paused,
            Some((Duration::from_secs(2), "its quota is used up"))
        );
        assert_eq!(change.halved, None);
        assert_eq!(limit.current(), 8);
    }
}
