-- Baton's schema for SQLite. Keep it equivalent to ../postgres/0001_initial.sql.
-- Timestamps are unix milliseconds (INTEGER) computed by the service.
-- Booleans are 0/1 INTEGERs (the service binds a bool; SQLite stores 0/1).

-- One row per conversation, created the first time anything is stored for it.
-- The settings columns stay NULL until the first `save_settings`.
CREATE TABLE conversations (
    key                      TEXT PRIMARY KEY NOT NULL,
    mode                     TEXT,
    verbose                  INTEGER CHECK (verbose IN (0, 1)),
    effort                   TEXT,
    -- `history` sees only messages with a larger id (0: since the start).
    context_start_message_id INTEGER NOT NULL DEFAULT 0,
    created_at               INTEGER NOT NULL,
    updated_at               INTEGER NOT NULL
);

-- The transcript: users' messages and the orchestrator's replies.
CREATE TABLE messages (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation        TEXT NOT NULL REFERENCES conversations (key),
    role                TEXT NOT NULL,
    author_id           TEXT,
    author_name         TEXT,
    content             TEXT NOT NULL,
    platform_message_id TEXT,
    turn_id             INTEGER REFERENCES turns (id),
    created_at          INTEGER NOT NULL
);
-- Deduplicates redelivered updates; NULL ids never conflict.
CREATE UNIQUE INDEX messages_platform_id ON messages (conversation, platform_message_id);
-- `history`: the newest messages of one conversation.
CREATE INDEX messages_conversation_id ON messages (conversation, id);

-- One row per turn; input/output tokens are the orchestrator's own calls only
-- (each worker's usage is on its row in `workers`).
CREATE TABLE turns (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
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
-- `usage_since`.
CREATE INDEX turns_conversation_started ON turns (conversation, started_at);
-- `fail_abandoned_turns` on start.
CREATE INDEX turns_status ON turns (status);

-- The workers a turn started; tokens are the worker's cumulative usage.
CREATE TABLE workers (
    turn_id       INTEGER NOT NULL REFERENCES turns (id),
    worker_id     TEXT NOT NULL,
    label         TEXT NOT NULL,
    brief         TEXT NOT NULL,
    effort        TEXT NOT NULL,
    model         TEXT NOT NULL,
    status        TEXT NOT NULL,
    result        TEXT,
    error         TEXT,
    input_tokens  INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (turn_id, worker_id)
);

-- The event log (message bus).
CREATE TABLE events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation TEXT NOT NULL REFERENCES conversations (key),
    turn_id      INTEGER REFERENCES turns (id),
    kind         TEXT NOT NULL,
    source       TEXT NOT NULL,
    body         TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX events_conversation_id ON events (conversation, id);
CREATE INDEX events_turn ON events (turn_id);
