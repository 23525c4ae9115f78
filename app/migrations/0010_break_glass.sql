-- Break glass: an admin who approved their own emergency request says why (at least 20
-- characters); the request stays flagged until another approver acknowledges it.
ALTER TABLE approvals ADD COLUMN break_glass TEXT NOT NULL DEFAULT '';
ALTER TABLE approvals ADD COLUMN acknowledged_by TEXT NOT NULL DEFAULT '';
ALTER TABLE approvals ADD COLUMN acknowledged_at TEXT NOT NULL DEFAULT '';
