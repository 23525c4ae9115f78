-- A stack's own release templates, as the admin wrote them (empty: the procedure's): the
-- checklist and the timeline a release copies when it is planned.
CREATE TABLE release_templates (
    stack TEXT PRIMARY KEY,
    checklist TEXT NOT NULL,
    timeline TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
