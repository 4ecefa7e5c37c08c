-- Long-running projects. Keep it equivalent to ../postgres/0005_projects.sql.
-- A project's boss runs as a turn of its own (`turn_id`, inbound message
-- NULL): the turn row holds the boss's tokens and status `running` until
-- the project ends, and the project's workers point at it, so usage,
-- budgets and the event log count a project like any other turn.
CREATE TABLE projects (
    id           INTEGER PRIMARY KEY,
    conversation TEXT NOT NULL REFERENCES conversations (key),
    turn_id      INTEGER NOT NULL REFERENCES turns (id),
    goal         TEXT NOT NULL,
    plan         TEXT,
    -- planning, running, paused, completed, failed, cancelled
    status       TEXT NOT NULL,
    -- Why it is paused, failed or cancelled.
    reason       TEXT,
    -- project_complete's summary.
    result       TEXT,
    -- A `blocked` report waiting for `/project resume N answer`.
    question     TEXT,
    -- The boss's context (JSON), saved after every round.
    transcript   TEXT NOT NULL,
    rounds       INTEGER NOT NULL DEFAULT 0,
    -- The platform id of the message that started it (its result replies to it).
    reply_to     TEXT,
    -- When its outcome was posted (it is posted exactly once).
    posted_at    INTEGER,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    finished_at  INTEGER
);
CREATE INDEX projects_conversation_id ON projects (conversation, id);
CREATE INDEX projects_turn ON projects (turn_id);
