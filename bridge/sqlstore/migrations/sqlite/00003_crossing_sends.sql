-- +goose Up
-- Sends that crossed a customer's message (see the PostgreSQL migration for the comments).
ALTER TABLE outbox ADD COLUMN answered_us INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN crossed_us INTEGER NOT NULL DEFAULT 0;
CREATE INDEX outbox_crossed ON outbox (chat_id, crossed_us) WHERE crossed_us > 0;

-- +goose Down
DROP INDEX outbox_crossed;
ALTER TABLE outbox DROP COLUMN crossed_us;
ALTER TABLE outbox DROP COLUMN answered_us;
