-- The project key a recording was submitted through (NULL: a person's own upload). Project
-- keys read only recordings submitted through their project's keys, never a member's own.
ALTER TABLE recordings ADD COLUMN submitted_by_key BIGINT;
-- Recordings made before this column existed: their audit event names the token used.
UPDATE recordings SET submitted_by_key = (
    SELECT a.actor_token_id FROM audit_events a JOIN tokens t ON t.id = a.actor_token_id
    WHERE a.action = 'recording.created' AND a.target = 'recording:' || recordings.id
      AND t.kind = 'project' AND t.project_id = recordings.project_id
    LIMIT 1);
CREATE INDEX recordings_submitted_by_key ON recordings (project_id, submitted_by_key);
