package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/wxteams/wxteams/bridge"
)

// On PostgreSQL a write whose result nothing in the transaction reads — a chat's new state, a
// step's timers — need not cost a round trip of its own: it waits in the transaction and rides
// along with the next statement that allows it (an outbox insert, the archive heads' lock) as a
// data-modifying WITH clause, or goes before any other statement, or before commit. A statement
// and its WITH clauses see the same snapshot, so only statements that read none of the tables
// written this way carry them (carrying); every other statement of the transaction sends them
// first (exec, query, queryRow). SQLite writes at once: its statements cost no round trip.
//
// Each waiting write names the table it writes. A statement that carries writes says which
// tables it reads (carryingFor): writes to those go first, on their own, so that it reads what
// they wrote. The outbox and its lanes are written this way by the bookkeeping of deliveries (a
// claim's marks, an outcome's state, a lane moved on or retired); they ride along with the lane
// locks and the archive heads' lock, which read neither.

// deferredWrite is one write waiting to go.
type deferredWrite struct {
	table string // the table it writes
	q     string
	args  []any
}

// later writes q, which writes table, now (SQLite) or with the transaction's next statement
// (PostgreSQL).
func (t *tx) later(ctx context.Context, table, q string, args ...any) error {
	if t.s.dialect != Postgres {
		_, err := t.conn.exec(ctx, q, args...)
		return err
	}
	t.deferred = append(t.deferred, deferredWrite{table: table, q: q, args: args})
	return nil
}

// carryingFor is carrying for a statement that reads the tables reads: the waiting writes to any
// of them are sent first, on their own (with the others waiting), and q carries none.
func (t *tx) carryingFor(ctx context.Context, q string, args []any, reads ...string) (string, []any, error) {
	for _, d := range t.deferred {
		if slices.Contains(reads, d.table) {
			if err := t.flushDeferred(ctx); err != nil {
				return "", nil, err
			}
			break
		}
	}
	q, args = t.carrying(q, args)
	return q, args, nil
}

// carrying returns q with the waiting writes before it as WITH clauses (their placeholders
// numbered after q's), and the arguments of all; the writes are no longer waiting. q must not read
// what they write (carryingFor sees to that).
func (t *tx) carrying(q string, args []any) (string, []any) {
	if len(t.deferred) == 0 {
		return q, args
	}
	var b strings.Builder
	all := append(make([]any, 0, len(args)), args...)
	b.WriteString("WITH ")
	for i, d := range t.deferred {
		off := len(all)
		text := placeholder.ReplaceAllStringFunc(d.q, func(m string) string {
			n, _ := strconv.Atoi(m[1:])
			return "$" + strconv.Itoa(n+off)
		})
		fmt.Fprintf(&b, "deferred_%d AS (%s), ", i, text)
		all = append(all, d.args...)
	}
	t.deferred = t.deferred[:0]
	if rest, ok := strings.CutPrefix(strings.TrimSpace(q), "WITH "); ok {
		b.WriteString(rest)
	} else {
		out := strings.TrimSuffix(b.String(), ", ")
		b.Reset()
		b.WriteString(out)
		b.WriteString(" ")
		b.WriteString(q)
	}
	return b.String(), all
}

// carryingKey is carrying for a read that begins a step (an employee's, a chat's lock): it carries
// the waiting writes only if they are all idempotency keys (FirstSeen), which no read looks at.
// Otherwise q carries nothing, and the waiting writes go first, on their own, if flushFirst (as
// before any read through tx.query), or stay waiting.
//
// PostgreSQL may take the read's row lock before it writes the key. Two runs of one input that
// began by locking different chats could then deadlock on each other (PostgreSQL breaks it after
// deadlock_timeout, and InTx runs the loser again, which then finds the key): both runs of an input
// always begin with the same read, so it does not arise.
func (t *tx) carryingKey(ctx context.Context, q string, args []any, flushFirst bool) (string, []any, error) {
	for _, d := range t.deferred {
		if d.table != "seen" {
			if flushFirst {
				if err := t.flushDeferred(ctx); err != nil {
					return "", nil, err
				}
			}
			return q, args, nil
		}
	}
	q, args = t.carrying(q, args)
	return q, args, nil
}

// carried notes the error of a statement that carried waiting writes: if one of them failed it
// (an idempotency key recorded before), that is what failed the transaction, whatever the step
// makes of the statement's error (run).
func (t *tx) carried(err error) error {
	if errors.Is(err, bridge.ErrDuplicate) && t.failed == nil {
		t.failed = err
	}
	return err
}

// keysFirst sends the idempotency keys still waiting when a step failed before any statement
// carried them: if one was recorded before, the step is a duplicate (ErrDuplicate, in failed), and
// that is what it reports, not what it met on the way. Any other outcome leaves failed as it was.
func (t *tx) keysFirst(ctx context.Context) {
	if t.failed != nil {
		return
	}
	var keys, rest []deferredWrite
	for _, d := range t.deferred {
		if d.table == "seen" {
			keys = append(keys, d)
		} else {
			rest = append(rest, d)
		}
	}
	if len(keys) == 0 {
		return
	}
	t.deferred = keys
	if err := t.flushDeferred(ctx); !errors.Is(err, bridge.ErrDuplicate) {
		t.failed = nil
	}
	t.deferred = rest
}

// flushDeferred sends the waiting writes, in one statement.
func (t *tx) flushDeferred(ctx context.Context) error {
	if len(t.deferred) == 0 {
		return nil
	}
	q, args := t.carrying("SELECT 1", nil)
	if _, err := t.conn.exec(ctx, q, args...); err != nil {
		err = fmt.Errorf("write: %w", err)
		if t.failed == nil {
			t.failed = err
		}
		return err
	}
	return nil
}

// exec, query and queryRow run a statement of the transaction after the writes waiting to go.

func (t *tx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if err := t.flushDeferred(ctx); err != nil {
		return nil, err
	}
	return t.conn.exec(ctx, q, args...)
}

func (t *tx) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if err := t.flushDeferred(ctx); err != nil {
		return nil, err
	}
	return t.conn.query(ctx, q, args...)
}

// queryRow cannot return the waiting writes' error itself: if they fail, the transaction is
// aborted, the query fails too, and the transaction ends with the writes' error (failed).
func (t *tx) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	_ = t.flushDeferred(ctx)
	return t.conn.queryRow(ctx, q, args...)
}

// ChatsOf reads chats: the waiting writes go first.
func (t *tx) ChatsOf(ctx context.Context, emp bridge.EmployeeID) ([]bridge.ChatSummary, error) {
	if err := t.flushDeferred(ctx); err != nil {
		return nil, err
	}
	return t.conn.ChatsOf(ctx, emp)
}
