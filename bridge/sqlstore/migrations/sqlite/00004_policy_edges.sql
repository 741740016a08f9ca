-- +goose Up
-- See the PostgreSQL migration for the comments.
ALTER TABLE outbox ADD COLUMN template TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN cancel_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE chats ADD COLUMN members_changed BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE chats DROP COLUMN members_changed;
ALTER TABLE outbox DROP COLUMN cancel_reason;
ALTER TABLE outbox DROP COLUMN template;
