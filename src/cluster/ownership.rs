//! [`Cluster`]: this instance's side of the cluster that the engine sees.
//! Its id, the leases it holds for conversations and roles, and the
//! one-statement wake-ups it sends to the other instances.
//!
//! A conversation's actor claims the conversation's lease when it starts
//! and releases it when it goes idle. Every take of a lease gets a new
//! epoch, and a release names the epoch it gives up, so a release that
//! arrives after a later take (the same conversation woke again on this
//! instance) changes nothing. When a renewal shows that a conversation's
//! lease is gone, its actor is stopped at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use baton_channel::ConversationKey;
use dashmap::DashMap;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{ClusterConfig, Fence, millis};
use crate::store::{HeldLease, Store, StoreError, conversation_lease, now_ms};

/// The expiry of a lease given up with nothing left to do.
const RELEASED: i64 = 0;
/// The expiry of a lease given up with work left for the sweep.
const EXPIRED: i64 = 1;

/// Members started in this process, for their ids.
static STARTED: AtomicU64 = AtomicU64::new(0);

/// The Postgres channel the instances wake each other on.
pub const SIGNALS: &str = "baton_signals";

/// This instance in a cluster of instances on one Postgres database.
#[derive(Debug)]
pub struct Cluster {
    id: String,
    store: Store,
    /// The same database on connections of its own: the heartbeat's, so
    /// that no burst of claims or turns holds a renewal back.
    heartbeat: Store,
    config: ClusterConfig,
    fence: Fence,
    /// Conversations this instance holds: the epoch of the take, and the
    /// token that stops their actor.
    conversations: DashMap<ConversationKey, Claim>,
    /// Roles this instance holds: the epoch of the take, and when it had
    /// committed.
    roles: DashMap<String, (i64, Instant)>,
}

#[derive(Debug)]
struct Claim {
    epoch: i64,
    stop: CancellationToken,
    /// When the take had committed: a renewal sent before then cannot
    /// know of it.
    taken: Instant,
}

impl Cluster {
    /// This instance, not yet a member (see [`super::Membership::join`]);
    /// its fence stays closed until the first heartbeat. `heartbeat` is
    /// `store` on a pool of its own.
    pub fn new(store: Store, heartbeat: Store, config: ClusterConfig) -> Self {
        Self {
            id: format!(
                "{}-{}-{}",
                std::process::id(),
                now_ms(),
                STARTED.fetch_add(1, Ordering::Relaxed)
            ),
            store,
            heartbeat,
            config,
            fence: Fence::leased(),
            conversations: DashMap::new(),
            roles: DashMap::new(),
        }
    }

    /// This instance's id: its pid, start time and a count (several may
    /// run in one process: benches, tests).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The fence every post and turn end checks.
    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    pub(super) fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// How often leases are renewed and the sweep runs.
    pub fn beat(&self) -> std::time::Duration {
        self.config.beat()
    }

    /// The store the heartbeat renews the leases through.
    pub(super) fn heartbeat_store(&self) -> &Store {
        &self.heartbeat
    }

    /// Takes `key`'s lease for this instance's actor, unless another live
    /// instance holds it. `stop` is cancelled if the lease is lost later.
    /// Returns the epoch taken, or `None` when the conversation is someone
    /// else's.
    pub async fn claim(
        &self,
        key: &ConversationKey,
        stop: CancellationToken,
    ) -> Result<Option<i64>, StoreError> {
        let now = now_ms();
        let expires = now + millis(self.config.lease());
        let taken = self
            .store
            .take_lease(&conversation_lease(key), &self.id, now, expires)
            .await?;
        if let Some(epoch) = taken {
            let claim = Claim {
                epoch,
                stop,
                taken: Instant::now(),
            };
            self.conversations.insert(key.clone(), claim);
        }
        Ok(taken)
    }

    /// Whether this instance holds `key`'s lease.
    pub fn holds(&self, key: &ConversationKey) -> bool {
        self.conversations.contains_key(key)
    }

    /// Gives up `key`'s lease taken at `epoch` (its actor went idle).
    pub async fn release(&self, key: &ConversationKey, epoch: i64) {
        self.let_go(key, epoch, RELEASED).await;
    }

    /// Lets `key`'s lease taken at `epoch` expire now, as if its owner had
    /// died: the next sweep (of any instance) takes the conversation over
    /// and answers what its actor left.
    pub async fn expire(&self, key: &ConversationKey, epoch: i64) {
        self.let_go(key, epoch, EXPIRED).await;
    }

    async fn let_go(&self, key: &ConversationKey, epoch: i64, expires_at: i64) {
        self.conversations
            .remove_if(key, |_, claim| claim.epoch == epoch);
        if let Err(e) = self
            .store
            .release_lease(&conversation_lease(key), &self.id, epoch, expires_at)
            .await
        {
            tracing::warn!(conversation = %key, error = %e, "could not let go of the conversation's lease; it expires");
        }
    }

    /// Takes role `name` if nobody holds it; true when this instance now
    /// plays it.
    pub(super) async fn take_role(&self, name: &str) -> Result<bool, StoreError> {
        let now = now_ms();
        let expires = now + millis(self.config.lease());
        let taken = self.store.take_lease(name, &self.id, now, expires).await?;
        if let Some(epoch) = taken {
            self.roles.insert(name.to_owned(), (epoch, Instant::now()));
        }
        Ok(taken.is_some())
    }

    /// Takes in what a renewal sent at `sent` kept: stops the actor of
    /// every conversation claimed before then whose lease is no longer
    /// held (one claimed since is not in the answer, and is left for the
    /// next renewal). Returns false if a role was lost.
    pub(super) fn renewed(&self, held: &[HeldLease], sent: Instant) -> bool {
        let held: HashMap<&str, i64> = held
            .iter()
            .map(|lease| (lease.name.as_str(), lease.epoch))
            .collect();
        let holds = |name: &str, epoch: i64| held.get(name) == Some(&epoch);
        self.conversations.retain(|key, claim| {
            let kept = claim.taken >= sent || holds(&conversation_lease(key), claim.epoch);
            if !kept {
                tracing::error!(conversation = %key, "this instance lost the conversation's lease; its actor stops");
                claim.stop.cancel();
            }
            kept
        });
        self.roles.iter().all(|role| {
            let (epoch, taken) = *role.value();
            taken >= sent || holds(role.key(), epoch)
        })
    }

    /// Sends `payload` to every instance listening on [`SIGNALS`].
    pub async fn signal(&self, payload: &str) -> Result<(), StoreError> {
        self.store.notify(SIGNALS, payload).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_renewal_judges_only_the_leases_taken_before_it_was_sent() -> anyhow::Result<()> {
        let store = Store::connect("sqlite::memory:").await?;
        let cluster = Cluster::new(store.clone(), store.clone(), ClusterConfig::default());
        let key: ConversationKey = "telegram/42".parse()?;
        let sent = Instant::now();
        let stop = CancellationToken::new();
        assert!(cluster.claim(&key, stop.clone()).await?.is_some());
        assert!(cluster.take_role("role:test").await?);
        // A renewal sent before the takes cannot have them in its answer.
        assert!(cluster.renewed(&[], sent), "the role is kept");
        assert!(cluster.holds(&key) && !stop.is_cancelled());
        // One sent after them must.
        assert!(!cluster.renewed(&[], Instant::now()), "the role is lost");
        assert!(!cluster.holds(&key) && stop.is_cancelled());
        store.close().await;
        Ok(())
    }
}
