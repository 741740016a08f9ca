-- +goose Up
-- Supervision (issue 15): the firm's own rules, the groups they may name, the review queue, and the
-- firm's review settings. Every change to any of them is also archived (the supervision stream);
-- these tables are the working copy the engine and the console read.

-- Every version of every rule: the current one is the highest version of its id; deleting a rule
-- adds a version marked deleted. Versions are never changed or removed.
CREATE TABLE supervision_rules (
    rule_id TEXT    NOT NULL,
    version INTEGER NOT NULL,
    spec    TEXT    NOT NULL, -- the rule as the firm wrote it (JSON of supervision.Rule)
    deleted BOOLEAN NOT NULL DEFAULT FALSE,
    actor   TEXT    NOT NULL,
    at_us   BIGINT  NOT NULL,
    PRIMARY KEY (rule_id, version)
);

-- Supervision groups: employees a rule can cover by naming the group.
CREATE TABLE supervision_groups (
    name        TEXT NOT NULL,
    employee_id TEXT NOT NULL,
    PRIMARY KEY (name, employee_id)
);

-- The review queue: messages a flag rule matched, and conversations sampled for review.
CREATE TABLE review_items (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant      TEXT    NOT NULL DEFAULT '',
    chat_id     BIGINT  NOT NULL,
    message_id  TEXT    NOT NULL DEFAULT '', -- the flagged message; '' for a sampled conversation
    employee_id TEXT    NOT NULL DEFAULT '', -- the employee concerned (author, or whose conversation was sampled)
    contact     TEXT    NOT NULL DEFAULT '',
    reason      TEXT    NOT NULL,            -- flag | sample
    rules       TEXT    NOT NULL DEFAULT '', -- refs of the rule versions that flagged it, comma-separated
    day         TEXT    NOT NULL DEFAULT '', -- a sample's day, YYYY-MM-DD (UTC)
    state       TEXT    NOT NULL DEFAULT 'open',
    assignee    TEXT    NOT NULL DEFAULT '',
    decision    TEXT    NOT NULL DEFAULT '',
    decided_by  TEXT    NOT NULL DEFAULT '',
    created_us  BIGINT  NOT NULL,
    decided_us  BIGINT  NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX review_items_flagged ON review_items (message_id) WHERE reason = 'flag';
CREATE UNIQUE INDEX review_items_sampled ON review_items (day, chat_id, employee_id) WHERE reason = 'sample';
CREATE INDEX review_items_state ON review_items (state, created_us);

-- The firm's review settings (sample_percent …), as name = value.
CREATE TABLE supervision_settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- +goose Down
DROP TABLE supervision_settings;
DROP TABLE review_items;
DROP TABLE supervision_groups;
DROP TABLE supervision_rules;
