package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/compliance"
)

// This file holds the statements that act on many rows at once, so that a transaction costs a
// few round trips however many items, lanes or streams it touches: archive appends across
// streams, outcomes recorded for a batch of deliveries, lanes settled together.

// placeholders appends one placeholder per value to args and returns them joined by commas.
func placeholders(args *[]any, values ...any) string {
	var b strings.Builder
	for i, v := range values {
		if i > 0 {
			b.WriteString(", ")
		}
		*args = append(*args, v)
		fmt.Fprintf(&b, "$%d", len(*args))
	}
	return b.String()
}

// bytesParam is a placeholder for a bytea value inside an expression whose type PostgreSQL cannot
// infer (a CASE): PostgreSQL needs the cast; SQLite must not have it (its BYTEA is numeric).
func (s *Store) bytesParam(n int) string {
	if s.dialect == Postgres {
		return fmt.Sprintf("CAST($%d AS BYTEA)", n)
	}
	return fmt.Sprintf("$%d", n)
}

// maxAppend is how many records Append writes in one statement.
const maxAppend = 1000

// Append chains each event onto the head of its stream. The heads of all the streams are locked
// (upserted) first, in the order of their names, so two transactions appending to one stream take
// turns and two appending to several do not deadlock; then every record goes in one multi-row
// INSERT and every head moves in one UPDATE (on PostgreSQL, both in one statement).
func (t *tx) Append(ctx context.Context, events ...compliance.Event) error {
	if len(events) > maxAppend {
		// Statements take at most 65,535 parameters (PostgreSQL), 13 a record; each chunk chains
		// onto the heads the one before moved.
		for chunk := range slices.Chunk(events, maxAppend) {
			if err := t.Append(ctx, chunk...); err != nil {
				return err
			}
		}
		return nil
	}
	if len(events) == 0 {
		return nil
	}
	byStream := map[string][]compliance.Event{}
	for _, ev := range events {
		byStream[ev.Stream] = append(byStream[ev.Stream], ev)
	}
	streams := slices.Sorted(func(yield func(string) bool) {
		for s := range byStream {
			if !yield(s) {
				return
			}
		}
	})
	var zero compliance.Hash
	now := us(events[len(events)-1].At)
	var (
		values strings.Builder
		args   []any
	)
	for i, stream := range streams {
		if i > 0 {
			values.WriteString(", ")
		}
		n := len(args)
		fmt.Fprintf(&values, "($%d, 0, $%d, $%d)", n+1, n+2, n+3)
		args = append(args, stream, zero[:], now)
	}
	// The heads' lock carries the writes waiting to go (the step's chat state and timers): it reads
	// only archive_heads.
	if err := t.deferTimers(ctx); err != nil {
		return err
	}
	q, args := t.carrying(`INSERT INTO archive_heads (stream, seq, hash, updated_us) VALUES `+values.String()+`
		ON CONFLICT (stream) DO UPDATE SET stream = EXCLUDED.stream RETURNING stream, seq, hash`, args)
	rows, err := t.conn.query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("archive: lock heads: %w", err)
	}
	heads := make(map[string]compliance.Head, len(streams))
	for rows.Next() {
		var (
			stream string
			h      compliance.Head
			hash   []byte
		)
		if err := rows.Scan(&stream, &h.Seq, &hash); err != nil {
			rows.Close()
			return fmt.Errorf("archive: lock heads: %w", t.s.wrap(err))
		}
		copy(h.Hash[:], hash)
		heads[compliance.StorableText(stream)] = h
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("archive: lock heads: %w", t.s.wrap(err))
	}
	// Seal every record onto its stream's head. Sealing may look up a data key: the rows above are
	// closed by now.
	type media struct {
		sha, stream string
		seq         int64
	}
	var (
		records []any
		rvalues strings.Builder
		refs    []media
	)
	for _, stream := range streams {
		head, ok := heads[compliance.StorableText(stream)]
		if !ok {
			return fmt.Errorf("archive stream %s: its head was not returned", stream)
		}
		for _, ev := range byStream[stream] {
			r, err := compliance.Seal(head, ev)
			if err != nil {
				return fmt.Errorf("archive stream %s: %w", stream, err)
			}
			body, key := r.Body, ""
			if body != nil {
				if body, key, err = t.sealFor(ctx, r.Tenant, r.Body, compliance.BodyAAD(r.Stream, r.Seq)); err != nil {
					return fmt.Errorf("archive stream %s: %w", stream, err)
				}
			}
			if len(records) > 0 {
				rvalues.WriteString(", ")
			}
			n := len(records)
			fmt.Fprintf(&rvalues, "($%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d)",
				n+1, n+2, n+3, n+4, n+5, n+6, n+7, n+8, n+9, n+10, n+11, n+12, n+13)
			records = append(records, r.Stream, r.Seq, r.Tenant, r.At.UnixMicro(), string(r.Kind), r.Actor, r.ChatID, r.Meta,
				nullBytes(body), key, r.BodyHash[:], r.PrevHash[:], r.Hash[:])
			head = compliance.Head{Seq: r.Seq, Hash: r.Hash}
			if ev.Meta.MediaSHA256 != "" {
				refs = append(refs, media{ev.Meta.MediaSHA256, stream, r.Seq})
			}
		}
		heads[compliance.StorableText(stream)] = head
	}
	insert := `INSERT INTO archive (stream, seq, tenant, at_us, kind, actor, chat_id, meta, body, body_key,
		body_hash, prev_hash, hash) VALUES ` + rvalues.String()
	// The heads move to their last records. args continue the records' placeholders on
	// PostgreSQL, where both go in one statement.
	args = nil
	if t.s.dialect == Postgres {
		args = records
	}
	var seqCase, hashCase strings.Builder
	in := make([]any, 0, len(streams))
	for _, stream := range streams {
		h := heads[compliance.StorableText(stream)]
		n := len(args)
		fmt.Fprintf(&seqCase, " WHEN $%d THEN CAST($%d AS BIGINT)", n+1, n+2)
		fmt.Fprintf(&hashCase, " WHEN $%d THEN %s", n+1, t.s.bytesParam(n+3))
		args = append(args, stream, h.Seq, h.Hash[:])
		in = append(in, stream)
	}
	args = append(args, now)
	nowParam := len(args)
	move := fmt.Sprintf(`UPDATE archive_heads SET seq = CASE stream%s END, hash = CASE stream%s END, updated_us = $%d
		WHERE stream IN (%s)`, seqCase.String(), hashCase.String(), nowParam, placeholders(&args, in...))
	if t.s.dialect == Postgres {
		// One round trip: the records go in, the heads move.
		if _, err := t.exec(ctx, `WITH records AS (`+insert+`) `+move, args...); err != nil {
			return fmt.Errorf("archive %d records: %w", len(events), err)
		}
	} else {
		if _, err := t.exec(ctx, insert, records...); err != nil {
			return fmt.Errorf("archive %d records: %w", len(events), err)
		}
		if _, err := t.exec(ctx, move, args...); err != nil {
			return fmt.Errorf("archive: move heads: %w", err)
		}
	}
	for _, m := range refs {
		if _, err := t.exec(ctx, `INSERT INTO media_refs (sha256, stream, seq) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, m.sha, m.stream, m.seq); err != nil {
			return fmt.Errorf("archive stream %s: media reference: %w", m.stream, err)
		}
	}
	return nil
}

// settleLane points a lane at its first undelivered item and says when that item may be claimed,
// or retires the lane when nothing is left in it.
func (t *tx) settleLane(ctx context.Context, lane string) error {
	_, err := t.settleLanes(ctx, lane)
	return err
}

// settleLanes settles lanes together. The lane rows are locked first (in order), so an item being
// added to a lane concurrently is seen; then one query finds every lane's first undelivered item,
// one statement retires the lanes left empty and one points the others at their heads. On
// PostgreSQL the lock carries the writes waiting to go and the last two wait for the transaction's
// next statement (deferred.go): two round trips. It returns each lane still busy and when its head
// falls due (unix µs).
func (t *tx) settleLanes(ctx context.Context, lanes ...string) (map[string]int64, error) {
	lanes = slices.Compact(slices.Sorted(slices.Values(lanes)))
	if len(lanes) == 0 {
		return nil, nil
	}
	var args []any
	in := make([]any, len(lanes))
	for i, l := range lanes {
		in[i] = l
	}
	// The lock reads only the lanes: it carries the writes waiting to go (an outcome's state,
	// MarkDone), except earlier moves of lanes, which go first.
	q, args, err := t.carryingFor(ctx, `SELECT lane FROM outbox_lanes WHERE lane IN (`+placeholders(&args, in...)+`) ORDER BY lane FOR UPDATE`, args, "outbox_lanes")
	if err != nil {
		return nil, fmt.Errorf("lock lanes: %w", err)
	}
	rows, err := t.conn.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("lock lanes: %w", err)
	}
	var held []any
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			rows.Close()
			return nil, fmt.Errorf("lock lanes: %w", t.s.wrap(err))
		}
		held = append(held, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lock lanes: %w", t.s.wrap(err))
	}
	if len(held) == 0 {
		return nil, nil // retired already
	}
	args = args[:0]
	rows, err = t.query(ctx, `SELECT lane, id, state, not_before_us, lease_until_us FROM outbox WHERE id IN
		(SELECT MIN(id) FROM outbox WHERE lane IN (`+placeholders(&args, held...)+`) AND state IN ('pending', 'sending') GROUP BY lane)`, args...)
	if err != nil {
		return nil, fmt.Errorf("heads of lanes: %w", err)
	}
	type head struct{ id, due int64 }
	heads := map[string]head{}
	for rows.Next() {
		var (
			lane, state       string
			id, nb, leaseTill int64
		)
		if err := rows.Scan(&lane, &id, &state, &nb, &leaseTill); err != nil {
			rows.Close()
			return nil, fmt.Errorf("heads of lanes: %w", t.s.wrap(err))
		}
		due := nb
		if state == string(bridge.OutboxSending) {
			due = leaseTill
		}
		heads[lane] = head{id, due}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("heads of lanes: %w", t.s.wrap(err))
	}
	var empty, busy []any
	for _, l := range held {
		if _, ok := heads[compliance.StorableText(l.(string))]; ok {
			busy = append(busy, l)
		} else {
			empty = append(empty, l)
		}
	}
	// The lanes are locked: their moves wait for the transaction's next statement (on PostgreSQL
	// usually the archive heads' lock).
	if len(empty) > 0 {
		var dargs []any
		if err := t.later(ctx, "outbox_lanes", `DELETE FROM outbox_lanes WHERE lane IN (`+placeholders(&dargs, empty...)+`)`, dargs...); err != nil {
			return nil, fmt.Errorf("retire lanes: %w", err)
		}
	}
	if len(busy) > 0 {
		var args []any
		var headCase, dueCase strings.Builder
		for _, l := range busy {
			h := heads[compliance.StorableText(l.(string))]
			n := len(args)
			fmt.Fprintf(&headCase, " WHEN $%d THEN CAST($%d AS BIGINT)", n+1, n+2)
			fmt.Fprintf(&dueCase, " WHEN $%d THEN CAST($%d AS BIGINT)", n+1, n+3)
			args = append(args, l, h.id, h.due)
		}
		q := `UPDATE outbox_lanes SET head_id = CASE lane` + headCase.String() + ` END, due_us = CASE lane` + dueCase.String() + ` END
			WHERE lane IN (` + placeholders(&args, busy...) + `)`
		if err := t.later(ctx, "outbox_lanes", q, args...); err != nil {
			return nil, fmt.Errorf("move lane heads: %w", err)
		}
	}
	out := make(map[string]int64, len(heads))
	for l, h := range heads {
		out[l] = h.due
	}
	return out, nil
}

// LockSending locks outbox items, in order of id, and returns the attempt count of each that is
// still being sent (a claim that ran out and was taken over has a higher count; one whose outcome
// is recorded is no longer sending).
func (t *tx) LockSending(ctx context.Context, ids ...int64) (map[int64]int, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var args []any
	in := make([]any, len(ids))
	for i, id := range slices.Sorted(slices.Values(ids)) {
		in[i] = id
	}
	rows, err := t.query(ctx, `SELECT id, attempts FROM outbox WHERE id IN (`+placeholders(&args, in...)+`) AND state = 'sending'
		ORDER BY id FOR UPDATE`, args...)
	if err != nil {
		return nil, fmt.Errorf("lock outbox items: %w", err)
	}
	defer rows.Close()
	out := make(map[int64]int, len(ids))
	for rows.Next() {
		var id int64
		var attempts int
		if err := rows.Scan(&id, &attempts); err != nil {
			return nil, fmt.Errorf("lock outbox items: %w", t.s.wrap(err))
		}
		out[id] = attempts
	}
	return out, t.s.wrap(rows.Err())
}

// MarkDone records items as delivered — their state done, AnsweredAt when the channel answered —
// in one statement, and moves their lanes on to their next items.
func (t *tx) MarkDone(ctx context.Context, now time.Time, items ...*bridge.OutboxItem) (map[string]bool, error) {
	if len(items) == 0 {
		return nil, nil
	}
	var (
		args     []any
		answered strings.Builder
		in       = make([]any, len(items))
		lanes    = make([]string, len(items))
	)
	for i, it := range items {
		n := len(args)
		fmt.Fprintf(&answered, " WHEN $%d THEN CAST($%d AS BIGINT)", n+1, n+2)
		args = append(args, it.ID, us(it.AnsweredAt))
		in[i], lanes[i] = it.ID, it.Lane
	}
	// The items are locked (LockSending): their new state rides with the lanes' lock (settleLanes).
	q := `UPDATE outbox SET state = 'done', answered_us = CASE id` + answered.String() + ` END WHERE id IN (` + placeholders(&args, in...) + `)`
	if err := t.later(ctx, "outbox", q, args...); err != nil {
		return nil, fmt.Errorf("record %d deliveries: %w", len(items), err)
	}
	for _, it := range items {
		it.State = bridge.OutboxDone
	}
	busy, err := t.settleLanes(ctx, lanes...)
	if err != nil {
		return nil, fmt.Errorf("record %d deliveries: %w", len(items), err)
	}
	due := map[string]bool{}
	for l, at := range busy {
		if at <= us(now) {
			due[l] = true
		}
	}
	return due, nil
}
