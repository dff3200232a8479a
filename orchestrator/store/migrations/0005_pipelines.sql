-- swarmsh PostgreSQL schema, version 5: pipelines. An item may wait for parents: it is
-- 'blocked' (with no holder) while open_parents > 0, so the claim's partial index of
-- pending items never holds it and the claim stays one index probe. work_edges names
-- each item's children; the trigger below settles them when a parent's status changes,
-- in the parent's own transaction (the rules are those of orchestrator/store/pipeline.py).
ALTER TABLE work_items ADD COLUMN parents text[];
ALTER TABLE work_items ADD COLUMN open_parents integer NOT NULL DEFAULT 0;

CREATE TABLE work_edges (
    parent  text NOT NULL,
    child   text NOT NULL,
    PRIMARY KEY (parent, child)
);

CREATE FUNCTION swarm_settle() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    woken integer;
BEGIN
    IF NEW.status = 'completed' THEN
        -- One parent fewer to wait for; the last one makes the child pending.
        WITH changed AS (
            UPDATE work_items c SET
                open_parents = c.open_parents - 1,
                status = CASE WHEN c.open_parents <= 1 AND c.status = 'blocked'
                                   AND c.agent_id IS NULL THEN 'pending' ELSE c.status END,
                updated_at = swarm_now()
            FROM work_edges e
            WHERE e.parent = NEW.work_item_id AND c.work_item_id = e.child
            RETURNING c.work_item_id, c.status
        ), logged AS (
            INSERT INTO events (ts, op, work_item_id, status)
            SELECT swarm_now(), 'unblock', work_item_id, status FROM changed
            WHERE status = 'pending'
            RETURNING 1
        )
        SELECT count(*) INTO woken FROM logged;
        IF woken > 0 THEN
            PERFORM pg_notify('swarmsh_work_' || current_schema(), '');
        END IF;
    ELSIF NEW.status IN ('dead', 'failed', 'cancelled') THEN
        -- A parent that gave up cancels its open children (whose own trigger goes on down).
        WITH changed AS (
            UPDATE work_items c SET
                status = 'cancelled',
                error = 'parent ' || NEW.work_item_id || ' is ' || NEW.status,
                updated_at = swarm_now(), completed_at = swarm_now(), lease_expires_at = NULL
            FROM work_edges e
            WHERE e.parent = NEW.work_item_id AND c.work_item_id = e.child
              AND (c.status = 'pending' OR (c.status = 'blocked' AND c.agent_id IS NULL))
            RETURNING c.work_item_id, c.status
        )
        INSERT INTO events (ts, op, work_item_id, status)
        SELECT swarm_now(), 'cancel', work_item_id, status FROM changed;
    ELSIF OLD.status IN ('dead', 'failed', 'cancelled') THEN
        -- The parent was retried: the children it cancelled wait for it again, but for
        -- those with another parent that gave up: that one is their reason now.
        UPDATE work_items c SET
            error = 'parent ' || p.work_item_id || ' is ' || p.status, updated_at = swarm_now()
        FROM work_edges e, work_edges other, work_items p
        WHERE e.parent = NEW.work_item_id AND c.work_item_id = e.child
          AND c.status = 'cancelled'
          AND starts_with(c.error, 'parent ' || NEW.work_item_id || ' is ')
          AND other.child = c.work_item_id AND p.work_item_id = other.parent
          AND p.status IN ('dead', 'failed', 'cancelled');
        WITH changed AS (
            UPDATE work_items c SET
                status = 'blocked', agent_id = NULL, error = NULL, completed_at = NULL,
                updated_at = swarm_now()
            FROM work_edges e
            WHERE e.parent = NEW.work_item_id AND c.work_item_id = e.child
              AND c.status = 'cancelled'
              AND starts_with(c.error, 'parent ' || NEW.work_item_id || ' is ')
            RETURNING c.work_item_id, c.status
        )
        INSERT INTO events (ts, op, work_item_id, status)
        SELECT swarm_now(), 'revive', work_item_id, status FROM changed;
    END IF;
    RETURN NULL;
END
$$;

-- Fires only on the changes that move children: a claim or a heartbeat costs nothing.
CREATE TRIGGER work_items_settle AFTER UPDATE OF status ON work_items
FOR EACH ROW WHEN (
    OLD.status IS DISTINCT FROM NEW.status
    AND (NEW.status IN ('completed', 'dead', 'failed', 'cancelled')
         OR OLD.status IN ('dead', 'failed', 'cancelled'))
)
EXECUTE FUNCTION swarm_settle();
