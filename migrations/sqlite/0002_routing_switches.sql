-- Per-conversation model choice (`/model`) and the `/greedy` and
-- `/autonomy` switches. Keep it equivalent to ../postgres/0002_routing_switches.sql.
ALTER TABLE conversations ADD COLUMN model TEXT;
ALTER TABLE conversations ADD COLUMN greedy INTEGER CHECK (greedy IN (0, 1));
ALTER TABLE conversations ADD COLUMN autonomy INTEGER CHECK (autonomy IN (0, 1));
