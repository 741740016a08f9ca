package supervision

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

func TestAReviewItemMovesThroughItsStates(t *testing.T) {
	type step struct {
		do        string // "assign WHO", or "DECISION note"
		wantState string
		wantErr   string // part of the error; "" = allowed
		state     bool   // the error is ErrState
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"assign, then no issue closes it", []step{
			{"assign ann", StateAssigned, "", false},
			{"no_issue", StateClosed, "", false},
		}},
		{"a reviewer may decide an open item directly", []step{{"close fine", StateClosed, "", false}}},
		{"escalated is decided again, not escalated twice", []step{
			{"escalate needs a senior", StateEscalated, "", false},
			{"escalate again", StateEscalated, "escalated already", true},
			{"assign senior", StateEscalated, "", false},
			{"close done", StateClosed, "", false},
		}},
		{"a closed item is neither decided nor assigned again", []step{
			{"no_issue", StateClosed, "", false},
			{"close late", StateClosed, "is closed (no_issue by ann)", true},
			{"assign bob", StateClosed, "is closed", true},
		}},
		{"a note is required to escalate or close", []step{
			{"escalate", StateOpen, "a note is required to escalate", false},
			{"close", StateOpen, "a note is required to close", false},
		}},
		{"unknown decisions and empty assignees are refused", []step{
			{"approve ok", StateOpen, `decision "approve"`, false},
			{"assign ", StateOpen, "name the reviewer", false},
		}},
		{"assigning to whoever has it already is refused", []step{
			{"assign ann", StateAssigned, "", false},
			{"assign ann", StateAssigned, "already assigned to ann", true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			it := ReviewItem{ID: 7, State: StateOpen, CreatedAt: t0}
			for _, s := range tc.steps {
				before := it
				var err error
				if who, ok := strings.CutPrefix(s.do, "assign "); ok {
					err = it.Assign(who)
				} else {
					decision, note, _ := strings.Cut(s.do, " ")
					err = it.Decide(decision, note, "ann", t0.Add(time.Hour))
				}
				if s.wantErr == "" && err != nil {
					t.Fatalf("%s: %v", s.do, err)
				}
				if s.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), s.wantErr) {
						t.Fatalf("%s: error %v, want one saying %q", s.do, err, s.wantErr)
					}
					if errors.Is(err, ErrState) != s.state {
						t.Errorf("%s: errors.Is(ErrState) = %v, want %v", s.do, !s.state, s.state)
					}
					if !reflect.DeepEqual(it, before) {
						t.Errorf("%s: a refused step changed the item: %+v", s.do, it)
					}
				}
				if it.State != s.wantState {
					t.Fatalf("%s: state %s, want %s", s.do, it.State, s.wantState)
				}
			}
		})
	}
}

func TestDecidingRecordsWhoAndWhen(t *testing.T) {
	it := ReviewItem{ID: 1, State: StateOpen, CreatedAt: t0}
	if err := it.Decide(DecisionEscalate, "looks like a promise", "compliance:ann", t0.Add(90*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if it.DecidedBy != "compliance:ann" || it.Assignee != "compliance:ann" || !it.DecidedAt.Equal(t0.Add(90*time.Minute)) || it.Decision != DecisionEscalate {
		t.Errorf("after escalating: %+v", it)
	}
}

func TestSampleSizeRoundsUp(t *testing.T) {
	for _, tc := range []struct{ p, n, want int }{
		{0, 50, 0}, {10, 0, 0}, {10, 1, 1}, {10, 10, 1}, {10, 11, 2}, {10, 50, 5}, {10, 51, 6}, {1, 200, 2}, {100, 7, 7}, {33, 3, 1}, {34, 3, 2},
	} {
		if got := SampleSize(tc.p, tc.n); got != tc.want {
			t.Errorf("SampleSize(%d%%, %d) = %d, want %d", tc.p, tc.n, got, tc.want)
		}
	}
}

func TestParsePercent(t *testing.T) {
	for v, want := range map[string]int{"": 0, "0": 0, "10": 10, " 100 ": 100} {
		if got, err := ParsePercent(v); err != nil || got != want {
			t.Errorf("ParsePercent(%q) = %d, %v; want %d", v, got, err, want)
		}
	}
	for _, v := range []string{"-1", "101", "10.5", "ten", "10%", "1e1"} {
		if _, err := ParsePercent(v); err == nil || !strings.Contains(err.Error(), "0 (no sample) to 100") {
			t.Errorf("ParsePercent(%q) = %v, want a refusal saying the range", v, err)
		}
	}
}

// Pick is uniform: over many draws of 2 of 5, each item is chosen about 2/5 of the time.
func TestPickIsUniform(t *testing.T) {
	items := []string{"a", "b", "c", "d", "e"}
	counts := map[string]int{}
	const draws = 5000
	for range draws {
		got, err := Pick(items, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0] == got[1] {
			t.Fatalf("Pick(2 of 5) = %v", got)
		}
		for _, g := range got {
			counts[g]++
		}
	}
	for _, it := range items {
		// expected 2000; ±200 is over 5 standard deviations
		if c := counts[it]; c < 1800 || c > 2200 {
			t.Errorf("%s chosen %d times of %d draws, want about 2000: %v", it, c, draws, counts)
		}
	}
	if got, _ := Pick(items, 9); len(got) != 5 {
		t.Errorf("Pick(9 of 5) = %v, want all 5", got)
	}
}

func TestReportCountsRulesReasonsTimesAndBacklog(t *testing.T) {
	now := t0.Add(10 * 24 * time.Hour)
	item := func(reason string, rules []string, created time.Duration, state, decision string, took time.Duration) ReviewItem {
		it := ReviewItem{Reason: reason, Rules: rules, CreatedAt: t0.Add(created), State: state, Decision: decision}
		if took > 0 {
			it.DecidedAt = it.CreatedAt.Add(took)
		}
		return it
	}
	items := []ReviewItem{
		item(ReasonFlag, []string{"promises@1"}, 0, StateClosed, DecisionNoIssue, time.Hour),
		item(ReasonFlag, []string{"promises@2", "insider@1"}, time.Hour, StateClosed, DecisionClose, 3*time.Hour),
		item(ReasonFlag, []string{"promises@2"}, 2*time.Hour, StateEscalated, DecisionEscalate, 2*time.Hour),
		item(ReasonSample, nil, 9*24*time.Hour, StateOpen, "", 0),
		item(ReasonFlag, []string{"promises@2"}, 5*24*time.Hour, StateAssigned, "", 0),
		item(ReasonFlag, []string{"promises@2"}, -time.Hour, StateOpen, "", 0), // before the window
	}
	rep := BuildReport(items, items, t0, now, now)
	got := map[string]ReportRow{}
	var keys []string
	for _, r := range rep.Rows {
		got[r.Section+"/"+r.Key] = r
		keys = append(keys, r.Section+"/"+r.Key)
	}
	wantOrder := "total/all reason/flag reason/sample rule/insider rule/promises decision/close decision/escalate decision/no_issue backlog/<1d backlog/1-3d backlog/3-7d backlog/>7d"
	if strings.Join(keys, " ") != wantOrder {
		t.Errorf("rows:\n%s\nwant\n%s", strings.Join(keys, " "), wantOrder)
	}
	check := func(key string, items, decided int, median, p90 time.Duration) {
		t.Helper()
		r := got[key]
		if r.Items != items || r.Decided != decided || r.MedianSeconds != int64(median/time.Second) || r.P90Seconds != int64(p90/time.Second) {
			t.Errorf("%s: %+v; want %d items, %d decided, median %v, p90 %v", key, r, items, decided, median, p90)
		}
	}
	check("total/all", 5, 3, 2*time.Hour, 3*time.Hour)
	check("rule/promises", 4, 3, 2*time.Hour, 3*time.Hour)
	check("rule/insider", 1, 1, 3*time.Hour, 3*time.Hour)
	check("reason/sample", 1, 0, 0, 0)
	// backlog: not closed, by age at now: the sample (1 d old), the assigned one (5 d), the
	// escalated one and the one before the window (10 d).
	for key, n := range map[string]int{"backlog/<1d": 0, "backlog/1-3d": 1, "backlog/3-7d": 1, "backlog/>7d": 2} {
		if got[key].Items != n {
			t.Errorf("%s: %d items, want %d", key, got[key].Items, n)
		}
	}
	if r := got["total/all"]; r.Open != 1 || r.Assigned != 1 || r.Escalated != 1 || r.Closed != 2 {
		t.Errorf("total by state: %+v", r)
	}
}
