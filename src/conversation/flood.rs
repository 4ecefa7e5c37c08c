//! Per-user flood control: past `[engine] max_messages_per_user_per_minute`
//! a user's messages are still stored, but no model is called for them;
//! the user is told once a minute to slow down.
//!
//! The count is a keyed GCRA limiter (governor): a burst of the whole
//! minute's allowance, then one message every `60 s / limit`. Users are
//! keyed by platform and platform user id, across all their conversations.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use baton_channel::Platform;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// The answer to the first message past the limit (once a minute).
pub const SLOW_DOWN: &str = "You are sending messages faster than I can answer them; \
I will skip the ones that arrive in the next minute. Please slow down.";

/// How often a limited user is told.
const NOTICE_EVERY: Duration = Duration::from_secs(60);
/// Forget users idle this long, every this many checks.
const SWEEP_EVERY: u32 = 4096;

/// Who is counted: a platform and a user id on it.
type UserKey = (Platform, String);

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Under the limit: answer it.
    Admit,
    /// Over the limit: skip it, and tell the user this time.
    SkipAndNotify,
    /// Over the limit: skip it silently (the user was told recently).
    Skip,
}

/// The limiter and when each limited user was last told.
pub(crate) struct FloodGate {
    limiter: Option<DefaultKeyedRateLimiter<UserKey>>,
    notified: DashMap<UserKey, Instant>,
    checks: std::sync::atomic::AtomicU32,
}

impl FloodGate {
    /// A gate letting `per_minute` messages through per user (0: no limit).
    pub fn new(per_minute: u32) -> Self {
        Self {
            limiter: NonZeroU32::new(per_minute)
                .map(|limit| RateLimiter::keyed(Quota::per_minute(limit))),
            notified: DashMap::new(),
            checks: Default::default(),
        }
    }

    /// Counts one message of `user` on `platform`.
    pub fn check(&self, platform: Platform, user: &str) -> Verdict {
        let Some(limiter) = &self.limiter else {
            return Verdict::Admit;
        };
        let key = (platform, user.to_owned());
        self.sweep(limiter);
        if limiter.check_key(&key).is_ok() {
            return Verdict::Admit;
        }
        let now = Instant::now();
        let notify = match self.notified.entry(key) {
            Entry::Occupied(mut told) => {
                let due = now.duration_since(*told.get()) >= NOTICE_EVERY;
                if due {
                    told.insert(now);
                }
                due
            }
            Entry::Vacant(told) => {
                told.insert(now);
                true
            }
        };
        if notify {
            Verdict::SkipAndNotify
        } else {
            Verdict::Skip
        }
    }

    /// Now and then, forgets users whose counts are back to full.
    fn sweep(&self, limiter: &DefaultKeyedRateLimiter<UserKey>) {
        let checks = self
            .checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if checks % SWEEP_EVERY == SWEEP_EVERY - 1 {
            limiter.retain_recent();
            let now = Instant::now();
            self.notified
                .retain(|_, told| now.duration_since(*told) < NOTICE_EVERY);
        }
    }
}

impl std::fmt::Debug for FloodGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FloodGate")
            .field("enabled", &self.limiter.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_limit_the_user_is_told_once_and_others_are_not_counted() {
        let gate = FloodGate::new(3);
        let verdicts: Vec<Verdict> = (0..6)
            .map(|_| gate.check(Platform::Telegram, "42"))
            .collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Admit,
                Verdict::Admit,
                Verdict::Admit,
                Verdict::SkipAndNotify,
                Verdict::Skip,
                Verdict::Skip
            ]
        );
        assert_eq!(gate.check(Platform::Telegram, "7"), Verdict::Admit);
        assert_eq!(gate.check(Platform::Discord, "42"), Verdict::Admit);
    }

    #[test]
    fn zero_means_no_limit() {
        let gate = FloodGate::new(0);
        assert!((0..1000).all(|_| gate.check(Platform::Telegram, "42") == Verdict::Admit));
    }
}
