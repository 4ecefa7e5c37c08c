-- SQLite only (../postgres/0004_plain_row_ids.sql changes nothing): the
-- tables with AUTOINCREMENT ids are rebuilt with plain INTEGER PRIMARY KEY
-- ids. AUTOINCREMENT writes the `sqlite_sequence` table on every insert, a
-- page more in the log per row; it only matters once rows are deleted,
-- and these never are, so ids keep counting up from the largest one.
-- The store runs migrations with foreign keys off and checks them after
-- (SQLite's way to rebuild a table that others reference).

CREATE TABLE messages_new (
    id                  INTEGER PRIMARY KEY,
    conversation        TEXT NOT NULL REFERENCES conversations (key),
    role                TEXT NOT NULL,
    author_id           TEXT,
    author_name         TEXT,
    content             TEXT NOT NULL,
    platform_message_id TEXT,
    turn_id             INTEGER REFERENCES turns (id),
    created_at          INTEGER NOT NULL
);
INSERT INTO messages_new (id, conversation, role, author_id, author_name, content,
                          platform_message_id, turn_id, created_at)
    SELECT id, conversation, role, author_id, author_name, content,
           platform_message_id, turn_id, created_at FROM messages;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE UNIQUE INDEX messages_platform_id ON messages (conversation, platform_message_id) WHERE platform_message_id IS NOT NULL;
CREATE INDEX messages_conversation_id ON messages (conversation, id);

CREATE TABLE turns_new (
    id                 INTEGER PRIMARY KEY,
    conversation       TEXT NOT NULL REFERENCES conversations (key),
    inbound_message_id INTEGER REFERENCES messages (id),
    mode               TEXT NOT NULL,
    model              TEXT NOT NULL,
    status             TEXT NOT NULL,
    input_tokens       INTEGER NOT NULL DEFAULT 0,
    output_tokens      INTEGER NOT NULL DEFAULT 0,
    error              TEXT,
    started_at         INTEGER NOT NULL,
    finished_at        INTEGER
);
INSERT INTO turns_new (id, conversation, inbound_message_id, mode, model, status,
                       input_tokens, output_tokens, error, started_at, finished_at)
    SELECT id, conversation, inbound_message_id, mode, model, status,
           input_tokens, output_tokens, error, started_at, finished_at FROM turns;
DROP TABLE turns;
ALTER TABLE turns_new RENAME TO turns;
CREATE INDEX turns_conversation_started ON turns (conversation, started_at);
CREATE INDEX turns_running ON turns (status) WHERE status = 'running';

CREATE TABLE events_new (
    id           INTEGER PRIMARY KEY,
    conversation TEXT NOT NULL REFERENCES conversations (key),
    turn_id      INTEGER REFERENCES turns (id),
    kind         TEXT NOT NULL,
    source       TEXT NOT NULL,
    body         TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);
INSERT INTO events_new (id, conversation, turn_id, kind, source, body, created_at)
    SELECT id, conversation, turn_id, kind, source, body, created_at FROM events;
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;
CREATE INDEX events_conversation_id ON events (conversation, id);
CREATE INDEX events_turn ON events (turn_id);
