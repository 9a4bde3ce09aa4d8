-- hark's schema. Times are Unix milliseconds (BIGINT) so the same queries run on PostgreSQL.

CREATE TABLE workspaces (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE projects (
    id            INTEGER PRIMARY KEY,
    workspace_id  BIGINT NOT NULL REFERENCES workspaces(id),
    name          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    UNIQUE (workspace_id, name)
);

-- A fresh install has one workspace with its default project.
INSERT INTO workspaces (id, name, created_at) VALUES (1, 'Default workspace', 0);
INSERT INTO projects (id, workspace_id, name, created_at) VALUES (1, 1, 'Default project', 0);

CREATE TABLE users (
    id             INTEGER PRIMARY KEY,
    workspace_id   BIGINT NOT NULL REFERENCES workspaces(id),
    username       TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);

CREATE TABLE web_sessions (
    id_hash     BLOB PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);

CREATE TABLE tokens (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    user_id       BIGINT NOT NULL REFERENCES users(id),
    workspace_id  BIGINT NOT NULL REFERENCES workspaces(id),
    project_id    BIGINT REFERENCES projects(id),
    hint          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    last_used_at  BIGINT,
    last_used_ip  TEXT,
    revoked_at    BIGINT,
    revoked_by    BIGINT REFERENCES users(id)
);
CREATE INDEX tokens_user ON tokens (user_id);

-- A token has one current secret, plus the previous one during a rotation's grace period.
-- Only SHA-256 hashes are stored. WITHOUT ROWID: a lookup by hash is one B-tree search.
CREATE TABLE token_secrets (
    hash        BLOB PRIMARY KEY,
    token_id    BIGINT NOT NULL REFERENCES tokens(id),
    retires_at  BIGINT
) WITHOUT ROWID;
CREATE INDEX token_secrets_token ON token_secrets (token_id);

-- Every change that can make a cached verification stale (revoke, rotate, role change)
-- appends here; every server polls it and evicts, so a revocation from another process
-- takes effect within one poll interval.
CREATE TABLE token_changes (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    token_id    BIGINT NOT NULL,
    changed_at  BIGINT NOT NULL
);

CREATE TABLE recordings (
    id                 INTEGER PRIMARY KEY,
    user_id            BIGINT NOT NULL REFERENCES users(id),
    project_id         BIGINT NOT NULL REFERENCES projects(id),
    title              TEXT NOT NULL,
    status             TEXT NOT NULL,
    original_filename  TEXT NOT NULL,
    mime_type          TEXT NOT NULL,
    size_bytes         BIGINT NOT NULL,
    blob_key           TEXT NOT NULL,
    duration_seconds   DOUBLE PRECISION,
    language           TEXT,
    transcript         TEXT,
    summary            TEXT,
    error              TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX recordings_user_created ON recordings (user_id, created_at DESC, id DESC);

CREATE TABLE tags (
    id          INTEGER PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users(id),
    name        TEXT NOT NULL,
    color       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (user_id, name)
);

CREATE TABLE recording_tags (
    recording_id  BIGINT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    tag_id        BIGINT NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
    PRIMARY KEY (recording_id, tag_id)
);
CREATE INDEX recording_tags_tag ON recording_tags (tag_id);

-- Append-only: nothing updates or deletes these rows. Never holds a token.
CREATE TABLE audit_events (
    id              INTEGER PRIMARY KEY,
    at              BIGINT NOT NULL,
    workspace_id    BIGINT NOT NULL,
    actor_user_id   BIGINT,
    actor_token_id  BIGINT,
    action          TEXT NOT NULL,
    target          TEXT NOT NULL,
    ip              TEXT,
    user_agent      TEXT,
    details         TEXT
);
CREATE INDEX audit_events_workspace_at ON audit_events (workspace_id, at DESC);
