package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The sandbox marks the database it starts on with a table of its own, outside the migrations, so
// that the sandbox (no sign-in, a fake administrator) never runs on a deployment's database and a
// deployment never runs on the sandbox's.

// sandboxTable marks a database the sandbox created.
const sandboxTable = "wxteams_sandbox"

// ErrNotSandbox refuses the sandbox a database that already holds tables it did not create.
var ErrNotSandbox = errors.New("the database already holds tables and was not created by the sandbox (it may be a deployment's): the sandbox runs only on a new, empty database or on one it created")

// IsSandbox reports whether the sandbox created the database.
func (s *Store) IsSandbox(ctx context.Context) (bool, error) {
	n, err := s.countTables(ctx, sandboxTable)
	return n > 0, err
}

// ClaimSandbox lets the sandbox use the database: one it created is accepted, an empty one (no table
// at all) is marked as the sandbox's, and any other is refused with ErrNotSandbox.
func (s *Store) ClaimSandbox(ctx context.Context, now time.Time) error {
	if ok, err := s.IsSandbox(ctx); err != nil || ok {
		return err
	}
	n, err := s.countTables(ctx, "")
	if err != nil {
		return err
	}
	if n > 0 {
		return ErrNotSandbox
	}
	c := conn{s, s.db}
	if _, err := c.exec(ctx, `CREATE TABLE `+sandboxTable+` (id INTEGER PRIMARY KEY CHECK (id = 1), created_us BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("mark the sandbox database: %w", err)
	}
	if _, err := c.exec(ctx, `INSERT INTO `+sandboxTable+` (id, created_us) VALUES (1, $1)`, us(now)); err != nil {
		return fmt.Errorf("mark the sandbox database: %w", err)
	}
	return nil
}

// countTables counts the tables in the database (PostgreSQL: in the current schema), or only those
// named name when it is not empty.
func (s *Store) countTables(ctx context.Context, name string) (int, error) {
	q := `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND ($1 = '' OR name = $1)`
	if s.dialect == Postgres {
		q = `SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND ($1 = '' OR table_name = $1)`
	}
	var n int
	if err := (conn{s, s.db}).queryRow(ctx, q, name).Scan(&n); err != nil {
		return 0, fmt.Errorf("list the database's tables: %w", s.wrap(err))
	}
	return n, nil
}
