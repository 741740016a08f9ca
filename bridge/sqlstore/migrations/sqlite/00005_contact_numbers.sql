-- +goose Up
-- See the PostgreSQL migration for the comments.
ALTER TABLE contacts ADD COLUMN number INTEGER NOT NULL DEFAULT 0;
UPDATE contacts SET number = (
    SELECT n.number FROM (
        SELECT c.open_id, ROW_NUMBER() OVER (ORDER BY COALESCE(f.first_id, 9223372036854775807), c.open_id) AS number
        FROM contacts c LEFT JOIN (
            SELECT SUBSTR(stream, 9) AS open_id, MIN(id) AS first_id FROM archive WHERE stream LIKE 'contact:%' GROUP BY stream
        ) f ON f.open_id = c.open_id
    ) n WHERE n.open_id = contacts.open_id
);
CREATE UNIQUE INDEX contacts_number ON contacts (number) WHERE number > 0;

-- +goose Down
DROP INDEX contacts_number;
ALTER TABLE contacts DROP COLUMN number;
