-- The delivery metrics read the runs that ended within a window: by end time, over all stacks
-- or one.
CREATE INDEX runs_finished ON runs (finished_at);
CREATE INDEX runs_stack_finished ON runs (stack, finished_at);
