-- Each stack's release policy (admins set it): whether deploy, update and migrate go only
-- through releases, and the deploy window — days and hours in a time zone, and freezes — in
-- which changes run (an admin may ship a release outside it with a reason).
CREATE TABLE release_policies (
    stack TEXT PRIMARY KEY,
    releases_only BIGINT NOT NULL,
    time_zone TEXT NOT NULL,
    days TEXT NOT NULL,
    hours TEXT NOT NULL,
    freezes TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
