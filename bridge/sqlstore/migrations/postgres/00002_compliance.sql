-- +goose Up
-- Encryption at rest, signed checkpoints, retention with legal holds and disposal, export jobs.

-- Data keys (DEKs), wrapped by the key-encryption key; at most one current key per tenant.
CREATE TABLE data_keys (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    kek_id     TEXT NOT NULL,                        -- which KEK wrapped it (compliance.KEKID)
    wrapped    BYTEA NOT NULL,
    created_us BIGINT NOT NULL,
    retired_us BIGINT NOT NULL DEFAULT 0             -- 0 = current: new values are sealed with it
);
CREATE UNIQUE INDEX data_keys_current ON data_keys (tenant) WHERE retired_us = 0;

-- The bridge's own copies of message content are sealed too ('' = plaintext).
ALTER TABLE queue ADD COLUMN data_key TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN data_key TEXT NOT NULL DEFAULT '';
ALTER TABLE media ADD COLUMN data_key TEXT NOT NULL DEFAULT '';

-- Signed checkpoints: a Merkle root over every stream's head, signed with Ed25519.
CREATE TABLE checkpoints (
    id         BIGSERIAL PRIMARY KEY,
    at_us      BIGINT NOT NULL,
    streams    BIGINT NOT NULL,                      -- leaves in the tree
    records    BIGINT NOT NULL,                      -- sum of the heads' sequence numbers
    root       BYTEA NOT NULL,
    key_id     TEXT NOT NULL,                        -- the signing key's id (compliance.SigningKeyID)
    signature  BYTEA NOT NULL,
    heads      BYTEA NOT NULL                        -- the leaves that changed since the previous checkpoint
);

-- The leaves as of the latest checkpoint (each checkpoint stores only the leaves that changed),
-- and a row whose lock makes replicas take turns making checkpoints.
CREATE TABLE checkpoint_heads (
    stream TEXT PRIMARY KEY,
    seq    BIGINT NOT NULL,
    hash   BYTEA NOT NULL
);
CREATE TABLE checkpoint_lock (id INTEGER PRIMARY KEY);
INSERT INTO checkpoint_lock (id) VALUES (1);

-- Legal holds: while a hold is in place nothing it covers is disposed of.
CREATE TABLE holds (
    id        BIGSERIAL PRIMARY KEY,
    scope     TEXT NOT NULL,                         -- chat | employee | contact
    subject   TEXT NOT NULL,                         -- chat id, employee id or openid
    reason    TEXT NOT NULL,
    placed_by TEXT NOT NULL,
    placed_us BIGINT NOT NULL,
    lifted_by TEXT NOT NULL DEFAULT '',
    lifted_us BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX holds_active ON holds (scope, subject) WHERE lifted_us = 0;

-- Disposals: a stream's records up to through_seq were removed under retention; hash is the last
-- removed record's, where verification of the stream starts again. Each is also archived.
CREATE TABLE archive_disposals (
    stream      TEXT NOT NULL,
    through_seq BIGINT NOT NULL,
    hash        BYTEA NOT NULL,
    records     BIGINT NOT NULL,
    disposed_us BIGINT NOT NULL,
    PRIMARY KEY (stream, through_seq)
);

-- Which archived records refer to which media, so a purge removes media nothing refers to any more.
CREATE TABLE media_refs (
    sha256 TEXT NOT NULL,
    stream TEXT NOT NULL,
    seq    BIGINT NOT NULL,
    PRIMARY KEY (stream, seq, sha256)
);
CREATE INDEX media_refs_sha256 ON media_refs (sha256);

-- Scheduled incremental exports and, per stream, how far each has exported.
CREATE TABLE export_jobs (
    name           TEXT PRIMARY KEY,
    format         TEXT NOT NULL,
    out_dir        TEXT NOT NULL,
    smtp_to        TEXT NOT NULL DEFAULT '',
    every_us       BIGINT NOT NULL,
    next_us        BIGINT NOT NULL,
    lease_owner    TEXT NOT NULL DEFAULT '',
    lease_until_us BIGINT NOT NULL DEFAULT 0,
    runs           BIGINT NOT NULL DEFAULT 0,
    last_error     TEXT NOT NULL DEFAULT '',
    created_by     TEXT NOT NULL,
    created_us     BIGINT NOT NULL
);
CREATE TABLE export_cursors (
    job    TEXT NOT NULL REFERENCES export_jobs (name) ON DELETE CASCADE,
    stream TEXT NOT NULL,
    seq    BIGINT NOT NULL,
    PRIMARY KEY (job, stream)
);

-- Archive rows stay append-only, with one exception: a purge may delete a stream's records that a
-- disposal row (written first, in the same transaction) covers.
DROP TRIGGER archive_no_change ON archive;
-- +goose StatementBegin
CREATE FUNCTION archive_no_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM archive_disposals d
            WHERE d.stream = OLD.stream AND d.through_seq >= OLD.seq) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'archive rows are append-only: % refused', TG_OP;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER archive_no_change BEFORE UPDATE OR DELETE ON archive
    FOR EACH ROW EXECUTE FUNCTION archive_no_change();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION archive_append_only();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION archive_append_only();
CREATE TRIGGER disposals_append_only BEFORE UPDATE OR DELETE ON archive_disposals
    FOR EACH ROW EXECUTE FUNCTION archive_append_only();
CREATE TRIGGER disposals_no_truncate BEFORE TRUNCATE ON archive_disposals
    FOR EACH STATEMENT EXECUTE FUNCTION archive_append_only();

-- And in privileges: nobody, the owner included, may rewrite or truncate the record tables. A purge
-- deletes (the trigger above decides what). Superusers bypass privileges, not triggers.
REVOKE UPDATE, TRUNCATE ON archive, checkpoints, archive_disposals FROM PUBLIC, CURRENT_USER;
REVOKE DELETE ON checkpoints, archive_disposals FROM PUBLIC, CURRENT_USER;

-- +goose Down
GRANT UPDATE, TRUNCATE ON archive, checkpoints, archive_disposals TO CURRENT_USER;
GRANT DELETE ON checkpoints, archive_disposals TO CURRENT_USER;
DROP TRIGGER archive_no_change ON archive;
DROP FUNCTION archive_no_change();
CREATE TRIGGER archive_no_change BEFORE UPDATE OR DELETE ON archive
    FOR EACH ROW EXECUTE FUNCTION archive_append_only();
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
