-- When each recorded image was built, from its `org.opencontainers.image.created` label
-- (empty without one): the start of a change's lead time.
ALTER TABLE run_images ADD COLUMN built_at TEXT NOT NULL DEFAULT '';
