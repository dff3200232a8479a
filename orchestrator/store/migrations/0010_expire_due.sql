-- swarmsh PostgreSQL schema, version 10: the lease check both claims make before they
-- pick (swarm_claim, migration 0002; swarm_claim_many, migration 0009) in one place.
-- Same signatures and behaviour as before; only the repeated block moves.

-- Return expired leases to the queue, if any has run out. One probe of the lease index
-- (min() reads its first entry) in the common case where none has; an EXISTS here was
-- planned on the holder index and read every held row.
CREATE FUNCTION swarm_expire_due() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT min(lease_expires_at) FROM work_items
        WHERE status IN ('claimed', 'in_progress', 'blocked')) <= swarm_now() THEN
        PERFORM 1 FROM swarm_expire();
    END IF;
END
$$;

-- Expire, then claim the next pending item: priority, then age.
CREATE OR REPLACE FUNCTION swarm_claim(p_agent text, p_lease double precision,
                                       p_types text[], p_teams text[])
RETURNS SETOF work_items
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM swarm_expire_due();
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

-- Expire, then claim up to p_count pending items (at least one), in queue order.
CREATE OR REPLACE FUNCTION swarm_claim_many(p_agent text, p_lease double precision,
                                            p_types text[], p_teams text[], p_count integer)
RETURNS SETOF work_items
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM swarm_expire_due();
    RETURN QUERY
    WITH picked AS (
        SELECT work_item_id FROM work_items
        WHERE status = 'pending'
          AND (p_types IS NULL OR work_type = ANY (p_types))
          AND (p_teams IS NULL OR team = ANY (p_teams))
        ORDER BY priority_rank, created_at, seq
        FOR UPDATE SKIP LOCKED LIMIT greatest(p_count, 1)
    ), changed AS (
        UPDATE work_items w SET
            status = 'claimed', agent_id = p_agent, progress = 0,
            claimed_at = swarm_now(), updated_at = swarm_now(),
            lease_expires_at = swarm_now() + p_lease
        FROM picked WHERE w.work_item_id = picked.work_item_id
        RETURNING w.*
    ), logged AS (
        INSERT INTO events (ts, op, by_agent, work_item_id, agent_id, status)
        SELECT swarm_now(), 'claim', p_agent, work_item_id, agent_id, status FROM changed
    )
    -- In queue order: the caller works them first to last.
    SELECT * FROM changed ORDER BY priority_rank, created_at, seq;
END
$$;
