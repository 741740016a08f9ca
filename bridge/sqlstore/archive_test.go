package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/compliance"
)

var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

func appendEvents(t *testing.T, s *sqlstore.Store, stream string, texts ...string) {
	t.Helper()
	err := s.InTx(context.Background(), func(tx bridge.Tx) error {
		for i, text := range texts {
			ev := compliance.Event{Stream: stream, At: t0.Add(time.Duration(i) * time.Second), Kind: compliance.KindCustomerMessage,
				Actor: "customer:o1", Meta: compliance.Meta{Contact: "o1"}, Content: compliance.Content{Text: text}}
			if err := tx.Append(context.Background(), ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestArchiveRowsAreAppendOnlyInTheDatabase(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		s := open(t)
		appendEvents(t, s, "chat:1", "hello", "world")
		for _, stmt := range []string{
			`UPDATE archive SET actor = 'someone else' WHERE seq = 1`,
			`UPDATE archive SET body = NULL`,
			`DELETE FROM archive WHERE seq = 2`,
			`DELETE FROM archive`,
		} {
			_, err := s.DB().Exec(stmt)
			if err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Errorf("%s: error = %v; want the database to refuse it as append-only", stmt, err)
			}
		}
		if s.Dialect() == sqlstore.Postgres {
			if _, err := s.DB().Exec(`TRUNCATE archive`); err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Errorf("TRUNCATE archive: error = %v; want refused", err)
			}
		}
		if n, err := s.VerifyArchive(context.Background()); err != nil || n != 2 {
			t.Errorf("VerifyArchive = %d, %v; want 2 records, intact", n, err)
		}
	})
}

// bypass lets a test change archive rows as a DBA with full rights could.
func bypass(t *testing.T, s *sqlstore.Store, stmt string) {
	t.Helper()
	var err error
	if s.Dialect() == sqlstore.Postgres {
		_, err = s.DB().Exec(`ALTER TABLE archive DISABLE TRIGGER USER; ` + stmt + `; ALTER TABLE archive ENABLE TRIGGER USER`)
	} else {
		_, err = s.DB().Exec(`DROP TRIGGER IF EXISTS archive_no_update; DROP TRIGGER IF EXISTS archive_no_delete; ` + stmt)
	}
	if err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

func TestVerifyNamesTheFirstTamperedRecord(t *testing.T) {
	cases := []struct {
		name, stmt, want string
	}{
		{"altered content", `UPDATE archive SET body = body || body WHERE stream = 'chat:1' AND seq = 2`, "seq 2): content does not match its hash"},
		{"altered actor", `UPDATE archive SET actor = 'employee:mallory' WHERE stream = 'chat:1' AND seq = 2`, "seq 2): record altered"},
		{"removed record", `DELETE FROM archive WHERE stream = 'chat:1' AND seq = 2`, "seq 2: missing"},
		{"removed last record", `DELETE FROM archive WHERE stream = 'chat:1' AND seq = 3`, "records missing at the end"},
		// Swap seq 1 and 2 through a free number: both databases check UNIQUE (stream, seq) per row.
		{"reordered", `UPDATE archive SET seq = -1 WHERE stream = 'chat:1' AND seq = 1; UPDATE archive SET seq = 1 WHERE stream = 'chat:1' AND seq = 2; UPDATE archive SET seq = 2 WHERE stream = 'chat:1' AND seq = -1`, "seq 1): previous-hash link broken"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sqlstoretest.Each(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
				s := open(t)
				appendEvents(t, s, "chat:1", "one", "two", "three")
				appendEvents(t, s, "chat:2", "other")
				if _, err := s.VerifyArchive(context.Background()); err != nil {
					t.Fatalf("before tampering: %v", err)
				}
				bypass(t, s, tc.stmt)
				_, err := s.VerifyArchive(context.Background())
				var ce *compliance.ChainError
				if !errors.As(err, &ce) || ce.Stream != "chat:1" || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("VerifyArchive after %s = %v; want a chain error in chat:1 containing %q", tc.name, err, tc.want)
				}
			})
		})
	}
}

func TestRefusesASchemaNewerThanTheCode(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		s := open(t)
		ctx := context.Background()
		if err := s.CheckSchema(ctx); err != nil {
			t.Fatalf("CheckSchema on a fresh database: %v", err)
		}
		// A newer wxteams migrated this database.
		if _, err := s.DB().Exec(`INSERT INTO goose_db_version (version_id, is_applied) VALUES (9999, TRUE)`); err != nil {
			t.Fatal(err)
		}
		if err := s.CheckSchema(ctx); !errors.Is(err, sqlstore.ErrSchemaTooNew) {
			t.Errorf("CheckSchema = %v; want ErrSchemaTooNew", err)
		}
		if _, err := s.Migrate(ctx); !errors.Is(err, sqlstore.ErrSchemaTooNew) {
			t.Errorf("Migrate = %v; want ErrSchemaTooNew", err)
		}
	})
}

func TestUnmigratedDatabaseIsReportedAsTooOld(t *testing.T) {
	s, err := sqlstore.Open(context.Background(), sqlstoretest.SQLiteURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CheckSchema(context.Background()); !errors.Is(err, sqlstore.ErrSchemaTooOld) || !strings.Contains(err.Error(), "wxteams migrate") {
		t.Errorf("CheckSchema on an empty database = %v; want ErrSchemaTooOld telling to run wxteams migrate", err)
	}
}

func TestOpenRejectsBadURLsClearly(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"mysql://x", "want sqlite:PATH or postgres://"},
		{"sqlite:", "needs a file path"},
		{"postgres://user:secret@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", "postgres database unreachable"},
		{"sqlite:/nonexistent-dir/sub/x.db", "sqlite database unreachable"},
	} {
		_, err := sqlstore.Open(context.Background(), tc.url)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%q) = %v; want an error containing %q", tc.url, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("Open(%q) error reveals the password: %v", tc.url, err)
		}
	}
}

// On PostgreSQL the migration also takes UPDATE and TRUNCATE on the record tables away from the
// role that owns them, so a wxteams that runs as the owner (no superuser) cannot rewrite the record
// even with the triggers disabled — and disabling them needs the owner anyway.
func TestPostgresOwnerCannotRewriteTheRecord(t *testing.T) {
	base := sqlstoretest.PostgresURL(t) // a fresh schema, owned by the test's superuser
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	schema := u.Query().Get("search_path")
	role := "wxt_owner_" + schema[len(schema)-8:]
	admin, err := sql.Open("postgres", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for _, stmt := range []string{
		`CREATE ROLE ` + role + ` LOGIN NOSUPERUSER PASSWORD 'owner-pw'`, // CI's pg_hba may want a password on TCP
		`ALTER SCHEMA ` + schema + ` OWNER TO ` + role,
	} {
		if _, err := admin.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`)
		_, _ = admin.Exec(`DROP ROLE ` + role)
	})
	u.User = url.UserPassword(role, "owner-pw")
	s := sqlstoretest.Open(t, u.String()) // migrated as the owner
	appendEvents(t, s, "chat:1", "hello")
	for _, stmt := range []string{`UPDATE archive SET actor = 'x'`, `TRUNCATE archive`, `DELETE FROM checkpoints`, `ALTER TABLE archive DISABLE TRIGGER USER; UPDATE archive SET actor = 'x'`} {
		if _, err := s.DB().Exec(stmt); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("%s as the owner: %v; want permission denied", stmt, err)
		}
	}
	if n, err := s.VerifyArchive(context.Background()); err != nil || n != 1 {
		t.Errorf("VerifyArchive = %d, %v", n, err)
	}
}
