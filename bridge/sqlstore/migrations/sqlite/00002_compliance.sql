-- +goose Up
-- Encryption at rest, signed checkpoints, retention with legal holds and disposal, export jobs.
-- (See the PostgreSQL migration for the comments; the schema is the same.)

CREATE TABLE data_keys (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    kek_id     TEXT NOT NULL,
    wrapped    BLOB NOT NULL,
    created_us INTEGER NOT NULL,
    retired_us INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX data_keys_current ON data_keys (tenant) WHERE retired_us = 0;

ALTER TABLE queue ADD COLUMN data_key TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN data_key TEXT NOT NULL DEFAULT '';
ALTER TABLE media ADD COLUMN data_key TEXT NOT NULL DEFAULT '';

CREATE TABLE checkpoints (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at_us      INTEGER NOT NULL,
    streams    INTEGER NOT NULL,
    records    INTEGER NOT NULL,
    root       BLOB NOT NULL,
    key_id     TEXT NOT NULL,
    signature  BLOB NOT NULL,
    heads      BLOB NOT NULL
);

-- The leaves as of the latest checkpoint (each checkpoint stores only the leaves that changed),
-- and a row whose lock makes replicas take turns making checkpoints.
CREATE TABLE checkpoint_heads (
    stream TEXT PRIMARY KEY,
    seq    INTEGER NOT NULL,
    hash   BLOB NOT NULL
);
CREATE TABLE checkpoint_lock (id INTEGER PRIMARY KEY);
INSERT INTO checkpoint_lock (id) VALUES (1);

CREATE TABLE holds (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    scope     TEXT NOT NULL,
    subject   TEXT NOT NULL,
    reason    TEXT NOT NULL,
    placed_by TEXT NOT NULL,
    placed_us INTEGER NOT NULL,
    lifted_by TEXT NOT NULL DEFAULT '',
    lifted_us INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX holds_active ON holds (scope, subject) WHERE lifted_us = 0;

CREATE TABLE archive_disposals (
    stream      TEXT NOT NULL,
    through_seq INTEGER NOT NULL,
    hash        BLOB NOT NULL,
    records     INTEGER NOT NULL,
    disposed_us INTEGER NOT NULL,
    PRIMARY KEY (stream, through_seq)
);

-- Which archived records refer to which media, so a purge removes media nothing refers to any more.
CREATE TABLE media_refs (
    sha256 TEXT NOT NULL,
    stream TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    PRIMARY KEY (stream, seq, sha256)
);
CREATE INDEX media_refs_sha256 ON media_refs (sha256);

CREATE TABLE export_jobs (
    name           TEXT PRIMARY KEY,
    format         TEXT NOT NULL,
    out_dir        TEXT NOT NULL,
    smtp_to        TEXT NOT NULL DEFAULT '',
    every_us       INTEGER NOT NULL,
    next_us        INTEGER NOT NULL,
    lease_owner    TEXT NOT NULL DEFAULT '',
    lease_until_us INTEGER NOT NULL DEFAULT 0,
    runs           INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT NOT NULL DEFAULT '',
    created_by     TEXT NOT NULL,
    created_us     INTEGER NOT NULL
);
CREATE TABLE export_cursors (
    job    TEXT NOT NULL REFERENCES export_jobs (name) ON DELETE CASCADE,
    stream TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    PRIMARY KEY (job, stream)
);

DROP TRIGGER archive_no_delete;
-- +goose StatementBegin
CREATE TRIGGER archive_no_delete BEFORE DELETE ON archive
WHEN NOT EXISTS (SELECT 1 FROM archive_disposals d WHERE d.stream = OLD.stream AND d.through_seq >= OLD.seq)
BEGIN
    SELECT RAISE(ABORT, 'archive rows are append-only: DELETE refused');
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN
    SELECT RAISE(ABORT, 'checkpoints are append-only: UPDATE refused');
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN
    SELECT RAISE(ABORT, 'checkpoints are append-only: DELETE refused');
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER disposals_no_update BEFORE UPDATE ON archive_disposals
BEGIN
    SELECT RAISE(ABORT, 'disposals are append-only: UPDATE refused');
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER disposals_no_delete BEFORE DELETE ON archive_disposals
BEGIN
    SELECT RAISE(ABORT, 'disposals are append-only: DELETE refused');
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER disposals_no_delete;
DROP TRIGGER disposals_no_update;
DROP TRIGGER checkpoints_no_delete;
DROP TRIGGER checkpoints_no_update;
DROP TRIGGER archive_no_delete;
-- +goose StatementBegin
CREATE TRIGGER archive_no_delete BEFORE DELETE ON archive
BEGIN
    SELECT RAISE(ABORT, 'archive rows are append-only: DELETE refused');
END;
-- +goose StatementEnd
DROP TABLE export_cursors;
DROP TABLE media_refs;
DROP TABLE export_jobs;
DROP TABLE archive_disposals;
DROP TABLE holds;
DROP TABLE checkpoints;
DROP TABLE checkpoint_heads;
DROP TABLE checkpoint_lock;
ALTER TABLE media DROP COLUMN data_key;
ALTER TABLE outbox DROP COLUMN data_key;
ALTER TABLE queue DROP COLUMN data_key;
DROP TABLE data_keys;
