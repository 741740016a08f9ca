package sqlstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/export"
)

// ExportSource is the archive as compliance/export reads it.
func (s *Store) ExportSource() export.Source { return exportSource{s} }

type exportSource struct{ s *Store }

// Scan reads the records in scope ordered by stream and sequence number, bodies opened. An
// employee's scope is their own stream and every chat they are a member of or wrote in; a
// customer's, their own stream and their chat.
func (e exportSource) Scan(ctx context.Context, scope export.Scope, fn func(*compliance.Record) error) error {
	s := e.s
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	q := `SELECT ` + prefixed("a.", recordColumns) + ` FROM archive a`
	if scope.Job != "" {
		// Only what the job has not exported: per stream, after its cursor.
		q += ` LEFT JOIN export_cursors c ON c.job = ` + arg(scope.Job) + ` AND c.stream = a.stream`
		where = append(where, "a.seq > COALESCE(c.seq, 0)")
	}
	if !scope.From.IsZero() {
		where = append(where, "a.at_us >= "+arg(us(scope.From)))
	}
	if !scope.To.IsZero() {
		where = append(where, "a.at_us < "+arg(us(scope.To)))
	}
	if scope.Chat != 0 {
		where = append(where, "a.stream = "+arg(compliance.ChatStream(scope.Chat)))
		if len(scope.Records) > 0 {
			marks := make([]string, len(scope.Records))
			for i, seq := range scope.Records {
				marks[i] = arg(seq)
			}
			where = append(where, "a.seq IN ("+strings.Join(marks, ", ")+")")
		}
	}
	if scope.Stream != "" {
		where = append(where, "a.stream = "+arg(scope.Stream))
	}
	if scope.Employee != "" || scope.Contact != "" {
		streams, err := e.streams(ctx, scope)
		if err != nil {
			return err
		}
		if len(streams) == 0 {
			return nil
		}
		marks := make([]string, len(streams))
		for i, st := range streams {
			marks[i] = arg(st)
		}
		where = append(where, "a.stream IN ("+strings.Join(marks, ", ")+")")
	}
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	rows, err := s.db.QueryContext(ctx, s.rebind(q+` ORDER BY a.stream, a.seq`), storable(args)...)
	if err != nil {
		return fmt.Errorf("read archive: %w", s.wrap(err))
	}
	defer rows.Close()
	for rows.Next() {
		r, key, err := scanRecord(rows)
		if err != nil {
			return fmt.Errorf("read archive: %w", s.wrap(err))
		}
		if err := s.openBody(ctx, &r, key); err != nil {
			return err
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	return s.wrap(rows.Err())
}

// streams lists the streams an employee's or customer's scope covers.
func (e exportSource) streams(ctx context.Context, scope export.Scope) ([]string, error) {
	s := e.s
	set := map[string]bool{}
	add := func(q string, args ...any) error {
		rows, err := s.db.QueryContext(ctx, s.rebind(q), storable(args)...)
		if err != nil {
			return fmt.Errorf("export scope: %w", s.wrap(err))
		}
		defer rows.Close()
		for rows.Next() {
			var chat int64
			if err := rows.Scan(&chat); err != nil {
				return s.wrap(err)
			}
			set[compliance.ChatStream(chat)] = true
		}
		return s.wrap(rows.Err())
	}
	if emp := scope.Employee; emp != "" {
		set["employee:"+emp] = true
		if err := add(`SELECT chat_id FROM chat_members WHERE employee_id = $1`, emp); err != nil {
			return nil, err
		}
		if err := add(`SELECT DISTINCT chat_id FROM archive WHERE actor = $1 AND chat_id <> 0`, "employee:"+emp); err != nil {
			return nil, err
		}
	}
	if c := scope.Contact; c != "" {
		set[compliance.ContactStream(c)] = true
		if err := add(`SELECT id FROM chats WHERE contact = $1`, c); err != nil {
			return nil, err
		}
		if err := add(`SELECT DISTINCT chat_id FROM archive WHERE actor = $1 AND chat_id <> 0`, "customer:"+c); err != nil {
			return nil, err
		}
	}
	out := make([]string, 0, len(set))
	for st := range set {
		out = append(out, st)
	}
	return out, nil
}

// Person names an employee or a customer from the directory the bridge keeps.
func (e exportSource) Person(ctx context.Context, kind, id string) export.Person {
	var p export.Person
	switch kind {
	case "employee":
		_ = e.s.db.QueryRowContext(ctx, e.s.rebind(`SELECT name, email FROM employees WHERE id = $1`), compliance.StorableText(id)).Scan(&p.Name, &p.Email)
	case "contact":
		c := bridge.Contact{OpenID: bridge.OpenID(id)}
		if err := e.s.db.QueryRowContext(ctx, e.s.rebind(`SELECT name, number FROM contacts WHERE open_id = $1`), compliance.StorableText(id)).Scan(&c.Name, &c.Number); err == nil {
			p.Name = c.DisplayName()
		}
	}
	return p
}

// Media returns stored media.
func (e exportSource) Media(ctx context.Context, sha256 string) (export.Media, error) {
	m, data, err := e.s.MediaData(ctx, sha256)
	if err != nil {
		return export.Media{}, err
	}
	return export.Media{ContentType: m.ContentType, Name: m.Name, Data: data}, nil
}

// Checkpoint returns the latest checkpoint and its full set of leaves.
func (e exportSource) Checkpoint(ctx context.Context) (*compliance.Checkpoint, []compliance.Leaf, error) {
	s := e.s
	var (
		cp   compliance.Checkpoint
		at   int64
		root []byte
	)
	err := s.db.QueryRowContext(ctx, `SELECT id, at_us, streams, records, root, key_id, signature FROM checkpoints ORDER BY id DESC LIMIT 1`).
		Scan(&cp.ID, &at, &cp.Streams, &cp.Records, &root, &cp.KeyID, &cp.Signature)
	if isNoRows(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read checkpoint: %w", s.wrap(err))
	}
	cp.At = fromUS(at)
	copy(cp.Root[:], root)
	rows, err := s.db.QueryContext(ctx, `SELECT stream, seq, hash FROM checkpoint_heads`)
	if err != nil {
		return nil, nil, fmt.Errorf("read checkpoint leaves: %w", s.wrap(err))
	}
	defer rows.Close()
	var leaves []compliance.Leaf
	for rows.Next() {
		var (
			l    compliance.Leaf
			hash []byte
		)
		if err := rows.Scan(&l.Stream, &l.Seq, &hash); err != nil {
			return nil, nil, s.wrap(err)
		}
		copy(l.Hash[:], hash)
		leaves = append(leaves, l)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, s.wrap(err)
	}
	compliance.SortLeaves(leaves)
	if compliance.MerkleRoot(leaves) != cp.Root {
		return nil, nil, fmt.Errorf("checkpoint %d: the stored leaves do not make its root (a checkpoint is being made; try again)", cp.ID)
	}
	return &cp, leaves, nil
}

// prefixed qualifies each column of a list with a table alias.
func prefixed(alias, columns string) string {
	parts := strings.Split(columns, ",")
	for i, p := range parts {
		parts[i] = alias + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}
