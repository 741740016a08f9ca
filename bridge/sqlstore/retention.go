package sqlstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/compliance"
)

// Retention and legal holds. A purge removes, per stream, the records older than the retention
// period from the start of the stream up to the first that is not — unless a legal hold covers the
// stream. It first writes a disposal row (the database refuses to delete archive rows no disposal
// covers) and archives a disposal event, so verification starts the stream again after the last
// removed record, and a removal nobody archived is caught. The admin stream (who did what,
// including every disposal) is never purged.

// PlaceHold places a legal hold and archives who placed it.
func (s *Store) PlaceHold(ctx context.Context, h compliance.Hold, actor string, now time.Time) (compliance.Hold, error) {
	if err := h.Validate(); err != nil {
		return h, err
	}
	h.PlacedBy, h.PlacedAt = actor, now.UTC().Truncate(time.Microsecond)
	err := s.InTx(ctx, func(btx bridge.Tx) error {
		t := btx.(*tx)
		if err := t.queryRow(ctx, `INSERT INTO holds (scope, subject, reason, placed_by, placed_us) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
			h.Scope, h.Subject, h.Reason, actor, us(now)).Scan(&h.ID); err != nil {
			return fmt.Errorf("place hold: %w", t.s.wrap(err))
		}
		return t.Append(ctx, compliance.Event{Stream: compliance.AdminStream, At: now, Kind: compliance.KindHoldPlaced, Actor: actor,
			Meta: compliance.Meta{HoldID: h.ID, Scope: h.Scope, Subject: h.Subject, Reason: h.Reason}})
	})
	return h, err
}

// LiftHold lifts a hold and archives who lifted it.
func (s *Store) LiftHold(ctx context.Context, id int64, actor, reason string, now time.Time) error {
	return s.InTx(ctx, func(btx bridge.Tx) error {
		t := btx.(*tx)
		var scope, subject string
		err := t.queryRow(ctx, `UPDATE holds SET lifted_by = $2, lifted_us = $3 WHERE id = $1 AND lifted_us = 0 RETURNING scope, subject`,
			id, actor, us(now)).Scan(&scope, &subject)
		if isNoRows(err) {
			return compliance.ErrNoHold
		}
		if err != nil {
			return fmt.Errorf("lift hold %d: %w", id, t.s.wrap(err))
		}
		return t.Append(ctx, compliance.Event{Stream: compliance.AdminStream, At: now, Kind: compliance.KindHoldLifted, Actor: actor,
			Meta: compliance.Meta{HoldID: id, Scope: scope, Subject: subject, Reason: reason}})
	})
}

// Holds lists holds, newest first; active only if asked.
func (s *Store) Holds(ctx context.Context, activeOnly bool) ([]compliance.Hold, error) {
	q := `SELECT id, scope, subject, reason, placed_by, placed_us, lifted_by, lifted_us FROM holds`
	if activeOnly {
		q += ` WHERE lifted_us = 0`
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY id DESC`)
	if err != nil {
		return nil, fmt.Errorf("list holds: %w", s.wrap(err))
	}
	defer rows.Close()
	var out []compliance.Hold
	for rows.Next() {
		var (
			h              compliance.Hold
			placed, lifted int64
		)
		if err := rows.Scan(&h.ID, &h.Scope, &h.Subject, &h.Reason, &h.PlacedBy, &placed, &h.LiftedBy, &lifted); err != nil {
			return nil, s.wrap(err)
		}
		h.PlacedAt = fromUS(placed)
		if lifted != 0 {
			h.LiftedAt = fromUS(lifted)
		}
		out = append(out, h)
	}
	return out, s.wrap(rows.Err())
}

// PurgeResult says what a purge did.
type PurgeResult struct {
	Streams  int   // streams with records removed
	Records  int64 // records removed
	Held     int   // streams with expired records kept because of a hold
	Media    int   // media removed because no remaining record refers to them
	Disposed []Disposal
}

// Purge removes the records archived before cutoff that no hold covers (see the top of this file).
// actor is archived with each disposal.
func (s *Store) Purge(ctx context.Context, cutoff time.Time, actor string, now time.Time) (PurgeResult, error) {
	var res PurgeResult
	holds, err := s.Holds(ctx, true)
	if err != nil {
		return res, err
	}
	held := map[string]bool{}
	for _, h := range holds {
		held[h.Scope+":"+h.Subject] = true
	}
	// Candidate streams: those whose oldest remaining record is before the cutoff.
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT stream FROM archive WHERE at_us < $1 AND stream <> $2 GROUP BY stream ORDER BY stream`), us(cutoff), compliance.AdminStream)
	if err != nil {
		return res, fmt.Errorf("purge: %w", s.wrap(err))
	}
	var streams []string
	for rows.Next() {
		var st string
		if err := rows.Scan(&st); err != nil {
			rows.Close()
			return res, s.wrap(err)
		}
		streams = append(streams, st)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return res, s.wrap(err)
	}
	for _, stream := range streams {
		d, isHeld, media, err := s.purgeStream(ctx, stream, cutoff, held, actor, now)
		if err != nil {
			return res, fmt.Errorf("purge %s: %w", stream, err)
		}
		if isHeld {
			res.Held++
			continue
		}
		if d.Records > 0 {
			res.Streams++
			res.Records += d.Records
			res.Media += media
			res.Disposed = append(res.Disposed, d)
		}
	}
	return res, nil
}

// purgeStream disposes of one stream's expired prefix in one transaction.
func (s *Store) purgeStream(ctx context.Context, stream string, cutoff time.Time, held map[string]bool, actor string, now time.Time) (Disposal, bool, int, error) {
	var (
		d      = Disposal{Stream: stream}
		isHeld bool
		media  int
	)
	err := s.InTx(ctx, func(btx bridge.Tx) error {
		t := btx.(*tx)
		d, isHeld, media = Disposal{Stream: stream}, false, 0 // a transaction run again starts afresh
		// Lock the stream's head: nothing is appended to it meanwhile.
		var headSeq int64
		if err := t.queryRow(ctx, `SELECT seq FROM archive_heads WHERE stream = $1 FOR UPDATE`, stream).Scan(&headSeq); err != nil {
			return fmt.Errorf("lock head: %w", t.s.wrap(err))
		}
		rows, err := t.query(ctx, `SELECT seq, at_us, chat_id, meta, hash FROM archive WHERE stream = $1 ORDER BY seq`, stream)
		if err != nil {
			return err
		}
		var (
			first, last int64
			lastHash    []byte
			chatID      int64
			employees   = map[string]bool{}
			contacts    = map[string]bool{}
			mediaSHA    = map[string]bool{}
		)
		for rows.Next() {
			var (
				seq, at, chat int64
				meta, hash    []byte
			)
			if err := rows.Scan(&seq, &at, &chat, &meta, &hash); err != nil {
				rows.Close()
				return t.s.wrap(err)
			}
			if m, err := compliance.DecodeMeta(meta); err == nil {
				for _, e := range append([]string{m.Employee}, append(m.Added, m.Removed...)...) {
					employees[e] = e != ""
				}
				contacts[m.Contact] = m.Contact != ""
				if at < us(cutoff) && m.MediaSHA256 != "" {
					mediaSHA[m.MediaSHA256] = true
				}
			}
			if at >= us(cutoff) {
				break
			}
			if first == 0 {
				first = seq
			}
			last, lastHash, chatID = seq, hash, chat
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return t.s.wrap(err)
		}
		if last == 0 {
			return nil
		}
		// Is the stream under a hold? Its chat, any contact or employee its records name, or the
		// stream's own subject.
		kind, subject, _ := strings.Cut(stream, ":")
		switch kind {
		case "chat":
			isHeld = held[compliance.HoldChat+":"+subject]
			if chatID == 0 {
				chatID, _ = strconv.ParseInt(subject, 10, 64)
			}
		case "contact":
			isHeld = held[compliance.HoldContact+":"+subject]
		case "employee":
			isHeld = held[compliance.HoldEmployee+":"+subject]
		}
		if kind == "chat" {
			// The chat's current members and customer too, though no record names them yet.
			crow, err := t.query(ctx, `SELECT contact FROM chats WHERE id = $1`, chatID)
			if err == nil {
				for crow.Next() {
					var c string
					_ = crow.Scan(&c)
					contacts[c] = true
				}
				crow.Close()
			}
			mrow, err := t.query(ctx, `SELECT employee_id FROM chat_members WHERE chat_id = $1`, chatID)
			if err == nil {
				for mrow.Next() {
					var e string
					_ = mrow.Scan(&e)
					employees[e] = true
				}
				mrow.Close()
			}
		}
		for e, ok := range employees {
			isHeld = isHeld || ok && held[compliance.HoldEmployee+":"+e]
		}
		for c, ok := range contacts {
			isHeld = isHeld || ok && held[compliance.HoldContact+":"+c]
		}
		if isHeld {
			return nil
		}
		d = Disposal{Stream: stream, Seq: last, Records: last - first + 1}
		copy(d.Hash[:], lastHash)
		if _, err := t.exec(ctx, `INSERT INTO archive_disposals (stream, through_seq, hash, records, disposed_us) VALUES ($1, $2, $3, $4, $5)`,
			stream, last, lastHash, d.Records, us(now)); err != nil {
			return fmt.Errorf("record disposal: %w", err)
		}
		if err := t.Append(ctx, compliance.Event{Stream: compliance.AdminStream, At: now, Kind: compliance.KindDisposed, Actor: actor,
			Meta: compliance.Meta{Stream: stream, Seq: last, Hash: d.Hash.String(), Count: int(d.Records), Reason: "retention"}}); err != nil {
			return err
		}
		if _, err := t.exec(ctx, `DELETE FROM archive WHERE stream = $1 AND seq <= $2`, stream, last); err != nil {
			return fmt.Errorf("remove records: %w", err)
		}
		if _, err := t.exec(ctx, `DELETE FROM media_refs WHERE stream = $1 AND seq <= $2`, stream, last); err != nil {
			return fmt.Errorf("remove media references: %w", err)
		}
		for sha := range mediaSHA {
			var refs int
			if err := t.queryRow(ctx, `SELECT COUNT(*) FROM media_refs WHERE sha256 = $1`, sha).Scan(&refs); err != nil {
				return t.s.wrap(err)
			}
			if refs > 0 {
				continue
			}
			if _, err := t.exec(ctx, `DELETE FROM media_sources WHERE sha256 = $1`, sha); err != nil {
				return err
			}
			r, err := t.exec(ctx, `DELETE FROM media WHERE sha256 = $1`, sha)
			if err != nil {
				return err
			}
			if n, _ := r.RowsAffected(); n > 0 {
				media++
			}
		}
		return nil
	})
	return d, isHeld, media, err
}
