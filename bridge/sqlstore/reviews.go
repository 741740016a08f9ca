package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/completeness"
	"github.com/wxteams/wxteams/compliance/supervision"
)

// This file is the review queue: listing items, assigning and deciding them (each step in one
// transaction with its record in the supervision stream, the reviewer's note as the record's
// content — encrypted at rest like message bodies, never in a plain column), the daily random
// sample of conversations, and the report.

const reviewColumns = `id, tenant, chat_id, message_id, employee_id, contact, reason, rules, day, state, assignee, decision, decided_by, created_us, decided_us`

func scanReview(row interface{ Scan(...any) error }) (supervision.ReviewItem, error) {
	var (
		it               supervision.ReviewItem
		rules            string
		created, decided int64
	)
	err := row.Scan(&it.ID, &it.Tenant, &it.ChatID, &it.MessageID, &it.Employee, &it.Contact, &it.Reason, &rules, &it.Day,
		&it.State, &it.Assignee, &it.Decision, &it.DecidedBy, &created, &decided)
	if rules != "" {
		it.Rules = strings.Split(rules, ",")
	}
	it.CreatedAt, it.DecidedAt = fromUS(created), fromUS(decided)
	return it, err
}

// ReviewItems lists the review items f selects, oldest first, and how many it selects in all.
func (s *Store) ReviewItems(ctx context.Context, f supervision.ReviewFilter) ([]supervision.ReviewItem, int, error) {
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	switch f.State {
	case "":
	case "backlog":
		where = append(where, "state <> "+arg(supervision.StateClosed))
	default:
		where = append(where, "state = "+arg(f.State))
	}
	if f.Reason != "" {
		where = append(where, "reason = "+arg(f.Reason))
	}
	if f.Rule != "" {
		// rules holds "id@version" refs, comma-separated.
		where = append(where, "(',' || rules) LIKE "+arg("%,"+likeEscape(f.Rule)+"@%")+" ESCAPE '\\'")
	}
	if f.Employee != "" {
		where = append(where, "employee_id = "+arg(f.Employee))
	}
	if f.Assignee != "" {
		where = append(where, "assignee = "+arg(f.Assignee))
	}
	if !f.From.IsZero() {
		where = append(where, "created_us >= "+arg(us(f.From)))
	}
	if !f.To.IsZero() {
		where = append(where, "created_us < "+arg(us(f.To)))
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var total int
	if err := s.db.QueryRowContext(ctx, s.rebind(`SELECT COUNT(*) FROM review_items`+cond), args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count review items: %w", s.wrap(err))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 500)
	q := `SELECT ` + reviewColumns + ` FROM review_items` + cond + ` ORDER BY id LIMIT ` + arg(limit) + ` OFFSET ` + arg(max(f.Offset, 0))
	items, err := s.queryReviews(ctx, q, args...)
	return items, total, err
}

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

func (s *Store) queryReviews(ctx context.Context, q string, args ...any) ([]supervision.ReviewItem, error) {
	rows, err := s.db.QueryContext(ctx, s.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("read review items: %w", s.wrap(err))
	}
	defer rows.Close()
	out := []supervision.ReviewItem{}
	for rows.Next() {
		it, err := scanReview(rows)
		if err != nil {
			return nil, fmt.Errorf("read review items: %w", s.wrap(err))
		}
		out = append(out, it)
	}
	return out, s.wrap(rows.Err())
}

// ReviewItem returns one review item (supervision.ErrNoReview when there is none).
func (s *Store) ReviewItem(ctx context.Context, id int64) (supervision.ReviewItem, error) {
	it, err := scanReview(s.db.QueryRowContext(ctx, s.rebind(`SELECT `+reviewColumns+` FROM review_items WHERE id = $1`), id))
	if isNoRows(err) {
		return it, fmt.Errorf("review item %d: %w", id, supervision.ErrNoReview)
	}
	if err != nil {
		return it, fmt.Errorf("review item %d: %w", id, s.wrap(err))
	}
	return it, nil
}

// stateConflict is a step the item's state refused: it is supervision.ErrState and, for callers
// that branch on the store's errors, bridge.ErrConflict.
// badStep is a step asked for wrongly: invalid input to the store, a bad step to the API.
type badStep struct{ err error }

func (e badStep) Error() string   { return e.err.Error() }
func (e badStep) Unwrap() []error { return []error{e.err, bridge.ErrInvalid, supervision.ErrBadStep} }

type stateConflict struct{ err error }

func (e stateConflict) Error() string   { return e.err.Error() }
func (e stateConflict) Unwrap() []error { return []error{e.err, bridge.ErrConflict} }

// changeReview reads item id in a transaction, lets step change it, writes it back only if nobody
// changed it meanwhile (else bridge.ErrConflict: one of two concurrent steps wins), and archives
// the event event returns, all in that transaction.
func (s *Store) changeReview(ctx context.Context, id int64, step func(*supervision.ReviewItem) error, event func(old, now supervision.ReviewItem) compliance.Event) (supervision.ReviewItem, error) {
	var out supervision.ReviewItem
	err := s.InTx(ctx, func(btx bridge.Tx) error {
		t := btx.(*tx)
		old, err := scanReview(t.queryRow(ctx, `SELECT `+reviewColumns+` FROM review_items WHERE id = $1`, id))
		if isNoRows(err) {
			return fmt.Errorf("review item %d: %w", id, supervision.ErrNoReview)
		}
		if err != nil {
			return fmt.Errorf("review item %d: %w", id, t.s.wrap(err))
		}
		it := old
		it.Rules = slices.Clone(old.Rules)
		if err := step(&it); err != nil {
			if errors.Is(err, supervision.ErrState) {
				return stateConflict{err}
			}
			return badStep{err}
		}
		res, err := t.exec(ctx, `UPDATE review_items SET state = $1, assignee = $2, decision = $3, decided_by = $4, decided_us = $5
			WHERE id = $6 AND state = $7 AND assignee = $8 AND decided_us = $9`,
			it.State, it.Assignee, it.Decision, it.DecidedBy, us(it.DecidedAt), id, old.State, old.Assignee, us(old.DecidedAt))
		if err != nil {
			return fmt.Errorf("review item %d: %w", id, t.s.wrap(err))
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("review item %d was changed meanwhile by someone else; reload it: %w (%w)", id, supervision.ErrChanged, bridge.ErrConflict)
		}
		out = it
		return t.Append(ctx, event(old, it))
	})
	return out, err
}

func reviewEvent(it supervision.ReviewItem, kind compliance.Kind, actor string, now time.Time) compliance.Event {
	return compliance.Event{Stream: compliance.SupervisionStream, ChatID: it.ChatID, Tenant: it.Tenant, At: now, Kind: kind, Actor: actor,
		Meta: compliance.Meta{Subject: supervision.ReviewSubject(it.ID), MessageID: it.MessageID, Employee: it.Employee, Contact: it.Contact}}
}

// AssignReview gives item id to assignee (a reviewer: the actor themself, or another), archived
// with who did it (Meta.From the previous assignee, Meta.To the new).
func (s *Store) AssignReview(ctx context.Context, id int64, assignee, actor string, now time.Time) (supervision.ReviewItem, error) {
	return s.changeReview(ctx, id, func(it *supervision.ReviewItem) error { return it.Assign(assignee) },
		func(old, it supervision.ReviewItem) compliance.Event {
			ev := reviewEvent(it, compliance.KindReviewAssigned, actor, now)
			ev.Meta.From, ev.Meta.To = old.Assignee, it.Assignee
			return ev
		})
}

// DecideReview records a reviewer's decision on item id, archived with who made it (Meta.Reason
// the decision, Meta.From/To the states) and the note as the record's content.
func (s *Store) DecideReview(ctx context.Context, id int64, decision, note, actor string, now time.Time) (supervision.ReviewItem, error) {
	return s.changeReview(ctx, id, func(it *supervision.ReviewItem) error { return it.Decide(decision, note, actor, now) },
		func(old, it supervision.ReviewItem) compliance.Event {
			ev := reviewEvent(it, compliance.KindReviewDecided, actor, now)
			ev.Meta.Reason, ev.Meta.From, ev.Meta.To = decision, old.State, it.State
			ev.Content.Text = note
			return ev
		})
}

// ReviewHistory returns the records of item id in the supervision stream (opened, assigned,
// decided — notes opened), oldest first. Only the part of the stream from the item's opening on is
// read.
func (s *Store) ReviewHistory(ctx context.Context, id int64) ([]compliance.Record, error) {
	it, err := s.ReviewItem(ctx, id)
	if err != nil {
		return nil, err
	}
	subject := supervision.ReviewSubject(id)
	needle := []byte(`"subject":"` + subject + `"`)
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT `+recordColumns+` FROM archive
		WHERE stream = $1 AND at_us >= $2 AND kind IN ($3, $4, $5) ORDER BY seq`),
		compliance.SupervisionStream, us(it.CreatedAt), compliance.KindReviewOpened, compliance.KindReviewAssigned, compliance.KindReviewDecided)
	if err != nil {
		return nil, fmt.Errorf("review item %d history: %w", id, s.wrap(err))
	}
	defer rows.Close()
	var out []compliance.Record
	for rows.Next() {
		r, key, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("review item %d history: %w", id, s.wrap(err))
		}
		if !strings.Contains(string(r.Meta), string(needle)) {
			continue
		}
		if m, err := compliance.DecodeMeta(r.Meta); err != nil || m.Subject != subject {
			continue
		}
		if err := s.openBody(ctx, &r, key); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, s.wrap(rows.Err())
}

// SampleResult is what a day's sampling did.
type SampleResult struct {
	Day     string `json:"day"`
	Percent int    `json:"percent"`
	// Done is true when the day had been sampled already (by another replica, or an earlier run):
	// nothing was added.
	Done bool `json:"done"`
	// Conversations and Sampled count, per employee, the conversations they had that day and how
	// many were drawn.
	Conversations map[string]int `json:"conversations"`
	Sampled       map[string]int `json:"sampled"`
	Items         []int64        `json:"items"`
}

// sampledPrefix names a day's sampling claim in supervision_settings ("sampled:2026-11-02" = the
// percent it was drawn at; "0" when sample_percent was 0 then and nothing was drawn).
const sampledPrefix = "sampled:"

// SampleDay draws the day's random sample (day: any time on that UTC day): for each employee, of
// the n conversations (chats) they had messages in that day — a message they wrote, or a
// customer's message in a chat they are a member of now (chat_members as it is when the sample is
// drawn, not as it was that day), as the archive holds them — round-up(p % × n) chosen uniformly
// at random, each opened as a sample review item and archived. p is the sample_percent setting.
// A day is sampled once: the first run claims it (a row only one transaction can insert, on every
// replica's shared database) and a later run adds nothing. At 0 nothing is drawn, but the day is
// marked as handled at 0 (LastSampledDay counts it), a claim a later run at p > 0 may still take.
// A day that has not ended at now (its midnight plus completeness.Grace) is refused
// (completeness.ErrNotEnded): its conversations are not all in yet.
func (s *Store) SampleDay(ctx context.Context, day time.Time, actor string, now time.Time) (SampleResult, error) {
	start := day.UTC().Truncate(24 * time.Hour)
	res := SampleResult{Day: start.Format(time.DateOnly), Conversations: map[string]int{}, Sampled: map[string]int{}, Items: []int64{}}
	if end, _ := completeness.EndOf(res.Day); now.Before(end) {
		return res, fmt.Errorf("%s cannot be sampled before %s: %w", res.Day, end.Format(time.RFC3339), completeness.ErrNotEnded)
	}
	v, err := s.Setting(ctx, supervision.SettingSamplePercent)
	if err != nil {
		return res, err
	}
	if res.Percent, err = supervision.ParsePercent(v); err != nil {
		return res, err
	}
	if res.Percent == 0 {
		if _, err := s.db.ExecContext(ctx, s.rebind(`INSERT INTO supervision_settings (name, value) VALUES ($1, '0') ON CONFLICT (name) DO NOTHING`),
			sampledPrefix+res.Day); err != nil {
			return res, fmt.Errorf("sample %s: %w", res.Day, s.wrap(err))
		}
		return res, nil
	}
	err = s.InTx(ctx, func(btx bridge.Tx) error {
		t := btx.(*tx)
		res.Conversations, res.Sampled, res.Items = map[string]int{}, map[string]int{}, []int64{}
		claim, err := t.exec(ctx, `INSERT INTO supervision_settings (name, value) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value WHERE supervision_settings.value = '0'`,
			sampledPrefix+res.Day, strconv.Itoa(res.Percent))
		if err != nil {
			return fmt.Errorf("sample %s: %w", res.Day, t.s.wrap(err))
		}
		if n, err := claim.RowsAffected(); err != nil || n == 0 {
			res.Done = true
			return nil
		}
		convs, err := t.conversations(ctx, start, start.Add(24*time.Hour))
		if err != nil {
			return fmt.Errorf("sample %s: %w", res.Day, err)
		}
		var events []compliance.Event
		for _, emp := range slices.Sorted(maps.Keys(convs)) {
			chats := convs[emp]
			picked, err := supervision.Pick(chats, supervision.SampleSize(res.Percent, len(chats)))
			if err != nil {
				return err
			}
			res.Conversations[emp], res.Sampled[emp] = len(chats), len(picked)
			for _, c := range picked {
				it := supervision.ReviewItem{ChatID: c.id, Employee: emp, Contact: c.contact, Tenant: c.tenant, Reason: supervision.ReasonSample,
					Day: res.Day, State: supervision.StateOpen, CreatedAt: now.UTC().Truncate(time.Microsecond)}
				err := t.queryRow(ctx, `INSERT INTO review_items (tenant, chat_id, employee_id, contact, reason, day, state, created_us)
					VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
					ON CONFLICT (day, chat_id, employee_id) WHERE reason = 'sample' DO NOTHING RETURNING id`,
					it.Tenant, it.ChatID, it.Employee, it.Contact, it.Reason, it.Day, it.State, us(it.CreatedAt)).Scan(&it.ID)
				if isNoRows(err) {
					continue // sampled already
				}
				if err != nil {
					return fmt.Errorf("sample %s: %w", res.Day, t.s.wrap(err))
				}
				res.Items = append(res.Items, it.ID)
				ev := reviewEvent(it, compliance.KindReviewOpened, actor, now)
				ev.Meta.Reason, ev.Meta.Count = supervision.ReasonSample, len(chats)
				ev.Meta.Query = "day=" + res.Day + " sample_percent=" + strconv.Itoa(res.Percent)
				events = append(events, ev)
			}
		}
		return t.Append(ctx, events...)
	})
	return res, err
}

// LastSampledDay is the latest day sampling has handled — drawn, or marked at 0 % — ("" when
// none has been).
func (s *Store) LastSampledDay(ctx context.Context) (string, error) {
	var name *string
	if err := s.db.QueryRowContext(ctx, s.rebind(`SELECT MAX(name) FROM supervision_settings WHERE name LIKE $1`), sampledPrefix+"%").Scan(&name); err != nil {
		return "", fmt.Errorf("latest sampled day: %w", s.wrap(err))
	}
	if name == nil {
		return "", nil
	}
	return strings.TrimPrefix(*name, sampledPrefix), nil
}

type conversation struct {
	id              int64
	contact, tenant string
}

// conversations lists, per employee, the chats they had messages in during [from, to): chats they
// wrote in, and chats whose customer wrote there and of which they are a member now (chat_members
// as it is when the sample is drawn: an employee who left the chat since is not counted for the
// customer's messages, one added since is).
func (t *tx) conversations(ctx context.Context, from, to time.Time) (map[string][]conversation, error) {
	rows, err := t.query(ctx, `SELECT DISTINCT a.chat_id, a.kind, a.actor, c.contact, c.tenant FROM archive a JOIN chats c ON c.id = a.chat_id
		WHERE a.at_us >= $1 AND a.at_us < $2 AND a.kind IN ($3, $4) AND a.chat_id <> 0`,
		us(from), us(to), compliance.KindEmployeeMessage, compliance.KindCustomerMessage)
	if err != nil {
		return nil, t.s.wrap(err)
	}
	type key struct {
		emp  string
		chat int64
	}
	seen := map[key]bool{}
	out := map[string][]conversation{}
	add := func(emp string, c conversation) {
		if emp == "" || seen[key{emp, c.id}] {
			return
		}
		seen[key{emp, c.id}] = true
		out[emp] = append(out[emp], c)
	}
	customerChats := map[int64]conversation{}
	for rows.Next() {
		var (
			c           conversation
			kind, actor string
		)
		if err := rows.Scan(&c.id, &kind, &actor, &c.contact, &c.tenant); err != nil {
			rows.Close()
			return nil, t.s.wrap(err)
		}
		if kind == string(compliance.KindEmployeeMessage) {
			add(strings.TrimPrefix(actor, "employee:"), c)
		} else {
			customerChats[c.id] = c
		}
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, t.s.wrap(err)
	}
	rows.Close()
	if len(customerChats) > 0 {
		// The members of every chat a customer wrote in that day, in one query.
		members, err := t.query(ctx, `SELECT DISTINCT m.chat_id, m.employee_id FROM archive a JOIN chat_members m ON m.chat_id = a.chat_id
			WHERE a.at_us >= $1 AND a.at_us < $2 AND a.kind = $3 AND a.chat_id <> 0`, us(from), us(to), compliance.KindCustomerMessage)
		if err != nil {
			return nil, t.s.wrap(err)
		}
		defer members.Close()
		for members.Next() {
			var chat int64
			var emp string
			if err := members.Scan(&chat, &emp); err != nil {
				return nil, t.s.wrap(err)
			}
			if c, ok := customerChats[chat]; ok {
				add(emp, c)
			}
		}
		if err := members.Err(); err != nil {
			return nil, t.s.wrap(err)
		}
	}
	for emp := range out {
		slices.SortFunc(out[emp], func(a, b conversation) int { return int(a.id - b.id) })
	}
	return out, nil
}

// ReviewReport sums up the review queue: items opened in [from, to) per reason, rule and decision
// with their time to review, and the backlog (items not closed, whenever opened) by age at now.
func (s *Store) ReviewReport(ctx context.Context, from, to, now time.Time) (supervision.Report, error) {
	var (
		where []string
		args  []any
	)
	if !from.IsZero() {
		args = append(args, us(from))
		where = append(where, "created_us >= $"+strconv.Itoa(len(args)))
	}
	if !to.IsZero() {
		args = append(args, us(to))
		where = append(where, "created_us < $"+strconv.Itoa(len(args)))
	}
	q := `SELECT ` + reviewColumns + ` FROM review_items`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	items, err := s.queryReviews(ctx, q+` ORDER BY id`, args...)
	if err != nil {
		return supervision.Report{}, err
	}
	backlog, err := s.queryReviews(ctx, `SELECT `+reviewColumns+` FROM review_items WHERE state <> $1 ORDER BY id`, supervision.StateClosed)
	if err != nil {
		return supervision.Report{}, err
	}
	return supervision.BuildReport(items, backlog, from, to, now), nil
}
