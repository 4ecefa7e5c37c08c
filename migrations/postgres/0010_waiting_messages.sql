-- A cluster's sweep looks for users' messages of the last moments that no
-- turn took yet (`Store::waiting_conversations`). Keep it equivalent to
-- ../sqlite/0010_waiting_messages.sql.
CREATE INDEX messages_user_created ON messages (created_at) WHERE role = 'user';
