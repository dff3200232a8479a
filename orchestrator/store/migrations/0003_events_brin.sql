-- swarmsh PostgreSQL schema, version 3: the operation log is only ever appended to
-- and read by time ranges, so a BRIN index on ts replaces the b-tree primary key on id
-- (one index insert less per operation).
ALTER TABLE events DROP CONSTRAINT events_pkey;
CREATE INDEX events_ts ON events USING brin (ts);
