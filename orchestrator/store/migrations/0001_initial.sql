-- swarmsh PostgreSQL schema, version 1. Applied inside the store's schema
-- (search_path), under an advisory lock, by `swarm db migrate` or on first use.

-- The database clock is the one clock every host agrees on.
CREATE FUNCTION swarm_now() RETURNS double precision
    LANGUAGE sql STABLE AS $$ SELECT extract(epoch FROM now())::double precision $$;

CREATE TABLE agents (
    agent_id        text PRIMARY KEY,
    capacity        integer NOT NULL,
    status          text NOT NULL,
    specialization  text NOT NULL,
    team            text,
    role            text,
    host            text,
    pid             integer,
    registered_at   double precision NOT NULL,
    last_heartbeat  double precision NOT NULL
);

CREATE TABLE work_items (
    work_item_id      text PRIMARY KEY,
    work_type         text NOT NULL,
    description       text NOT NULL,
    priority          text NOT NULL,
    priority_rank     smallint NOT NULL,
    team              text,
    status            text NOT NULL,
    agent_id          text,
    progress          integer NOT NULL DEFAULT 0,
    payload           jsonb,
    result            jsonb,
    completion_status text,
    story_points      integer,
    error             text,
    attempts          integer NOT NULL DEFAULT 0,
    max_attempts      integer NOT NULL,
    created_at        double precision NOT NULL,
    updated_at        double precision NOT NULL,
    claimed_at        double precision,
    completed_at      double precision,
    lease_expires_at  double precision,
    trace_context     jsonb,
    seq               bigserial NOT NULL
);

-- The claim: next pending by priority, then age; a partial index keeps it O(log n).
CREATE INDEX work_items_pending ON work_items (priority_rank, created_at, seq)
    WHERE status = 'pending';
CREATE INDEX work_items_leases ON work_items (lease_expires_at)
    WHERE status IN ('claimed', 'in_progress', 'blocked');
CREATE INDEX work_items_holder ON work_items (agent_id)
    WHERE status IN ('claimed', 'in_progress', 'blocked');

-- The operation log: one row per changed record, never updated.
CREATE TABLE events (
    id            bigserial PRIMARY KEY,
    ts            double precision NOT NULL,
    op            text NOT NULL,
    by_agent      text,
    work_item_id  text,
    agent_id      text,
    status        text
);
