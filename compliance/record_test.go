package compliance

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var at = time.Date(2026, 11, 2, 9, 0, 0, 123456789, time.UTC)

func event(text string) Event {
	return Event{Stream: "chat:7", ChatID: 7, Tenant: "acme", At: at, Kind: KindCustomerMessage, Actor: "customer:o1",
		Meta: Meta{MessageID: "m1", Channel: "wechat", Contact: "o1", MsgType: "text"}, Content: Content{Text: text}}
}

// TestRecordHashIsStable pins the canonical encoding: a record's hash must never change between
// versions of wxteams, or every archive ever written would stop verifying.
func TestRecordHashIsStable(t *testing.T) {
	r, err := Seal(Head{}, event("你好 hello"))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(r.Meta); got != `{"message_id":"m1","channel":"wechat","contact":"o1","msg_type":"text"}` {
		t.Errorf("canonical meta = %s", got)
	}
	if !r.At.Equal(at.Truncate(time.Microsecond)) || r.Seq != 1 || !r.PrevHash.IsZero() {
		t.Errorf("sealed record = %+v", r)
	}
	// Computed independently (Python hashlib) from the encoding documented on ComputeHash.
	const golden = "3e4b1fa54bb896a049b9e70384ec15a5f3986a94a0aa58e5eb9faab8088bb480"
	if got := r.Hash.String(); got != golden {
		t.Errorf("record hash = %s; want %s (the canonical encoding changed)", got, golden)
	}
	next, _ := Seal(Head{Seq: r.Seq, Hash: r.Hash}, event("second"))
	if next.Seq != 2 || next.PrevHash != r.Hash {
		t.Errorf("next record does not chain: %+v", next)
	}
}

func TestVerifierFindsTheFirstBadRecord(t *testing.T) {
	var recs []Record
	head := Head{}
	for i, text := range []string{"a", "b", "c"} {
		r, _ := Seal(head, event(text))
		r.ID = int64(i + 1)
		recs = append(recs, r)
		head = Head{Seq: r.Seq, Hash: r.Hash}
	}
	check := func(rs []Record, stored Head) error {
		v := NewChainVerifier("chat:7")
		for i := range rs {
			if err := v.Add(&rs[i], true); err != nil {
				return err
			}
		}
		return v.Finish(stored)
	}
	if err := check(recs, head); err != nil {
		t.Fatalf("intact chain: %v", err)
	}
	clone := func() []Record { return append([]Record(nil), recs...) }
	altered := clone()
	altered[1].Actor = "employee:mallory"
	body := clone()
	body[1].Body = []byte(`{"text":"B"}`)
	for _, tc := range []struct {
		name string
		rs   []Record
		want string
	}{
		{"altered field", altered, "record 2 (seq 2): record altered"},
		{"altered body", body, "record 2 (seq 2): content does not match its hash"},
		{"removed", []Record{recs[0], recs[2]}, "seq 2: missing"},
		{"reordered", []Record{recs[1], recs[0], recs[2]}, "seq 1: missing"},
		{"truncated", recs[:2], "records missing at the end"},
	} {
		err := check(tc.rs, head)
		var ce *ChainError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want a ChainError containing %q", tc.name, err, tc.want)
		}
	}
}
