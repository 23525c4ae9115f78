-- Each release's timeline, made from the template when the release is planned: milestones at
-- offsets from T-0 with the owning role; a person marks one done or skipped (with a reason).
-- Milestones with evidence (checklist complete, backup, run started, run passed) are read
-- from it, not stored here.
CREATE TABLE release_milestones (
    release_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    milestone_key TEXT NOT NULL,
    offset_minutes BIGINT NOT NULL,
    action TEXT NOT NULL,
    role TEXT NOT NULL,
    notes TEXT NOT NULL,
    state TEXT NOT NULL,
    marked_by TEXT NOT NULL,
    marked_at TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (release_id, milestone_key)
);
