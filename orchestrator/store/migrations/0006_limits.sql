-- swarmsh PostgreSQL schema: swarm-wide limits and the cost ledger.
-- shared_docs holds one JSON document per name (a rate limit's buckets and
-- reservations, a budget's spending), read FOR UPDATE and written back in one
-- transaction, so agents on every host share one state. ledger has one row per
-- finished LLM call: who, which item and model, tokens and cost.
CREATE TABLE shared_docs (
    name    text PRIMARY KEY,
    doc     jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE TABLE ledger (
    seq     bigserial PRIMARY KEY,
    ts      double precision NOT NULL,
    entry   jsonb NOT NULL
);
CREATE INDEX ledger_ts ON ledger USING brin (ts);
