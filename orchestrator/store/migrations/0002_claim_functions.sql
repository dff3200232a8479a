-- swarmsh PostgreSQL schema, version 2: the claim as one server-side call, so that
-- returning expired leases and claiming take a single round trip and one commit.

-- Return expired leases to the queue (an attempt counted; dead when none is left).
-- PL/pgSQL rather than SQL: its statements' plans are cached for the session.
CREATE FUNCTION swarm_expire() RETURNS SETOF work_items
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    WITH due AS (
        SELECT work_item_id FROM work_items
        WHERE status IN ('claimed', 'in_progress', 'blocked')
          AND lease_expires_at <= swarm_now()
        ORDER BY lease_expires_at          -- use the lease index
        FOR UPDATE SKIP LOCKED LIMIT 1000
    ), changed AS (
        UPDATE work_items w SET
            attempts = w.attempts + 1,
            status = CASE WHEN w.attempts + 1 >= w.max_attempts THEN 'dead' ELSE 'pending' END,
            error = 'lease expired (held by ' || w.agent_id || ')'
                || CASE WHEN w.attempts + 1 >= w.max_attempts
                        THEN '; gave up after ' || (w.attempts + 1) || ' attempts' ELSE '' END,
            agent_id = CASE WHEN w.attempts + 1 >= w.max_attempts THEN w.agent_id END,
            progress = CASE WHEN w.attempts + 1 >= w.max_attempts THEN w.progress ELSE 0 END,
            claimed_at = CASE WHEN w.attempts + 1 >= w.max_attempts THEN w.claimed_at END,
            completed_at = CASE WHEN w.attempts + 1 >= w.max_attempts THEN swarm_now() END,
            updated_at = swarm_now(),
            lease_expires_at = NULL
        FROM due WHERE w.work_item_id = due.work_item_id
        RETURNING w.*
    ), logged AS (
        INSERT INTO events (ts, op, work_item_id, agent_id, status)
        SELECT swarm_now(), 'expire', work_item_id, agent_id, status FROM changed
    )
    SELECT * FROM changed;
END
$$;

-- Expire, then claim the next pending item: priority, then age.
CREATE FUNCTION swarm_claim(p_agent text, p_lease double precision,
                            p_types text[], p_teams text[])
RETURNS SETOF work_items
LANGUAGE plpgsql AS $$
BEGIN
    -- One probe of the lease index (min() reads its first entry) in the common case
    -- where no lease has run out; an EXISTS here was planned on the holder index and
    -- read every held row.
    IF (SELECT min(lease_expires_at) FROM work_items
        WHERE status IN ('claimed', 'in_progress', 'blocked')) <= swarm_now() THEN
        PERFORM 1 FROM swarm_expire();
    END IF;
    RETURN QUERY
    WITH changed AS (
        UPDATE work_items w SET
            status = 'claimed', agent_id = p_agent, progress = 0,
            claimed_at = swarm_now(), updated_at = swarm_now(),
            lease_expires_at = swarm_now() + p_lease
        WHERE w.work_item_id = (
            SELECT work_item_id FROM work_items
            WHERE status = 'pending'
              AND (p_types IS NULL OR work_type = ANY (p_types))
              AND (p_teams IS NULL OR team = ANY (p_teams))
            ORDER BY priority_rank, created_at, seq
            FOR UPDATE SKIP LOCKED LIMIT 1)
        RETURNING w.*
    ), logged AS (
        INSERT INTO events (ts, op, by_agent, work_item_id, agent_id, status)
        SELECT swarm_now(), 'claim', p_agent, work_item_id, agent_id, status FROM changed
    )
    SELECT * FROM changed;
END
$$;
