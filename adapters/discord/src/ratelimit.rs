//! Baton's own Discord rate limiting (serenity's is off: it would ignore
//! the proxy `api_url`).
//!
//! What it covers:
//! - **Per route**: state per route and major parameter (a
//!   [`crate::rest::Endpoint`]'s bucket: `POST /channels/{id}/messages` for
//!   channel `id`), learnt from `X-RateLimit-Remaining` and
//!   `X-RateLimit-Reset-After` on every answer. A request waits while its
//!   route has no requests left before the reset. (Discord sometimes shares
//!   one bucket between routes, named by `X-RateLimit-Bucket`; Baton tracks
//!   routes apart and lets a 429 teach it the rest.)
//! - **Global**: at most `per_second` requests in any one-second window
//!   for the whole bot, interaction answers apart (Discord exempts them).
//! - **429**: `retry_after` from the body (seconds, fractional), or the
//!   `Retry-After` header, pauses the route, or every route when Discord
//!   says the limit is global.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::HeaderMap;
use tokio::time::Instant;

/// Where one route stands.
#[derive(Debug, Clone, Copy)]
struct RouteState {
    /// Requests left before `reset_at`.
    remaining: u32,
    /// When the route's window resets.
    reset_at: Instant,
}

#[derive(Debug, Default)]
struct State {
    routes: HashMap<String, RouteState>,
    /// Send times of the last second's globally counted requests.
    window: VecDeque<Instant>,
    /// A global 429 pauses everything until then.
    global_pause: Option<Instant>,
}

/// The rate-limit state of one bot.
#[derive(Debug)]
pub struct RateLimits {
    per_second: usize,
    /// Never held across an `.await`.
    state: Mutex<State>,
}

impl RateLimits {
    /// Limits with `per_second` requests a second for the whole bot.
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second: usize::try_from(per_second.max(1)).unwrap_or(usize::MAX),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until a request on `route` may go, and counts it.
    pub async fn acquire(&self, route: &str, global: bool) {
        loop {
            let wait = self.try_acquire(route, global, Instant::now());
            match wait {
                None => return,
                Some(until) => tokio::time::sleep_until(until).await,
            }
        }
    }

    /// Counts the request and returns `None` if it may go now, or the time
    /// to try again.
    fn try_acquire(&self, route: &str, global: bool, now: Instant) -> Option<Instant> {
        let mut state = self.state();
        let mut until = state.global_pause.filter(|at| *at > now);
        if let Some(route) = state.routes.get(route)
            && route.remaining == 0
            && route.reset_at > now
        {
            until = until.max(Some(route.reset_at));
        }
        if global {
            while state
                .window
                .front()
                .is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(1))
            {
                state.window.pop_front();
            }
            if state.window.len() >= self.per_second
                && let Some(oldest) = state.window.front()
            {
                until = until.max(Some(*oldest + Duration::from_secs(1)));
            }
        }
        if until.is_some() {
            return until;
        }
        if global {
            state.window.push_back(now);
        }
        if let Some(route) = state.routes.get_mut(route)
            && route.reset_at > now
        {
            route.remaining = route.remaining.saturating_sub(1);
        }
        None
    }

    /// Learns from an answer's `X-RateLimit-*` headers.
    pub fn observe(&self, route: &str, headers: &HeaderMap) {
        let remaining = header_number(headers, "x-ratelimit-remaining");
        let reset_after = header_number(headers, "x-ratelimit-reset-after");
        if let (Some(remaining), Some(reset_after)) = (remaining, reset_after) {
            let reset_at = Instant::now() + seconds(reset_after);
            self.state().routes.insert(
                route.to_owned(),
                RouteState {
                    remaining: remaining.max(0.0) as u32,
                    reset_at,
                },
            );
        }
    }

    /// A 429: nothing more on `route` (or anywhere, if `global`) for `wait`.
    pub fn limited(&self, route: &str, global: bool, wait: Duration) {
        let until = Instant::now() + wait;
        let mut state = self.state();
        if global {
            state.global_pause = state.global_pause.max(Some(until));
        } else {
            state.routes.insert(
                route.to_owned(),
                RouteState {
                    remaining: 0,
                    reset_at: until,
                },
            );
        }
    }
}

/// A header as a number, if it is one.
pub(crate) fn header_number(headers: &HeaderMap, name: &str) -> Option<f64> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<f64>().ok())
        .filter(|n| n.is_finite())
}

/// Fractional seconds as a duration (negative is zero, capped at an hour).
pub(crate) fn seconds(value: f64) -> Duration {
    Duration::from_secs_f64(value.clamp(0.0, 3600.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(id: u64) -> String {
        format!("POST /channels/{id}/messages")
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[tokio::test(start_paused = true)]
    async fn an_exhausted_route_waits_for_its_reset_and_others_do_not() {
        let limits = RateLimits::new(50);
        limits.observe(
            &route(1),
            &headers(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset-after", "1.5"),
            ]),
        );
        let now = Instant::now();
        assert_eq!(
            limits.try_acquire(&route(1), true, now),
            Some(now + Duration::from_millis(1500))
        );
        assert_eq!(limits.try_acquire(&route(2), true, now), None);
        limits.acquire(&route(1), true).await;
        assert!(Instant::now() >= now + Duration::from_millis(1500));
    }

    #[tokio::test(start_paused = true)]
    async fn remaining_counts_down_and_the_global_window_caps_a_second() {
        let limits = RateLimits::new(3);
        limits.observe(
            &route(1),
            &headers(&[
                ("x-ratelimit-remaining", "2"),
                ("x-ratelimit-reset-after", "10"),
            ]),
        );
        let now = Instant::now();
        assert_eq!(limits.try_acquire(&route(1), true, now), None);
        assert_eq!(limits.try_acquire(&route(1), true, now), None);
        assert!(limits.try_acquire(&route(1), true, now).is_some());
        assert_eq!(limits.try_acquire(&route(2), true, now), None);
        // Three in this second: the fourth waits a second, unless exempt.
        assert_eq!(
            limits.try_acquire(&route(3), true, now),
            Some(now + Duration::from_secs(1))
        );
        assert_eq!(limits.try_acquire(&route(3), false, now), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_global_429_pauses_every_route() {
        let limits = RateLimits::new(50);
        limits.limited(&route(1), true, Duration::from_millis(700));
        let now = Instant::now();
        assert_eq!(
            limits.try_acquire(&route(9), false, now),
            Some(now + Duration::from_millis(700))
        );
        limits.limited(&route(1), false, Duration::from_secs(2));
        assert_eq!(
            limits.try_acquire(&route(1), true, now + Duration::from_secs(1)),
            Some(now + Duration::from_secs(2))
        );
    }
}
