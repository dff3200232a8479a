-- swarmsh PostgreSQL schema, version 11: the work listing's order (list-work's:
-- priority, then oldest first, then the id in code-point order, records.list_order),
-- indexed, so that a page of the HTTP API's GET /api/work reads its rows in order
-- instead of sorting the table (store/pg_pages.py). Two indexes: the unfinished items,
-- which the default listing shows (its predicate is the store's live rule, written as
-- the queries write it), and every item, for a listing that includes finished ones.
-- Building them blocks writes to work_items for the time it takes (about a second per
-- million items); on a big, busy store, build them first with CREATE INDEX
-- CONCURRENTLY under these names and this migration leaves them as they are.
CREATE INDEX IF NOT EXISTS work_items_live_order
    ON work_items (priority_rank, created_at, work_item_id COLLATE "C")
    WHERE status IN ('pending', 'claimed', 'in_progress', 'blocked');
CREATE INDEX IF NOT EXISTS work_items_order ON work_items (priority_rank, created_at, work_item_id COLLATE "C");
