//! When one chat may get its next message: a minimum interval between
//! messages, an optional cap per minute (a sliding window), and a cool-down
//! the platform asked for (a 429's `retry_after`).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// How a chat is paced; see [`crate::outbox::Rules`].
#[derive(Debug)]
pub(super) struct Pace {
    interval: Duration,
    per_minute: Option<usize>,
    last: Option<Instant>,
    /// When the messages of the last minute went (with `per_minute` only).
    window: VecDeque<Instant>,
    cooldown: Option<Instant>,
}

const MINUTE: Duration = Duration::from_secs(60);

impl Pace {
    /// At least `interval` between messages, at most `per_minute` a minute.
    pub(super) fn new(interval: Duration, per_minute: Option<usize>) -> Self {
        Self {
            interval,
            per_minute: per_minute.map(|n| n.max(1)),
            last: None,
            window: VecDeque::new(),
            cooldown: None,
        }
    }

    /// The earliest time the next message may go, if anything holds it.
    pub(super) fn next_allowed(&self) -> Option<Instant> {
        let mut at = self.last.map(|last| last + self.interval);
        if let Some(per_minute) = self.per_minute
            && self.window.len() >= per_minute
            && let Some(oldest) = self.window.front()
        {
            at = at.max(Some(*oldest + MINUTE));
        }
        at.max(self.cooldown)
    }

    /// A message went at `now`.
    pub(super) fn sent(&mut self, now: Instant) {
        self.last = Some(now);
        if self.per_minute.is_some() {
            self.window.push_back(now);
            while self
                .window
                .front()
                .is_some_and(|at| now.duration_since(*at) >= MINUTE)
            {
                self.window.pop_front();
            }
        }
    }

    /// The platform asked this chat to wait until `until`.
    pub(super) fn cool_down(&mut self, until: Instant) {
        self.cooldown = self.cooldown.max(Some(until));
    }

    /// Whether the chat is waiting out a cool-down at `now`.
    pub(super) fn cooling(&self, now: Instant) -> bool {
        self.cooldown.is_some_and(|until| until > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn interval_cap_per_minute_and_cool_down_each_hold_the_next_message() {
        let start = Instant::now();
        let mut pace = Pace::new(Duration::from_secs(1), Some(2));
        assert_eq!(pace.next_allowed(), None);
        pace.sent(start);
        assert_eq!(pace.next_allowed(), Some(start + Duration::from_secs(1)));
        pace.sent(start + Duration::from_secs(1));
        // Two in this minute: the third waits for the first to leave it.
        assert_eq!(pace.next_allowed(), Some(start + MINUTE));
        pace.cool_down(start + Duration::from_secs(90));
        assert!(pace.cooling(start + Duration::from_secs(89)));
        assert_eq!(pace.next_allowed(), Some(start + Duration::from_secs(90)));
    }
}
