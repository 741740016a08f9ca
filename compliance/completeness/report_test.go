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
	for _, want := range []string{"Completeness report for 2026-11-02", "delivery 17 (wechat, chat 4", "14h5m0s", "2 wechat receipts refused after they arrived: not_recorded", "2 gaps"} {
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
