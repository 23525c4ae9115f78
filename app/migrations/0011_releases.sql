-- Releases: what is shipped on a stack (a version, the env variables it sets, the run it
-- starts), when and by whom, and where it stands; the run that shipped it once it has.
CREATE TABLE releases (
    id TEXT PRIMARY KEY,
    stack TEXT NOT NULL,
    version TEXT NOT NULL,
    sets TEXT NOT NULL,
    operation TEXT NOT NULL,
    planned_at TEXT NOT NULL,
    owner TEXT NOT NULL,
    notes TEXT NOT NULL,
    state TEXT NOT NULL,
    run_id TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX releases_stack ON releases (stack, planned_at);
-- Each release's checklist, made from the template when the release is planned: manual items
-- ticked by a person of the item's role, automatic ones evaluated by the console with their
-- evidence and the digest of the stack's files they were evaluated on.
CREATE TABLE release_items (
    release_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    item_key TEXT NOT NULL,
    section TEXT NOT NULL,
    title TEXT NOT NULL,
    automatic BIGINT NOT NULL,
    required BIGINT NOT NULL,
    role TEXT NOT NULL,
    state TEXT NOT NULL,
    evidence TEXT NOT NULL,
    files_digest TEXT NOT NULL,
    checked_by TEXT NOT NULL,
    checked_at TEXT NOT NULL,
    note TEXT NOT NULL,
    PRIMARY KEY (release_id, item_key)
);
