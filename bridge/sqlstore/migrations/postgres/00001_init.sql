-- +goose Up
-- The bridge's state (employees, contacts, chats, queue, outbox, timers, idempotency keys, media)
-- and the compliance archive. Times are unix microseconds (BIGINT) so both databases store and
-- return them exactly; 0 means "never".

CREATE TABLE employees (
    id                    TEXT PRIMARY KEY,          -- Entra ID object id
    tenant                TEXT NOT NULL DEFAULT '',
    name                  TEXT NOT NULL DEFAULT '',
    email                 TEXT NOT NULL DEFAULT '',
    enabled               BOOLEAN NOT NULL DEFAULT FALSE,
    scene                 TEXT UNIQUE,               -- QR scene; NULL until WeChat is enabled
    teams_service_url     TEXT NOT NULL DEFAULT '',
    teams_conversation_id TEXT NOT NULL DEFAULT '',
    teams_user_id         TEXT NOT NULL DEFAULT '',
    reachable             BOOLEAN NOT NULL DEFAULT TRUE,
    current_chat          BIGINT NOT NULL DEFAULT 0,
    updated_us            BIGINT NOT NULL
);

CREATE TABLE contacts (
    open_id    TEXT PRIMARY KEY,                     -- WeChat openid (per Official Account)
    union_id   TEXT NOT NULL DEFAULT '',
    name       TEXT NOT NULL DEFAULT '',
    language   TEXT NOT NULL DEFAULT '',
    following  BOOLEAN NOT NULL DEFAULT TRUE,
    updated_us BIGINT NOT NULL
);

CREATE TABLE chats (
    id                 BIGSERIAL PRIMARY KEY,
    tenant             TEXT NOT NULL DEFAULT '',
    contact            TEXT NOT NULL UNIQUE REFERENCES contacts (open_id),
    status             TEXT NOT NULL,
    last_inbound_us    BIGINT NOT NULL DEFAULT 0,
    connected_us       BIGINT NOT NULL DEFAULT 0,
    sent_since_inbound INTEGER NOT NULL DEFAULT 0,
    employee_streak    INTEGER NOT NULL DEFAULT 0,
    on_hold_prompted   BOOLEAN NOT NULL DEFAULT FALSE,
    notified_24h       BOOLEAN NOT NULL DEFAULT FALSE,
    reinstate_sent     BOOLEAN NOT NULL DEFAULT FALSE,
    created_us         BIGINT NOT NULL,
    updated_us         BIGINT NOT NULL
);

CREATE TABLE chat_members (
    chat_id     BIGINT NOT NULL REFERENCES chats (id),
    employee_id TEXT NOT NULL REFERENCES employees (id),
    position    INTEGER NOT NULL,
    PRIMARY KEY (chat_id, employee_id)
);
CREATE INDEX chat_members_employee ON chat_members (employee_id);

CREATE TABLE queue (
    id          BIGSERIAL PRIMARY KEY,
    chat_id     BIGINT NOT NULL REFERENCES chats (id),
    position    BIGINT NOT NULL,                     -- FIFO order; a requeued message goes below the minimum
    employee_id TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    message     BYTEA NOT NULL,                      -- JSON of bridge.Message
    queued_us   BIGINT NOT NULL
);
CREATE INDEX queue_chat ON queue (chat_id, position);

CREATE TABLE outbox (
    id             BIGSERIAL PRIMARY KEY,
    chat_id        BIGINT NOT NULL DEFAULT 0,
    tenant         TEXT NOT NULL DEFAULT '',
    channel        TEXT NOT NULL,                    -- wechat | teams
    lane           TEXT NOT NULL,                    -- one delivery at a time per lane, in id order
    employee_id    TEXT NOT NULL DEFAULT '',
    contact        TEXT NOT NULL DEFAULT '',
    message_id     TEXT NOT NULL,
    auto           BOOLEAN NOT NULL DEFAULT FALSE,
    payload        BYTEA NOT NULL,                   -- JSON of the channel message
    state          TEXT NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    not_before_us  BIGINT NOT NULL,
    lease_until_us BIGINT NOT NULL DEFAULT 0,
    created_us     BIGINT NOT NULL
);
CREATE INDEX outbox_lane_open ON outbox (lane, id) WHERE state IN ('pending', 'sending');
CREATE INDEX outbox_chat_open ON outbox (chat_id, channel, id) WHERE state IN ('pending', 'sending');

-- One row per lane with undelivered items: the lane's first undelivered item and when it may be
-- claimed (its not-before time, or when its current claim runs out). Claiming reads only these
-- rows, so its cost follows the number of busy lanes, not the size of the backlog.
CREATE TABLE outbox_lanes (
    lane    TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    head_id BIGINT NOT NULL,
    due_us  BIGINT NOT NULL
);
CREATE INDEX outbox_lanes_due ON outbox_lanes (due_us);

CREATE TABLE timers (
    chat_id BIGINT NOT NULL REFERENCES chats (id),
    kind    TEXT NOT NULL,
    due_us  BIGINT NOT NULL,
    PRIMARY KEY (chat_id, kind)
);
CREATE INDEX timers_due ON timers (due_us);

CREATE TABLE seen (
    key     TEXT PRIMARY KEY,                        -- idempotency key of an input already handled
    seen_us BIGINT NOT NULL
);
CREATE INDEX seen_at ON seen (seen_us);

CREATE TABLE media (
    sha256       TEXT PRIMARY KEY,
    content_type TEXT NOT NULL,
    size         BIGINT NOT NULL,
    name         TEXT NOT NULL DEFAULT '',
    data         BYTEA NOT NULL,
    created_us   BIGINT NOT NULL
);

-- The WeChat access token, shared by every replica, and the lease of the one replica refreshing it.
CREATE TABLE wechat_tokens (
    app_id         TEXT PRIMARY KEY,
    token          TEXT NOT NULL DEFAULT '',
    expires_us     BIGINT NOT NULL DEFAULT 0,
    lease_owner    TEXT NOT NULL DEFAULT '',
    lease_until_us BIGINT NOT NULL DEFAULT 0
);

-- Where media came from (a WeChat media_id, a Teams attachment), so it is fetched once.
CREATE TABLE media_sources (
    source TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL REFERENCES media (sha256)
);

-- The compliance archive: append-only, hash-chained per stream (package compliance).
CREATE TABLE archive (
    id        BIGSERIAL PRIMARY KEY,
    stream    TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    tenant    TEXT NOT NULL DEFAULT '',
    at_us     BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    actor     TEXT NOT NULL,
    chat_id   BIGINT NOT NULL DEFAULT 0,
    meta      BYTEA NOT NULL,                        -- canonical JSON, hashed exactly as stored
    body      BYTEA,                                 -- encoded content; NULL once disposed of
    body_key  TEXT NOT NULL DEFAULT '',              -- '' = plaintext, else the key that encrypted body
    body_hash BYTEA NOT NULL,                        -- SHA-256 of the plaintext content
    prev_hash BYTEA NOT NULL,
    hash      BYTEA NOT NULL,
    UNIQUE (stream, seq)
);
CREATE INDEX archive_at ON archive (at_us);
CREATE INDEX archive_chat ON archive (chat_id, id);

CREATE TABLE archive_heads (
    stream     TEXT PRIMARY KEY,
    seq        BIGINT NOT NULL,
    hash       BYTEA NOT NULL,
    updated_us BIGINT NOT NULL
);

-- +goose StatementBegin
CREATE FUNCTION archive_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'archive rows are append-only: % refused', TG_OP;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER archive_no_change BEFORE UPDATE OR DELETE ON archive
    FOR EACH ROW EXECUTE FUNCTION archive_append_only();
CREATE TRIGGER archive_no_truncate BEFORE TRUNCATE ON archive
    FOR EACH STATEMENT EXECUTE FUNCTION archive_append_only();
