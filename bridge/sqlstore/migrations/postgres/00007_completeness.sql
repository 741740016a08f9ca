-- +goose Up
-- The daily completeness report (compliance/completeness) and what it needs that the archive does
-- not hold.

-- One signed report per day, made once whichever replica makes it (the primary key), and archived
-- in the admin stream in the same transaction. Kept here too so that it is found without reading
-- the admin stream; append-only like the checkpoints.
CREATE TABLE completeness_reports (
    day       TEXT PRIMARY KEY,                      -- YYYY-MM-DD (UTC)
    made_us   BIGINT NOT NULL,
    hash      TEXT NOT NULL,                         -- hex SHA-256 of the canonical report
    key_id    TEXT NOT NULL DEFAULT '',
    signature BYTEA NOT NULL,                        -- empty when no signing key was configured
    report    BYTEA NOT NULL                         -- the canonical report JSON (ids and counts, no message text)
);
CREATE TRIGGER completeness_reports_append_only BEFORE UPDATE OR DELETE ON completeness_reports
    FOR EACH ROW EXECUTE FUNCTION archive_append_only();
CREATE TRIGGER completeness_reports_no_truncate BEFORE TRUNCATE ON completeness_reports
    FOR EACH STATEMENT EXECUTE FUNCTION archive_append_only();

-- Pushes and activities refused after they were received (authenticated, then not archived), per
-- hour, channel and reason, added to by every replica. Written best-effort: counts a replica had
-- not written yet when it crashed are lost (its log still has each refusal).
CREATE TABLE receipt_refusals (
    hour_us BIGINT NOT NULL,                         -- the UTC hour's start
    channel TEXT NOT NULL,                           -- wechat | teams
    reason  TEXT NOT NULL,
    n       BIGINT NOT NULL,
    PRIMARY KEY (hour_us, channel, reason)
);

-- +goose Down
DROP TABLE receipt_refusals;
DROP TABLE completeness_reports;
