-- Database dumps a backup run took: where the file is, what it holds and how it was made.
-- `images` is JSON (service → image id); `verification` is unverified until a restore drill.
CREATE TABLE backups (
    id TEXT PRIMARY KEY,
    stack TEXT NOT NULL,
    service TEXT NOT NULL,
    file TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    run_id TEXT NOT NULL,
    migration_head TEXT NOT NULL,
    images TEXT NOT NULL,
    verification TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX backups_stack ON backups (stack, started_at);
