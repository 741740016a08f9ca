package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/wxteams/wxteams/bridge"
)

// SQLite has one writer at a time. Write transactions that queue for it while another runs are
// run together, each in a savepoint of one transaction, and committed once (group commit): every
// commit writes the pages it changed to the WAL, and steps of different chats change mostly the
// same pages (the archive's, the outbox's, their indexes), which a group writes once. A
// transaction whose function fails is rolled back to its savepoint and gets its error alone; the
// others commit. Each still runs as if alone: one after the other, seeing the ones before it, as
// when they took turns on the lock.

// maxGroup is how many write transactions one commit takes at most.
const maxGroup = 64

// errGroupRolledBack is what the members of a group are told when the group's transaction was
// lost with another member's failure: nothing of theirs was written, and InTx runs them again.
var errGroupRolledBack = errors.New("rolled back with the transactions committed together with it")

// writeRequest is a write transaction waiting for SQLite's writer.
type writeRequest struct {
	ctx  context.Context
	fn   func(bridge.Tx) error
	done chan error // receives the outcome, once
}

// writeQueue holds the write transactions waiting for the writer lock, oldest first.
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
	group := q.waiting[:n:n]
	q.waiting = q.waiting[n:]
	return group
}

// inWriteGroup runs fn in a write transaction on SQLite. It queues, takes the writer lock, and
// runs whatever has queued by then as one group, unless an earlier holder already ran fn with its
// own group.
func (s *Store) inWriteGroup(ctx context.Context, fn func(bridge.Tx) error) error {
	r := &writeRequest{ctx: ctx, fn: fn, done: make(chan error, 1)}
	s.waiting.add(r)
	s.writers.Lock()
	defer s.writers.Unlock()
	for {
		select {
		case err := <-r.done:
			var p *panicked
			if errors.As(err, &p) {
				panic(p.value) // in the goroutine whose function panicked
			}
			return err
		default:
			// r is still waiting, so the queue holds it: every group taken is answered before
			// the lock is let go.
			s.runGroup(s.waiting.take(maxGroup))
		}
	}
}

// runGroup runs a group of write transactions and answers each. A group of one runs exactly as a
// transaction of its own.
func (s *Store) runGroup(group []*writeRequest) {
	var live []*writeRequest
	for _, r := range group {
		if err := r.ctx.Err(); err != nil {
			r.done <- fmt.Errorf("begin: %w", s.wrap(err))
			continue
		}
		live = append(live, r)
	}
	switch len(live) {
	case 0:
		return
	case 1:
		r := live[0]
		r.done <- catch(func() error { return s.inOwnTx(r.ctx, s.db, r.fn) })
		return
	}
	// The group's transaction is not cancelled with any one member's context: an interrupted
	// SQLite statement may roll the whole transaction back.
	ctx := context.WithoutCancel(live[0].ctx)
	sqlTx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		for _, r := range live {
			r.done <- fmt.Errorf("begin: %w", s.wrap(err))
		}
		return
	}
	type member struct {
		r  *writeRequest
		tx *tx
	}
	var written []member
	// lost ends the group when its transaction can no longer be trusted: the members written so
	// far and those not run yet are told to run again; failed is the member at fault, if any.
	lost := func(cause error, failed *writeRequest, rest []*writeRequest) {
		_ = sqlTx.Rollback()
		again := fmt.Errorf("%w: %v", errGroupRolledBack, cause)
		for _, m := range written {
			m.r.done <- again
		}
		for _, r := range rest {
			if r != failed {
				r.done <- again
			}
		}
	}
	for i, r := range live {
		if _, err := sqlTx.ExecContext(ctx, "SAVEPOINT step"); err != nil {
			lost(s.wrap(err), nil, live[i:])
			return
		}
		t := &tx{conn: conn{s: s, q: groupTx{sqlTx}}, members: map[bridge.ChatID]string{}}
		if err := catch(func() error { return t.run(r.ctx, r.fn) }); err != nil {
			if _, rerr := sqlTx.ExecContext(ctx, "ROLLBACK TO step"); rerr != nil {
				// SQLite rolled the whole transaction back (an I/O error, a full disk).
				r.done <- err
				lost(err, r, live[i:])
				return
			}
			r.done <- err
		} else {
			written = append(written, member{r, t})
		}
		if _, err := sqlTx.ExecContext(ctx, "RELEASE step"); err != nil {
			lost(s.wrap(err), nil, live[i+1:])
			return
		}
	}
	if err := sqlTx.Commit(); err != nil {
		err = fmt.Errorf("commit: %w", s.wrap(err))
		for _, m := range written {
			m.r.done <- err
		}
		return
	}
	for _, m := range written {
		m.tx.committed()
		m.r.done <- nil
	}
}

// panicked carries a panic out of a function run for another goroutine's transaction, so that
// its own goroutine panics with it and the group's other members are still answered.
type panicked struct{ value any }

func (p *panicked) Error() string { return fmt.Sprintf("panic in a write transaction: %v", p.value) }

// catch runs f and turns a panic into a *panicked error.
func catch(f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &panicked{v}
		}
	}()
	return f()
}
