package sqlstore

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/completeness"
)

// MaxOverdueListed bounds how many overdue and late deliveries a report lists one by one; the
// rest are counted (Report.GapsOmitted).
const MaxOverdueListed = 500

// CompletenessReport computes the completeness report of day (YYYY-MM-DD, UTC) as of now: what the
// archive holds for the day, per channel and stream kind; the deliveries created by the day's end
// and still waiting now, those waiting longer than overdue listed as gaps; the deliveries created
// that day whose outcome came more than overdue after they were created (late, gaps too); the
// pushes and activities refused after receipt during the day (those refused by policy and archived
// as refused calls counted apart, not gaps); and the chain of every stream with records that day,
// checked across the day. Made before the day ended (completeness.Ended), the report is
// provisional (Final false). It reads the day's records twice (once to count, once per
// stream to verify, plus the record before and after), so its cost follows the day's traffic, not
// the archive's size. It neither signs nor archives the report (MakeCompleteness does).
func (s *Store) CompletenessReport(ctx context.Context, day string, now time.Time, overdue time.Duration) (*completeness.Report, error) {
	rep, err := completeness.New(day, now, overdue)
	if err != nil {
		return nil, err
	}
	spans, err := s.countDay(ctx, rep)
	if err != nil {
		return nil, err
	}
	if err := s.waitingDeliveries(ctx, rep, now, overdue); err != nil {
		return nil, err
	}
	if err := s.lateDeliveries(ctx, rep, now, overdue); err != nil {
		return nil, err
	}
	if err := s.refusalsOfDay(ctx, rep); err != nil {
		return nil, err
	}
	for _, stream := range slices.Sorted(maps.Keys(spans)) {
		sp := spans[stream]
		problem, err := s.dayChainProblem(ctx, stream, sp.min, sp.max)
		if err != nil {
			return nil, err
		}
		rep.StreamsChecked++
		if problem != "" {
			g := completeness.Gap{Kind: completeness.GapChain, Stream: stream, Reason: problem}
			if id, ok := strings.CutPrefix(stream, "chat:"); ok {
				g.ChatID, _ = strconv.ParseInt(id, 10, 64)
			}
			rep.Gaps = append(rep.Gaps, g)
		}
	}
	rep.Notes = append(rep.Notes,
		"chains are checked across the day by their hashes and links; sealed contents are checked by `wxteams verify`",
		"refused_after_receipt counts what each replica had written when the report was made: a replica that crashed loses the refusals it had not written yet (at most a minute's); its log names each one",
		fmt.Sprintf("late deliveries are found in the outbox, which keeps finished deliveries for %[1]s: a report made within %[1]s of the day's end lists all of them, one made later only those still kept", days(bridge.KeepOutbox)))
	if rep.MadeAt.After(rep.To.Add(bridge.KeepOutbox)) {
		rep.Notes = append(rep.Notes, fmt.Sprintf("this report was made more than %s after the day ended: the day's finished deliveries may have been pruned from the outbox, so late ones may be missing", days(bridge.KeepOutbox)))
	}
	rep.Finish()
	return rep, nil
}

// seqSpan is the first and last sequence number a stream has on the day.
type seqSpan struct{ min, max int64 }

// streamKind is the part of a stream's name before the colon: chat, contact, employee, admin.
func streamKind(stream string) string {
	kind, _, _ := strings.Cut(stream, ":")
	return kind
}

// channelOf is the side a record is about: the channel its Meta names, else the side its kind
// belongs to, else none.
func channelOf(kind compliance.Kind, meta []byte) string {
	var m struct {
		Channel string `json:"channel"`
	}
	if json.Unmarshal(meta, &m) == nil && m.Channel != "" {
		return m.Channel
	}
	switch k := string(kind); {
	case strings.HasPrefix(k, "customer."):
		return string(bridge.ChannelWeChat)
	case strings.HasPrefix(k, "employee."):
		return string(bridge.ChannelTeams)
	}
	return completeness.ChannelNone
}

// countDay counts the day's records into rep and returns each stream's span of them.
func (s *Store) countDay(ctx context.Context, rep *completeness.Report) (map[string]seqSpan, error) {
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT stream, seq, kind, meta FROM archive WHERE at_us >= $1 AND at_us < $2`), us(rep.From), us(rep.To))
	if err != nil {
		return nil, fmt.Errorf("read the day's records: %w", s.wrap(err))
	}
	defer rows.Close()
	spans := map[string]seqSpan{}
	for rows.Next() {
		var (
			stream, kind string
			seq          int64
			meta         []byte
		)
		if err := rows.Scan(&stream, &seq, &kind, &meta); err != nil {
			return nil, fmt.Errorf("read the day's records: %w", s.wrap(err))
		}
		k := compliance.Kind(kind)
		c := rep.Row(channelOf(k, meta), streamKind(stream))
		c.Archived++
		switch k {
		case compliance.KindCustomerMessage, compliance.KindEmployeeMessage:
			c.Received++
		case compliance.KindDelivered:
			c.Delivered++
		case compliance.KindDeliveryFailed:
			c.Failed++
		case compliance.KindOutcomeUnknown:
			c.Unknown++
		case compliance.KindDeliveryRetry:
			c.Retries++
		}
		sp, ok := spans[stream]
		if !ok || seq < sp.min {
			sp.min = seq
		}
		if seq > sp.max {
			sp.max = seq
		}
		spans[stream] = sp
	}
	return spans, s.wrap(rows.Err())
}

// waitingDeliveries counts the deliveries created before the day's end and still pending or being
// sent at now, and lists those waiting longer than overdue.
func (s *Store) waitingDeliveries(ctx context.Context, rep *completeness.Report, now time.Time, overdue time.Duration) error {
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT id, chat_id, channel, state, attempts, created_us, message_id FROM outbox
		WHERE state IN ('pending', 'sending') AND created_us < $1 ORDER BY id`), us(rep.To))
	if err != nil {
		return fmt.Errorf("read waiting deliveries: %w", s.wrap(err))
	}
	defer rows.Close()
	for rows.Next() {
		var (
			g       completeness.Gap
			created int64
		)
		if err := rows.Scan(&g.OutboxID, &g.ChatID, &g.Channel, &g.State, &g.Attempts, &created, &g.MessageID); err != nil {
			return fmt.Errorf("read waiting deliveries: %w", s.wrap(err))
		}
		c := rep.Row(g.Channel, outcomeStreams(g.ChatID, g.Channel))
		c.Waiting++
		g.Since = fromUS(created)
		age := now.Sub(g.Since)
		if age < overdue {
			continue
		}
		c.Overdue++
		if int64(len(rep.Gaps)) >= MaxOverdueListed {
			rep.GapsOmitted++
			continue
		}
		g.Kind, g.AgeSeconds = completeness.GapOverdue, int64(age/time.Second)
		if g.ChatID != 0 {
			g.Stream = compliance.ChatStream(g.ChatID)
		}
		rep.Gaps = append(rep.Gaps, g)
	}
	return s.wrap(rows.Err())
}

// outcomeStreams is the kind of stream a delivery's outcome is archived in (bridge's outcomeStream).
func outcomeStreams(chatID int64, channel string) string {
	switch {
	case chatID != 0:
		return "chat"
	case channel == string(bridge.ChannelTeams):
		return "employee"
	}
	return "contact"
}

// lateKey matches a finished delivery with its outcome's record: the record's Meta names the
// delivery's channel, message, employee, contact and attempt.
type lateKey struct {
	channel, message, employee, contact string
	attempt                             int
}

// lateDeliveries counts and lists the deliveries created during the day whose outcome (delivered,
// failed, unknown) came more than overdue after they were created. A WeChat delivery's outcome
// time is when WeChat answered (outbox answered_us); any other's is its outcome record's time in
// the archive, found by reading the outcome records stamped from the day's start plus overdue on
// (an outcome before that is on time for every delivery of the day) and matching them to the
// day's finished deliveries (held in memory, ids only). Finished deliveries are pruned from the
// outbox after bridge.KeepOutbox: a report made later misses those.
func (s *Store) lateDeliveries(ctx context.Context, rep *completeness.Report, now time.Time, overdue time.Duration) error {
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT id, chat_id, channel, state, attempts, created_us, answered_us, message_id, employee_id, contact FROM outbox
		WHERE created_us >= $1 AND created_us < $2 AND state IN ($3, $4, $5) ORDER BY id`),
		us(rep.From), us(rep.To), string(bridge.OutboxDone), string(bridge.OutboxFailed), string(bridge.OutboxUnknown))
	if err != nil {
		return fmt.Errorf("read finished deliveries: %w", s.wrap(err))
	}
	defer rows.Close()
	candidates := map[lateKey][]completeness.Gap{}
	var late []completeness.Gap
	for rows.Next() {
		var (
			g                 completeness.Gap
			created, answered int64
			employee, contact string
		)
		if err := rows.Scan(&g.OutboxID, &g.ChatID, &g.Channel, &g.State, &g.Attempts, &created, &answered, &g.MessageID, &employee, &contact); err != nil {
			return fmt.Errorf("read finished deliveries: %w", s.wrap(err))
		}
		g.Kind, g.Since = completeness.GapLate, fromUS(created)
		if g.ChatID != 0 {
			g.Stream = compliance.ChatStream(g.ChatID)
		}
		if g.State == string(bridge.OutboxDone) && answered > 0 {
			if g.OutcomeAt = fromUS(answered); g.OutcomeAt.Sub(g.Since) > overdue {
				late = append(late, g)
			}
			continue
		}
		k := lateKey{g.Channel, g.MessageID, employee, contact, g.Attempts}
		candidates[k] = append(candidates[k], g)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read finished deliveries: %w", s.wrap(err))
	}
	rows.Close()
	if len(candidates) > 0 {
		found, err := s.outcomesAfter(ctx, rep.From.Add(overdue), now, candidates, overdue)
		if err != nil {
			return err
		}
		late = append(late, found...)
	}
	sort.Slice(late, func(i, j int) bool { return late[i].OutboxID < late[j].OutboxID })
	for _, g := range late {
		rep.Row(g.Channel, outcomeStreams(g.ChatID, g.Channel)).Late++
		if int64(len(rep.Gaps)) >= MaxOverdueListed {
			rep.GapsOmitted++
			continue
		}
		g.AgeSeconds = int64(g.OutcomeAt.Sub(g.Since) / time.Second)
		rep.Gaps = append(rep.Gaps, g)
	}
	return nil
}

// outcomesAfter reads the outcome records stamped in [from, now] and returns the candidates whose
// outcome record came more than overdue after they were created, OutcomeAt set. Each candidate
// takes its earliest matching record.
func (s *Store) outcomesAfter(ctx context.Context, from, now time.Time, candidates map[lateKey][]completeness.Gap, overdue time.Duration) ([]completeness.Gap, error) {
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT at_us, meta FROM archive WHERE at_us >= $1 AND at_us <= $2 AND kind IN ($3, $4, $5) ORDER BY at_us`),
		us(from), us(now), string(compliance.KindDelivered), string(compliance.KindDeliveryFailed), string(compliance.KindOutcomeUnknown))
	if err != nil {
		return nil, fmt.Errorf("read outcome records: %w", s.wrap(err))
	}
	defer rows.Close()
	var late []completeness.Gap
	for rows.Next() {
		var (
			at   int64
			meta []byte
		)
		if err := rows.Scan(&at, &meta); err != nil {
			return nil, fmt.Errorf("read outcome records: %w", s.wrap(err))
		}
		m, err := compliance.DecodeMeta(meta)
		if err != nil {
			continue // not ours to judge here; the chain check covers the record
		}
		k := lateKey{m.Channel, m.MessageID, m.Employee, m.Contact, m.Attempt}
		gs := candidates[k]
		if len(gs) == 0 {
			continue
		}
		outcome := fromUS(at)
		for i := 0; i < len(gs); i++ {
			if outcome.Before(gs[i].Since) {
				continue // an outcome before it was created is another delivery's
			}
			if outcome.Sub(gs[i].Since) > overdue {
				gs[i].OutcomeAt = outcome
				late = append(late, gs[i])
			}
			gs = append(gs[:i], gs[i+1:]...) // matched: on time or late, judged once
			break
		}
		if len(gs) == 0 {
			delete(candidates, k)
		} else {
			candidates[k] = gs
		}
	}
	return late, s.wrap(rows.Err())
}

// refusalsOfDay adds the pushes and activities refused after receipt during the day: those refused
// by policy and archived as refused calls (completeness.PolicyReasons) counted as such, the others
// as gaps.
func (s *Store) refusalsOfDay(ctx context.Context, rep *completeness.Report) error {
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT channel, reason, SUM(n) FROM receipt_refusals
		WHERE hour_us >= $1 AND hour_us < $2 GROUP BY channel, reason ORDER BY channel, reason`), us(rep.From), us(rep.To))
	if err != nil {
		return fmt.Errorf("read refusals after receipt: %w", s.wrap(err))
	}
	defer rows.Close()
	for rows.Next() {
		g := completeness.Gap{Kind: completeness.GapRefused}
		if err := rows.Scan(&g.Channel, &g.Reason, &g.Count); err != nil {
			return fmt.Errorf("read refusals after receipt: %w", s.wrap(err))
		}
		if completeness.PolicyReasons[g.Reason] {
			rep.Row(g.Channel, "").RefusedByPolicy += g.Count
			continue
		}
		rep.Row(g.Channel, "").Refused += g.Count
		rep.Gaps = append(rep.Gaps, g)
	}
	return s.wrap(rows.Err())
}

// dayChainProblem checks a stream's chain from the record before the day's first (seq minSeq) to
// the record after its last (maxSeq), or to the stream's head when there is none after it. It
// returns what is wrong, or "".
func (s *Store) dayChainProblem(ctx context.Context, stream string, minSeq, maxSeq int64) (string, error) {
	// The head first: a record appended after it was read is then among the rows read below.
	var (
		head     compliance.Head
		headHash []byte
	)
	err := s.db.QueryRowContext(ctx, s.rebind(`SELECT seq, hash FROM archive_heads WHERE stream = $1`), stream).Scan(&head.Seq, &headHash)
	switch {
	case isNoRows(err):
		return "the stream has no recorded head", nil
	case err != nil:
		return "", fmt.Errorf("read the head of %s: %w", stream, s.wrap(err))
	}
	copy(head.Hash[:], headHash)
	var (
		disposal     compliance.Head
		disposalHash []byte
	)
	err = s.db.QueryRowContext(ctx, s.rebind(`SELECT through_seq, hash FROM archive_disposals WHERE stream = $1 ORDER BY through_seq DESC LIMIT 1`), stream).
		Scan(&disposal.Seq, &disposalHash)
	if err != nil && !isNoRows(err) {
		return "", fmt.Errorf("read the disposals of %s: %w", stream, s.wrap(err))
	}
	copy(disposal.Hash[:], disposalHash)

	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT `+recordColumns+` FROM archive WHERE stream = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq`),
		stream, minSeq-1, maxSeq+1)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", stream, s.wrap(err))
	}
	defer rows.Close()
	var (
		v    *compliance.ChainVerifier
		last int64
	)
	switch {
	case minSeq == 1:
		v = compliance.NewChainVerifier(stream)
	case disposal.Seq >= minSeq-1:
		v = compliance.NewChainVerifierFrom(stream, disposal)
	}
	for rows.Next() {
		r, key, err := scanRecord(rows)
		if err != nil {
			return "", fmt.Errorf("read %s: %w", stream, s.wrap(err))
		}
		last = r.Seq
		if v == nil {
			if r.Seq != minSeq-1 {
				return fmt.Sprintf("seq %d, the record before the day's first, is missing", minSeq-1), nil
			}
			v = compliance.NewChainVerifierFrom(stream, compliance.Head{Seq: r.Seq, Hash: r.Hash})
			continue
		}
		if r.Seq <= v.Head().Seq {
			continue // disposed of; verification starts after the disposal
		}
		if err := v.Add(&r, key == ""); err != nil {
			return err.Error(), nil
		}
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("read %s: %w", stream, s.wrap(err))
	}
	if v == nil {
		return fmt.Sprintf("seq %d, the record before the day's first, is missing", minSeq-1), nil
	}
	if last <= maxSeq { // no record after the day's last: the chain must end at the head
		if err := v.Finish(head); err != nil {
			return err.Error(), nil
		}
	}
	return "", nil
}

// Completeness returns the archived report of day, or bridge.ErrNotFound.
func (s *Store) Completeness(ctx context.Context, day string) (*completeness.Signed, error) {
	var (
		sig    completeness.Signed
		report []byte
	)
	err := s.db.QueryRowContext(ctx, s.rebind(`SELECT hash, key_id, signature, report FROM completeness_reports WHERE day = $1`), day).
		Scan(&sig.Hash, &sig.KeyID, &sig.Signature, &report)
	switch {
	case isNoRows(err):
		return nil, fmt.Errorf("completeness report of %s: %w", day, bridge.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("read the completeness report of %s: %w", day, s.wrap(err))
	}
	sig.Report = report
	if len(sig.Signature) == 0 {
		sig.Signature = nil
	}
	return &sig, nil
}

// MakeCompleteness makes, signs (with key; nil leaves it unsigned) and archives the report of day
// — once: if it exists already, whichever replica or command made it, that one is returned and
// made is false. The report is stored and archived in the admin stream (compliance.completeness)
// in one transaction. A day that has not ended at now (its midnight plus completeness.Grace) is
// refused (completeness.ErrNotEnded): an archived report is final, never replaced.
func (s *Store) MakeCompleteness(ctx context.Context, day string, key ed25519.PrivateKey, overdue time.Duration, actor string, now time.Time) (signed *completeness.Signed, made bool, err error) {
	end, err := completeness.EndOf(day)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %v", bridge.ErrInvalid, err)
	}
	if now.Before(end) {
		return nil, false, fmt.Errorf("the report of %s cannot be archived before %s: %w", day, end.Format(time.RFC3339), completeness.ErrNotEnded)
	}
	if got, err := s.Completeness(ctx, day); err == nil {
		return got, false, nil
	} else if !errors.Is(err, bridge.ErrNotFound) {
		return nil, false, err
	}
	rep, err := s.CompletenessReport(ctx, day, now, overdue)
	if err != nil {
		return nil, false, err
	}
	signed, err = completeness.Sign(rep, key)
	if err != nil {
		return nil, false, err
	}
	err = s.InTx(ctx, func(btx bridge.Tx) error {
		t := btx.(*tx)
		made = false
		var got string
		err := t.queryRow(ctx, `INSERT INTO completeness_reports (day, made_us, hash, key_id, signature, report) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (day) DO NOTHING RETURNING day`, day, us(now), signed.Hash, signed.KeyID, append([]byte{}, signed.Signature...), []byte(signed.Report)).Scan(&got)
		switch {
		case isNoRows(err):
			return nil // another replica made it first
		case err != nil:
			return fmt.Errorf("store the completeness report: %w", t.s.wrap(err))
		}
		made = true
		return t.Append(ctx, signed.Event(day, now, actor, len(rep.Gaps)))
	})
	if err != nil {
		return nil, false, err
	}
	if !made {
		signed, err = s.Completeness(ctx, day)
	}
	return signed, made, err
}

// LastCompletenessDay is the latest day with an archived report ("" when there is none).
func (s *Store) LastCompletenessDay(ctx context.Context) (string, error) {
	var day *string
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(day) FROM completeness_reports`).Scan(&day); err != nil {
		return "", fmt.Errorf("latest completeness report: %w", s.wrap(err))
	}
	if day == nil {
		return "", nil
	}
	return *day, nil
}

// FirstArchiveDay is the UTC day of the archive's earliest record ("" when it is empty).
func (s *Store) FirstArchiveDay(ctx context.Context) (string, error) {
	var at *int64
	if err := s.db.QueryRowContext(ctx, `SELECT MIN(at_us) FROM archive`).Scan(&at); err != nil {
		return "", fmt.Errorf("earliest archive record: %w", s.wrap(err))
	}
	if at == nil {
		return "", nil
	}
	return completeness.DayOf(fromUS(*at)), nil
}

// AddReceiptRefusals adds counts of pushes and activities refused after receipt (each replica
// adds its own; the counts of an hour, channel and reason add up).
func (s *Store) AddReceiptRefusals(ctx context.Context, counts []bridge.RefusalCount) error {
	if len(counts) == 0 {
		return nil
	}
	return s.InTx(ctx, func(btx bridge.Tx) error {
		t := btx.(*tx)
		for _, c := range counts {
			if _, err := t.exec(ctx, `INSERT INTO receipt_refusals (hour_us, channel, reason, n) VALUES ($1, $2, $3, $4)
				ON CONFLICT (hour_us, channel, reason) DO UPDATE SET n = receipt_refusals.n + EXCLUDED.n`,
				us(c.Hour.UTC().Truncate(time.Hour)), string(c.Channel), c.Reason, c.N); err != nil {
				return fmt.Errorf("count refusals after receipt: %w", t.s.wrap(err))
			}
		}
		return nil
	})
}

// inboundKinds are the records only traffic from a channel makes: a customer's message or event,
// an employee's message, edit or deletion.
var inboundKinds = []compliance.Kind{compliance.KindCustomerMessage, compliance.KindCustomerEvent, compliance.KindLeave,
	compliance.KindUnsubscribe, compliance.KindRouting, compliance.KindEmployeeMessage, compliance.KindEmployeeEdit, compliance.KindEmployeeDelete}

// LastInbound returns when the latest record of inbound traffic (inboundKinds) was archived, by
// any replica, looking back no further than since; the zero time if there is none since then. It
// walks the archive's time index backwards from now, so it costs what was archived since the last
// arrival, never more than since allows.
func (s *Store) LastInbound(ctx context.Context, since time.Time) (time.Time, error) {
	args := []any{us(since)}
	marks := make([]string, len(inboundKinds))
	for i, k := range inboundKinds {
		args = append(args, string(k))
		marks[i] = "$" + strconv.Itoa(i+2)
	}
	var at int64
	err := s.db.QueryRowContext(ctx, s.rebind(`SELECT at_us FROM archive WHERE at_us >= $1 AND kind IN (`+strings.Join(marks, ", ")+`)
		ORDER BY at_us DESC LIMIT 1`), args...).Scan(&at)
	switch {
	case isNoRows(err):
		return time.Time{}, nil
	case err != nil:
		return time.Time{}, fmt.Errorf("last inbound record: %w", s.wrap(err))
	}
	return fromUS(at), nil
}

// LiveChats counts the chats whose customer can be written to now (active or capped).
func (s *Store) LiveChats(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM chats WHERE status IN ('active', 'capped')`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count live chats: %w", s.wrap(err))
	}
	return n, nil
}

// days words a whole number of days: "7 days".
func days(d time.Duration) string { return strconv.Itoa(int(d/(24*time.Hour))) + " days" }
