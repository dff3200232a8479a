-- swarmsh PostgreSQL schema, version 4: work keys. An item may carry a key naming the
-- work (swarm.toml's [[work]] entries always do); at most one item holds a key, so a
-- restarted supervisor or a retried `swarm add --key` finds the item instead of adding
-- it twice. Items from before this version have no key; the index skips them.
ALTER TABLE work_items ADD COLUMN key text;
CREATE UNIQUE INDEX work_items_key ON work_items (key) WHERE key IS NOT NULL;
