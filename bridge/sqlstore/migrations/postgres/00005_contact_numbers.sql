-- +goose Up
-- number: each WeChat contact's place in the order wxteams met them (1, 2, 3 …), never reused.
-- A contact no employee has named is called "WeChat customer <number>" everywhere: in Teams, the
-- console, the compliance API and exports. Contacts met before this migration are numbered in the
-- order of their first archived record, then of their openid.
ALTER TABLE contacts ADD COLUMN number BIGINT NOT NULL DEFAULT 0;
UPDATE contacts SET number = n.number FROM (
    SELECT c.open_id, ROW_NUMBER() OVER (ORDER BY COALESCE(f.first_id, 9223372036854775807), c.open_id) AS number
    FROM contacts c LEFT JOIN (
        SELECT SUBSTRING(stream FROM 9) AS open_id, MIN(id) AS first_id FROM archive WHERE stream LIKE 'contact:%' GROUP BY stream
    ) f ON f.open_id = c.open_id
) n WHERE contacts.open_id = n.open_id;
CREATE UNIQUE INDEX contacts_number ON contacts (number) WHERE number > 0;

-- +goose Down
DROP INDEX contacts_number;
ALTER TABLE contacts DROP COLUMN number;
