-- Transcription jobs (Scriptix "sessions"). A worker claims a job by taking a lease and
-- keeps it alive with heartbeats; a job whose lease lapsed (its worker died) is claimed
-- again, up to max_attempts.
CREATE TABLE jobs (
    id                INTEGER PRIMARY KEY,
    recording_id      BIGINT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    status            TEXT NOT NULL,
    attempts          BIGINT NOT NULL DEFAULT 0,
    max_attempts      BIGINT NOT NULL,
    leased_by         TEXT,
    lease_expires_at  BIGINT,
    progress          DOUBLE PRECISION NOT NULL DEFAULT 0,
    options           TEXT NOT NULL,
    error             TEXT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX jobs_claimable ON jobs (status, lease_expires_at);
CREATE INDEX jobs_recording ON jobs (recording_id);
