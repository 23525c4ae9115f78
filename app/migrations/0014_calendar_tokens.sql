-- Calendar links: one secret token per user (stored hashed) for the stacks' iCalendar feeds;
-- making a new one replaces the old, and an admin can revoke it.
CREATE TABLE calendar_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
