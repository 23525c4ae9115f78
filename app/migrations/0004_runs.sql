-- Runs: one operation on a stack, as steps with their log lines, stored as they happen.
-- `holder` is host:pid of the process executing the run; a run whose holder is gone when a
-- console starts is marked interrupted. Times are '' until they happen.
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    stack TEXT NOT NULL,
    operation TEXT NOT NULL,
    status TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    holder TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    error TEXT NOT NULL,
    -- Set by Cancel; the process running the run checks it before every step.
    cancel_requested BIGINT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX runs_stack ON runs (stack, started_at);
CREATE INDEX runs_status ON runs (status);

CREATE TABLE run_steps (
    run_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (run_id, position)
);

CREATE TABLE run_lines (
    run_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    step BIGINT NOT NULL,
    at TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- One run per stack at a time: the row is the lock.
CREATE TABLE stack_locks (
    stack TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    holder TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    since TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- The images each successful deploy left running; the newest set is the last-known-good.
CREATE TABLE run_images (
    run_id TEXT NOT NULL,
    service TEXT NOT NULL,
    image TEXT NOT NULL,
    image_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (run_id, service)
);
