-- Every start of `slipway serve` against this store. The newest row is the running
-- console; later, unfinished runs started before it are the ones to mark interrupted.
CREATE TABLE console_starts (
    id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    version TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE INDEX console_starts_started_at ON console_starts (started_at);
