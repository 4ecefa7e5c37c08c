//! The `instances` and `leases` tables: which Baton instances share a
//! Postgres database, and which of them holds a named lease. Times are the
//! instances' unix milliseconds (their clocks must agree to well under a
//! lease, as NTP keeps them); the owner side decides when it has lost a
//! lease by its own monotonic clock, see `crate::cluster`.

use baton_channel::ConversationKey;

use super::{MessageId, Store, StoreError, first_row};

/// What every conversation's lease name starts with (then its key).
pub const CONVERSATION_LEASE: &str = "conversation:";

/// The name of `key`'s lease: its holder alone runs the conversation.
pub fn conversation_lease(key: &ConversationKey) -> String {
    format!("{CONVERSATION_LEASE}{key}")
}

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
    /// it, its holder let it expire by `now_ms`, or `owner` holds it
    /// already. Returns the new epoch (it grows with every take, so a late
    /// [`Store::release_lease`] of an earlier take does nothing), or `None`
    /// while someone else holds it.
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
                         WHERE leases.expires_at < $3 OR leases.owner = $2 \
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

    /// Gives up lease `name` if `owner` still holds it at `epoch` (a later
    /// take of the same lease is left alone), setting its expiry to
    /// `expires_at`: 0 for given up, a past time for expired (see
    /// [`Store::expired_leases`]). The row stays, so that the next owner's
    /// epoch keeps growing.
    pub async fn release_lease(
        &self,
        name: &str,
        owner: &str,
        epoch: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let name = name.to_owned();
        let owner = owner.to_owned();
        self.db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "UPDATE leases SET expires_at = $4 \
                         WHERE name = $1 AND owner = $2 AND epoch = $3",
                    )
                    .bind(name)
                    .bind(owner)
                    .bind(epoch)
                    .bind(expires_at)
                    .execute(conn)
                    .await
                    .map(drop)
                })
            })
            .await
    }

    /// Leases whose name starts with `prefix` that expired by `now_ms`
    /// without being given up: their owner stopped renewing them (died).
    pub async fn expired_leases(
        &self,
        prefix: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let pattern = format!("{prefix}%");
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query_scalar(
                        "SELECT name FROM leases \
                         WHERE name LIKE $1 AND expires_at > 0 AND expires_at < $2 \
                         ORDER BY expires_at LIMIT $3",
                    )
                    .bind(pattern)
                    .bind(now_ms)
                    .bind(limit)
                    .fetch_all(conn)
                    .await
                })
            })
            .await
    }

    /// Wakes whoever listens on `channel` (Postgres `NOTIFY`) with
    /// `payload`; delivered once the statement commits, to every instance
    /// listening, this one included.
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        let channel = channel.to_owned();
        let payload = payload.to_owned();
        self.db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query("SELECT pg_notify($1, $2)")
                        .bind(channel)
                        .bind(payload)
                        .execute(conn)
                        .await
                        .map(drop)
                })
            })
            .await
    }

    /// Gives up every lease of `owner` and its instance row (a clean stop:
    /// the others need not wait for the leases to expire). The lease rows
    /// stay, so that their epochs keep growing.
    pub async fn leave_cluster(&self, owner: &str) -> Result<(), StoreError> {
        let owner = owner.to_owned();
        self.db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query("UPDATE leases SET expires_at = 0 WHERE owner = $1")
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

    /// Conversations with users' messages received at or after `since_ms`
    /// that no turn took yet, and the smallest such message id, unless
    /// another instance than `owner` holds the conversation's lease: the
    /// work a cluster's sweep hands out (a lost wake-up, a message stored
    /// while nobody held the conversation).
    pub async fn waiting_conversations(
        &self,
        owner: &str,
        since_ms: i64,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<(ConversationKey, MessageId)>, StoreError> {
        let owner = owner.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<(String, i64)> = self
            .db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query_as(&format!(
                        "SELECT m.conversation, MIN(m.id) FROM messages m \
                         WHERE m.role = 'user' AND m.created_at >= $1 \
                           AND NOT EXISTS (SELECT 1 FROM turns t \
                               WHERE t.conversation = m.conversation AND t.inbound_message_id = m.id) \
                           AND NOT EXISTS (SELECT 1 FROM leases l \
                               WHERE l.name = '{CONVERSATION_LEASE}' || m.conversation \
                                 AND l.owner <> $2 AND l.expires_at >= $3) \
                         GROUP BY m.conversation ORDER BY MIN(m.id) LIMIT $4"
                    ))
                    .bind(since_ms)
                    .bind(owner)
                    .bind(now_ms)
                    .bind(limit)
                    .fetch_all(conn)
                    .await
                })
            })
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(key, id)| Some((key.parse().ok()?, MessageId(id))))
            .collect())
    }
}
