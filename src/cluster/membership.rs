//! [`Membership`]: the heartbeat that keeps an instance in the cluster.
//! It registers the instance, renews every lease the instance holds in one
//! statement per beat (a third of `[cluster] lease_secs`), extends the
//! fence after each renewal, and cancels `lost` when the instance can no
//! longer trust its leases: a role taken over, or the fence run out before
//! a renewal came through (a pause, a cut-off database).

use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::{Cluster, millis};
use crate::store::now_ms;

/// This instance's membership: alive while the value is.
pub struct Membership {
    cluster: Arc<Cluster>,
    lost: CancellationToken,
    _heartbeat: AbortOnDropHandle<()>,
}

impl Membership {
    /// Registers the instance and renews once (retrying each beat until the
    /// database answers), then keeps beating. Dropping the future while it
    /// retries gives up joining.
    pub async fn join(cluster: Arc<Cluster>) -> Membership {
        let config = cluster.config().clone();
        let id = cluster.id().to_owned();
        loop {
            let sent = Instant::now();
            let now = now_ms();
            let store = cluster.heartbeat_store();
            let joined = async {
                store.register_instance(&id, now).await?;
                store
                    .renew_leases(&id, now, now + millis(config.lease()))
                    .await
            };
            match joined.await {
                Ok(_) => {
                    cluster.fence().extend(sent + config.trust());
                    tracing::info!(instance = %id, "this instance joined the cluster");
                    break;
                }
                Err(e) => {
                    tracing::warn!(instance = %id, error = %e, "cannot reach the cluster's leases; retrying")
                }
            }
            tokio::time::sleep(config.beat()).await;
        }
        let lost = CancellationToken::new();
        let heartbeat = tokio::spawn(beat(cluster.clone(), lost.clone()));
        Membership {
            cluster,
            lost,
            _heartbeat: AbortOnDropHandle::new(heartbeat),
        }
    }

    /// Waits, standing by, until this instance holds role `name` (a lease
    /// only one instance holds at a time: Telegram polling, the Discord
    /// gateway). The heartbeat keeps it; losing it stops the instance.
    pub async fn take_role(&self, name: &str) {
        let mut said_standby = false;
        loop {
            match self.cluster.take_role(name).await {
                Ok(true) => {
                    tracing::info!(instance = %self.cluster.id(), role = name, "this instance took a role");
                    return;
                }
                Ok(false) => {
                    if !said_standby {
                        tracing::info!(instance = %self.cluster.id(), role = name, "another instance plays this role; standing by");
                        said_standby = true;
                    }
                }
                Err(e) => {
                    tracing::warn!(role = name, error = %e, "cannot reach the cluster's leases; retrying")
                }
            }
            tokio::time::sleep(self.cluster.config().beat()).await;
        }
    }

    /// Cancelled when this instance can no longer trust its leases: it
    /// must stop.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Gives every lease up (a clean stop), so that the others take over
    /// at once.
    pub async fn leave(self) {
        self.cluster.fence().close();
        let id = self.cluster.id();
        if let Err(e) = self.cluster.heartbeat_store().leave_cluster(id).await {
            tracing::warn!(instance = %id, error = %e, "could not give up the leases; the others take over when they expire");
        }
    }
}

/// Renews the leases every beat until a renewal shows a role lost, or the
/// fence closes before a renewal succeeds.
async fn beat(cluster: Arc<Cluster>, lost: CancellationToken) {
    let config = cluster.config().clone();
    let id = cluster.id().to_owned();
    let fence = cluster.fence();
    loop {
        tokio::time::sleep(config.beat()).await;
        let sent = Instant::now();
        let now = now_ms();
        match cluster
            .heartbeat_store()
            .renew_leases(&id, now, now + millis(config.lease()))
            .await
        {
            Ok(held) => {
                tracing::debug!(took = ?sent.elapsed(), leases = held.len(), "leases renewed");
                if !cluster.renewed(&held, sent) {
                    tracing::error!(instance = %id, "another instance took over a role of this one; stopping");
                    break;
                }
                fence.extend(sent + config.trust());
            }
            Err(e) => {
                tracing::warn!(instance = %id, error = %e, "cannot renew the leases");
                if !fence.holds() {
                    tracing::error!(instance = %id, "the leases ran out before they could be renewed; stopping");
                    break;
                }
            }
        }
        if !fence.holds() {
            tracing::error!(instance = %id, "this instance was paused past its leases; stopping");
            break;
        }
    }
    fence.close();
    lost.cancel();
}
