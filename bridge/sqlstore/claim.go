package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wxteams/wxteams/bridge"
)

// ClaimOutbox hands out the heads of lanes that are due. It reads the lane table (one row per busy
// lane), not the backlog, and locks with FOR UPDATE SKIP LOCKED, so claimers in several processes
// never get the same item and never wait on each other. A lane's next item becomes its head only
// when the one before it is finished (UpdateOutbox), which keeps each lane in order.
func (s *Store) ClaimOutbox(ctx context.Context, now, leaseUntil time.Time, limit int, channels ...bridge.Channel) ([]*bridge.OutboxItem, error) {
	if len(channels) == 0 {
		return nil, nil
	}
	args := []any{us(now), limit}
	in := make([]string, len(channels))
	for i, ch := range channels {
		args = append(args, string(ch))
		in[i] = "$" + strconv.Itoa(len(args))
	}
	var claimed []*bridge.OutboxItem
	err := s.InTx(ctx, func(btx bridge.Tx) error {
		t := btx.(*tx)
		claimed = claimed[:0]
		rows, err := t.query(ctx, `SELECT head_id FROM outbox_lanes WHERE due_us <= $1 AND channel IN (`+strings.Join(in, ", ")+`)
			ORDER BY due_us LIMIT $2 FOR UPDATE SKIP LOCKED`, args...)
		if err != nil {
			return fmt.Errorf("claim outbox: %w", err)
		}
		var heads []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("claim outbox: %w", s.wrap(err))
			}
			heads = append(heads, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("claim outbox: %w", s.wrap(err))
		}
		for _, id := range heads {
			it, err := t.scanOutbox(ctx, t.queryRow(ctx, `SELECT `+outboxColumns+` FROM outbox WHERE id = $1 FOR UPDATE SKIP LOCKED`, id))
			if errors.Is(err, sql.ErrNoRows) {
				continue // its outcome is being recorded right now
			}
			if err != nil {
				return fmt.Errorf("claim outbox item %d: %w", id, s.wrap(err))
			}
			switch {
			case it.State == bridge.OutboxPending && !it.NotBefore.After(now):
			case it.State == bridge.OutboxSending && !it.LeaseUntil.After(now):
				it.Expired = true
			default:
				// Not due after all (the lane row is behind): put the lane right.
				if err := t.settleLane(ctx, it.Lane); err != nil {
					return err
				}
				continue
			}
			it.State, it.Attempts, it.LeaseUntil = bridge.OutboxSending, it.Attempts+1, leaseUntil
			if _, err := t.exec(ctx, `UPDATE outbox SET state = $2, attempts = $3, lease_until_us = $4 WHERE id = $1`,
				it.ID, it.State, it.Attempts, us(leaseUntil)); err != nil {
				return fmt.Errorf("claim outbox item %d: %w", it.ID, err)
			}
			// The head stays the head; it falls due again if this claim runs out.
			if _, err := t.exec(ctx, `UPDATE outbox_lanes SET due_us = $2 WHERE lane = $1`, it.Lane, us(leaseUntil)); err != nil {
				return fmt.Errorf("claim outbox item %d: %w", it.ID, err)
			}
			claimed = append(claimed, it)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return claimed, nil
}

// NextDue returns when the next delivery and the next timer fall due, or zero times.
func (s *Store) NextDue(ctx context.Context) (delivery, timer time.Time, err error) {
	var d, t sql.NullInt64
	err = s.db.QueryRowContext(ctx, `SELECT (SELECT MIN(due_us) FROM outbox_lanes), (SELECT MIN(due_us) FROM timers)`).Scan(&d, &t)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("next due: %w", s.wrap(err))
	}
	return fromUS(d.Int64), fromUS(t.Int64), nil
}
