//! Several Baton instances on one PostgreSQL database. Every instance is
//! a member: it registers, beats every third of `[cluster] lease_secs`,
//! and renews every lease it holds in that one statement
//! ([`Membership`]). What runs where is decided by leases:
//!
//! - a **conversation** runs on the instance that holds its lease
//!   ([`Cluster::claim`]); the actor claims it when it starts and gives it
//!   up when it goes idle, so any instance may receive a message and the
//!   others wake the owner (`conversation::cluster` has the wake-ups and
//!   the sweep that takes over what a dead instance held);
//! - a **role** that only one instance may play at a time (Telegram
//!   polling, the Discord gateway) is a named lease too
//!   ([`Membership::take_role`]); a standby takes it over.
//!
//! An instance trusts its leases only until four fifths of a lease after
//! its last renewal was sent, measured on its own monotonic clock
//! ([`Fence`]): one paused past that (a stop signal, a long stall) finds
//! its fence closed when it wakes, posts and records nothing more, and
//! stops. SQLite is always a single instance: no cluster, and a fence that
//! never closes.

mod membership;
mod ownership;

pub use membership::Membership;
pub use ownership::{Cluster, SIGNALS};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

/// `[cluster]` (Postgres only).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// How long a lease lasts without renewal: an instance silent this long
    /// is dead, and a standby takes over after about this long.
    pub lease_secs: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self { lease_secs: 10 }
    }
}

impl ClusterConfig {
    pub(crate) fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }

    /// How often leases are renewed (and a standby tries to take one).
    pub(crate) fn beat(&self) -> Duration {
        self.lease() / 3
    }

    /// How long after a renewal was sent the owner still trusts its lease.
    pub(crate) fn trust(&self) -> Duration {
        self.lease() * 4 / 5
    }
}

/// Whether this instance may still act on its leases: checked before a
/// turn records its end and before anything is posted. Cheap to clone and
/// to check (no store round trip).
#[derive(Debug, Clone, Default)]
pub struct Fence(Option<Arc<Deadline>>);

#[derive(Debug)]
struct Deadline {
    base: Instant,
    /// Nanoseconds after `base` until which the lease is trusted.
    until: AtomicU64,
}

impl Fence {
    /// A fence that never closes (a single instance).
    pub fn always() -> Self {
        Fence(None)
    }

    /// A fence closed until a lease is taken.
    pub(crate) fn leased() -> Self {
        Fence(Some(Arc::new(Deadline {
            base: Instant::now(),
            until: AtomicU64::new(0),
        })))
    }

    /// Whether the lease is still trusted.
    pub fn holds(&self) -> bool {
        match &self.0 {
            None => true,
            Some(deadline) => {
                let now = deadline.base.elapsed().as_nanos();
                now < u128::from(deadline.until.load(Ordering::Acquire))
            }
        }
    }

    /// Trusts the lease until `until`.
    pub(crate) fn extend(&self, until: Instant) {
        if let Some(deadline) = &self.0 {
            let nanos = until.saturating_duration_since(deadline.base).as_nanos();
            let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
            deadline.until.store(nanos, Ordering::Release);
        }
    }

    /// Stops trusting the lease at once.
    pub(crate) fn close(&self) {
        if let Some(deadline) = &self.0 {
            deadline.until.store(0, Ordering::Release);
        }
    }
}

/// Milliseconds of `duration`, for the store's times.
pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
