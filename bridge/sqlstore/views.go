package sqlstore

import (
	"context"
	"fmt"
	"slices"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/compliance"
)

// Read-only views for operators' tools (the console), outside any transaction.

// Contacts lists every WeChat contact the bridge knows, in the order it met them.
func (s *Store) Contacts(ctx context.Context) ([]bridge.Contact, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT open_id, union_id, name, language, following, updated_us, number FROM contacts ORDER BY number, open_id`)
	if err != nil {
		return nil, fmt.Errorf("list contacts: %w", s.wrap(err))
	}
	defer rows.Close()
	var out []bridge.Contact
	for rows.Next() {
		var (
			c       bridge.Contact
			updated int64
		)
		if err := rows.Scan(&c.OpenID, &c.UnionID, &c.Name, &c.Language, &c.Following, &updated, &c.Number); err != nil {
			return nil, s.wrap(err)
		}
		c.UpdatedAt = fromUS(updated)
		out = append(out, c)
	}
	return out, s.wrap(rows.Err())
}

// ChatStatuses returns each contact's chat status, by openid.
func (s *Store) ChatStatuses(ctx context.Context) (map[string]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT contact, status FROM chats`)
	if err != nil {
		return nil, fmt.Errorf("list chats: %w", s.wrap(err))
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var contact, status string
		if err := rows.Scan(&contact, &status); err != nil {
			return nil, s.wrap(err)
		}
		out[contact] = status
	}
	return out, s.wrap(rows.Err())
}

// RecentRecords returns archived records in the order they were written, bodies opened: those
// after id afterID, or, with afterID 0, the newest; at most limit.
func (s *Store) RecentRecords(ctx context.Context, afterID int64, limit int) ([]compliance.Record, error) {
	q := `SELECT ` + recordColumns + ` FROM archive WHERE id > $1 ORDER BY id LIMIT $2`
	if afterID == 0 {
		q = `SELECT ` + recordColumns + ` FROM archive WHERE id > $1 ORDER BY id DESC LIMIT $2`
	}
	rows, err := s.db.QueryContext(ctx, s.rebind(q), afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("read archive: %w", s.wrap(err))
	}
	defer rows.Close()
	var out []compliance.Record
	for rows.Next() {
		r, key, err := scanRecord(rows)
		if err != nil {
			return nil, s.wrap(err)
		}
		if err := s.openBody(ctx, &r, key); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if afterID == 0 {
		slices.Reverse(out)
	}
	return out, s.wrap(rows.Err())
}
