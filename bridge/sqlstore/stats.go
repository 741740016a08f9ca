package sqlstore

import (
	"context"
	"fmt"
	"time"
)

// OutboxCount is how many deliveries wait on one channel in one state.
type OutboxCount struct {
	Channel string
	State   string
	N       int64
}

// Backlog counts the undelivered outbox items by channel and state, and the queued employee
// messages. It reads only open rows, through partial indexes, so it stays cheap on a large store.
func (s *Store) Backlog(ctx context.Context) (outbox []OutboxCount, queued int64, err error) {
	rows, err := s.db.QueryContext(ctx, `SELECT channel, state, COUNT(*) FROM outbox
		WHERE state IN ('pending', 'sending') GROUP BY channel, state`)
	if err != nil {
		return nil, 0, fmt.Errorf("outbox backlog: %w", s.wrap(err))
	}
	defer rows.Close()
	for rows.Next() {
		var c OutboxCount
		if err := rows.Scan(&c.Channel, &c.State, &c.N); err != nil {
			return nil, 0, fmt.Errorf("outbox backlog: %w", s.wrap(err))
		}
		outbox = append(outbox, c)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("outbox backlog: %w", s.wrap(err))
	}
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM queue`).Scan(&queued); err != nil {
		return nil, 0, fmt.Errorf("queue length: %w", s.wrap(err))
	}
	return outbox, queued, nil
}

// Prune forgets old idempotency keys and deletes old finished outbox items (their outcomes are in
// the archive), so neither table grows without bound.
func (s *Store) Prune(ctx context.Context, seenBefore, outboxBefore time.Time) (int64, error) {
	var total int64
	for _, q := range []struct {
		sql string
		arg int64
	}{
		{`DELETE FROM seen WHERE seen_us < $1`, us(seenBefore)},
		{`DELETE FROM outbox WHERE created_us < $1 AND state NOT IN ('pending', 'sending')`, us(outboxBefore)},
	} {
		r, err := s.db.ExecContext(ctx, s.rebind(q.sql), q.arg)
		if err != nil {
			return total, fmt.Errorf("prune: %w", s.wrap(err))
		}
		n, _ := r.RowsAffected()
		total += n
	}
	return total, nil
}

// ChatCount is how many chats are in a status, and of those how many have WeChat's window open
// (the customer wrote within the window).
type ChatCount struct {
	Status     string
	N          int64
	WindowOpen int64
}

// ChatStates counts the chats by status; windowSince is the time after which a customer message
// keeps the window open (now minus the policy's window).
func (s *Store) ChatStates(ctx context.Context, windowSince time.Time) ([]ChatCount, error) {
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT status, COUNT(*), SUM(CASE WHEN last_inbound_us > $1 THEN 1 ELSE 0 END)
		FROM chats GROUP BY status ORDER BY status`), us(windowSince))
	if err != nil {
		return nil, fmt.Errorf("chat states: %w", s.wrap(err))
	}
	defer rows.Close()
	var out []ChatCount
	for rows.Next() {
		var c ChatCount
		if err := rows.Scan(&c.Status, &c.N, &c.WindowOpen); err != nil {
			return nil, fmt.Errorf("chat states: %w", s.wrap(err))
		}
		out = append(out, c)
	}
	return out, s.wrap(rows.Err())
}
