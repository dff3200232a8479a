-- swarmsh PostgreSQL schema: named records. Small values claimed atomically under a
-- (namespace, key) name (worktrees, their ports and database names): the primary key
-- lets one of any number of concurrent claims of a name succeed.
CREATE TABLE named_records (
    namespace  text NOT NULL,
    key        text NOT NULL,
    value      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    PRIMARY KEY (namespace, key)
);
