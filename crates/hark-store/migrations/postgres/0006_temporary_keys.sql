-- Temporary keys (Speechmatics' browser flow): short-lived project keys minted from a
-- long-lived credential. `parent_id` names the token that minted one (NULL when a signed-in
-- member did); a temporary key stops working the moment its parent does.
ALTER TABLE tokens ADD COLUMN parent_id BIGINT REFERENCES tokens(id);
ALTER TABLE tokens ADD COLUMN temporary BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX tokens_parent ON tokens (parent_id);
