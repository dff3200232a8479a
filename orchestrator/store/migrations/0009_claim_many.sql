-- swarmsh PostgreSQL schema, version 9: claim several items in one call, for agents
-- that run short items (one round trip and one commit for the lot). Every claimed item
-- is its own row change and its own 'claim' event, exactly as one swarm_claim each.
CREATE FUNCTION swarm_claim_many(p_agent text, p_lease double precision,
                                 p_types text[], p_teams text[], p_count integer)
RETURNS SETOF work_items
LANGUAGE plpgsql AS $$
BEGIN
    -- The same one-probe lease check as swarm_claim (migration 0002).
    IF (SELECT min(lease_expires_at) FROM work_items
        WHERE status IN ('claimed', 'in_progress', 'blocked')) <= swarm_now() THEN
        PERFORM 1 FROM swarm_expire();
    END IF;
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
