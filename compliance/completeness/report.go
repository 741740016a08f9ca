// Package completeness is the daily completeness report: for one day, per channel and archive
// stream kind, what the bridge received, archived, delivered, failed to deliver, could not tell
// the outcome of and still has waiting; and every gap — a delivery pending longer than the policy
// allows, a push or activity refused after it was received, a chain that does not verify. A report
// is signed with the checkpoint key (Ed25519, WXTEAMS_SIGNING_KEY) and archived in the admin
// stream, so that what it says about a day cannot later be changed unseen.
//
// It defines the report, its canonical JSON, its signature and its text form. It does no I/O
// beyond writing text to an io.Writer: the store fills a report (bridge/sqlstore), cmd/wxteams
// archives and prints it. It imports only compliance.
package completeness

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/wxteams/wxteams/compliance"
)

// Version is the report format's version. Version 2 added Final, Late, RefusedByPolicy and the
// delivery_late gap; a reader reads versions 1 and 2 and refuses others.
const Version = 2

// Grace is how long after a day's end (midnight UTC) its report and its review sample wait, so
// that the steps stamped just before midnight have committed. Before then the day has not ended
// for them: a report made earlier is provisional (Final false) and is never archived.
const Grace = 5 * time.Minute

// ErrNotEnded means a day has not ended yet (with Grace): its report cannot be archived, nor its
// sample drawn.
var ErrNotEnded = errors.New("the day has not ended yet")

// EndOf is when day (YYYY-MM-DD, UTC) has ended for reports and samples: its midnight plus Grace.
func EndOf(day string) (time.Time, error) {
	_, to, err := DayBounds(day)
	return to.Add(Grace), err
}

// Ended reports whether day has ended at now (its midnight plus Grace has passed); a day that
// cannot be parsed has not.
func Ended(day string, now time.Time) bool {
	end, err := EndOf(day)
	return err == nil && !now.Before(end)
}

// LastEnded is the latest day that has ended at now: yesterday, once Grace has passed after
// midnight, else the day before.
func LastEnded(now time.Time) string { return DayOf(now.Add(-Grace - 24*time.Hour)) }

// Gap kinds.
const (
	// GapOverdue: a delivery pending or being sent for longer than the policy allows.
	GapOverdue = "delivery_overdue"
	// GapRefused: pushes or activities that were received (they passed authentication) and then
	// refused: not archived, so the channel may or may not have sent them again.
	GapRefused = "refused_after_receipt"
	// GapChain: a stream whose chain does not verify across the day's records.
	GapChain = "chain_broken"
	// GapLate: a delivery created that day whose outcome (delivered, failed, unknown) came more
	// than the policy allows after it was created. It finished, but late.
	GapLate = "delivery_late"
)

// PolicyReasons are the refusal reasons that are policy, not loss: the receipt was refused on
// purpose and archived as a refused call (bot: an activity from another tenant, archived as
// message.refused in the admin stream). They are counted (Counts.RefusedByPolicy), never gaps.
var PolicyReasons = map[string]bool{"not_allowed": true}

// ChannelNone is the channel of records about neither side (administration, chat status …).
const ChannelNone = "none"

// Counts are what happened on one channel in one kind of stream.
type Counts struct {
	// Received: inbound messages archived (customer.message on WeChat, employee.message on Teams).
	Received int64 `json:"received"`
	// Archived: every record archived that day.
	Archived  int64 `json:"archived"`
	Delivered int64 `json:"delivered"`
	Failed    int64 `json:"failed"`
	// Unknown: deliveries whose outcome the channel left unknown (never resent blindly).
	Unknown int64 `json:"unknown"`
	// Retries: retryable failures after which another attempt was scheduled.
	Retries int64 `json:"retries"`
	// Waiting: deliveries created by the day's end and still pending or being sent when the
	// report was made; Overdue those of them older than the policy allows.
	Waiting int64 `json:"waiting"`
	Overdue int64 `json:"overdue"`
	// Refused: pushes or activities refused after they were received and not archived (channel
	// rows only): gaps.
	Refused int64 `json:"refused_after_receipt"`
	// Late: deliveries created that day whose outcome came more than the policy allows after
	// they were created (version 2).
	Late int64 `json:"late"`
	// RefusedByPolicy: receipts refused by policy and archived as refused calls (PolicyReasons;
	// channel rows only): not gaps (version 2).
	RefusedByPolicy int64 `json:"refused_by_policy"`
}

func (c *Counts) add(o Counts) {
	c.Received += o.Received
	c.Archived += o.Archived
	c.Delivered += o.Delivered
	c.Failed += o.Failed
	c.Unknown += o.Unknown
	c.Retries += o.Retries
	c.Waiting += o.Waiting
	c.Overdue += o.Overdue
	c.Refused += o.Refused
	c.Late += o.Late
	c.RefusedByPolicy += o.RefusedByPolicy
}

// Row is one channel and stream kind.
type Row struct {
	Channel string `json:"channel"` // wechat, teams, or none
	// Streams is the kind of archive stream: chat, contact, employee, admin; "" for refusals,
	// which never reached a stream.
	Streams string `json:"streams"`
	Counts
}

// Gap is one thing the day's record is missing or cannot vouch for. It names ids, never text.
type Gap struct {
	Kind    string `json:"kind"`
	Channel string `json:"channel,omitempty"`
	Stream  string `json:"stream,omitempty"`
	ChatID  int64  `json:"chat_id,omitempty"`
	// OutboxID, MessageID, State, Attempts, Since and AgeSeconds describe an overdue delivery
	// (since when it has waited, and how long that was when the report was made) or a late one
	// (created at Since, its outcome State at OutcomeAt, AgeSeconds after it was created).
	OutboxID   int64     `json:"outbox_id,omitempty"`
	MessageID  string    `json:"message_id,omitempty"`
	State      string    `json:"state,omitempty"`
	Attempts   int       `json:"attempts,omitempty"`
	Since      time.Time `json:"since,omitzero"`
	AgeSeconds int64     `json:"age_seconds,omitempty"`
	OutcomeAt  time.Time `json:"outcome_at,omitzero"`
	// Reason says why: the refusal's reason, the chain's problem.
	Reason string `json:"reason,omitempty"`
	// Count is how many refusals the gap sums up.
	Count int64 `json:"count,omitempty"`
}

// Report is one day's completeness report.
type Report struct {
	Version int    `json:"version"`
	Day     string `json:"day"` // YYYY-MM-DD, in UTC
	// From and To bound the day: records stamped From ≤ at < To.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// MadeAt is when the report was made: waiting and overdue are as of then.
	MadeAt time.Time `json:"made_at"`
	// Final is true when the report was made after the day ended (To plus Grace): only a final
	// report is archived. A provisional one (made earlier) says what was known so far; the day's
	// traffic may still grow. Version 1 reports lack it (read as false; the archived ones were
	// final unless made by hand before the day ended).
	Final bool `json:"final"`
	// OverdueAfter is the policy: a delivery waiting longer is a gap (WXTEAMS_DELIVERY_OVERDUE).
	OverdueAfter string `json:"overdue_after"`
	Rows         []Row  `json:"rows"`
	// Channels sums the rows per channel; Total sums them all.
	Channels []Row  `json:"channels"`
	Total    Counts `json:"total"`
	Gaps     []Gap  `json:"gaps"`
	// GapsOmitted counts overdue and late deliveries beyond the ones listed (the list is bounded).
	GapsOmitted int64 `json:"gaps_omitted,omitempty"`
	// StreamsChecked is how many streams with records that day had their chain checked across
	// the day (from the record before the day's first to the one after its last, or the head).
	StreamsChecked int64 `json:"streams_checked"`
	// Notes say what the report cannot vouch for.
	Notes []string `json:"notes,omitempty"`
}

// DayBounds returns the UTC day named YYYY-MM-DD.
func DayBounds(day string) (from, to time.Time, err error) {
	from, err = time.Parse(time.DateOnly, day)
	if err != nil {
		return from, to, fmt.Errorf("day %q: want YYYY-MM-DD, such as 2026-11-02", day)
	}
	return from, from.AddDate(0, 0, 1), nil
}

// DayOf names the UTC day t falls on.
func DayOf(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// New starts the report of day (YYYY-MM-DD, UTC) made at madeAt.
func New(day string, madeAt time.Time, overdueAfter time.Duration) (*Report, error) {
	from, to, err := DayBounds(day)
	if err != nil {
		return nil, err
	}
	return &Report{Version: Version, Day: day, From: from, To: to, MadeAt: madeAt.UTC().Truncate(time.Second),
		Final: !madeAt.Before(to.Add(Grace)), OverdueAfter: overdueAfter.String(), Rows: []Row{}, Channels: []Row{}, Gaps: []Gap{}}, nil
}

// Row returns the counts of channel and stream kind, adding the row if it is new.
func (r *Report) Row(channel, streams string) *Counts {
	for i := range r.Rows {
		if r.Rows[i].Channel == channel && r.Rows[i].Streams == streams {
			return &r.Rows[i].Counts
		}
	}
	r.Rows = append(r.Rows, Row{Channel: channel, Streams: streams})
	return &r.Rows[len(r.Rows)-1].Counts
}

// Finish orders rows and gaps and sums the rows per channel and in all. Call it once the rows
// and gaps are in.
func (r *Report) Finish() {
	sort.Slice(r.Rows, func(i, j int) bool {
		a, b := r.Rows[i], r.Rows[j]
		if a.Channel != b.Channel {
			return a.Channel < b.Channel
		}
		return a.Streams < b.Streams
	})
	sort.SliceStable(r.Gaps, func(i, j int) bool {
		a, b := r.Gaps[i], r.Gaps[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Channel != b.Channel {
			return a.Channel < b.Channel
		}
		if a.OutboxID != b.OutboxID {
			return a.OutboxID < b.OutboxID
		}
		if a.Stream != b.Stream {
			return a.Stream < b.Stream
		}
		return a.Reason < b.Reason
	})
	r.Channels, r.Total = []Row{}, Counts{}
	for _, row := range r.Rows {
		if len(r.Channels) == 0 || r.Channels[len(r.Channels)-1].Channel != row.Channel {
			r.Channels = append(r.Channels, Row{Channel: row.Channel})
		}
		r.Channels[len(r.Channels)-1].add(row.Counts)
		r.Total.add(row.Counts)
	}
}

// Canonical is the report's canonical JSON: compact, fields in declaration order. Its SHA-256 is
// the report's hash, and it is what the signature covers.
func (r *Report) Canonical() ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode completeness report: %w", err)
	}
	return b, nil
}

// Signed is a report with its hash and signature, as archived, served and saved to a file.
type Signed struct {
	// Report is the canonical JSON of the report. Whitespace added around it (an indented file)
	// does not matter; any other change does.
	Report json.RawMessage `json:"report"`
	Hash   string          `json:"hash"` // hex SHA-256 of the canonical report
	KeyID  string          `json:"key_id,omitempty"`
	// Signature is Ed25519 over SignedText; absent when no signing key is configured.
	Signature []byte `json:"signature,omitempty"`
}

// signedText is what a signature covers: a versioned statement naming the day and the hash.
func signedText(day, hash string) []byte {
	return fmt.Appendf(nil, "wxteams completeness report v1\n%s\n%s\n", day, hash)
}

// Sign encodes the report and signs it with key (nil: hashed, not signed).
func Sign(r *Report, key ed25519.PrivateKey) (*Signed, error) {
	b, err := r.Canonical()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	s := &Signed{Report: b, Hash: hex.EncodeToString(sum[:])}
	if key != nil {
		s.KeyID = compliance.SigningKeyID(key.Public().(ed25519.PublicKey))
		s.Signature = ed25519.Sign(key, signedText(r.Day, s.Hash))
	}
	return s, nil
}

// ErrUnsigned means a report carries no signature to check.
var ErrUnsigned = errors.New("the report is not signed")

// Open checks a signed report — its hash, and with pub its signature — and returns the report.
// With pub nil only the hash is checked (which proves nothing against someone who can recompute
// it). Errors wrap compliance.ErrBadSignature when the signature does not verify.
func (s *Signed) Open(pub ed25519.PublicKey) (*Report, error) {
	var canonical bytes.Buffer
	if err := json.Compact(&canonical, s.Report); err != nil {
		return nil, fmt.Errorf("the report is not JSON: %w", err)
	}
	sum := sha256.Sum256(canonical.Bytes())
	if hex.EncodeToString(sum[:]) != s.Hash {
		return nil, fmt.Errorf("%w: the report's contents do not match its hash %s", compliance.ErrBadSignature, s.Hash)
	}
	dec := json.NewDecoder(bytes.NewReader(canonical.Bytes()))
	dec.DisallowUnknownFields()
	var r Report
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("read the report: %w", err)
	}
	if r.Version < 1 || r.Version > Version {
		return nil, fmt.Errorf("report format version %d; this wxteams reads versions 1 to %d", r.Version, Version)
	}
	if pub == nil {
		return &r, nil
	}
	if len(s.Signature) == 0 {
		return nil, ErrUnsigned
	}
	if s.KeyID != compliance.SigningKeyID(pub) {
		return nil, fmt.Errorf("%w: signed by %s, the key given is %s", compliance.ErrBadSignature, s.KeyID, compliance.SigningKeyID(pub))
	}
	if !ed25519.Verify(pub, signedText(r.Day, s.Hash), s.Signature) {
		return nil, compliance.ErrBadSignature
	}
	return &r, nil
}

// Event is the archive event of a signed report: in the admin stream, the day in Meta.Subject,
// the report's hash in Meta.Hash, its signature in Meta.Signature, the canonical report as the
// content's payload.
func (s *Signed) Event(day string, at time.Time, actor string, gaps int) compliance.Event {
	sig := ""
	if len(s.Signature) > 0 {
		sig = base64.StdEncoding.EncodeToString(s.Signature)
	}
	return compliance.Event{Stream: compliance.AdminStream, At: at, Kind: compliance.KindCompleteness, Actor: actor,
		Meta:    compliance.Meta{Subject: day, Hash: s.Hash, KeyID: s.KeyID, Count: gaps, Signature: sig},
		Content: compliance.Content{Payload: s.Report}}
}

// Backfill lists the days a daily job has to catch up on: every day after last (the latest day
// done; "" when none is) through through (the latest day that has ended), oldest first. With no
// last day it starts at first (the earliest day there is anything to do for; "" for through
// alone). At most max days are listed, the latest ones; skipped are the earlier days beyond max,
// which the job will not make (it names them in a warning).
func Backfill(last, first, through string, max int) (days, skipped []string) {
	end, err := time.Parse(time.DateOnly, through)
	if err != nil || max <= 0 {
		return nil, nil
	}
	start := end
	switch {
	case last != "":
		l, err := time.Parse(time.DateOnly, last)
		if err != nil {
			return nil, nil
		}
		start = l.AddDate(0, 0, 1)
	case first != "":
		if f, err := time.Parse(time.DateOnly, first); err == nil && f.Before(end) {
			start = f
		}
	}
	for d := start; !d.After(end); d = d.AddDate(0, 0, 1) {
		days = append(days, DayOf(d))
	}
	if len(days) > max {
		skipped, days = days[:len(days)-max], days[len(days)-max:]
	}
	return days, skipped
}
