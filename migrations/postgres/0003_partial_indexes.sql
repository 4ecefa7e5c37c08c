-- Indexes that only hold the rows they are searched for, so that most
-- writes touch fewer index pages: only running turns are looked up by
-- status (crash recovery), and only users' messages carry a platform id
-- (deduplication). Keep it equivalent to ../sqlite/0003_partial_indexes.sql.
DROP INDEX turns_status;
CREATE INDEX turns_running ON turns (status) WHERE status = 'running';
DROP INDEX messages_platform_id;
CREATE UNIQUE INDEX messages_platform_id ON messages (conversation, platform_message_id) WHERE platform_message_id IS NOT NULL;
