//! Several Baton instances on one PostgreSQL database, active/standby:
//! the instance that holds the `leader` lease takes updates (Telegram
//! polling or webhook, the Discord gateway), runs the conversations and
//! answers what a dead leader left (`Registry::resume`); the others stand
//! by and take the lease over when the leader stops renewing it.
//!
//! The leader renews its leases once every third of `[cluster]
//! lease_secs`, in one statement however many it holds. It trusts its
//! lease only until four fifths of a lease after its last renewal was
//! sent, measured on its own monotonic clock ([`Fence`]): a leader paused
//! past that (a stop signal, a long stall) finds its fence closed when it
//! wakes, posts and records nothing more, and stops. SQLite is always a
//! single instance: its fence never closes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::store::{Store, now_ms};

/// The lease the active instance holds.
const LEADER: &str = "leader";

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
    fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }

    /// How often leases are renewed (and a standby tries to take one).
    fn beat(&self) -> Duration {
        self.lease() / 3
    }

    /// How long after a renewal was sent the owner still trusts its lease.
    fn trust(&self) -> Duration {
        self.lease() * 4 / 5
    }
}

/// Whether this instance may still act as the leader: checked before a
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
    fn leased() -> Self {
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
    fn extend(&self, until: Instant) {
        if let Some(deadline) = &self.0 {
            let nanos = until.saturating_duration_since(deadline.base).as_nanos();
            let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
            deadline.until.store(nanos, Ordering::Release);
        }
    }

    /// Stops trusting the lease at once.
    fn close(&self) {
        if let Some(deadline) = &self.0 {
            deadline.until.store(0, Ordering::Release);
        }
    }
}

/// This instance's place in the cluster once it leads: the heartbeat that
/// keeps the lease, and the token cancelled when the lease is lost.
pub struct Leadership {
    store: Store,
    id: String,
    lost: CancellationToken,
    fence: Fence,
    /// Renews the leases (none for a single instance).
    _heartbeat: Option<AbortOnDropHandle<()>>,
}

impl Leadership {
    /// The fence a Postgres instance's services check; closed until
    /// [`Leadership::lead`] takes the lease.
    pub fn fence_for(store: &Store) -> Fence {
        match store.backend() {
            crate::store::Backend::Postgres => Fence::leased(),
            crate::store::Backend::Sqlite => Fence::always(),
        }
    }

    /// Registers this instance and waits, standing by, until it holds the
    /// leader lease, then keeps it with a heartbeat. With an always-open
    /// `fence` (SQLite) it returns at once. Dropping the future while it
    /// stands by is a clean way to give up waiting.
    pub async fn lead(store: Store, config: &ClusterConfig, fence: Fence) -> Leadership {
        let id = instance_id();
        let lost = CancellationToken::new();
        if fence.0.is_none() {
            return Leadership {
                store,
                id,
                lost,
                fence,
                _heartbeat: None,
            };
        }
        let mut said_standby = false;
        loop {
            let sent = Instant::now();
            let now = now_ms();
            let attempt = async {
                store.register_instance(&id, now).await?;
                store
                    .take_lease(LEADER, &id, now, now + millis(config.lease()))
                    .await
            };
            match attempt.await {
                Ok(Some(epoch)) => {
                    fence.extend(sent + config.trust());
                    tracing::info!(instance = %id, epoch, "this instance leads the cluster");
                    let heartbeat = tokio::spawn(beat(
                        store.clone(),
                        config.clone(),
                        id.clone(),
                        fence.clone(),
                        lost.clone(),
                    ));
                    return Leadership {
                        store,
                        id,
                        lost,
                        fence,
                        _heartbeat: Some(AbortOnDropHandle::new(heartbeat)),
                    };
                }
                Ok(None) => {
                    if !said_standby {
                        tracing::info!(instance = %id, "another instance leads; standing by");
                        said_standby = true;
                    }
                }
                Err(e) => {
                    tracing::warn!(instance = %id, error = %e, "cannot reach the cluster's leases; retrying")
                }
            }
            tokio::time::sleep(config.beat()).await;
        }
    }

    /// Cancelled when the lease is lost: the instance must stop.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Gives the lease up (a clean stop), so a standby takes over at once.
    pub async fn leave(self) {
        if self.fence.0.is_none() {
            return;
        }
        self.fence.close();
        if let Err(e) = self.store.leave_cluster(&self.id).await {
            tracing::warn!(instance = %self.id, error = %e, "could not give up the leases; a standby takes over when they expire");
        }
    }
}

/// Renews the leases every beat until one renewal finds the leader lease
/// gone, or the fence closes before a renewal succeeds.
async fn beat(
    store: Store,
    config: ClusterConfig,
    id: String,
    fence: Fence,
    lost: CancellationToken,
) {
    loop {
        tokio::time::sleep(config.beat()).await;
        let sent = Instant::now();
        let now = now_ms();
        match store
            .renew_leases(&id, now, now + millis(config.lease()))
            .await
        {
            Ok(held) if held.iter().any(|lease| lease.name == LEADER) => {
                fence.extend(sent + config.trust());
            }
            Ok(_) => {
                tracing::error!(instance = %id, "this instance lost the leader lease; stopping");
                break;
            }
            Err(e) => {
                tracing::warn!(instance = %id, error = %e, "cannot renew the leases");
                if !fence.holds() {
                    tracing::error!(instance = %id, "the leader lease ran out before it could be renewed; stopping");
                    break;
                }
            }
        }
        if !fence.holds() {
            tracing::error!(instance = %id, "this instance was paused past its lease; stopping");
            break;
        }
    }
    fence.close();
    lost.cancel();
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A readable id unique to this process: its pid and start time.
fn instance_id() -> String {
    format!("{}-{}", std::process::id(), now_ms())
}
