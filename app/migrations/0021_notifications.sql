-- Where the console tells the team what happened: Slack and Teams incoming webhooks and
-- signed JSON webhooks. The address (and a webhook's signing secret) is sealed under a key
-- derived from the audit key, which lives outside the store; `address_hint` is what pages show.
CREATE TABLE notification_channels (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    address_sealed TEXT NOT NULL,
    address_hint TEXT NOT NULL,
    signing_sealed TEXT NOT NULL,
    -- The events the channel wants, comma-separated.
    events TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- One message for one channel, written in the transaction of the change it tells of; the
-- console's sender delivers it outside every request. `next_attempt_at` is also the lease
-- of a message being sent: a sender moves it ahead before sending, so that another console
-- of the same store leaves it alone, and a sender that died is replaced when it passes.
CREATE TABLE notification_outbox (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL,
    event TEXT NOT NULL,
    message TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    last_status BIGINT NOT NULL,
    last_error TEXT NOT NULL,
    created_at TEXT NOT NULL,
    sent_at TEXT NOT NULL
);
CREATE INDEX notification_outbox_due ON notification_outbox (status, next_attempt_at);
CREATE INDEX notification_outbox_channel ON notification_outbox (channel_id, created_at);
