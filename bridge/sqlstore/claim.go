package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wxteams/wxteams/bridge"
)

// ClaimOutbox hands out the head of each lane that is due, plus items whose claim ran out. Rows are
// locked with FOR UPDATE SKIP LOCKED so concurrent claimers in other processes never get the same
// item; a lane with an item pending or sending ahead of another is not advanced, which keeps each
// lane in order.
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
		rows, err := t.query(ctx, `SELECT `+outboxColumns+` FROM outbox o
			WHERE ((o.state = 'pending' AND o.not_before_us <= $1) OR (o.state = 'sending' AND o.lease_until_us <= $1))
			  AND o.channel IN (`+strings.Join(in, ", ")+`)
			  AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.lane = o.lane AND p.id < o.id AND p.state IN ('pending', 'sending'))
			ORDER BY o.id LIMIT $2 FOR UPDATE SKIP LOCKED`, args...)
		if err != nil {
			return fmt.Errorf("claim outbox: %w", err)
		}
		for rows.Next() {
			it, err := scanOutbox(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("claim outbox: %w", s.wrap(err))
			}
			claimed = append(claimed, it)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("claim outbox: %w", s.wrap(err))
		}
		for _, it := range claimed {
			it.Expired = it.State == bridge.OutboxSending
			it.State, it.Attempts, it.LeaseUntil = bridge.OutboxSending, it.Attempts+1, leaseUntil
			if err := t.UpdateOutbox(ctx, it); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return claimed, nil
}

// NextWake returns when the next timer or delayed delivery falls due, or the zero time.
func (s *Store) NextWake(ctx context.Context) (time.Time, error) {
	var next sql.NullInt64
	err := s.db.QueryRowContext(ctx, s.rebind(`SELECT MIN(x) FROM (
			SELECT MIN(due_us) AS x FROM timers
			UNION ALL SELECT MIN(not_before_us) FROM outbox WHERE state = 'pending'
			UNION ALL SELECT MIN(lease_until_us) FROM outbox WHERE state = 'sending') AS wakes`)).Scan(&next)
	if err != nil {
		return time.Time{}, fmt.Errorf("next wake: %w", s.wrap(err))
	}
	if !next.Valid {
		return time.Time{}, nil
	}
	return fromUS(next.Int64), nil
}
