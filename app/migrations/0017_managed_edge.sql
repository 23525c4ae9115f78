-- Whether Slipway's managed edge goes in front of the stack's services (an admin's setting;
-- the compose file can also ask for it with `x-slipway: { edge: managed }`).
ALTER TABLE stacks ADD COLUMN managed_edge BIGINT NOT NULL DEFAULT 0;
