-- What a run acts on beyond its stack (the backup a verify run drills), and each backup's
-- restore drill: when, how long the restore took, and what it found.
ALTER TABLE runs ADD COLUMN target TEXT NOT NULL DEFAULT '';
ALTER TABLE backups ADD COLUMN verified_at TEXT NOT NULL DEFAULT '';
ALTER TABLE backups ADD COLUMN restore_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE backups ADD COLUMN verify_note TEXT NOT NULL DEFAULT '';
