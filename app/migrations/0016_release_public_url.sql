-- The address a stack is served at: a release checks CORS_ORIGIN against it.
ALTER TABLE release_policies ADD COLUMN public_url TEXT NOT NULL DEFAULT '';
