package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge"
)

// groupStore opens a migrated SQLite store.
func groupStore(t *testing.T) *Store {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "group.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// A group takes every member however slowly they run here (-race, a loaded machine), except
	// in the test of the time limit itself.
	s.groupTime = time.Hour
	return s
}

// inOneGroup runs fns as write transactions that all queue while the writer lock is held, so
// they are taken as one group, and returns what each InTx returned (or the first line of what it
// panicked with).
func inOneGroup(t *testing.T, s *Store, ctxs []context.Context, fns []func(bridge.Tx) error) []any {
	t.Helper()
	out := make([]any, len(fns))
	var wg sync.WaitGroup
	s.writer <- struct{}{} // the slot is taken: they all queue
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if v := recover(); v != nil {
					out[i], _, _ = strings.Cut(fmt.Sprintf("panic: %v", v), "\n")
				}
			}()
			out[i] = s.InTx(ctxs[i], fn)
		}()
		// One at a time, so the group's order is known.
		for deadline := time.Now().Add(5 * time.Second); ; {
			s.waiting.mu.Lock()
			n := len(s.waiting.waiting)
			s.waiting.mu.Unlock()
			if n == i+1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d transactions queued; want %d", n, i+1)
			}
			time.Sleep(time.Millisecond)
		}
	}
	<-s.writer
	wg.Wait()
	return out
}

func seenKeys(t *testing.T, s *Store) map[string]bool {
	t.Helper()
	rows, err := s.db.Query(`SELECT key FROM seen`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	keys := map[string]bool{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		keys[k] = true
	}
	return keys
}

func markSeen(ctx context.Context, btx bridge.Tx, key string) error {
	_, err := btx.(*tx).exec(ctx, `INSERT INTO seen (key, seen_us) VALUES ($1, 1)`, key)
	return err
}

// Write transactions queued together commit together, and each is still answered alone: one that
// fails or panics leaves nothing behind and takes nothing of the others with it; one whose
// caller gave up meanwhile (its context cancelled while it ran) cannot interrupt the others.
func TestGroupCommitAnswersEachAlone(t *testing.T) {
	s := groupStore(t)
	refused := errors.New("refused")
	var (
		mu   sync.Mutex
		seen = map[*sql.Tx]int{}
	)
	cancelled, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctxs := []context.Context{context.Background(), context.Background(), context.Background(), context.Background(), cancelled, context.Background()}
	var fns []func(bridge.Tx) error
	for i := range ctxs {
		fns = append(fns, func(btx bridge.Tx) error {
			mu.Lock()
			if g, ok := btx.(*tx).q.(groupTx); ok {
				seen[g.Tx]++
			}
			mu.Unlock()
			if err := markSeen(ctxs[i], btx, fmt.Sprintf("k%d", i)); err != nil {
				return err
			}
			switch i {
			case 2:
				return refused
			case 3:
				panic("step 3 broke")
			case 4:
				cancel() // the caller goes away half-way: the rest of its step still runs
				return markSeen(ctxs[i], btx, "k4-after")
			}
			return nil
		})
	}
	got := inOneGroup(t, s, ctxs, fns)
	want := []any{nil, nil, refused, "panic: panic in a write transaction: step 3 broke", nil, nil}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("transaction %d: InTx = %v; want %v", i, got[i], want[i])
		}
	}
	if len(seen) != 1 {
		t.Errorf("the six ran in %d transactions; want one group", len(seen))
	}
	keys := seenKeys(t, s)
	for _, k := range []string{"k0", "k1", "k4", "k4-after", "k5"} {
		if !keys[k] {
			t.Errorf("%s was not committed", k)
		}
	}
	for _, k := range []string{"k2", "k3"} {
		if keys[k] {
			t.Errorf("%s was committed, though its transaction failed", k)
		}
	}
}

// When one member's failure takes SQLite's whole transaction with it, the members written before
// it and those not run yet lose nothing: they are run again, and committed.
func TestGroupCommitRunsAgainWhatAnotherLost(t *testing.T) {
	s := groupStore(t)
	boom := errors.New("boom")
	runs := make([]int, 4)
	var fns []func(bridge.Tx) error
	ctxs := make([]context.Context, 4)
	for i := range ctxs {
		ctxs[i] = context.Background()
		fns = append(fns, func(btx bridge.Tx) error {
			runs[i]++
			if err := markSeen(ctxs[i], btx, fmt.Sprintf("k%d", i)); err != nil {
				return err
			}
			if i == 1 {
				// What SQLite does on a full disk or an I/O error: the transaction is gone.
				if _, err := btx.(*tx).q.(groupTx).ExecContext(context.Background(), "ROLLBACK"); err != nil {
					t.Errorf("rollback: %v", err)
				}
				return boom
			}
			return nil
		})
	}
	got := inOneGroup(t, s, ctxs, fns)
	for i, err := range got {
		want := error(nil)
		if i == 1 {
			want = boom
		}
		if err != want {
			t.Errorf("transaction %d: InTx = %v; want %v", i, err, want)
		}
	}
	keys := seenKeys(t, s)
	for i, k := range []string{"k0", "k1", "k2", "k3"} {
		if keys[k] != (i != 1) {
			t.Errorf("%s committed: %v; want %v", k, keys[k], i != 1)
		}
	}
	if runs[0] != 2 || runs[1] != 1 || runs[2] != 1 || runs[3] != 1 {
		t.Errorf("runs = %v; want [2 1 1 1]: the one written before the failure run again, those after it run once", runs)
	}
}

// A group stops taking members once it has run for maxGroupTime: the first of a group is
// answered only when the last has run. The rest go back to the queue, and the next writer runs them.
func TestGroupCommitStopsAfterItsTime(t *testing.T) {
	s := groupStore(t)
	s.groupTime = maxGroupTime
	var (
		mu  sync.Mutex
		txs []*sql.Tx
	)
	ctxs := make([]context.Context, 4)
	var fns []func(bridge.Tx) error
	for i := range ctxs {
		ctxs[i] = context.Background()
		fns = append(fns, func(btx bridge.Tx) error {
			mu.Lock()
			var q *sql.Tx
			switch c := btx.(*tx).q.(type) {
			case groupTx:
				q = c.Tx
			case *sql.Tx:
				q = c
			}
			txs = append(txs, q)
			mu.Unlock()
			if i == 0 {
				time.Sleep(2 * maxGroupTime)
			}
			return markSeen(ctxs[i], btx, fmt.Sprintf("k%d", i))
		})
	}
	for i, err := range inOneGroup(t, s, ctxs, fns) {
		if err != nil {
			t.Errorf("transaction %d: %v", i, err)
		}
	}
	if len(txs) != 4 || txs[1] == txs[0] {
		t.Errorf("the slow first one shared its transaction with the next (%d runs); want the others put back for the next writer", len(txs))
	}
	if keys := seenKeys(t, s); len(keys) != 4 {
		t.Errorf("committed %v; want all four", keys)
	}
}

// A writer that stops half-way (its goroutine exits, as t.Fatal does) leaves no caller waiting
// and the writer's slot free.
func TestGroupCommitSurvivesAWriterThatExits(t *testing.T) {
	s := groupStore(t)
	var exited atomic.Bool
	ctxs := make([]context.Context, 4)
	var fns []func(bridge.Tx) error
	for i := range ctxs {
		ctxs[i] = context.Background()
		fns = append(fns, func(btx bridge.Tx) error {
			if i == 2 && exited.CompareAndSwap(false, true) {
				runtime.Goexit()
			}
			return markSeen(ctxs[i], btx, fmt.Sprintf("k%d", i))
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		inOneGroup(t, s, ctxs, fns)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("callers still waiting 20 s after a writer exited")
	}
	if err := s.InTx(context.Background(), func(btx bridge.Tx) error { return markSeen(context.Background(), btx, "after") }); err != nil {
		t.Fatalf("a write after the writer exited: %v", err)
	}
	if !seenKeys(t, s)["after"] {
		t.Error("the write after it was not committed")
	}
}

// What SQLite acknowledges is on disk: every commit (every group's) flushes the WAL
// (synchronous=FULL, 2), so it survives a power failure, not only a crash of the process.
func TestSQLiteFlushesEveryCommit(t *testing.T) {
	s := groupStore(t)
	var journal string
	var synchronous int
	if err := s.db.QueryRow(`PRAGMA journal_mode`).Scan(&journal); err != nil {
		t.Fatal(err)
	}
	if err := s.db.QueryRow(`PRAGMA synchronous`).Scan(&synchronous); err != nil {
		t.Fatal(err)
	}
	if journal != "wal" || synchronous != 2 {
		t.Errorf("journal_mode %s, synchronous %d; want wal and 2 (FULL)", journal, synchronous)
	}
}
