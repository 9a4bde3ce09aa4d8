-- A token's own request budget (requests a minute); NULL: the server's default.
ALTER TABLE tokens ADD COLUMN requests_per_minute BIGINT;
