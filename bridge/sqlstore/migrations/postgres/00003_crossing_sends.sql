-- +goose Up
-- A WeChat send that was under way when the customer wrote may have reached them before or after
-- their message. The engine counts it toward the customer's new streak and marks it (crossed_us:
-- the time of that customer message); answered_us is when WeChat answered the send. A marked send
-- WeChat had in fact answered before the customer's message is taken off the streak again
-- (bridge: settleCrossing).
ALTER TABLE outbox ADD COLUMN answered_us BIGINT NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN crossed_us BIGINT NOT NULL DEFAULT 0;
CREATE INDEX outbox_crossed ON outbox (chat_id, crossed_us) WHERE crossed_us > 0;

-- +goose Down
DROP INDEX outbox_crossed;
ALTER TABLE outbox DROP COLUMN crossed_us;
ALTER TABLE outbox DROP COLUMN answered_us;
