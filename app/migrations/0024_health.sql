-- Health: what the console's probes find on each stack, kept as a time series. Every result
-- is kept raw for 48 hours with its evidence, counted per minute for 30 days (the sparklines
-- and uptime read these), and each probe's newest result sits in `health_state` with the
-- time its state last changed.
CREATE TABLE health_samples (
    stack TEXT NOT NULL,
    service TEXT NOT NULL,
    probe TEXT NOT NULL,
    at TEXT NOT NULL,
    ok BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX health_samples_by_probe ON health_samples (stack, service, probe, at);
CREATE INDEX health_samples_by_time ON health_samples (at);

CREATE TABLE health_minutes (
    stack TEXT NOT NULL,
    service TEXT NOT NULL,
    probe TEXT NOT NULL,
    -- `YYYY-MM-DDTHH:MM`, UTC.
    minute TEXT NOT NULL,
    checks BIGINT NOT NULL,
    failures BIGINT NOT NULL,
    latency_ms_sum BIGINT NOT NULL,
    latency_ms_max BIGINT NOT NULL,
    PRIMARY KEY (stack, service, probe, minute)
);
CREATE INDEX health_minutes_by_time ON health_minutes (minute);

CREATE TABLE health_state (
    stack TEXT NOT NULL,
    service TEXT NOT NULL,
    probe TEXT NOT NULL,
    ok BIGINT NOT NULL,
    -- When the probe last turned from passing to failing or back.
    since TEXT NOT NULL,
    last_at TEXT NOT NULL,
    latency_ms BIGINT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (stack, service, probe)
);

-- A stack's health policy (an admin's): how often it is probed, how long a change is watched
-- after its verification, and what a failed verification does (`alert` or `rollback`). A
-- stack without a row has the defaults: every 15 s, 5 minutes, alert.
CREATE TABLE health_policies (
    stack TEXT PRIMARY KEY,
    every_seconds BIGINT NOT NULL,
    watch_seconds BIGINT NOT NULL,
    on_failed_verification TEXT NOT NULL,
    set_by TEXT NOT NULL,
    set_at TEXT NOT NULL
);

-- What a run's verification found: '' (the run has none), passed, failed (the change
-- stayed, the team was told) or rolled back (the previous images serve again).
ALTER TABLE runs ADD COLUMN verification TEXT NOT NULL DEFAULT '';
