-- +goose Up
-- The SQLite twin of postgres/00001_init.sql: the same tables, columns and indexes; AUTOINCREMENT
-- for ids that must never be reused; BLOB for BYTEA; triggers in SQLite's syntax.

CREATE TABLE employees (
    id                    TEXT PRIMARY KEY,
    tenant                TEXT NOT NULL DEFAULT '',
    name                  TEXT NOT NULL DEFAULT '',
    email                 TEXT NOT NULL DEFAULT '',
    enabled               BOOLEAN NOT NULL DEFAULT FALSE,
    scene                 TEXT UNIQUE,
    teams_service_url     TEXT NOT NULL DEFAULT '',
    teams_conversation_id TEXT NOT NULL DEFAULT '',
    teams_user_id         TEXT NOT NULL DEFAULT '',
    reachable             BOOLEAN NOT NULL DEFAULT TRUE,
    current_chat          INTEGER NOT NULL DEFAULT 0,
    updated_us            INTEGER NOT NULL
);

CREATE TABLE contacts (
    open_id    TEXT PRIMARY KEY,
    union_id   TEXT NOT NULL DEFAULT '',
    name       TEXT NOT NULL DEFAULT '',
    language   TEXT NOT NULL DEFAULT '',
    following  BOOLEAN NOT NULL DEFAULT TRUE,
    updated_us INTEGER NOT NULL
);

CREATE TABLE chats (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant             TEXT NOT NULL DEFAULT '',
    contact            TEXT NOT NULL UNIQUE REFERENCES contacts (open_id),
    status             TEXT NOT NULL,
    last_inbound_us    INTEGER NOT NULL DEFAULT 0,
    connected_us       INTEGER NOT NULL DEFAULT 0,
    sent_since_inbound INTEGER NOT NULL DEFAULT 0,
    employee_streak    INTEGER NOT NULL DEFAULT 0,
    on_hold_prompted   BOOLEAN NOT NULL DEFAULT FALSE,
    notified_24h       BOOLEAN NOT NULL DEFAULT FALSE,
    reinstate_sent     BOOLEAN NOT NULL DEFAULT FALSE,
    created_us         INTEGER NOT NULL,
    updated_us         INTEGER NOT NULL
);

CREATE TABLE chat_members (
    chat_id     INTEGER NOT NULL REFERENCES chats (id),
    employee_id TEXT NOT NULL REFERENCES employees (id),
    position    INTEGER NOT NULL,
    PRIMARY KEY (chat_id, employee_id)
);
CREATE INDEX chat_members_employee ON chat_members (employee_id);

CREATE TABLE queue (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id     INTEGER NOT NULL REFERENCES chats (id),
    position    INTEGER NOT NULL,
    employee_id TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    message     BLOB NOT NULL,
    queued_us   INTEGER NOT NULL
);
CREATE INDEX queue_chat ON queue (chat_id, position);

CREATE TABLE outbox (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id        INTEGER NOT NULL DEFAULT 0,
    tenant         TEXT NOT NULL DEFAULT '',
    channel        TEXT NOT NULL,
    lane           TEXT NOT NULL,
    employee_id    TEXT NOT NULL DEFAULT '',
    contact        TEXT NOT NULL DEFAULT '',
    message_id     TEXT NOT NULL,
    auto           BOOLEAN NOT NULL DEFAULT FALSE,
    payload        BLOB NOT NULL,
    state          TEXT NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    not_before_us  INTEGER NOT NULL,
    lease_until_us INTEGER NOT NULL DEFAULT 0,
    created_us     INTEGER NOT NULL
);
CREATE INDEX outbox_lane_open ON outbox (lane, id) WHERE state IN ('pending', 'sending');
CREATE INDEX outbox_chat_open ON outbox (chat_id, channel, id) WHERE state IN ('pending', 'sending');

-- One row per lane with undelivered items: the lane's first undelivered item and when it may be
-- claimed (its not-before time, or when its current claim runs out). Claiming reads only these
-- rows, so its cost follows the number of busy lanes, not the size of the backlog.
CREATE TABLE outbox_lanes (
    lane    TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    head_id INTEGER NOT NULL,
    due_us  INTEGER NOT NULL
);
CREATE INDEX outbox_lanes_due ON outbox_lanes (due_us);

CREATE TABLE timers (
    chat_id INTEGER NOT NULL REFERENCES chats (id),
    kind    TEXT NOT NULL,
    due_us  INTEGER NOT NULL,
    PRIMARY KEY (chat_id, kind)
);
CREATE INDEX timers_due ON timers (due_us);

CREATE TABLE seen (
    key     TEXT PRIMARY KEY,
    seen_us INTEGER NOT NULL
);
CREATE INDEX seen_at ON seen (seen_us);

CREATE TABLE media (
    sha256       TEXT PRIMARY KEY,
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL,
    name         TEXT NOT NULL DEFAULT '',
    data         BLOB NOT NULL,
    created_us   INTEGER NOT NULL
);

-- The WeChat access token, shared by every replica, and the lease of the one replica refreshing it.
CREATE TABLE wechat_tokens (
    app_id         TEXT PRIMARY KEY,
    token          TEXT NOT NULL DEFAULT '',
    expires_us     INTEGER NOT NULL DEFAULT 0,
    lease_owner    TEXT NOT NULL DEFAULT '',
    lease_until_us INTEGER NOT NULL DEFAULT 0
);

-- Where media came from (a WeChat media_id, a Teams attachment), so it is fetched once.
CREATE TABLE media_sources (
    source TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL REFERENCES media (sha256)
);

CREATE TABLE archive (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    stream    TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    tenant    TEXT NOT NULL DEFAULT '',
    at_us     INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    actor     TEXT NOT NULL,
    chat_id   INTEGER NOT NULL DEFAULT 0,
    meta      BLOB NOT NULL,
    body      BLOB,
    body_key  TEXT NOT NULL DEFAULT '',
    body_hash BLOB NOT NULL,
    prev_hash BLOB NOT NULL,
    hash      BLOB NOT NULL,
    UNIQUE (stream, seq)
);
CREATE INDEX archive_at ON archive (at_us);
CREATE INDEX archive_chat ON archive (chat_id, id);

CREATE TABLE archive_heads (
    stream     TEXT PRIMARY KEY,
    seq        INTEGER NOT NULL,
    hash       BLOB NOT NULL,
    updated_us INTEGER NOT NULL
);

-- +goose StatementBegin
CREATE TRIGGER archive_no_update BEFORE UPDATE ON archive
BEGIN
    SELECT RAISE(ABORT, 'archive rows are append-only: UPDATE refused');
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER archive_no_delete BEFORE DELETE ON archive
BEGIN
    SELECT RAISE(ABORT, 'archive rows are append-only: DELETE refused');
END;
-- +goose StatementEnd
