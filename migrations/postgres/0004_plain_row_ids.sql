-- Nothing to change on Postgres: ../sqlite/0004_plain_row_ids.sql rebuilds
-- SQLite's tables without AUTOINCREMENT (Postgres ids are sequences, with
-- no extra write per row). Kept so that both backends have the same
-- migration versions.
SELECT 1;
