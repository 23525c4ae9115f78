-- Each backup's row counts (JSON: schema.table → rows, read in the dump's snapshot); a run's
-- options (JSON: a restore's force and image choice); and each stack's backup policy: the
-- schedule (0 = none), the retention rule, and whether an update backs up first.
ALTER TABLE backups ADD COLUMN row_counts TEXT NOT NULL DEFAULT '';
ALTER TABLE backups ADD COLUMN note TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN options TEXT NOT NULL DEFAULT '';
CREATE TABLE backup_policies (
    stack TEXT PRIMARY KEY,
    every_seconds BIGINT NOT NULL,
    keep_last BIGINT NOT NULL,
    keep_daily BIGINT NOT NULL,
    keep_weekly BIGINT NOT NULL,
    before_update BIGINT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
