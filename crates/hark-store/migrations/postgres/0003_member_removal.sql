-- Removing a member keeps the row (their recordings, tokens and audit events refer to it)
-- but every lookup treats a removed user as gone.
ALTER TABLE users ADD COLUMN removed_at BIGINT;
