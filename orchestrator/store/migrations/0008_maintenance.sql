-- swarmsh PostgreSQL schema: scheduled maintenance. One row per task; a supervisor runs
-- a task only after moving its next_due forward in one UPDATE ... WHERE next_due <= now,
-- so among all supervisors sharing this schema exactly one runs each period. Times are
-- epoch seconds of the schedulers' clocks (the tests inject theirs).
CREATE TABLE IF NOT EXISTS maintenance_runs (
    task          text PRIMARY KEY,
    next_due      double precision NOT NULL,
    period_s      double precision,
    last_started  double precision,
    last_finished double precision,
    owner         text,
    outcome       text,
    summary       text,
    runs          integer NOT NULL DEFAULT 0
);
