-- Prompt-cache tokens per turn and per worker (issue 16), and a readable
-- conversation title for the dashboard (issue 17).
-- Keep it equivalent to ../sqlite/0006_cache_tokens_and_titles.sql.
-- Both token columns count part of `input_tokens` (which keeps counting every
-- prompt token): read from the provider's cache, and written to it.
ALTER TABLE turns ADD COLUMN cached_input_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE turns ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE workers ADD COLUMN cached_input_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE workers ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0;
-- The chat's title (group, channel) or the user's name in a direct chat, as
-- the platform last gave it; written only when it changes.
ALTER TABLE conversations ADD COLUMN title TEXT;
