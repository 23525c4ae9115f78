-- The history pages by (started_at, id), newest first, filtered or not: keyset pagination
-- reads a page straight from these indexes (the one by stack replaces runs_stack).
CREATE INDEX runs_history ON runs (started_at, id);
CREATE INDEX runs_stack_history ON runs (stack, started_at, id);
DROP INDEX runs_stack;
CREATE INDEX releases_run ON releases (run_id);
CREATE INDEX approvals_run ON approvals (run_id);
