package sqlstore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/compliance"
)

// The sandbox takes only an empty database or one it created; a deployment's database (any
// database with tables the sandbox did not make) is refused, and the mark is what serve checks.
func TestSandboxClaimsOnlyAnEmptyDatabaseOrItsOwn(t *testing.T) {
	for name, newURL := range map[string]func(testing.TB) string{"sqlite": sqlstoretest.SQLiteURL, "postgres": sqlstoretest.PostgresURL} {
		t.Run(name, func(t *testing.T) { testSandboxClaim(t, newURL) })
	}
}

func testSandboxClaim(t *testing.T, newURL func(testing.TB) string) {
	ctx := context.Background()
	now := time.Now()
	// A deployment's database: migrated, with a record in it.
	prod := sqlstoretest.Open(t, newURL(t))
	if err := prod.Archive(ctx, compliance.Event{Stream: compliance.AdminStream, At: now, Kind: compliance.KindHoldPlaced, Actor: "admin:x"}); err != nil {
		t.Fatal(err)
	}
	if err := prod.ClaimSandbox(ctx, now); !errors.Is(err, sqlstore.ErrNotSandbox) {
		t.Fatalf("the sandbox on a deployment's database: %v; want ErrNotSandbox", err)
	}
	if marked, err := prod.IsSandbox(ctx); err != nil || marked {
		t.Errorf("a refused claim marked the database: %v %v", marked, err)
	}

	// An empty database becomes the sandbox's, and stays its after migrating.
	s, err := sqlstore.Open(ctx, newURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if marked, err := s.IsSandbox(ctx); err != nil || marked {
		t.Fatalf("a new database is marked: %v %v", marked, err)
	}
	if err := s.ClaimSandbox(ctx, now); err != nil {
		t.Fatalf("the sandbox on an empty database: %v", err)
	}
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.ClaimSandbox(ctx, now); err != nil {
		t.Fatalf("the sandbox on its own database, again: %v", err)
	}
	if marked, err := s.IsSandbox(ctx); err != nil || !marked {
		t.Errorf("the sandbox's database is not marked: %v %v", marked, err)
	}
	if err := s.CheckSchema(ctx); err != nil {
		t.Errorf("the mark upsets the schema check: %v", err)
	}
}

// A new SQLite database and its -wal and -shm files are readable by their owner only, whatever
// the umask lets through.
func TestSQLiteFilesAreOwnerOnly(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix file modes")
	}
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "wxteams.db")
	s := sqlstoretest.Open(t, "sqlite:"+path)
	ctx := context.Background()
	if err := s.Archive(ctx, compliance.Event{Stream: compliance.AdminStream, At: time.Now(), Kind: compliance.KindHoldPlaced, Actor: "admin:x"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(name), err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %#o; want 0600", filepath.Base(name), mode)
		}
	}
}
