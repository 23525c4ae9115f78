-- The Compose profiles active for the stack, separated by spaces (`docker compose --profile`):
-- a service that names profiles runs only when one of them is active.
ALTER TABLE stacks ADD COLUMN profiles TEXT NOT NULL DEFAULT '';
