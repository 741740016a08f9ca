package completeness_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/completeness"
)

func sample(t *testing.T) *completeness.Report {
	t.Helper()
	rep, err := completeness.New("2026-11-02", time.Date(2026, 11, 3, 0, 5, 0, 0, time.UTC), 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	c := rep.Row("wechat", "chat")
	c.Received, c.Archived, c.Failed, c.Waiting, c.Overdue = 3, 7, 1, 1, 1
	rep.Row("teams", "chat").Delivered = 2
	rep.Row("wechat", "").Refused = 2
	rep.Gaps = append(rep.Gaps,
		completeness.Gap{Kind: completeness.GapRefused, Channel: "wechat", Reason: "not_recorded", Count: 2},
		completeness.Gap{Kind: completeness.GapOverdue, Channel: "wechat", ChatID: 4, OutboxID: 17, State: "pending", AgeSeconds: 50700})
	rep.Finish()
	return rep
}

func TestSignedReportVerifiesAndAChangedByteDoesNot(t *testing.T) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	pub := key.Public().(ed25519.PublicKey)
	signed, err := completeness.Sign(sample(t), key)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := signed.Open(pub)
	if err != nil {
		t.Fatalf("a signed report does not verify: %v", err)
	}
	if rep.Total.Received != 3 || rep.Total.Delivered != 2 || rep.Total.Refused != 2 || len(rep.Channels) != 2 || rep.Gaps[0].Kind != completeness.GapOverdue {
		t.Errorf("opened report = %+v", rep)
	}

	// Saved indented (as --json prints it), it still verifies: whitespace is not content.
	indented, _ := json.MarshalIndent(signed, "", "  ")
	var back completeness.Signed
	if err := json.Unmarshal(indented, &back); err != nil {
		t.Fatal(err)
	}
	if _, err := back.Open(pub); err != nil {
		t.Errorf("the indented report does not verify: %v", err)
	}

	// Every single changed byte of the report's content fails.
	for i := range signed.Report {
		changed := *signed
		changed.Report = bytes.Clone(signed.Report)
		b := changed.Report[i]
		switch {
		case b >= '0' && b <= '8':
			changed.Report[i] = b + 1
		case b >= 'a' && b < 'z':
			changed.Report[i] = b + 1
		default:
			continue
		}
		if _, err := changed.Open(pub); err == nil {
			t.Fatalf("changing byte %d (%q) of the report went unnoticed", i, b)
		}
	}
	// A recomputed hash does not help without the key.
	forged, _ := completeness.Sign(sample(t), nil)
	forged.KeyID, forged.Signature = signed.KeyID, signed.Signature
	forged.Report = []byte(strings.Replace(string(forged.Report), `"overdue":1`, `"overdue":0`, 1))
	forged.Hash = rehash(forged.Report)
	if _, err := forged.Open(pub); !errors.Is(err, compliance.ErrBadSignature) {
		t.Errorf("a rehashed forgery: %v; want a bad signature", err)
	}
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, 32)).Public().(ed25519.PublicKey)
	if _, err := signed.Open(other); !errors.Is(err, compliance.ErrBadSignature) {
		t.Errorf("another key: %v; want a bad signature", err)
	}
	unsigned, _ := completeness.Sign(sample(t), nil)
	if _, err := unsigned.Open(pub); !errors.Is(err, completeness.ErrUnsigned) {
		t.Errorf("an unsigned report with a key: %v; want ErrUnsigned", err)
	}
}

func rehash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestReportTextNamesTheGaps(t *testing.T) {
	var b strings.Builder
	if err := sample(t).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Completeness report for 2026-11-02", "delivery 17 (wechat, chat 4", "14h5m0s", "2 wechat receipts refused after they arrived, not archived: not_recorded", "2 gaps", "FINAL: made after the day ended"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the text lacks %q:\n%s", want, b.String())
		}
	}
}

func TestDayBounds(t *testing.T) {
	from, to, err := completeness.DayBounds("2026-11-02")
	if err != nil || !from.Equal(time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)) || to.Sub(from) != 24*time.Hour {
		t.Errorf("DayBounds = %v, %v, %v", from, to, err)
	}
	for _, bad := range []string{"", "2026-11-31", "02/11/2026", "2026-11-02T00:00:00Z"} {
		if _, _, err := completeness.DayBounds(bad); err == nil {
			t.Errorf("DayBounds(%q) accepted", bad)
		}
	}
}

func TestAReportMadeBeforeTheDayEndedIsProvisionalInsideTheSignature(t *testing.T) {
	for _, c := range []struct {
		made  time.Time
		final bool
	}{
		{time.Date(2026, 11, 2, 15, 0, 0, 0, time.UTC), false}, // during the day
		{time.Date(2026, 11, 3, 0, 4, 59, 0, time.UTC), false}, // after midnight, within the grace
		{time.Date(2026, 11, 3, 0, 5, 0, 0, time.UTC), true},   // midnight + grace
		{time.Date(2026, 11, 9, 12, 0, 0, 0, time.UTC), true},  // days later
	} {
		rep, err := completeness.New("2026-11-02", c.made, 15*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Final != c.final || completeness.Ended("2026-11-02", c.made) != c.final {
			t.Errorf("made %s: final %v, ended %v; want %v", c.made, rep.Final, completeness.Ended("2026-11-02", c.made), c.final)
		}
		rep.Finish()
		key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
		signed, err := completeness.Sign(rep, key)
		if err != nil {
			t.Fatal(err)
		}
		// The flag is part of what is signed: turning a provisional report final breaks it.
		flipped := bytes.Replace(signed.Report, []byte(`"final":false`), []byte(`"final":true`), 1)
		if !c.final {
			forged := *signed
			forged.Report, forged.Hash = flipped, rehash(flipped)
			if _, err := forged.Open(key.Public().(ed25519.PublicKey)); !errors.Is(err, compliance.ErrBadSignature) {
				t.Errorf("a provisional report turned final still verifies: %v", err)
			}
		}
		var b strings.Builder
		if err := rep.WriteText(&b); err != nil {
			t.Fatal(err)
		}
		want := "PROVISIONAL: made before the day ended"
		if c.final {
			want = "FINAL: made after the day ended"
		}
		if !strings.Contains(b.String(), want) {
			t.Errorf("made %s: the text lacks %q:\n%s", c.made, want, b.String())
		}
	}
	if got := completeness.LastEnded(time.Date(2026, 11, 3, 0, 4, 0, 0, time.UTC)); got != "2026-11-01" {
		t.Errorf("LastEnded at 00:04 = %s, want 2026-11-01 (the 2nd is still in its grace)", got)
	}
	if got := completeness.LastEnded(time.Date(2026, 11, 3, 0, 5, 0, 0, time.UTC)); got != "2026-11-02" {
		t.Errorf("LastEnded at 00:05 = %s, want 2026-11-02", got)
	}
	if completeness.Ended("not a day", time.Now()) {
		t.Error("a malformed day has ended")
	}
}

func TestLateDeliveriesAreGapsAndPolicyRefusalsAreNot(t *testing.T) {
	rep := sample(t)
	rep.Row("wechat", "chat").Late = 1
	rep.Row("teams", "").RefusedByPolicy = 4
	rep.Gaps = append(rep.Gaps, completeness.Gap{Kind: completeness.GapLate, Channel: "wechat", ChatID: 4, OutboxID: 18, MessageID: "m9", State: "done",
		Since: time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC), OutcomeAt: time.Date(2026, 11, 2, 11, 0, 0, 0, time.UTC), AgeSeconds: 3600})
	rep.Finish()
	if rep.Total.Late != 1 || rep.Total.RefusedByPolicy != 4 {
		t.Errorf("total = %+v", rep.Total)
	}
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"delivery 18 (wechat, chat 4, message m9) created 2026-11-02T10:00:00Z, done only 1h0m0s later", "3 gaps",
		"4 teams receipts refused by policy, archived as refused calls"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the text lacks %q:\n%s", want, b.String())
		}
	}
}

func TestAVersion1ReportIsStillRead(t *testing.T) {
	v1 := []byte(`{"version":1,"day":"2026-11-02","from":"2026-11-02T00:00:00Z","to":"2026-11-03T00:00:00Z","made_at":"2026-11-03T00:05:00Z",` +
		`"overdue_after":"15m0s","rows":[],"channels":[],"total":{"received":0,"archived":0,"delivered":0,"failed":0,"unknown":0,"retries":0,` +
		`"waiting":0,"overdue":0,"refused_after_receipt":0},"gaps":[],"streams_checked":0}`)
	signed := completeness.Signed{Report: v1, Hash: rehash(v1)}
	if rep, err := signed.Open(nil); err != nil || rep.Version != 1 {
		t.Errorf("a version 1 report: %+v, %v", rep, err)
	}
	v3 := bytes.Replace(v1, []byte(`"version":1`), []byte(`"version":3`), 1)
	signed = completeness.Signed{Report: v3, Hash: rehash(v3)}
	if _, err := signed.Open(nil); err == nil {
		t.Error("a version 3 report was read")
	}
}

func TestBackfillCatchesUpOnMissedDaysWithinTheCap(t *testing.T) {
	for _, c := range []struct {
		last, first, through string
		max                  int
		days, skipped        string
	}{
		{"2026-11-01", "", "2026-11-02", 31, "2026-11-02", ""},
		{"2026-11-02", "", "2026-11-02", 31, "", ""},                                            // done already
		{"2026-10-29", "", "2026-11-02", 31, "2026-10-30 2026-10-31 2026-11-01 2026-11-02", ""}, // after downtime
		{"2026-10-29", "", "2026-11-02", 2, "2026-11-01 2026-11-02", "2026-10-30 2026-10-31"},   // beyond the cap
		{"", "", "2026-11-02", 31, "2026-11-02", ""},                                            // nothing done, nothing archived
		{"", "2026-10-31", "2026-11-02", 31, "2026-10-31 2026-11-01 2026-11-02", ""},            // from the archive's first day
		{"", "2026-12-31", "2026-11-02", 31, "2026-11-02", ""},
		{"bad", "", "2026-11-02", 31, "", ""},
	} {
		days, skipped := completeness.Backfill(c.last, c.first, c.through, c.max)
		if strings.Join(days, " ") != c.days || strings.Join(skipped, " ") != c.skipped {
			t.Errorf("Backfill(%q, %q, %q, %d) = %v, skipped %v; want %s, skipped %s", c.last, c.first, c.through, c.max, days, skipped, c.days, c.skipped)
		}
	}
}
