// Package sqlstore is the durable store of wxteams on SQLite (embedded, pure Go, modernc.org/sqlite)
// and PostgreSQL (github.com/lib/pq): it implements bridge.Store and keeps the compliance archive.
//
// One SQL text serves both databases: queries are written for PostgreSQL ($1 placeholders,
// FOR UPDATE … SKIP LOCKED) and rewritten for SQLite by rebind; SQLite's writers take turns in
// the process instead of row locks, and those that queue meanwhile commit together (group.go).
// Migrations are embedded and versioned (goose); a schema newer than this code is refused.
// Archive rows are append-only in the database itself (triggers).
//
// It imports bridge and compliance, and nothing else of wxteams.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/lib/pq"
	"golang.org/x/sync/semaphore"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/wxteams/wxteams/bridge"
)

// Dialect is the database behind a Store.
type Dialect string

// Dialects.
const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// Store is a bridge.Store on SQLite or PostgreSQL.
type Store struct {
	db      *sql.DB
	dialect Dialect
	queries sync.Map // PostgreSQL text → this dialect's text
	stmts   stmtCache
	// outbox is a small pool of its own for the engine's delivery bookkeeping (claims and
	// outcomes, bridge.OutboxWork), so that steps queueing for connections under a flood of
	// incoming messages cannot starve deliveries; nil on SQLite, whose writers take turns anyway.
	outbox      *sql.DB
	outboxStmts stmtCache
	// turns hands the PostgreSQL steps' connections out first come, first served, one per step
	// transaction (nil on SQLite). database/sql gives a freed connection to a random waiter, so
	// with more steps than connections some waited many turns while others went at once: the
	// answers to WeChat and Teams had a long tail (BENCHMARKS.md).
	turns *semaphore.Weighted
	// writer is SQLite's one writer slot: write transactions queue in the process (waiting)
	// instead of polling SQLite's busy handler (which sleeps in steps up to 100 ms), and the
	// holder of the slot commits those waiting together (group.go). Reads outside transactions
	// still run beside them (WAL). Nil on PostgreSQL.
	writer  chan struct{}
	waiting writeQueue
	// groupTime is how long a group takes members (maxGroupTime when 0; tests change it).
	groupTime time.Duration
	keys      *keys // nil: content is stored as plaintext
}

var _ bridge.Store = (*Store)(nil)

// Open connects to the database named by url: "sqlite:PATH" (PATH may be ":memory:") or
// "postgres://…" / "postgresql://…". It does not migrate; call Migrate or CheckSchema.
func Open(ctx context.Context, rawURL string) (*Store, error) {
	s, err := open(rawURL)
	if err != nil {
		return nil, err
	}
	if err := s.Ping(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

func open(rawURL string) (*Store, error) {
	switch {
	case strings.HasPrefix(rawURL, "sqlite:"):
		path := strings.TrimPrefix(rawURL, "sqlite:")
		path = strings.TrimPrefix(path, "//")
		if path == "" {
			return nil, errors.New(`database url "sqlite:" needs a file path, e.g. sqlite:wxteams.db`)
		}
		memory := path == ":memory:"
		if !memory {
			if err := createPrivate(path); err != nil {
				return nil, err
			}
		}
		// WAL lets readers run beside the writer; IMMEDIATE takes the write lock at BEGIN so two
		// writers queue on the busy timeout instead of failing half-way through a transaction;
		// synchronous=FULL flushes the WAL at every commit, so what is acknowledged survives a
		// power failure too (with group commit, one flush per group: 5–10 % of the throughput).
		params := "_busy_timeout=10000&_foreign_keys=1&_txlock=immediate"
		if !memory {
			params += "&_journal_mode=WAL&_synchronous=FULL"
		}
		// The path goes into a file: URI, where %, ? and # are special.
		escaped := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
		db, err := sql.Open("sqlite", "file:"+escaped+"?"+params)
		if err != nil {
			return nil, fmt.Errorf("open sqlite %s: %w", path, err)
		}
		if memory {
			db.SetMaxOpenConns(1) // each connection to :memory: would be a database of its own
		} else {
			// Connections are kept: a new one opens the file, runs the pragmas above and
			// prepares every statement again (database/sql keeps two idle by default).
			db.SetMaxOpenConns(8)
			db.SetMaxIdleConns(8)
		}
		return &Store{db: db, dialect: SQLite, writer: make(chan struct{}, 1)}, nil
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, fmt.Errorf("database url is not a valid postgres:// url: %w", err)
		}
		// binary_parameters makes lib/pq send parse, bind and execute in one round trip instead of
		// two, and bytea parameters as raw bytes.
		if q := u.Query(); q.Get("binary_parameters") == "" {
			q.Set("binary_parameters", "yes")
			u.RawQuery = q.Encode()
		}
		db, err := sql.Open("postgres", u.String())
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		db.SetMaxOpenConns(DefaultConnections)
		db.SetMaxIdleConns(DefaultConnections)
		db.SetConnMaxIdleTime(5 * time.Minute)
		outbox, err := sql.Open("postgres", u.String())
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		outbox.SetMaxOpenConns(4)
		outbox.SetMaxIdleConns(4)
		outbox.SetConnMaxIdleTime(5 * time.Minute)
		return &Store{db: db, outbox: outbox, dialect: Postgres, turns: semaphore.NewWeighted(DefaultConnections)}, nil
	}
	return nil, fmt.Errorf("database url %q: want sqlite:PATH or postgres://…", redactURL(rawURL))
}

// createPrivate creates a new SQLite database file readable and writable by its owner only (0600);
// SQLite then gives the -wal and -shm files the database file's mode. An existing file is left as
// it is.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600) // #nosec G304 -- the database file the operator named in WXTEAMS_DATABASE_URL
	switch {
	case err == nil:
		return f.Close()
	case errors.Is(err, os.ErrExist):
		return nil
	}
	return fmt.Errorf("sqlite database unreachable: cannot create the file: %w", err)
}

// redactURL hides a password in a database url for error messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}

// DefaultConnections is how many PostgreSQL connections a store's steps share unless told
// otherwise (SetConnections). More is not faster while the database's cores are busy: in the
// overloaded load test on two cores shared with PostgreSQL, 16 delivered about 1.3× what 32 did
// and 8 less than either (BENCHMARKS.md).
const DefaultConnections = 16

// SetConnections sets how many PostgreSQL connections the steps share (the delivery bookkeeping
// has its own four). SQLite keeps its own pool: one writer at a time. Call it before the store
// is used.
func (s *Store) SetConnections(n int) {
	if s.dialect != Postgres || n < 1 {
		return
	}
	s.db.SetMaxOpenConns(n)
	s.db.SetMaxIdleConns(n)
	s.turns = semaphore.NewWeighted(int64(n))
}

// Dialect reports which database the store is on.
func (s *Store) Dialect() Dialect { return s.dialect }

// DB exposes the connection pool (for tools and tests).
func (s *Store) DB() *sql.DB { return s.db }

// Close closes the connection pool.
func (s *Store) Close() error {
	s.stmts.close()
	s.outboxStmts.close()
	if s.outbox != nil {
		_ = s.outbox.Close()
	}
	return s.db.Close()
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("%s database unreachable: %w", s.dialect, err)
	}
	return nil
}

var placeholder = regexp.MustCompile(`\$(\d+)`)

// rebind turns a PostgreSQL query into this store's dialect: for SQLite, $n becomes ?n and row
// locks are dropped (SQLite's write transaction already excludes other writers).
func (s *Store) rebind(q string) string {
	if s.dialect == Postgres {
		return q
	}
	if v, ok := s.queries.Load(q); ok {
		return v.(string)
	}
	out := placeholder.ReplaceAllString(q, "?$1")
	if i := strings.Index(out, " FOR UPDATE"); i >= 0 {
		out = out[:i]
	}
	s.queries.Store(q, out)
	return out
}

// InTx runs fn in one transaction, retrying the whole transaction when the database reports a
// serialization failure, a deadlock or (SQLite) a busy database.
func (s *Store) InTx(ctx context.Context, fn func(bridge.Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := s.inTx(ctx, fn)
		if err == nil || !retryable(err) || attempt == 4 {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(5<<attempt) * time.Millisecond):
		}
	}
}

func (s *Store) inTx(ctx context.Context, fn func(bridge.Tx) error) error {
	if s.dialect == SQLite {
		return s.inWriteGroup(ctx, fn)
	}
	db := s.db
	if s.outbox != nil && bridge.IsOutboxWork(ctx) {
		db = s.outbox
	}
	return s.inOwnTx(ctx, db, fn)
}

// inOwnTx runs fn in a transaction of its own on db, a step's transaction waiting its turn
// (Store.turns).
func (s *Store) inOwnTx(ctx context.Context, db *sql.DB, fn func(bridge.Tx) error) error {
	if turns := s.turns; db == s.db && turns != nil {
		if err := turns.Acquire(ctx, 1); err != nil {
			return fmt.Errorf("begin: waiting for a database connection: %w", s.wrap(err))
		}
		defer turns.Release(1)
	}
	sqlTx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", s.wrap(err))
	}
	var q querier = sqlTx
	if db == s.outbox {
		q = outboxTx{sqlTx}
	}
	tx := &tx{conn: conn{s: s, q: q}, members: map[bridge.ChatID]string{}}
	ended := false
	defer func() {
		if !ended { // fn failed or panicked
			_ = sqlTx.Rollback()
		}
	}()
	if err := tx.run(ctx, fn); err != nil {
		return err
	}
	ended = true
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", s.wrap(err))
	}
	tx.committed()
	return nil
}

// run runs fn in the transaction and then writes what it left waiting (timers, deferred writes).
func (t *tx) run(ctx context.Context, fn func(bridge.Tx) error) error {
	err := fn(t)
	if err != nil {
		t.keysFirst(ctx)
	}
	if t.failed != nil {
		return t.failed // what failed the transaction, not what failed after it
	}
	if err != nil {
		return err
	}
	if err := t.deferTimers(ctx); err != nil {
		return err
	}
	return t.flushDeferred(ctx)
}

// ErrUnavailable marks errors that come from the database being unreachable or failing, as opposed
// to a missing row or a conflict.
var ErrUnavailable = errors.New("database unavailable")

// wrap classifies a driver error: conflicts become bridge.ErrConflict; connection failures are
// marked ErrUnavailable. Driver errors are matched by type and code, never by message text.
func (s *Store) wrap(err error) error {
	if err == nil || errors.Is(err, sql.ErrNoRows) {
		return err
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		switch {
		case pqErr.Code == "23505" && pqErr.Constraint == "seen_pkey": // an idempotency key recorded before (FirstSeen)
			return fmt.Errorf("%w: idempotency key recorded before", bridge.ErrDuplicate)
		case pqErr.Code == "23505": // unique_violation
			return fmt.Errorf("%w: %v", bridge.ErrConflict, err)
		case pqErr.Code.Class() == "08", pqErr.Code.Class() == "57": // connection exception, operator intervention
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return err
	}
	var liteErr *sqlite.Error
	if errors.As(err, &liteErr) {
		switch liteErr.Code() & 0xff {
		case sqlite3.SQLITE_CONSTRAINT:
			if liteErr.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || liteErr.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
				return fmt.Errorf("%w: %v", bridge.ErrConflict, err)
			}
		case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY:
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return err
	}
	if errors.Is(err, sql.ErrConnDone) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) || isNetError(err) {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}

// retryable reports whether a whole transaction may simply be run again.
func retryable(err error) bool {
	if errors.Is(err, errGroupRolledBack) {
		return true
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		return pqErr.Code == "40001" || pqErr.Code == "40P01" // serialization_failure, deadlock_detected
	}
	var liteErr *sqlite.Error
	if errors.As(err, &liteErr) {
		c := liteErr.Code() & 0xff
		return c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED
	}
	return false
}

// us stores a time as unix microseconds; the zero time is 0.
func us(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// fromUS reverses us.
func fromUS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}
