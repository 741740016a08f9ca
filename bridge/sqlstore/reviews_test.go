package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/completeness"
	"github.com/wxteams/wxteams/compliance/supervision"
)

// A reviewer's day with the review queue (issue 15): flagged messages and sampled conversations
// are assigned and decided, each step in the record with who took it; a day's sample takes the
// promised share of each employee's conversations, once.

const (
	reviewer = "compliance:ann@acme.example"
	senior   = "compliance:sam@acme.example"
)

var day1 = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)

// seedChats stores n chats, chat i's member being employee emps[i % len(emps)], and returns their ids.
func seedChats(t *testing.T, s *sqlstore.Store, emps []string, n int) []bridge.ChatID {
	t.Helper()
	ctx := context.Background()
	ids := make([]bridge.ChatID, n)
	err := s.InTx(ctx, func(tx bridge.Tx) error {
		for _, e := range emps {
			if err := tx.PutEmployee(ctx, &bridge.Employee{ID: bridge.EmployeeID(e), Name: "Employee " + e[:4], Enabled: true, Reachable: true, UpdatedAt: day1}); err != nil {
				return err
			}
		}
		for i := range n {
			open := bridge.OpenID(fmt.Sprintf("o6_customer%04d", i))
			if err := tx.PutContact(ctx, &bridge.Contact{OpenID: open, Following: true, UpdatedAt: day1}); err != nil {
				return err
			}
			c := &bridge.Chat{Contact: open, Members: []bridge.EmployeeID{bridge.EmployeeID(emps[i%len(emps)])}, Status: bridge.StatusActive, CreatedAt: day1, UpdatedAt: day1}
			if err := tx.CreateChat(ctx, c); err != nil {
				return err
			}
			ids[i] = c.ID
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// message archives a message in a chat: by the employee ("employee:<id>") or the customer.
func message(t *testing.T, s *sqlstore.Store, chat bridge.ChatID, actor string, at time.Time) {
	t.Helper()
	kind := compliance.KindCustomerMessage
	if strings.HasPrefix(actor, "employee:") {
		kind = compliance.KindEmployeeMessage
	}
	ev := compliance.Event{Stream: compliance.ChatStream(int64(chat)), ChatID: int64(chat), At: at, Kind: kind, Actor: actor,
		Meta: compliance.Meta{MessageID: fmt.Sprintf("m-%d-%d", chat, at.UnixNano())}, Content: compliance.Content{Text: "hello"}}
	if err := s.Archive(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
}

// flagged opens a review item for a flagged message, as the engine does.
func flagged(t *testing.T, s *sqlstore.Store, chat bridge.ChatID, emp, messageID string, at time.Time, rules ...string) int64 {
	t.Helper()
	it := &supervision.ReviewItem{ChatID: int64(chat), MessageID: messageID, Employee: emp, Contact: "o6_c", Reason: supervision.ReasonFlag,
		Rules: rules, State: supervision.StateOpen, CreatedAt: at}
	err := s.InTx(context.Background(), func(tx bridge.Tx) error {
		if err := tx.AddReview(context.Background(), it); err != nil {
			return err
		}
		return tx.Append(context.Background(), compliance.Event{Stream: compliance.SupervisionStream, ChatID: int64(chat), At: at,
			Kind: compliance.KindReviewOpened, Actor: "system", Meta: compliance.Meta{Subject: supervision.ReviewSubject(it.ID), MessageID: messageID, Reason: supervision.ReasonFlag, Matched: rules}})
	})
	if err != nil {
		t.Fatal(err)
	}
	return it.ID
}

const (
	empA = "7faf8ab2-3d56-4244-b585-20c8a42ed2b8"
	empB = "8b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
	empC = "9c2d3e4f-5061-4b7c-9d8e-0f1a2b3c4d5e"
	empD = "ad3e4f50-6172-4c8d-ae9f-1a2b3c4d5e6f"
)

func TestReviewDecisionsAreInTheRecordWithWhoMadeThem(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		s := open(t)
		s.UseKeyring(keyring(t, kek(1)))
		ctx := context.Background()
		chats := seedChats(t, s, []string{empA}, 1)
		id := flagged(t, s, chats[0], empA, "m-1", day1.Add(9*time.Hour), "promises@1")

		it, err := s.AssignReview(ctx, id, reviewer, reviewer, day1.Add(10*time.Hour))
		if err != nil || it.State != supervision.StateAssigned || it.Assignee != reviewer {
			t.Fatalf("assign to self: %+v, %v", it, err)
		}
		const escalateNote = "reads like a promise of returns; ask Sam"
		if it, err = s.DecideReview(ctx, id, supervision.DecisionEscalate, escalateNote, reviewer, day1.Add(11*time.Hour)); err != nil || it.State != supervision.StateEscalated {
			t.Fatalf("escalate: %+v, %v", it, err)
		}
		if it, err = s.AssignReview(ctx, id, senior, reviewer, day1.Add(12*time.Hour)); err != nil || it.State != supervision.StateEscalated || it.Assignee != senior {
			t.Fatalf("assign to the senior: %+v, %v", it, err)
		}
		if it, err = s.DecideReview(ctx, id, supervision.DecisionClose, "spoke to the employee", senior, day1.Add(13*time.Hour)); err != nil || it.State != supervision.StateClosed {
			t.Fatalf("close: %+v, %v", it, err)
		}
		if it.DecidedBy != senior || it.Decision != supervision.DecisionClose || !it.DecidedAt.Equal(day1.Add(13*time.Hour)) {
			t.Errorf("closed item: %+v", it)
		}
		_, err = s.DecideReview(ctx, id, supervision.DecisionNoIssue, "", reviewer, day1.Add(14*time.Hour))
		if !errors.Is(err, supervision.ErrState) || !errors.Is(err, bridge.ErrConflict) || !strings.Contains(err.Error(), "is closed (close by "+senior+")") {
			t.Errorf("deciding a closed item: %v", err)
		}
		if _, err = s.DecideReview(ctx, id+100, supervision.DecisionNoIssue, "", reviewer, day1); !errors.Is(err, supervision.ErrNoReview) {
			t.Errorf("deciding an unknown item: %v", err)
		}

		hist, err := s.ReviewHistory(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range hist {
			m, _ := compliance.DecodeMeta(r.Meta)
			c, _ := compliance.DecodeContent(r.Body)
			got = append(got, fmt.Sprintf("%s by %s: %s%s%s", strings.TrimPrefix(string(r.Kind), "supervision.review_"), r.Actor, m.Reason, m.To, nonEmpty(" — ", c.Text)))
		}
		want := []string{
			"opened by system: flag",
			"assigned by " + reviewer + ": " + reviewer,
			"decided by " + reviewer + ": escalateescalated — " + escalateNote,
			"assigned by " + reviewer + ": " + senior,
			"decided by " + senior + ": closeclosed — spoke to the employee",
		}
		if !slices.Equal(got, want) {
			t.Errorf("history:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		// The note is the record's content, sealed at rest: no column holds it in the clear.
		if strings.Contains(dump(t, s), escalateNote) || strings.Contains(tableText(t, s, "review_items"), escalateNote) {
			t.Error("a reviewer's note is stored in the clear")
		}
		if _, err := s.VerifyArchive(ctx); err != nil {
			t.Errorf("verify: %v", err)
		}
	})
}

func nonEmpty(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

func tableText(t *testing.T, s *sqlstore.Store, table string) string {
	t.Helper()
	rows, err := s.DB().Query(`SELECT * FROM ` + table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var b strings.Builder
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(&b, vals...)
	}
	return b.String()
}

func TestConcurrentDecisionsOneWins(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		s := open(t)
		ctx := context.Background()
		chats := seedChats(t, s, []string{empA}, 1)
		for round := range 5 {
			id := flagged(t, s, chats[0], empA, fmt.Sprintf("m-%d", round), day1, "promises@1")
			var (
				wg   sync.WaitGroup
				errs = make([]error, 2)
			)
			for i, who := range []string{reviewer, senior} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errs[i] = s.DecideReview(ctx, id, supervision.DecisionClose, "decided by "+who, who, day1.Add(time.Hour))
				}()
			}
			wg.Wait()
			won := 0
			for _, err := range errs {
				switch {
				case err == nil:
					won++
				case !errors.Is(err, bridge.ErrConflict):
					t.Errorf("the losing decision: %v, want ErrConflict", err)
				}
			}
			if won != 1 {
				t.Fatalf("round %d: %d decisions won (%v), want exactly 1", round, won, errs)
			}
			hist, err := s.ReviewHistory(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(hist); n != 2 { // opened, decided once
				t.Errorf("round %d: %d records, want opened and one decision", round, n)
			}
		}
	})
}

func TestReviewItemsFilterAndPage(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		s := open(t)
		ctx := context.Background()
		chats := seedChats(t, s, []string{empA, empB}, 2)
		a1 := flagged(t, s, chats[0], empA, "m-a1", day1, "promises@1")
		a2 := flagged(t, s, chats[0], empA, "m-a2", day1.Add(24*time.Hour), "promises@2", "insider@1")
		b1 := flagged(t, s, chats[1], empB, "m-b1", day1.Add(48*time.Hour), "insider_x@1")
		if _, err := s.DecideReview(ctx, a1, supervision.DecisionNoIssue, "", reviewer, day1.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			f    supervision.ReviewFilter
			want []int64
		}{
			{"all", supervision.ReviewFilter{}, []int64{a1, a2, b1}},
			{"backlog", supervision.ReviewFilter{State: "backlog"}, []int64{a2, b1}},
			{"closed", supervision.ReviewFilter{State: supervision.StateClosed}, []int64{a1}},
			{"rule, any version", supervision.ReviewFilter{Rule: "promises"}, []int64{a1, a2}},
			{"rule id is not a prefix match", supervision.ReviewFilter{Rule: "insider"}, []int64{a2}},
			{"employee", supervision.ReviewFilter{Employee: empB}, []int64{b1}},
			{"days", supervision.ReviewFilter{From: day1.Add(24 * time.Hour), To: day1.Add(48 * time.Hour)}, []int64{a2}},
			{"page 2 of 2 by 2", supervision.ReviewFilter{Limit: 2, Offset: 2}, []int64{b1}},
			{"reason", supervision.ReviewFilter{Reason: supervision.ReasonSample}, nil},
		} {
			items, total, err := s.ReviewItems(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var ids []int64
			for _, it := range items {
				ids = append(ids, it.ID)
			}
			if !slices.Equal(ids, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, ids, tc.want)
			}
			if tc.f.Limit == 0 && total != len(tc.want) {
				t.Errorf("%s: total %d, want %d", tc.name, total, len(tc.want))
			}
		}
		rep, err := s.ReviewReport(ctx, day1, day1.Add(72*time.Hour), day1.Add(72*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rep.Rows {
			if r.Section == supervision.SectionRule && r.Key == "promises" && (r.Items != 2 || r.Decided != 1 || r.MedianSeconds != 3600) {
				t.Errorf("report row %+v", r)
			}
		}
	})
}

// 200 conversations over 4 employees at 10 %: exactly 5 of each employee's 50 are drawn, other
// picks on another day, and drawing a day again adds nothing.
func TestASamplePicksThePromisedShareOfConversations(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		s := open(t)
		ctx := context.Background()
		emps := []string{empA, empB, empC, empD}
		chats := seedChats(t, s, emps, 200)
		for d := range 2 {
			at := day1.Add(time.Duration(d)*24*time.Hour + 9*time.Hour)
			for i, c := range chats {
				// Half the conversations have the employee writing, half only the customer.
				if i%2 == 0 {
					message(t, s, c, "employee:"+emps[i%4], at.Add(time.Duration(i)*time.Second))
				} else {
					message(t, s, c, "customer:o6_customer", at.Add(time.Duration(i)*time.Second))
				}
			}
		}
		// Activity on the day before the first counts for nothing.
		message(t, s, chats[0], "employee:"+emps[0], day1.Add(-time.Hour))

		res, err := s.SampleDay(ctx, day1, "system:sample", day1.Add(25*time.Hour))
		if err != nil || res.Percent != 0 || len(res.Items) != 0 {
			t.Fatalf("sampling with no sample_percent set: %+v, %v", res, err)
		}
		if err := s.PutSetting(ctx, supervision.SettingSamplePercent, "10", reviewer, day1); err != nil {
			t.Fatal(err)
		}
		picks := map[string][]int64{}
		for d := range 2 {
			day := day1.Add(time.Duration(d) * 24 * time.Hour)
			var (
				wg   sync.WaitGroup
				runs = make([]sqlstore.SampleResult, 3)
				errs = make([]error, 3)
			)
			for i := range runs { // three replicas at once
				wg.Add(1)
				go func() {
					defer wg.Done()
					runs[i], errs[i] = s.SampleDay(ctx, day.Add(3*time.Hour), "system:sample", day.Add(25*time.Hour))
				}()
			}
			wg.Wait()
			drew := 0
			for i, r := range runs {
				if errs[i] != nil {
					t.Fatalf("day %d run %d: %v", d, i, errs[i])
				}
				if !r.Done {
					drew++
					for _, e := range emps {
						if r.Conversations[e] != 50 || r.Sampled[e] != 5 {
							t.Errorf("day %d, %s: %d of %d conversations drawn, want 5 of 50", d, e[:4], r.Sampled[e], r.Conversations[e])
						}
					}
				}
			}
			if drew != 1 {
				t.Fatalf("day %d: %d runs drew a sample, want exactly 1", d, drew)
			}
			items, total, err := s.ReviewItems(ctx, supervision.ReviewFilter{Reason: supervision.ReasonSample, From: day.Add(25 * time.Hour), To: day.Add(26 * time.Hour), Limit: 500})
			if err != nil || total != 20 {
				t.Fatalf("day %d: %d sample items, %v; want 20", d, total, err)
			}
			per := map[string]int{}
			for _, it := range items {
				per[it.Employee]++
				if it.Day != day.Format(time.DateOnly) || it.State != supervision.StateOpen || it.Contact == "" {
					t.Errorf("sample item %+v", it)
				}
				picks[it.Employee] = append(picks[it.Employee], it.ChatID*10+int64(d))
			}
			for _, e := range emps {
				if per[e] != 5 {
					t.Errorf("day %d: %d items for %s, want 5", d, per[e], e[:4])
				}
			}
			again, err := s.SampleDay(ctx, day, "cli:ops@host", day.Add(30*time.Hour))
			if err != nil || !again.Done || len(again.Items) != 0 {
				t.Errorf("day %d sampled again: %+v, %v; want nothing added", d, again, err)
			}
		}
		// Different picks across days: the same 5 of 50 twice for all four employees is
		// (1/C(50,5))^4 likely.
		same := 0
		for _, e := range emps {
			var d0, d1 []int64
			for _, p := range picks[e] {
				if p%10 == 0 {
					d0 = append(d0, p/10)
				} else {
					d1 = append(d1, p/10)
				}
			}
			if slices.Equal(d0, d1) {
				same++
			}
		}
		if same == len(emps) {
			t.Error("every employee's sample was the same on both days: not random")
		}
		// Every opened sample is archived with its reason.
		recs, err := s.ArchiveStream(ctx, compliance.SupervisionStream)
		if err != nil {
			t.Fatal(err)
		}
		opened := 0
		for _, r := range recs {
			m, _ := compliance.DecodeMeta(r.Meta)
			if r.Kind == compliance.KindReviewOpened && m.Reason == supervision.ReasonSample && r.Actor == "system:sample" {
				opened++
				if m.Count != 50 || !strings.Contains(m.Query, "sample_percent=10") {
					t.Errorf("sample record meta %+v", m)
				}
			}
		}
		if opened != 40 {
			t.Errorf("%d sample openings archived, want 40", opened)
		}
	})
}

func TestADayIsSampledOnlyOnceItEndedAndAZeroPercentDayIsMarkedHandled(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		s := open(t)
		ctx := context.Background()
		chats := seedChats(t, s, []string{empA}, 4)
		for i, c := range chats {
			message(t, s, c, "employee:"+empA, day1.Add(time.Duration(9*60+i)*time.Minute))
		}
		if day, err := s.LastSampledDay(ctx); err != nil || day != "" {
			t.Errorf("last sampled day of an empty store = %q, %v", day, err)
		}
		if err := s.PutSetting(ctx, supervision.SettingSamplePercent, "50", reviewer, day1); err != nil {
			t.Fatal(err)
		}
		// During the day, and after midnight within the grace, the day has not ended.
		for _, now := range []time.Time{day1.Add(20 * time.Hour), day1.Add(24*time.Hour + 4*time.Minute)} {
			res, err := s.SampleDay(ctx, day1, "system:sample", now)
			if !errors.Is(err, completeness.ErrNotEnded) || len(res.Items) != 0 {
				t.Errorf("sampling %s at %s: %+v, %v; want ErrNotEnded", day1.Format(time.DateOnly), now, res, err)
			}
		}
		if day, err := s.LastSampledDay(ctx); err != nil || day != "" {
			t.Errorf("a refused sample marked %q, %v", day, err)
		}

		// At 0 % the day is marked handled, nothing drawn; a later sample at 50 % still draws it.
		if err := s.PutSetting(ctx, supervision.SettingSamplePercent, "0", reviewer, day1); err != nil {
			t.Fatal(err)
		}
		if res, err := s.SampleDay(ctx, day1, "system:sample", day1.Add(24*time.Hour+5*time.Minute)); err != nil || res.Percent != 0 || len(res.Items) != 0 || res.Done {
			t.Fatalf("at 0 %%: %+v, %v", res, err)
		}
		if day, err := s.LastSampledDay(ctx); err != nil || day != "2026-11-02" {
			t.Errorf("last sampled day after a 0 %% day = %q, %v", day, err)
		}
		if err := s.PutSetting(ctx, supervision.SettingSamplePercent, "50", reviewer, day1); err != nil {
			t.Fatal(err)
		}
		res, err := s.SampleDay(ctx, day1, "cli:ops@host", day1.Add(26*time.Hour))
		if err != nil || res.Done || len(res.Items) != 2 {
			t.Fatalf("at 50 %% after a 0 %% mark: %+v, %v; want 2 of 4 drawn", res, err)
		}
		if res, err := s.SampleDay(ctx, day1, "system:sample", day1.Add(27*time.Hour)); err != nil || !res.Done {
			t.Errorf("sampled again: %+v, %v; want done", res, err)
		}
		// Back to 0: a day drawn at 50 % stays drawn (the 0 mark never replaces it).
		if err := s.PutSetting(ctx, supervision.SettingSamplePercent, "0", reviewer, day1); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SampleDay(ctx, day1, "system:sample", day1.Add(28*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if v, err := s.Setting(ctx, "sampled:2026-11-02"); err != nil || v != "50" {
			t.Errorf("the day's claim = %q, %v; want 50", v, err)
		}
	})
}
