//! The `instances` and `leases` tables: which Baton instances share a
//! Postgres database, and which of them holds a named lease. Times are the
//! instances' unix milliseconds (their clocks must agree to well under a
//! lease, as NTP keeps them); the owner side decides when it has lost a
//! lease by its own monotonic clock, see `crate::cluster`.

use super::{Store, StoreError, first_row};

/// A lease held: its name and the epoch it was taken at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLease {
    /// The lease's name.
    pub name: String,
    /// Grows with every new owner.
    pub epoch: i64,
}

impl Store {
    /// Records instance `id` as started and alive at `now_ms`.
    pub async fn register_instance(&self, id: &str, now_ms: i64) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO instances (id, started_at, heartbeat_at) VALUES ($1, $2, $2) \
                         ON CONFLICT (id) DO UPDATE SET heartbeat_at = $2",
                    )
                    .bind(id)
                    .bind(now_ms)
                    .execute(conn)
                    .await
                    .map(drop)
                })
            })
            .await
    }

    /// Takes lease `name` for `owner` until `expires_ms` if nobody holds
    /// it, or its holder let it expire by `now_ms`. Returns the new epoch,
    /// or `None` while someone else holds it.
    pub async fn take_lease(
        &self,
        name: &str,
        owner: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let name = name.to_owned();
        let owner = owner.to_owned();
        self.db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query_scalar(
                        "INSERT INTO leases (name, owner, epoch, expires_at) VALUES ($1, $2, 1, $4) \
                         ON CONFLICT (name) DO UPDATE \
                         SET owner = $2, epoch = leases.epoch + 1, expires_at = $4 \
                         WHERE leases.expires_at < $3 \
                         RETURNING epoch",
                    )
                    .bind(name)
                    .bind(owner)
                    .bind(now_ms)
                    .bind(expires_ms)
                    .fetch_all(conn)
                    .await
                    .map(first_row)
                })
            })
            .await
    }

    /// One heartbeat of `owner`: marks it alive and extends, to
    /// `expires_ms`, every lease it holds that has not expired by
    /// `now_ms`. Returns the leases it still holds (a lease missing from
    /// the answer is lost).
    pub async fn renew_leases(
        &self,
        owner: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Vec<HeldLease>, StoreError> {
        let owner = owner.to_owned();
        let rows: Vec<(String, i64)> = self
            .db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query("UPDATE instances SET heartbeat_at = $2 WHERE id = $1")
                        .bind(owner.as_str())
                        .bind(now_ms)
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query_as(
                        "UPDATE leases SET expires_at = $3 \
                         WHERE owner = $1 AND expires_at >= $2 \
                         RETURNING name, epoch",
                    )
                    .bind(owner)
                    .bind(now_ms)
                    .bind(expires_ms)
                    .fetch_all(conn)
                    .await
                })
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|(name, epoch)| HeldLease { name, epoch })
            .collect())
    }

    /// Gives up every lease of `owner` and its instance row (a clean stop:
    /// a standby need not wait for the leases to expire).
    pub async fn leave_cluster(&self, owner: &str) -> Result<(), StoreError> {
        let owner = owner.to_owned();
        self.db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query("DELETE FROM leases WHERE owner = $1")
                        .bind(owner.as_str())
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("DELETE FROM instances WHERE id = $1")
                        .bind(owner)
                        .execute(conn)
                        .await
                        .map(drop)
                })
            })
            .await
    }
}
