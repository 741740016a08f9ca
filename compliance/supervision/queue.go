package supervision

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// This file is the review queue's rules as pure functions: which step an item in a given state
// allows (assign, decide), how many conversations a daily sample takes and which, and the report
// of items per rule, time to review and backlog. The store applies a step in one transaction with
// its record; nothing here does I/O.

// ErrState refuses a step the item's state does not allow (deciding a closed item, say). The API
// answers it with 409.
var ErrState = errors.New("not allowed in the item's state")

// ErrChanged refuses a step on an item someone else changed meanwhile (of two concurrent
// decisions, one wins). The API answers it with 409.
var ErrChanged = errors.New("changed meanwhile")

// ErrBadStep refuses a step asked for wrongly (an unknown decision, a missing note or reviewer),
// whatever the item's state.
var ErrBadStep = errors.New("invalid review step")

// Reviewer is who an assignment names: the caller for "me" or nothing, a compliance officer for a
// bare name ("compliance:<name>"), else the actor as given.
func Reviewer(who, caller string) string {
	switch who = strings.TrimSpace(who); {
	case who == "" || who == "me":
		return caller
	case !strings.Contains(who, ":"):
		return "compliance:" + who
	}
	return who
}

// ErrNoReview is returned for a review item that does not exist.
var ErrNoReview = errors.New("no such review item")

// SettingSamplePercent is the supervision setting holding the share of each employee's
// conversations of a day drawn for review (0–100; unset or 0: no sample).
const SettingSamplePercent = "sample_percent"

// ReviewFilter narrows a listing of review items. Zero fields do not narrow.
type ReviewFilter struct {
	State    string // open, assigned, escalated, closed; "backlog": any but closed
	Reason   string // flag, sample
	Rule     string // a rule id: items it flagged (any version)
	Employee string
	Assignee string
	From, To time.Time // opened in [From, To)
	Limit    int       // [50], at most 500
	Offset   int
}

// MaxNoteBytes bounds a reviewer's note.
const MaxNoteBytes = 4000

// Decisions lists the decisions a reviewer can make.
var Decisions = []string{DecisionNoIssue, DecisionEscalate, DecisionClose}

// Assign gives the item to assignee (a reviewer). An open item becomes assigned; an assigned item
// changes hands; an escalated item stays escalated with its new reviewer (the senior who will
// decide it). A closed item cannot be assigned.
func (it *ReviewItem) Assign(assignee string) error {
	assignee = strings.TrimSpace(assignee)
	switch {
	case assignee == "":
		return errors.New("name the reviewer to assign the item to")
	case len(assignee) > MaxNameBytes || !utf8.ValidString(assignee):
		return fmt.Errorf("the reviewer's name is longer than %d bytes", MaxNameBytes)
	}
	switch it.State {
	case StateOpen, StateAssigned:
		it.State = StateAssigned
	case StateEscalated:
	case StateClosed:
		return fmt.Errorf("review item %d is closed (%s by %s): %w", it.ID, it.Decision, it.DecidedBy, ErrState)
	default:
		return fmt.Errorf("review item %d is in an unknown state %q: %w", it.ID, it.State, ErrState)
	}
	if it.Assignee == assignee {
		return fmt.Errorf("review item %d is already assigned to %s: %w", it.ID, assignee, ErrState)
	}
	it.Assignee = assignee
	return nil
}

// Decide records a reviewer's decision: no_issue and close close the item, escalate sends it to a
// senior reviewer (an escalated item is decided again; escalating it again is refused). A note is
// required to escalate or close — the next reader needs to know why. The reviewer who decides an
// unassigned item takes it.
func (it *ReviewItem) Decide(decision, note, by string, now time.Time) error {
	switch {
	case !slices.Contains(Decisions, decision):
		return fmt.Errorf("decision %q: use no_issue, escalate or close", decision)
	case len(note) > MaxNoteBytes || !utf8.ValidString(note):
		return fmt.Errorf("the note is longer than %d bytes", MaxNoteBytes)
	case strings.TrimSpace(note) == "" && decision != DecisionNoIssue:
		return fmt.Errorf("a note is required to %s an item: say why", decision)
	case strings.TrimSpace(by) == "":
		return errors.New("who decides is required")
	}
	switch it.State {
	case StateOpen, StateAssigned:
	case StateEscalated:
		if decision == DecisionEscalate {
			return fmt.Errorf("review item %d is escalated already: decide no_issue or close: %w", it.ID, ErrState)
		}
	case StateClosed:
		return fmt.Errorf("review item %d is closed (%s by %s); a closed item is not decided again: %w", it.ID, it.Decision, it.DecidedBy, ErrState)
	default:
		return fmt.Errorf("review item %d is in an unknown state %q: %w", it.ID, it.State, ErrState)
	}
	it.State = StateClosed
	if decision == DecisionEscalate {
		it.State = StateEscalated
	}
	if it.Assignee == "" {
		it.Assignee = by
	}
	it.Decision, it.DecidedBy, it.DecidedAt = decision, by, now.UTC().Truncate(time.Microsecond)
	return nil
}

// SampleSize is how many of n conversations a sample of percent takes: percent of n rounded up, so
// that an employee with any conversation and a percentage above 0 always has one reviewed.
func SampleSize(percent, n int) int {
	if percent <= 0 || n <= 0 {
		return 0
	}
	return min(n, (percent*n+99)/100)
}

// ParsePercent reads the sample_percent setting: a whole number from 0 (no sample) to 100.
func ParsePercent(v string) (int, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	var p int
	if _, err := fmt.Sscan(v, &p); err != nil || fmt.Sprint(p) != v || p < 0 || p > 100 {
		return 0, fmt.Errorf("sample_percent %q: use a whole number from 0 (no sample) to 100", v)
	}
	return p, nil
}

// Pick chooses k of the items uniformly at random (crypto/rand), in their given order.
func Pick[T any](items []T, k int) ([]T, error) {
	k = min(k, len(items))
	idx := make([]int, len(items))
	for i := range idx {
		idx[i] = i
	}
	// A partial Fisher–Yates shuffle: the first k places get a uniform k-subset.
	for i := 0; i < k; i++ {
		j, err := rand.Int(rand.Reader, big.NewInt(int64(len(idx)-i)))
		if err != nil {
			return nil, fmt.Errorf("sample: %w", err)
		}
		r := i + int(j.Int64())
		idx[i], idx[r] = idx[r], idx[i]
	}
	chosen := slices.Sorted(slices.Values(idx[:k]))
	out := make([]T, k)
	for i, at := range chosen {
		out[i] = items[at]
	}
	return out, nil
}

// Report sections.
const (
	SectionTotal    = "total"    // every item opened in the window
	SectionReason   = "reason"   // per reason: flag, sample
	SectionRule     = "rule"     // per rule id (every version) that flagged an item
	SectionDecision = "decision" // per last decision
	SectionBacklog  = "backlog"  // items not closed now, by age: <1d, 1-3d, 3-7d, >7d
)

// ReportRow is one line of the review report: a count of items, by state, and how long the decided
// ones took from opening to their (last) decision.
type ReportRow struct {
	Section   string `json:"section"`
	Key       string `json:"key"`
	Items     int    `json:"items"`
	Open      int    `json:"open"`
	Assigned  int    `json:"assigned"`
	Escalated int    `json:"escalated"`
	Closed    int    `json:"closed"`
	Decided   int    `json:"decided"`
	// MedianSeconds and P90Seconds are the time to review of the decided items (0: none decided).
	MedianSeconds int64 `json:"median_seconds"`
	P90Seconds    int64 `json:"p90_seconds"`
}

// Report is the review queue summed up over a window.
type Report struct {
	From time.Time   `json:"from,omitzero"` // items opened from (inclusive)
	To   time.Time   `json:"to,omitzero"`   // to (exclusive)
	At   time.Time   `json:"at"`            // when the backlog was taken
	Rows []ReportRow `json:"rows"`
}

// Backlog age buckets.
var backlogAges = []struct {
	key string
	max time.Duration
}{{"<1d", 24 * time.Hour}, {"1-3d", 72 * time.Hour}, {"3-7d", 7 * 24 * time.Hour}, {">7d", 1 << 62}}

// BuildReport sums up items: those opened in [from, to) by reason, rule and decision, and the
// backlog — items in backlog that are not closed — by age at now. Zero from/to leave that end open.
func BuildReport(items, backlog []ReviewItem, from, to, now time.Time) Report {
	rep := Report{From: from, To: to, At: now.UTC()}
	type acc struct {
		row   ReportRow
		times []time.Duration
	}
	var order []string
	accs := map[string]*acc{}
	add := func(section, key string, it *ReviewItem) {
		k := section + "\x00" + key
		a := accs[k]
		if a == nil {
			a = &acc{row: ReportRow{Section: section, Key: key}}
			accs[k] = a
			order = append(order, k)
		}
		a.row.Items++
		switch it.State {
		case StateOpen:
			a.row.Open++
		case StateAssigned:
			a.row.Assigned++
		case StateEscalated:
			a.row.Escalated++
		case StateClosed:
			a.row.Closed++
		}
		if !it.DecidedAt.IsZero() {
			a.row.Decided++
			a.times = append(a.times, it.DecidedAt.Sub(it.CreatedAt))
		}
	}
	accs[SectionTotal+"\x00all"] = &acc{row: ReportRow{Section: SectionTotal, Key: "all"}}
	order = append(order, SectionTotal+"\x00all")
	for i := range items {
		it := &items[i]
		if (!from.IsZero() && it.CreatedAt.Before(from)) || (!to.IsZero() && !it.CreatedAt.Before(to)) {
			continue
		}
		add(SectionTotal, "all", it)
		add(SectionReason, it.Reason, it)
		var ids []string
		for _, ref := range it.Rules {
			id, _, _ := strings.Cut(ref, "@")
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
				add(SectionRule, id, it)
			}
		}
		if it.Decision != "" {
			add(SectionDecision, it.Decision, it)
		}
	}
	for _, b := range backlogAges {
		k := SectionBacklog + "\x00" + b.key
		accs[k] = &acc{row: ReportRow{Section: SectionBacklog, Key: b.key}}
		order = append(order, k)
	}
	for i := range backlog {
		it := &backlog[i]
		if it.State == StateClosed {
			continue
		}
		age := now.Sub(it.CreatedAt)
		for _, b := range backlogAges {
			if age < b.max {
				add(SectionBacklog, b.key, it)
				break
			}
		}
	}
	rank := map[string]int{SectionTotal: 0, SectionReason: 1, SectionRule: 2, SectionDecision: 3, SectionBacklog: 4}
	slices.SortStableFunc(order, func(a, b string) int {
		sa, ka, _ := strings.Cut(a, "\x00")
		sb, kb, _ := strings.Cut(b, "\x00")
		if rank[sa] != rank[sb] {
			return rank[sa] - rank[sb]
		}
		if sa == SectionBacklog {
			return 0 // in age order
		}
		return strings.Compare(ka, kb)
	})
	for _, k := range order {
		a := accs[k]
		slices.Sort(a.times)
		a.row.MedianSeconds, a.row.P90Seconds = percentile(a.times, 50), percentile(a.times, 90)
		rep.Rows = append(rep.Rows, a.row)
	}
	return rep
}

// percentile is the nearest-rank percentile p of ds, in whole seconds (0 for none).
func percentile(s []time.Duration, p int) int64 { // s sorted
	if len(s) == 0 {
		return 0
	}
	rank := (p*len(s) + 99) / 100 // ceil(p/100 × n), 1-based
	return int64(s[max(rank, 1)-1] / time.Second)
}

// CSVHeader is the header of the report's CSV file; CSV gives a row's fields in that order.
var CSVHeader = []string{"section", "key", "items", "open", "assigned", "escalated", "closed", "decided", "median_seconds", "p90_seconds"}

// CSV returns the row's fields in CSVHeader's order.
func (r ReportRow) CSV() []string {
	n := func(v int64) string { return fmt.Sprint(v) }
	return []string{r.Section, r.Key, n(int64(r.Items)), n(int64(r.Open)), n(int64(r.Assigned)), n(int64(r.Escalated)),
		n(int64(r.Closed)), n(int64(r.Decided)), n(r.MedianSeconds), n(r.P90Seconds)}
}
