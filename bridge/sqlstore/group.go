package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/wxteams/wxteams/bridge"
)

// SQLite has one writer at a time. Write transactions that queue for it while another runs are
// run together, each in a savepoint of one transaction, and committed once (group commit): every
// commit writes the pages it changed to the WAL, and steps of different chats change mostly the
// same pages (the archive's, the outbox's, their indexes), which a group writes once. A
// transaction whose function fails is rolled back to its savepoint and gets its error alone; the
// others commit. Each still runs as if alone: one after the other, seeing the ones before it, as
// when they took turns on the lock.

// A group takes at most maxGroup transactions, and no more once it has run for maxGroupTime: the
// first of a group is answered only when the last has run.
const (
	maxGroup     = 64
	maxGroupTime = 25 * time.Millisecond
)

// errGroupRolledBack is what the members of a group are told when the group's transaction was
// lost with another member's failure: nothing of theirs was written, and InTx runs them again.
var errGroupRolledBack = errors.New("rolled back with the transactions committed together with it")

// writeRequest is a write transaction waiting for SQLite's writer.
type writeRequest struct {
	ctx  context.Context
	fn   func(bridge.Tx) error
	done chan error // receives the outcome, once (answer)
	// answered is set by the writer that sends the outcome.
	answered bool
}

func (r *writeRequest) answer(err error) {
	r.answered = true
	r.done <- err
}

// writeQueue holds the write transactions waiting for the writer, oldest first.
type writeQueue struct {
	mu      sync.Mutex
	waiting []*writeRequest
}

func (q *writeQueue) add(r *writeRequest) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.waiting = append(q.waiting, r)
}

// take removes and returns up to n of the oldest waiting.
func (q *writeQueue) take(n int) []*writeRequest {
	q.mu.Lock()
	defer q.mu.Unlock()
	n = min(n, len(q.waiting))
	group := slices.Clone(q.waiting[:n])
	clear(q.waiting[:n]) // the closures they hold go with them
	q.waiting = q.waiting[n:]
	return group
}

// putBack returns requests a group did not get to, to the front of the queue.
func (q *writeQueue) putBack(rs []*writeRequest) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.waiting = append(slices.Clone(rs), q.waiting...)
}

// inWriteGroup runs fn in a write transaction on SQLite. It queues and waits until either a writer
// has run it with a group, or it becomes the writer itself (s.writer is the one slot) and runs
// whatever has queued by then.
func (s *Store) inWriteGroup(ctx context.Context, fn func(bridge.Tx) error) error {
	r := &writeRequest{ctx: ctx, fn: fn, done: make(chan error, 1)}
	s.waiting.add(r)
	for {
		select {
		case err := <-r.done:
			return outcome(err)
		case s.writer <- struct{}{}:
		}
		select {
		case err := <-r.done: // answered just before this became the writer
			<-s.writer
			return outcome(err)
		default:
		}
		func() {
			defer func() { <-s.writer }()
			s.runGroup(s.waiting.take(maxGroup))
		}()
	}
}

// outcome is a transaction's answer, re-raising a panic of its function in its own goroutine.
func outcome(err error) error {
	var p *panicked
	if errors.As(err, &p) {
		panic(p)
	}
	return err
}

// runGroup runs a group of write transactions and answers each. A group of one runs exactly as a
// transaction of its own.
func (s *Store) runGroup(group []*writeRequest) {
	// Whatever happens here (a function calling runtime.Goexit, a panic outside a function), no
	// caller is left waiting for an answer.
	var tx0 *sql.Tx // the group's transaction, once begun
	owned := group  // those this writer answers
	defer func() {
		rolledBack := false
		for _, r := range owned {
			if r.answered {
				continue
			}
			if tx0 != nil && !rolledBack {
				_ = tx0.Rollback()
				rolledBack = true
			}
			r.answer(fmt.Errorf("%w: the writer stopped before it was answered", errGroupRolledBack))
		}
	}()
	var live []*writeRequest
	for _, r := range group {
		if err := r.ctx.Err(); err != nil {
			r.answer(fmt.Errorf("begin: %w", s.wrap(err)))
			continue
		}
		live = append(live, r)
	}
	switch len(live) {
	case 0:
		return
	case 1:
		r := live[0]
		r.answer(catch(func() error { return s.inOwnTx(r.ctx, s.db, r.fn) }))
		return
	}
	// The group's transaction is not cancelled with any one member's context: an interrupted
	// SQLite statement may roll the whole transaction back.
	ctx := context.WithoutCancel(live[0].ctx)
	var err error
	if tx0, err = s.db.BeginTx(ctx, nil); err != nil {
		for _, r := range live {
			r.answer(fmt.Errorf("begin: %w", s.wrap(err)))
		}
		return
	}
	type member struct {
		r  *writeRequest
		tx *tx
	}
	var written []member
	// lost ends the group when its transaction can no longer be trusted: the members written so
	// far and those not run yet are told to run again.
	lost := func(cause error, rest []*writeRequest) {
		_ = tx0.Rollback()
		again := fmt.Errorf("%w: %w", errGroupRolledBack, cause)
		for _, m := range written {
			m.r.answer(again)
		}
		for _, r := range rest {
			if !r.answered {
				r.answer(again)
			}
		}
	}
	started, most := time.Now(), s.groupTime
	if most == 0 {
		most = maxGroupTime
	}
	for i, r := range live {
		if i > 0 && time.Since(started) > most {
			owned = live[:i]
			s.waiting.putBack(live[i:]) // the next writer takes them
			break
		}
		if _, err := tx0.ExecContext(ctx, "SAVEPOINT step"); err != nil {
			lost(s.wrap(err), live[i:])
			return
		}
		t := &tx{conn: conn{s: s, q: groupTx{tx0}}, members: map[bridge.ChatID]string{}}
		if err := catch(func() error { return t.run(r.ctx, r.fn) }); err != nil {
			if _, rerr := tx0.ExecContext(ctx, "ROLLBACK TO step"); rerr != nil {
				// SQLite rolled the whole transaction back (an I/O error, a full disk).
				r.answer(err)
				lost(err, live[i+1:])
				return
			}
			r.answer(err)
		} else {
			written = append(written, member{r, t})
		}
		if _, err := tx0.ExecContext(ctx, "RELEASE step"); err != nil {
			lost(s.wrap(err), live[i+1:])
			return
		}
	}
	if err := tx0.Commit(); err != nil {
		err = fmt.Errorf("commit: %w", s.wrap(err))
		for _, m := range written {
			m.r.answer(err)
		}
		return
	}
	for _, m := range written {
		m.tx.committed()
		m.r.answer(nil)
	}
}

// panicked carries a panic out of a function run for another goroutine's transaction, so that
// its own goroutine panics with it (and the stack where it happened) while the group's other
// members are still answered.
type panicked struct {
	value any
	stack []byte
}

func (p *panicked) Error() string {
	return fmt.Sprintf("panic in a write transaction: %v\n\n%s", p.value, p.stack)
}

// catch runs f and turns a panic into a *panicked error.
func catch(f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &panicked{v, debug.Stack()}
		}
	}()
	return f()
}
