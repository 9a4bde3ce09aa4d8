-- Where a token may be used from: comma-separated canonical networks (empty: anywhere).
-- Deny wins over allow.
ALTER TABLE tokens ADD COLUMN allowed_cidrs TEXT NOT NULL DEFAULT '';
ALTER TABLE tokens ADD COLUMN denied_cidrs TEXT NOT NULL DEFAULT '';
-- An audio budget: seconds a period, refilled daily or monthly (UTC). NULL: no budget.
-- `audio_used_seconds` counts within the period starting at `audio_period_start`.
ALTER TABLE tokens ADD COLUMN audio_quota_seconds BIGINT;
ALTER TABLE tokens ADD COLUMN audio_quota_refill TEXT;
ALTER TABLE tokens ADD COLUMN audio_used_seconds DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN audio_period_start BIGINT;
-- Why a token was revoked when it was not by a person ("leaked": reported by value).
ALTER TABLE tokens ADD COLUMN revoked_reason TEXT;
-- When its owner was told it expires soon (so they are told once).
ALTER TABLE tokens ADD COLUMN expiry_noticed_at BIGINT;

-- The SHA-256 (hex) of the token secret an event was done with (`token_hash`) and of the
-- one it is about (`subject_hash`: a token created, rotated or reported leaked): lets an
-- admin holding a leaked token find everything it did without the token being stored.
ALTER TABLE audit_events ADD COLUMN token_hash TEXT;
ALTER TABLE audit_events ADD COLUMN subject_hash TEXT;
CREATE INDEX audit_events_token_hash ON audit_events (token_hash);
CREATE INDEX audit_events_subject_hash ON audit_events (subject_hash);

-- Verifications by outcome and the speech they paid for, per token: per-minute rows
-- (kept for a short while) and per-day rows (kept longer). `bucket`: the period's start,
-- milliseconds since the epoch.
CREATE TABLE token_usage (
    token_id        BIGINT NOT NULL,
    granularity     TEXT NOT NULL,
    bucket          BIGINT NOT NULL,
    ok              BIGINT NOT NULL DEFAULT 0,
    expired         BIGINT NOT NULL DEFAULT 0,
    revoked         BIGINT NOT NULL DEFAULT 0,
    scope_denied    BIGINT NOT NULL DEFAULT 0,
    ip_denied       BIGINT NOT NULL DEFAULT 0,
    rate_limited    BIGINT NOT NULL DEFAULT 0,
    quota_exceeded  BIGINT NOT NULL DEFAULT 0,
    audio_seconds   DOUBLE PRECISION NOT NULL DEFAULT 0,
    stream_seconds  DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (token_id, granularity, bucket)
);

-- The distinct client addresses a token was used from (the newest ten are kept).
CREATE TABLE token_addresses (
    token_id    BIGINT NOT NULL,
    ip          TEXT NOT NULL,
    first_seen  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    user_agent  TEXT,
    PRIMARY KEY (token_id, ip)
);
