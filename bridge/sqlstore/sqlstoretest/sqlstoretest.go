// Package sqlstoretest opens migrated sqlstore databases for tests: a fresh SQLite file, or a fresh
// schema in the PostgreSQL named by WXTEAMS_TEST_POSTGRES.
//
// Without WXTEAMS_TEST_POSTGRES, PostgreSQL tests are skipped — except when CI is set, where a
// missing database fails the test: CI must prove both databases.
package sqlstoretest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/lib/pq" // PostgreSQL driver

	"github.com/wxteams/wxteams/bridge/sqlstore"
)

// EnvPostgres names the environment variable holding the test PostgreSQL URL.
const EnvPostgres = "WXTEAMS_TEST_POSTGRES"

// SQLiteURL returns the URL of a new SQLite file in the test's temporary directory.
func SQLiteURL(t testing.TB) string {
	return "sqlite:" + filepath.Join(t.TempDir(), "wxteams.db")
}

// SQLite returns a migrated store on a new SQLite file in the test's temporary directory.
func SQLite(t testing.TB) *sqlstore.Store {
	t.Helper()
	return Open(t, SQLiteURL(t))
}

// PostgresURL returns the URL of a fresh, empty schema in the test PostgreSQL, dropped when the
// test ends. It skips the test when no PostgreSQL is configured (fails it under CI).
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvPostgres)
	if base == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set: under CI the PostgreSQL tests must run", EnvPostgres)
		}
		t.Skipf("%s not set; skipping PostgreSQL test", EnvPostgres)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "wxt_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("postgres", base)
	if err != nil {
		t.Fatalf("open %s: %v", EnvPostgres, err)
	}
	// Hold no connection between now and the cleanup: a test may make hundreds of schemas.
	admin.SetMaxIdleConns(0)
	if _, err := admin.ExecContext(context.Background(), `CREATE SCHEMA `+schema); err != nil {
		admin.Close()
		t.Fatalf("create test schema in %s: %v", EnvPostgres, err)
	}
	t.Cleanup(func() {
		_, _ = admin.ExecContext(context.Background(), `DROP SCHEMA `+schema+` CASCADE`)
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s is not a URL: %v", EnvPostgres, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Postgres returns a migrated store in a fresh schema of the test PostgreSQL.
func Postgres(t testing.TB) *sqlstore.Store {
	t.Helper()
	return Open(t, PostgresURL(t))
}

// Each runs fn once per database: SQLite always, PostgreSQL when configured.
func Each(t *testing.T, fn func(t *testing.T, open func(testing.TB) *sqlstore.Store)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite) })
	t.Run("postgres", func(t *testing.T) { fn(t, Postgres) })
}

// EachURL runs fn once per database with the URL of a fresh one, for tests that open it more than
// once (restarts, several processes).
func EachURL(t *testing.T, fn func(t *testing.T, url string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLiteURL(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, PostgresURL(t)) })
}

// Open opens and migrates the store at dbURL, closing it when the test ends.
func Open(t testing.TB, dbURL string) *sqlstore.Store {
	t.Helper()
	ctx := context.Background()
	s, err := sqlstore.Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return s
}
