package sqlstore_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/completeness"
)

// The day under report: 2026-11-02 (t0 is 09:00 that day).
const reportedDay = "2026-11-02"

// aDayOfTraffic archives a day on chat 1: a customer writes, an employee writes twice; one
// delivery is delivered (to Teams), one fails, one is retried and then left with an unknown
// outcome (WeChat). A third employee message is left pending in the outbox on purpose, created at
// 10:00, never delivered. Another is created at 23:55 (waiting, not yet overdue when the report is
// made at 00:05). It returns the pending item's outbox id.
func aDayOfTraffic(t *testing.T, s *sqlstore.Store) (chatID bridge.ChatID, pendingID int64) {
	t.Helper()
	ctx := context.Background()
	err := s.InTx(ctx, func(tx bridge.Tx) error {
		if err := tx.PutContact(ctx, &bridge.Contact{OpenID: "o1"}); err != nil {
			return err
		}
		chat := &bridge.Chat{Contact: "o1", Status: bridge.StatusActive}
		if err := tx.CreateChat(ctx, chat); err != nil {
			return err
		}
		chatID = chat.ID
		stream := compliance.ChatStream(int64(chat.ID))
		ev := func(at time.Duration, kind compliance.Kind, meta compliance.Meta) compliance.Event {
			return compliance.Event{Stream: stream, ChatID: int64(chat.ID), At: t0.Add(at), Kind: kind, Actor: "system", Meta: meta}
		}
		wechat, teams := compliance.Meta{Channel: "wechat", Contact: "o1"}, compliance.Meta{Channel: "teams", Employee: "ann"}
		if err := tx.Append(ctx,
			ev(0, compliance.KindCustomerMessage, compliance.Meta{Contact: "o1"}),
			ev(time.Second, compliance.KindDelivered, teams),
			ev(time.Minute, compliance.KindEmployeeMessage, compliance.Meta{Employee: "ann"}),
			ev(2*time.Minute, compliance.KindDeliveryFailed, wechat),
			ev(3*time.Minute, compliance.KindEmployeeMessage, compliance.Meta{Employee: "ann"}),
			ev(4*time.Minute, compliance.KindDeliveryRetry, wechat),
			ev(5*time.Minute, compliance.KindOutcomeUnknown, wechat),
			ev(time.Hour, compliance.KindEmployeeMessage, compliance.Meta{Employee: "ann"}),
		); err != nil {
			return err
		}
		// The day before and the day after: not counted, but their records bound the day's chain.
		if err := tx.Append(ctx, compliance.Event{Stream: "chat:99", At: t0.Add(-24 * time.Hour), Kind: compliance.KindCustomerMessage, Actor: "customer:o9"},
			compliance.Event{Stream: "chat:99", At: t0, Kind: compliance.KindCustomerMessage, Actor: "customer:o9"},
			compliance.Event{Stream: "chat:99", At: t0.Add(24 * time.Hour), Kind: compliance.KindCustomerMessage, Actor: "customer:o9"}); err != nil {
			return err
		}
		pending := &bridge.OutboxItem{ChatID: chat.ID, Channel: bridge.ChannelWeChat, Lane: "wechat:o1", Contact: "o1", Employee: "ann", MessageID: "m-left-pending",
			WeChat: &bridge.WeChatMessage{Message: bridge.TextMessage("the text must not reach the report")}, State: bridge.OutboxPending,
			CreatedAt: t0.Add(time.Hour), NotBefore: t0.Add(time.Hour)}
		late := &bridge.OutboxItem{ChatID: chat.ID, Channel: bridge.ChannelTeams, Lane: "teams:ann", Employee: "ann", MessageID: "m-late",
			Teams: &bridge.TeamsMessage{Message: bridge.TextMessage("late")}, State: bridge.OutboxPending,
			CreatedAt: time.Date(2026, 11, 2, 23, 55, 0, 0, time.UTC), NotBefore: t0}
		tomorrow := &bridge.OutboxItem{ChatID: chat.ID, Channel: bridge.ChannelTeams, Lane: "teams:bob", Employee: "bob", MessageID: "m-tomorrow",
			Teams: &bridge.TeamsMessage{Message: bridge.TextMessage("tomorrow")}, State: bridge.OutboxPending,
			CreatedAt: t0.Add(24 * time.Hour), NotBefore: t0}
		if err := tx.AddOutbox(ctx, pending, late, tomorrow); err != nil {
			return err
		}
		pendingID = pending.ID
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Two WeChat pushes refused during the day because the store was down, one Teams activity
	// that was invalid, and one refusal the day after.
	if err := s.AddReceiptRefusals(ctx, []bridge.RefusalCount{
		{Hour: t0, Channel: bridge.ChannelWeChat, Reason: "not_recorded", N: 1},
		{Hour: t0.Add(30 * time.Minute), Channel: bridge.ChannelWeChat, Reason: "not_recorded", N: 1},
		{Hour: t0.Add(2 * time.Hour), Channel: bridge.ChannelTeams, Reason: "invalid", N: 1},
		{Hour: t0.Add(24 * time.Hour), Channel: bridge.ChannelTeams, Reason: "invalid", N: 5},
	}); err != nil {
		t.Fatal(err)
	}
	return chatID, pendingID
}

// madeAt is when the daily job reports 2026-11-02: five minutes after midnight.
var madeAt = time.Date(2026, 11, 3, 0, 5, 0, 0, time.UTC)

func row(t *testing.T, rep *completeness.Report, channel, streams string) completeness.Counts {
	t.Helper()
	for _, r := range rep.Rows {
		if r.Channel == channel && r.Streams == streams {
			return r.Counts
		}
	}
	t.Fatalf("no row %s/%s in %+v", channel, streams, rep.Rows)
	return completeness.Counts{}
}

func TestCompletenessReportCountsTheDayAndListsTheDeliveryLeftPending(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		s := open(t)
		chat, pendingID := aDayOfTraffic(t, s)
		rep, err := s.CompletenessReport(context.Background(), reportedDay, madeAt, 15*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := row(t, rep, "wechat", "chat"), (completeness.Counts{Received: 2, Archived: 5, Failed: 1, Retries: 1, Unknown: 1, Waiting: 1, Overdue: 1}); got != want {
			t.Errorf("wechat/chat = %+v; want %+v (chat 1's and chat 99's customer messages)", got, want)
		}
		if got, want := row(t, rep, "teams", "chat"), (completeness.Counts{Received: 3, Archived: 4, Delivered: 1, Waiting: 1}); got != want {
			t.Errorf("teams/chat = %+v; want %+v (the 23:55 delivery waits 10 min: not overdue; tomorrow's is not the day's)", got, want)
		}
		if got := row(t, rep, "wechat", "").Refused; got != 2 {
			t.Errorf("wechat refusals after receipt = %d; want 2 (the next day's are not the day's)", got)
		}
		if got := row(t, rep, "teams", "").Refused; got != 1 {
			t.Errorf("teams refusals after receipt = %d; want 1", got)
		}
		if rep.Total.Archived != 9 || rep.Total.Received != 5 || rep.Total.Delivered != 1 || rep.Total.Waiting != 2 || rep.Total.Overdue != 1 || rep.Total.Refused != 3 {
			t.Errorf("totals = %+v", rep.Total)
		}
		if rep.StreamsChecked != 2 {
			t.Errorf("streams checked = %d; want chat 1 and chat 99", rep.StreamsChecked)
		}
		var overdue, refused []completeness.Gap
		for _, g := range rep.Gaps {
			switch g.Kind {
			case completeness.GapOverdue:
				overdue = append(overdue, g)
			case completeness.GapRefused:
				refused = append(refused, g)
			default:
				t.Errorf("unexpected gap %+v", g)
			}
		}
		if len(overdue) != 1 {
			t.Fatalf("overdue gaps = %+v; want the delivery left pending", overdue)
		}
		g := overdue[0]
		if g.OutboxID != pendingID || g.ChatID != int64(chat) || g.Channel != "wechat" || g.State != "pending" || g.MessageID != "m-left-pending" ||
			g.AgeSeconds != int64(madeAt.Sub(t0.Add(time.Hour))/time.Second) || !g.Since.Equal(t0.Add(time.Hour)) {
			t.Errorf("overdue gap = %+v; want outbox %d of chat %d, pending since 10:00, 14h05m old", g, pendingID, chat)
		}
		if len(refused) != 2 || refused[0].Channel != "teams" || refused[0].Count != 1 || refused[1].Channel != "wechat" || refused[1].Reason != "not_recorded" || refused[1].Count != 2 {
			t.Errorf("refusal gaps = %+v", refused)
		}
		canonical, _ := rep.Canonical()
		if strings.Contains(string(canonical), "must not reach") {
			t.Error("the report holds message text")
		}
	})
}

func TestCompletenessReportIsArchivedOncePerDayAndVerifies(t *testing.T) {
	sqlstoretest.EachURL(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := sqlstoretest.Open(t, url)
		_, pendingID := aDayOfTraffic(t, s)
		key := ed25519.NewKeyFromSeed(kek(7))
		pub := key.Public().(ed25519.PublicKey)

		// Two replicas make the day's report at once.
		other := sqlstoretest.Open(t, url)
		var (
			wg     sync.WaitGroup
			signed [2]*completeness.Signed
			made   [2]bool
			errs   [2]error
		)
		for i, store := range []*sqlstore.Store{s, other} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				signed[i], made[i], errs[i] = store.MakeCompleteness(ctx, reportedDay, key, 15*time.Minute, "system:completeness", madeAt.Add(time.Duration(i)*time.Second))
			}()
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatal(errs)
		}
		if made[0] == made[1] {
			t.Errorf("made = %v; want exactly one replica to make the report", made)
		}
		if signed[0].Hash != signed[1].Hash {
			t.Errorf("the replicas returned different reports: %s, %s", signed[0].Hash, signed[1].Hash)
		}
		// And a later run returns the one archived.
		again, madeAgain, err := s.MakeCompleteness(ctx, reportedDay, key, 15*time.Minute, "system:completeness", madeAt.Add(time.Hour))
		if err != nil || madeAgain || again.Hash != signed[0].Hash {
			t.Errorf("second run = %v, %v, %v; want the archived report back", again, madeAgain, err)
		}

		records, err := s.ArchiveStream(ctx, compliance.AdminStream)
		if err != nil {
			t.Fatal(err)
		}
		var archived []compliance.Record
		for _, r := range records {
			if r.Kind == compliance.KindCompleteness {
				archived = append(archived, r)
			}
		}
		if len(archived) != 1 {
			t.Fatalf("%d completeness records in the admin stream; want 1", len(archived))
		}
		meta, _ := compliance.DecodeMeta(archived[0].Meta)
		content, _ := compliance.DecodeContent(archived[0].Body)
		if meta.Subject != reportedDay || meta.Hash != signed[0].Hash || meta.KeyID != compliance.SigningKeyID(pub) || meta.Signature == "" {
			t.Errorf("archived meta = %+v", meta)
		}
		sig, err := base64.StdEncoding.DecodeString(meta.Signature)
		if err != nil {
			t.Fatal(err)
		}
		fromArchive := completeness.Signed{Report: content.Payload, Hash: meta.Hash, KeyID: meta.KeyID, Signature: sig}
		rep, err := fromArchive.Open(pub)
		if err != nil {
			t.Fatalf("the archived report does not verify: %v", err)
		}
		if len(rep.Gaps) == 0 || rep.Gaps[0].OutboxID != pendingID {
			t.Errorf("archived report's gaps = %+v; want the delivery left pending first", rep.Gaps)
		}
		if _, err := s.VerifyArchive(ctx); err != nil {
			t.Errorf("verify after archiving the report: %v", err)
		}
		if _, err := s.DB().Exec(`UPDATE completeness_reports SET hash = 'x'`); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("changing a stored report: %v; want refused as append-only", err)
		}

		// A changed byte in the stored report fails the signature.
		tampered := *signed[0]
		tampered.Report = []byte(strings.Replace(string(tampered.Report), `"overdue":1`, `"overdue":0`, 1))
		if string(tampered.Report) == string(signed[0].Report) {
			t.Fatal("the test did not change the report")
		}
		if _, err := tampered.Open(pub); !errors.Is(err, compliance.ErrBadSignature) {
			t.Errorf("a tampered report opens: %v", err)
		}
	})
}

func TestCompletenessReportListsABrokenChain(t *testing.T) {
	cases := []struct{ name, stmt, want string }{
		{"altered record", `UPDATE archive SET actor = 'employee:mallory' WHERE stream = 'chat:99' AND seq = 2`, "record altered"},
		{"record before the day removed", `DELETE FROM archive WHERE stream = 'chat:99' AND seq = 1`, "seq 1, the record before the day's first, is missing"},
		{"record after the day rewritten", `UPDATE archive SET prev_hash = hash WHERE stream = 'chat:99' AND seq = 3`, "previous-hash link broken"},
		{"last record removed", `DELETE FROM archive WHERE stream = 'chat:99' AND seq = 3`, "records missing at the end"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sqlstoretest.Each(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
				s := open(t)
				aDayOfTraffic(t, s)
				bypass(t, s, tc.stmt)
				rep, err := s.CompletenessReport(context.Background(), reportedDay, madeAt, 15*time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				var chains []completeness.Gap
				for _, g := range rep.Gaps {
					if g.Kind == completeness.GapChain {
						chains = append(chains, g)
					}
				}
				if len(chains) != 1 || chains[0].Stream != "chat:99" || chains[0].ChatID != 99 || !strings.Contains(chains[0].Reason, tc.want) {
					t.Errorf("chain gaps = %+v; want chat:99 %q", chains, tc.want)
				}
			})
		})
	}
}

func TestCompletenessReportOfAnEmptyDay(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		s := open(t)
		rep, err := s.CompletenessReport(context.Background(), "2026-01-01", madeAt, 15*time.Minute)
		if err != nil || len(rep.Rows) != 0 || len(rep.Gaps) != 0 || rep.Total != (completeness.Counts{}) {
			t.Errorf("empty day = %+v, %v", rep, err)
		}
		if _, err := s.CompletenessReport(context.Background(), "2026-13-01", madeAt, 15*time.Minute); err == nil {
			t.Error("a day that does not exist was reported")
		}
		if _, err := s.Completeness(context.Background(), "2026-01-01"); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("unarchived day: %v; want ErrNotFound", err)
		}
	})
}

func TestLastInboundAndLiveChats(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		ctx := context.Background()
		s := open(t)
		aDayOfTraffic(t, s)
		// The latest inbound record is chat:99's next-day message (t0+24h); chat 1's last is at 10:00.
		if at, err := s.LastInbound(ctx, t0); err != nil || !at.Equal(t0.Add(24*time.Hour)) {
			t.Errorf("LastInbound = %v, %v", at, err)
		}
		if at, err := s.LastInbound(ctx, t0.Add(25*time.Hour)); err != nil || !at.IsZero() {
			t.Errorf("LastInbound after the last = %v, %v; want none", at, err)
		}
		if n, err := s.LiveChats(ctx); err != nil || n != 1 {
			t.Errorf("LiveChats = %d, %v; want 1", n, err)
		}
	})
}

// finished adds a delivery created at created and finished (state, attempts, answered_us), and
// archives its outcome record at outcome unless that is zero.
func finished(t *testing.T, s *sqlstore.Store, channel bridge.Channel, msg string, created time.Time, state bridge.OutboxState, attempts int, answered, outcome time.Time, kind compliance.Kind) int64 {
	t.Helper()
	ctx := context.Background()
	it := &bridge.OutboxItem{ChatID: 7, Channel: channel, Lane: string(channel) + ":" + msg, Employee: "ann", MessageID: msg, State: bridge.OutboxPending,
		CreatedAt: created, NotBefore: created}
	if channel == bridge.ChannelWeChat {
		it.Contact, it.WeChat = "o1", &bridge.WeChatMessage{Message: bridge.TextMessage("x")}
	} else {
		it.Teams = &bridge.TeamsMessage{Message: bridge.TextMessage("x")}
	}
	err := s.InTx(ctx, func(tx bridge.Tx) error {
		if err := tx.AddOutbox(ctx, it); err != nil {
			return err
		}
		if outcome.IsZero() {
			return nil
		}
		return tx.Append(ctx, compliance.Event{Stream: "chat:7", ChatID: 7, At: outcome, Kind: kind, Actor: "system",
			Meta: compliance.Meta{Channel: string(channel), MessageID: msg, Employee: "ann", Contact: string(it.Contact), Attempt: attempts}})
	})
	if err != nil {
		t.Fatal(err)
	}
	var ans int64
	if !answered.IsZero() {
		ans = answered.UnixMicro()
	}
	if _, err := s.DB().Exec(fmt.Sprintf(`UPDATE outbox SET state = '%s', attempts = %d, answered_us = %d WHERE id = %d`, state, attempts, ans, it.ID)); err != nil {
		t.Fatal(err)
	}
	return it.ID
}

func TestCompletenessReportListsLateDeliveriesAndCountsPolicyRefusalsApart(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		s := open(t)
		ctx := context.Background()
		at := func(h, m int) time.Time { return time.Date(2026, 11, 2, h, m, 0, 0, time.UTC) }
		none := time.Time{}
		finished(t, s, bridge.ChannelTeams, "on-time", at(9, 0), bridge.OutboxDone, 1, none, at(9, 1), compliance.KindDelivered)
		teamsLate := finished(t, s, bridge.ChannelTeams, "teams-late", at(10, 0), bridge.OutboxDone, 2, none, at(11, 0), compliance.KindDelivered)
		wechatLate := finished(t, s, bridge.ChannelWeChat, "wechat-late", at(12, 0), bridge.OutboxDone, 1, at(12, 40), at(12, 40), compliance.KindDelivered)
		failedLate := finished(t, s, bridge.ChannelWeChat, "failed-late", at(13, 0), bridge.OutboxFailed, 1, none, at(13, 30), compliance.KindDeliveryFailed)
		finished(t, s, bridge.ChannelWeChat, "unknown-on-time", at(14, 0), bridge.OutboxUnknown, 1, none, at(14, 10), compliance.KindOutcomeUnknown)
		finished(t, s, bridge.ChannelWeChat, "yesterdays", at(0, 0).Add(-10*time.Minute), bridge.OutboxDone, 1, at(0, 30), at(0, 30), compliance.KindDelivered)
		nextDay := finished(t, s, bridge.ChannelTeams, "finished-next-day", at(23, 58), bridge.OutboxDone, 1, none, at(24, 20), compliance.KindDelivered)
		// A record of the same message at another attempt is not its outcome.
		finished(t, s, bridge.ChannelTeams, "retried", at(15, 0), bridge.OutboxDone, 3, none, at(15, 5), compliance.KindDelivered)
		if err := s.InTx(ctx, func(tx bridge.Tx) error {
			return tx.Append(ctx, compliance.Event{Stream: "chat:7", ChatID: 7, At: at(16, 0), Kind: compliance.KindDeliveryFailed, Actor: "system",
				Meta: compliance.Meta{Channel: "teams", MessageID: "retried", Employee: "ann", Attempt: 2}})
		}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddReceiptRefusals(ctx, []bridge.RefusalCount{
			{Hour: at(9, 0), Channel: bridge.ChannelTeams, Reason: "not_allowed", N: 4},
			{Hour: at(9, 0), Channel: bridge.ChannelTeams, Reason: "invalid", N: 1},
		}); err != nil {
			t.Fatal(err)
		}

		rep, err := s.CompletenessReport(ctx, reportedDay, at(25, 0), 15*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		var late []completeness.Gap
		for _, g := range rep.Gaps {
			switch g.Kind {
			case completeness.GapLate:
				late = append(late, g)
			case completeness.GapRefused:
				if g.Reason != "invalid" || g.Count != 1 {
					t.Errorf("refusal gap %+v; want only the invalid one (not_allowed is policy)", g)
				}
			default:
				t.Errorf("unexpected gap %+v", g)
			}
		}
		want := []struct {
			id      int64
			state   string
			outcome time.Time
		}{{teamsLate, "done", at(11, 0)}, {nextDay, "done", at(24, 20)}, {wechatLate, "done", at(12, 40)}, {failedLate, "failed", at(13, 30)}} // by channel, then id
		if len(late) != len(want) {
			t.Fatalf("late gaps = %+v; want %d", late, len(want))
		}
		for i, w := range want {
			g := late[i]
			if g.OutboxID != w.id || g.State != w.state || !g.OutcomeAt.Equal(w.outcome) || g.AgeSeconds != int64(w.outcome.Sub(g.Since)/time.Second) || g.ChatID != 7 {
				t.Errorf("late gap %d = %+v; want outbox %d %s at %s", i, g, w.id, w.state, w.outcome)
			}
		}
		if rep.Total.Late != 4 || row(t, rep, "teams", "chat").Late != 2 || row(t, rep, "wechat", "chat").Late != 2 {
			t.Errorf("late counts: total %+v", rep.Total)
		}
		if got := row(t, rep, "teams", ""); got.RefusedByPolicy != 4 || got.Refused != 1 {
			t.Errorf("teams refusals = %+v; want 4 by policy, 1 a gap", got)
		}
		if !rep.Final {
			t.Error("a report made the next day is not final")
		}

		// Made more than 7 days later, the report says the outbox may have been pruned.
		later, err := s.CompletenessReport(ctx, reportedDay, at(24*9, 0), 15*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(later.Notes, "\n"), "pruned from the outbox") {
			t.Errorf("notes of a report made 9 days later: %q", later.Notes)
		}
	})
}

func TestADayIsNotArchivedBeforeItEndsAndItsReportIsProvisional(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		s := open(t)
		ctx := context.Background()
		if day, err := s.LastCompletenessDay(ctx); err != nil || day != "" {
			t.Errorf("last report day of an empty store = %q, %v", day, err)
		}
		if day, err := s.FirstArchiveDay(ctx); err != nil || day != "" {
			t.Errorf("first archive day of an empty store = %q, %v", day, err)
		}
		aDayOfTraffic(t, s)
		key := ed25519.NewKeyFromSeed(kek(7))
		for _, now := range []time.Time{t0.Add(6 * time.Hour), madeAt.Add(-time.Second)} {
			if _, _, err := s.MakeCompleteness(ctx, reportedDay, key, 15*time.Minute, "cli:ops@host", now); !errors.Is(err, completeness.ErrNotEnded) {
				t.Errorf("archiving %s at %s: %v; want ErrNotEnded", reportedDay, now, err)
			}
			rep, err := s.CompletenessReport(ctx, reportedDay, now, 15*time.Minute)
			if err != nil || rep.Final {
				t.Errorf("report made at %s: final %v, %v; want provisional", now, rep != nil && rep.Final, err)
			}
		}
		if _, err := s.Completeness(ctx, reportedDay); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("after the refusals: %v; want nothing archived", err)
		}
		if _, _, err := s.MakeCompleteness(ctx, "2026-02-30", key, 15*time.Minute, "cli:ops@host", madeAt); !errors.Is(err, bridge.ErrInvalid) {
			t.Errorf("a malformed day: %v", err)
		}
		signed, made, err := s.MakeCompleteness(ctx, reportedDay, key, 15*time.Minute, "system:completeness", madeAt)
		if err != nil || !made {
			t.Fatalf("at midnight + grace: %v, %v", made, err)
		}
		if rep, err := signed.Open(nil); err != nil || !rep.Final {
			t.Errorf("the archived report: %+v, %v; want final", rep, err)
		}
		if day, err := s.LastCompletenessDay(ctx); err != nil || day != reportedDay {
			t.Errorf("last report day = %q, %v", day, err)
		}
		if day, err := s.FirstArchiveDay(ctx); err != nil || day != "2026-11-01" {
			t.Errorf("first archive day = %q, %v; want chat 99's record of the day before", day, err)
		}
	})
}
