//! [`Connection`]: whether an adapter's link to its platform works now,
//! for Baton's readiness check (`/readyz`). The adapter marks it; the
//! server reads it. Lock-free.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// When the adapter last knew its platform link worked.
#[derive(Debug, Default)]
pub struct Connection {
    /// Unix milliseconds of the last success; 0: never, -1: up until told
    /// otherwise (a webhook set, a gateway ready).
    last_ok: AtomicI64,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Connection {
    /// A request to the platform just succeeded (a `getUpdates`).
    pub fn succeeded(&self) {
        self.last_ok.store(now_ms(), Ordering::Relaxed);
    }

    /// The link is up until [`Connection::down`] (a webhook set, a gateway ready).
    pub fn up(&self) {
        self.last_ok.store(-1, Ordering::Relaxed);
    }

    /// The link is down.
    pub fn down(&self) {
        self.last_ok.store(0, Ordering::Relaxed);
    }

    /// Whether the link is up, or its last success is at most `within` old.
    pub fn is_ready(&self, within: Duration) -> bool {
        match self.last_ok.load(Ordering::Relaxed) {
            -1 => true,
            0 => false,
            at => {
                now_ms().saturating_sub(at) <= i64::try_from(within.as_millis()).unwrap_or(i64::MAX)
            }
        }
    }
}
