-- Per-conversation model choice (`/model`) and the `/greedy` and
-- `/autonomy` switches. Keep it equivalent to ../sqlite/0002_routing_switches.sql.
ALTER TABLE conversations ADD COLUMN model TEXT;
ALTER TABLE conversations ADD COLUMN greedy BOOLEAN;
ALTER TABLE conversations ADD COLUMN autonomy BOOLEAN;
