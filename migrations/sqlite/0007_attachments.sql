-- Files sent with a user's message: a JSON array of their metadata
-- (platform file id, name, MIME type, size, download URL where the platform
-- gives one), NULL when there are none. The bytes are never stored.
ALTER TABLE messages ADD COLUMN attachments TEXT;
