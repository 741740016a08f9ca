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

// ClaimOutbox hands out the heads of lanes that are due. It reads the lane table (one row per busy
// lane), not the backlog, and locks with FOR UPDATE SKIP LOCKED, so claimers in several processes
// never get the same item and never wait on each other. A lane's next item becomes its head only
// when the one before it is finished (UpdateOutbox, MarkDone), which keeps each lane in order.
// Lanes equally due go oldest head first. However many items it claims, it costs two statements
// on PostgreSQL (three on SQLite): one finds and locks the due heads with their recipients
// (OutboxItem.To, ToEmployee), one marks them sending and moves their lanes' due times to the end
// of the lease.
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
		rows, err := t.query(ctx, `SELECT `+claimColumns+` FROM outbox_lanes l JOIN outbox o ON o.id = l.head_id
				LEFT JOIN contacts ct ON o.channel = 'wechat' AND ct.open_id = o.contact
				LEFT JOIN employees e ON o.channel = 'teams' AND e.id = o.employee_id
			WHERE l.due_us <= $1 AND l.channel IN (`+strings.Join(in, ", ")+`)
			ORDER BY l.due_us, l.head_id LIMIT $2 FOR UPDATE OF l, o SKIP LOCKED`, args...)
		if err != nil {
			return fmt.Errorf("claim outbox: %w", err)
		}
		var read []claimRow
		for rows.Next() {
			r, err := scanClaim(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("claim outbox: %w", s.wrap(err))
			}
			read = append(read, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("claim outbox: %w", s.wrap(err))
		}
		var ids, lanes []any
		for _, r := range read {
			it := r.it
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
			// Opened once the rows are read: opening may look up a data key.
			if _, err := t.openOutbox(ctx, r.sealedOutbox); err != nil {
				return fmt.Errorf("claim outbox item %d: %w", it.ID, err)
			}
			it.State, it.Attempts, it.LeaseUntil = bridge.OutboxSending, it.Attempts+1, leaseUntil
			ids, lanes = append(ids, it.ID), append(lanes, it.Lane)
			claimed = append(claimed, it)
		}
		if len(claimed) == 0 {
			return nil
		}
		// Both marks go in one statement on PostgreSQL: the rows are locked, nothing reads them after.
		uargs := []any{us(leaseUntil)}
		if err := t.later(ctx, "outbox", `UPDATE outbox SET state = 'sending', attempts = attempts + 1, lease_until_us = $1
			WHERE id IN (`+placeholders(&uargs, ids...)+`)`, uargs...); err != nil {
			return fmt.Errorf("claim %d outbox items: %w", len(claimed), err)
		}
		// The heads stay the heads; they fall due again if this claim runs out.
		uargs = []any{us(leaseUntil)}
		if err := t.later(ctx, "outbox_lanes", `UPDATE outbox_lanes SET due_us = $1 WHERE lane IN (`+placeholders(&uargs, lanes...)+`)`, uargs...); err != nil {
			return fmt.Errorf("claim %d outbox items: %w", len(claimed), err)
		}
		if err := t.flushDeferred(ctx); err != nil {
			return fmt.Errorf("claim %d outbox items: %w", len(claimed), err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return claimed, nil
}

// claimColumns are an outbox row's and its recipient's: the customer of a WeChat item, the
// employee of a Teams item (empty when the other channel, or when the row is gone).
const claimColumns = `o.id, o.chat_id, o.tenant, o.channel, o.lane, o.employee_id, o.contact, o.message_id, o.auto, o.payload,
	o.data_key, o.state, o.attempts, o.not_before_us, o.lease_until_us, o.created_us, o.template, o.cancel_reason,
	COALESCE(ct.open_id, ''), COALESCE(ct.union_id, ''), COALESCE(ct.name, ''), COALESCE(ct.language, ''),
	COALESCE(ct.following, FALSE), COALESCE(ct.updated_us, 0), COALESCE(ct.number, 0),
	COALESCE(e.id, ''), COALESCE(e.tenant, ''), COALESCE(e.name, ''), COALESCE(e.email, ''), COALESCE(e.enabled, FALSE),
	COALESCE(e.scene, ''), COALESCE(e.teams_service_url, ''), COALESCE(e.teams_conversation_id, ''),
	COALESCE(e.teams_user_id, ''), COALESCE(e.reachable, FALSE), COALESCE(e.current_chat, 0), COALESCE(e.updated_us, 0)`

type claimRow struct {
	sealedOutbox
}

func scanClaim(row interface{ Scan(...any) error }) (claimRow, error) {
	var (
		r                               = claimRow{sealedOutbox{it: &bridge.OutboxItem{}}}
		it                              = r.it
		chat, notBefore, lease, created int64
		ct                              bridge.Contact
		e                               bridge.Employee
		ctUpdated, current, empUpdated  int64
	)
	if err := row.Scan(&it.ID, &chat, &it.Tenant, &it.Channel, &it.Lane, &it.Employee, &it.Contact, &it.MessageID, &it.Auto,
		&r.payload, &r.key, &it.State, &it.Attempts, &notBefore, &lease, &created, &it.Template, &it.CancelReason,
		&ct.OpenID, &ct.UnionID, &ct.Name, &ct.Language, &ct.Following, &ctUpdated, &ct.Number,
		&e.ID, &e.Tenant, &e.Name, &e.Email, &e.Enabled, &e.Scene, &e.Teams.ServiceURL, &e.Teams.ConversationID,
		&e.Teams.UserID, &e.Reachable, &current, &empUpdated); err != nil {
		return r, err
	}
	it.ChatID = bridge.ChatID(chat)
	it.NotBefore, it.LeaseUntil, it.CreatedAt = fromUS(notBefore), fromUS(lease), fromUS(created)
	if ct.OpenID != "" {
		ct.UpdatedAt = fromUS(ctUpdated)
		it.To = &ct
	}
	if e.ID != "" {
		e.CurrentChat, e.UpdatedAt = bridge.ChatID(current), fromUS(empUpdated)
		it.ToEmployee = &e
	}
	return r, nil
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
