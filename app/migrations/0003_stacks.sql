-- The Compose applications Slipway manages. The compose file stays the source of truth;
-- this row only says where it is, which env file goes with it and the project name.
CREATE TABLE stacks (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    compose_file TEXT NOT NULL,
    env_file TEXT NOT NULL,
    project TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
