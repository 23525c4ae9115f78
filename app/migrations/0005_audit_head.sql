-- The audit trail's newest entry, kept in one row that every audited change locks first:
-- audited changes queue one behind the other, each in the same transaction as its entry.
-- `audit verify` never trusts this row; it walks audit_events.
CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash, created_at)
SELECT 1,
       COALESCE((SELECT MAX(seq) FROM audit_events), 0),
       COALESCE((SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1),
                '0000000000000000000000000000000000000000000000000000000000000000'),
       'migration 0005';
