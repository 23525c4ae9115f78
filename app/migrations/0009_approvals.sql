-- Approval requests for gated runs: what was asked (operation, target, options), why and by
-- whom (user id and a hash of the requesting session, so neither decides it), the plan shown
-- to deciders, the facts the approval is bound to and their digest, and where it stands.
CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    stack TEXT NOT NULL,
    operation TEXT NOT NULL,
    target TEXT NOT NULL,
    options TEXT NOT NULL,
    reason TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requester_id TEXT NOT NULL,
    requester_session TEXT NOT NULL,
    plan TEXT NOT NULL,
    facts TEXT NOT NULL,
    digest TEXT NOT NULL,
    required BIGINT NOT NULL,
    status TEXT NOT NULL,
    status_note TEXT NOT NULL,
    run_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX approvals_status ON approvals (status, created_at);
-- One decision per person and request.
CREATE TABLE approval_decisions (
    approval_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    decision TEXT NOT NULL,
    comment TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    PRIMARY KEY (approval_id, user_id)
);
-- Each stack's approval policy: approvals needed, minutes before a request expires, and
-- whether deploy, update and migrate need one too.
CREATE TABLE approval_policies (
    stack TEXT PRIMARY KEY,
    required BIGINT NOT NULL,
    expires_minutes BIGINT NOT NULL,
    gate_changes BIGINT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
