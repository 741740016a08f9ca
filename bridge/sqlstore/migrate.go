package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Migrations are embedded, one directory per dialect with the same numbered files. goose (a
// well-kept migration library) applies them and records the version; for PostgreSQL it holds an
// advisory lock so replicas starting together migrate once.
//
//go:embed migrations
var migrations embed.FS

// ErrSchemaTooNew means the database was migrated by a newer wxteams than this one.
var ErrSchemaTooNew = errors.New("database schema is newer than this wxteams")

// ErrSchemaTooOld means the database needs migrating before this wxteams can use it.
var ErrSchemaTooOld = errors.New("database schema is older than this wxteams")

func (s *Store) provider(ctx context.Context) (*goose.Provider, error) {
	dir, err := fs.Sub(migrations, "migrations/"+string(s.dialect))
	if err != nil {
		return nil, err
	}
	dialect := goose.DialectSQLite3
	var opts []goose.ProviderOption
	if s.dialect == Postgres {
		dialect = goose.DialectPostgres
		// The advisory lock is per schema, so replicas sharing a schema take turns while
		// deployments (and tests) in other schemas of the same database do not wait for each other.
		var schema sql.NullString
		if err := s.db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
			return nil, fmt.Errorf("current schema: %w", s.wrap(err))
		}
		if !schema.Valid {
			return nil, errors.New("the database URL's search_path names no schema that exists: create it first (CREATE SCHEMA …)")
		}
		h := fnv.New64a()
		h.Write([]byte("wxteams migrations " + schema.String))
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(int64(h.Sum64()>>1)), lock.WithLockTimeout(1, 600))
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	return goose.NewProvider(dialect, s.db, dir, opts...)
}

// SchemaVersion returns the database's schema version and the newest version this code knows.
func (s *Store) SchemaVersion(ctx context.Context) (have, want int64, err error) {
	p, err := s.provider(ctx)
	if err != nil {
		return 0, 0, err
	}
	sources := p.ListSources()
	want = sources[len(sources)-1].Version
	have, err = p.GetDBVersion(ctx)
	if err != nil {
		return 0, want, fmt.Errorf("read schema version: %w", s.wrap(err))
	}
	return have, want, nil
}

// CheckSchema returns nil when the database's schema is exactly the one this code expects.
func (s *Store) CheckSchema(ctx context.Context) error {
	have, want, err := s.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	switch {
	case have > want:
		return fmt.Errorf("%w: the database is at version %d, this build knows up to %d; run a newer wxteams", ErrSchemaTooNew, have, want)
	case have < want:
		return fmt.Errorf("%w: the database is at version %d, this build needs %d; run `wxteams migrate`", ErrSchemaTooOld, have, want)
	}
	return nil
}

// Migrate brings the schema up to date. It refuses to touch a schema newer than this code.
func (s *Store) Migrate(ctx context.Context) (applied []int64, err error) {
	have, want, err := s.SchemaVersion(ctx)
	if err != nil {
		return nil, err
	}
	if have > want {
		return nil, fmt.Errorf("%w: the database is at version %d, this build knows up to %d; run a newer wxteams", ErrSchemaTooNew, have, want)
	}
	p, err := s.provider(ctx)
	if err != nil {
		return nil, err
	}
	results, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate %s: %w", s.dialect, err)
	}
	for _, r := range results {
		applied = append(applied, r.Source.Version)
	}
	return applied, nil
}
