package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/completeness"
	"github.com/wxteams/wxteams/compliance/supervision"
)

// After downtime the daily report job makes every day it missed, at most 31 (the latest), and names
// the days it skipped; the sampler catches up likewise, from the last day it handled.
func TestCompletenessAndSampleBackfillAfterDowntime(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		s := open(t)
		ctx := context.Background()
		day := func(d string) time.Time {
			t.Helper()
			v, err := time.Parse(time.DateOnly, d)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		var chat bridge.ChatID
		err := s.InTx(ctx, func(tx bridge.Tx) error {
			if err := tx.PutContact(ctx, &bridge.Contact{OpenID: "o1"}); err != nil {
				return err
			}
			c := &bridge.Chat{Contact: "o1", Status: bridge.StatusActive}
			if err := tx.CreateChat(ctx, c); err != nil {
				return err
			}
			chat = c.ID
			stream := compliance.ChatStream(int64(c.ID))
			return tx.Append(ctx,
				compliance.Event{Stream: stream, ChatID: int64(c.ID), At: day("2026-09-20").Add(9 * time.Hour), Kind: compliance.KindCustomerMessage, Actor: "customer:o1"},
				compliance.Event{Stream: stream, ChatID: int64(c.ID), At: day("2026-10-30").Add(9 * time.Hour), Kind: compliance.KindEmployeeMessage, Actor: "employee:ann"})
		})
		if err != nil {
			t.Fatal(err)
		}
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		core, logs := observer.New(zapcore.InfoLevel)
		log := zap.New(core)

		// 00:04 on 3 November: the 2nd is within its grace; 1 November is the latest ended day.
		// No report yet: from the archive's first day (20 September), 43 days, 31 made.
		makeDailyReports(ctx, s, key, 15*time.Minute, time.Date(2026, 11, 3, 0, 4, 0, 0, time.UTC), log)
		if last, err := s.LastCompletenessDay(ctx); err != nil || last != "2026-11-01" {
			t.Fatalf("latest report = %q, %v; want 2026-11-01", last, err)
		}
		for _, d := range []string{"2026-10-02", "2026-10-30", "2026-11-01"} {
			signed, err := s.Completeness(ctx, d)
			if err != nil {
				t.Fatalf("report of %s: %v", d, err)
			}
			if rep, err := signed.Open(ed25519.PublicKey(key.Public().(ed25519.PublicKey))); err != nil || !rep.Final {
				t.Errorf("report of %s: %+v, %v; want final", d, rep, err)
			}
		}
		for _, d := range []string{"2026-09-20", "2026-10-01", "2026-11-02"} {
			if _, err := s.Completeness(ctx, d); err == nil {
				t.Errorf("a report of %s was made", d)
			}
		}
		warns := logs.FilterMessage("completeness reports not made for days beyond the backfill cap").All()
		if len(warns) != 1 {
			t.Fatalf("skip warnings = %v", logs.All())
		}
		if f := warns[0].ContextMap(); f["skipped_days"] != int64(12) || f["skipped_from"] != "2026-09-20" || f["skipped_through"] != "2026-10-01" {
			t.Errorf("skip warning fields = %v; want 12 days, 2026-09-20 through 2026-10-01", f)
		}
		// At 00:05 the 2nd has ended: it alone is made, nothing skipped.
		makeDailyReports(ctx, s, key, 15*time.Minute, time.Date(2026, 11, 3, 0, 5, 0, 0, time.UTC), log)
		if last, err := s.LastCompletenessDay(ctx); err != nil || last != "2026-11-02" {
			t.Errorf("latest report = %q, %v; want 2026-11-02", last, err)
		}
		if n := logs.FilterMessage("completeness report archived").Len(); n != 32 {
			t.Errorf("%d reports archived; want 32", n)
		}
		if n := logs.FilterMessageSnippet("backfill cap").Len(); n != 1 {
			t.Errorf("%d skip warnings; want still 1", n)
		}

		// Sampling: the 25th was handled (at 0 %), then sampling went to 100 % and serve was down
		// until the 3rd: the 26th through the 2nd are drawn (the 30th has a conversation).
		if _, err := s.SampleDay(ctx, day("2026-10-25"), "system:sample", day("2026-10-26").Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.PutSetting(ctx, supervision.SettingSamplePercent, "100", "compliance:cco", day("2026-10-26")); err != nil {
			t.Fatal(err)
		}
		sampleDays(ctx, s, time.Date(2026, 11, 3, 0, 4, 0, 0, time.UTC), log) // the 2nd has not ended
		if last, err := s.LastSampledDay(ctx); err != nil || last != "2026-11-01" {
			t.Errorf("latest sampled day = %q, %v; want 2026-11-01", last, err)
		}
		sampleDays(ctx, s, time.Date(2026, 11, 3, 1, 0, 0, 0, time.UTC), log)
		for d, want := range map[string]string{"2026-10-24": "", "2026-10-25": "0", "2026-10-26": "100", "2026-10-30": "100", "2026-11-02": "100"} {
			if v, err := s.Setting(ctx, "sampled:"+d); err != nil || v != want {
				t.Errorf("sampled:%s = %q, %v; want %q", d, v, err, want)
			}
		}
		items, total, err := s.ReviewItems(ctx, supervision.ReviewFilter{Reason: supervision.ReasonSample})
		if err != nil || total != 1 || items[0].Day != "2026-10-30" || items[0].ChatID != int64(chat) || items[0].Employee != "ann" {
			t.Errorf("sample items = %+v (%d), %v; want ann's conversation of 30 October", items, total, err)
		}
	})
}

// A day that has not ended (midnight UTC + 5 minutes) is neither archived nor sampled from the
// command line; its report is shown, marked provisional.
func TestCompletenessArchiveAndReviewSampleRefuseADayNotEnded(t *testing.T) {
	cli, _, _ := freshCLI(t)
	today := completeness.DayOf(time.Now())
	ended := completeness.LastEnded(time.Now())
	steps := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"completeness", "--day", today, "--archive"}, 2, "day " + today + " has not ended yet"},
		{[]string{"completeness", "--day", today}, 0, "PROVISIONAL: made before the day ended"},
		{[]string{"review", "sample", "--percent", "10", "--day", today}, 2, "day " + today + " has not ended yet"},
		{[]string{"completeness", "--day", ended, "--archive"}, 0, "FINAL: made after the day ended"},
		{[]string{"review", "sample", "--percent", "10", "--day", ended}, 0, ended + ": 0 conversation(s) drawn"},
	}
	for _, s := range steps {
		code, out := cli(s.args...)
		if code != s.code || !strings.Contains(out, s.want) {
			t.Errorf("wxteams %s = %d:\n%s\nwant %d saying %q", strings.Join(s.args, " "), code, out, s.code, s.want)
		}
	}
}
