-- The durable outbox. Keep it equivalent to ../postgres/0008_outbox.sql.
-- A turn's reply is stored with an outbox row in one transaction; the row is
-- marked sent once the platform accepted the reply (or refused it for good).
-- Rows not marked sent are delivered again after a restart, so a stop
-- between storing a reply and sending it loses nothing.
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY,
    conversation TEXT NOT NULL REFERENCES conversations (key),
    -- The stored reply (its text is the message's content).
    message_id   INTEGER NOT NULL REFERENCES messages (id),
    -- The platform id of the message it answers.
    reply_to     TEXT,
    created_at   INTEGER NOT NULL,
    sent_at      INTEGER
);
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
