-- People who may use the console. Names are stored lower-case; `session_generation`
-- goes up when a password is reset or the account disabled, ending its sessions.
-- Flags are 0/1 integers: sqlx's Any driver reads no SQLite BOOLEAN.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled BIGINT NOT NULL,
    session_generation BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Server-side sessions (tower-sessions). The key is a SHA-256 of the cookie's id, so the
-- table alone cannot be replayed.
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- Failed sign-ins, for throttling per account and per client address.
CREATE TABLE sign_in_failures (
    id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    failed_at BIGINT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX sign_in_failures_user ON sign_in_failures (user_name, failed_at);
CREATE INDEX sign_in_failures_client ON sign_in_failures (client_addr, failed_at);

-- Current lock of an account or a client address; `level` grows with each lock.
CREATE TABLE lockouts (
    scope TEXT NOT NULL,
    subject TEXT NOT NULL,
    level BIGINT NOT NULL,
    locked_at BIGINT NOT NULL,
    locked_until BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (scope, subject)
);

-- Append-only, hash-chained record of every state change. The store refuses UPDATE and
-- DELETE on it (triggers installed by Store::open, written per database engine).
CREATE TABLE audit_events (
    seq BIGINT PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX audit_events_actor ON audit_events (actor, seq);
CREATE INDEX audit_events_action ON audit_events (action, seq);
