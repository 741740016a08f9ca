-- +goose Up
-- template: an auto-message's template (customer.on_hold …), so a prompt still waiting when the
-- customer writes can be found and cancelled, and a confirmation to a customer who left told
-- apart from the chat's own messages. cancel_reason: set on a send under way when its chat
-- stopped wanting it (the customer left, the author was removed or disabled …); if WeChat does
-- not accept it, it is cancelled instead of retried or requeued.
ALTER TABLE outbox ADD COLUMN template TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN cancel_reason TEXT NOT NULL DEFAULT '';
-- members_changed: employees were added or removed since the customer last wrote and the
-- customer has not been told yet (the 24 h prompt tells them).
ALTER TABLE chats ADD COLUMN members_changed BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE chats DROP COLUMN members_changed;
ALTER TABLE outbox DROP COLUMN cancel_reason;
ALTER TABLE outbox DROP COLUMN template;
