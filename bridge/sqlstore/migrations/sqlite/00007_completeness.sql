-- +goose Up
-- See the PostgreSQL migration for the comments.
CREATE TABLE completeness_reports (
    day       TEXT PRIMARY KEY,
    made_us   BIGINT NOT NULL,
    hash      TEXT NOT NULL,
    key_id    TEXT NOT NULL DEFAULT '',
    signature BLOB NOT NULL,
    report    BLOB NOT NULL
);
-- +goose StatementBegin
CREATE TRIGGER completeness_reports_no_update BEFORE UPDATE ON completeness_reports
BEGIN
    SELECT RAISE(ABORT, 'completeness reports are append-only: UPDATE refused');
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER completeness_reports_no_delete BEFORE DELETE ON completeness_reports
BEGIN
    SELECT RAISE(ABORT, 'completeness reports are append-only: DELETE refused');
END;
-- +goose StatementEnd

CREATE TABLE receipt_refusals (
    hour_us BIGINT NOT NULL,
    channel TEXT NOT NULL,
    reason  TEXT NOT NULL,
    n       BIGINT NOT NULL,
    PRIMARY KEY (hour_us, channel, reason)
);

-- +goose Down
DROP TABLE receipt_refusals;
DROP TABLE completeness_reports;
