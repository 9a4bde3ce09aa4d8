-- Audio by URL: a recording may start as a URL to fetch; its blob_key stays '' until a
-- worker has fetched the audio (the fetch is part of the job, so a refused or failed fetch
-- fails the job with its reason).
ALTER TABLE recordings ADD COLUMN source_url TEXT;

-- Webhooks a user registered: every job of theirs that ends is reported to each. The
-- secret signs the deliveries (HMAC-SHA256), so it must be kept readable; it is shown to
-- its owner once, at creation, and never listed.
CREATE TABLE webhooks (
    id           INTEGER PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users(id),
    url          TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    events       TEXT NOT NULL,
    secret       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    deleted_at   BIGINT
);
CREATE INDEX webhooks_user ON webhooks (user_id);

-- The secret that signs a user's per-job callbacks (Fireflies' "account secret").
CREATE TABLE callback_secrets (
    user_id     BIGINT PRIMARY KEY REFERENCES users(id),
    secret      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Each request hark owes a receiver, rendered once (so every retry sends the same bytes)
-- and kept with its outcome. webhook_id is NULL for a per-job callback.
CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY,
    user_id          BIGINT NOT NULL REFERENCES users(id),
    webhook_id       BIGINT REFERENCES webhooks(id),
    recording_id     BIGINT,
    event            TEXT NOT NULL,
    url              TEXT NOT NULL,
    method           TEXT NOT NULL,
    headers          TEXT NOT NULL,
    content_type     TEXT NOT NULL,
    body             BLOB NOT NULL,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    last_status      BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    delivered_at     BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_user ON webhook_deliveries (user_id, created_at DESC);

-- Whether a finished job's deliveries were queued. Set in the same transaction that queues
-- them, so a job is announced exactly once; a sweep finds finished jobs still FALSE (the
-- server stopped between closing the job and queueing), so none is missed. Jobs from
-- before webhooks count as announced.
ALTER TABLE jobs ADD COLUMN notified BOOLEAN NOT NULL DEFAULT TRUE;
CREATE INDEX jobs_unnotified ON jobs (id) WHERE notified = FALSE;
