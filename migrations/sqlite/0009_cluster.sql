-- Several instances on one database. Keep it equivalent to
-- ../postgres/0009_cluster.sql. SQLite is always one instance and never
-- writes these tables; they exist so that both schemas stay the same.
-- Every `baton run` on Postgres registers itself and beats every third of
-- `[cluster] lease_secs`; one older than that is dead.
CREATE TABLE instances (
    id           TEXT PRIMARY KEY,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
);
-- Named leases (`leader`, for now): one owner at a time until
-- `expires_at`; `epoch` grows with every new owner, so a write can check
-- that its owner still holds what it held.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    epoch      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX leases_owner ON leases (owner);
