package export_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/export"
)

// FuzzAppendLine checks the hand-written records.jsonl encoder against encoding/json for any
// stream, tenant, kind and actor text, and that the line decodes back to the same record.
//
//	go test -run '^$' -fuzz FuzzAppendLine ./compliance/export/
func FuzzAppendLine(f *testing.F) {
	for _, s := range []string{"chat:1", "a\"b\\c", "tab\tnl\nnul\x00", "<html>&", "bad \xff utf8", "line\u2028sep\u2029", "中文"} {
		f.Add(s, s, s, int64(7))
	}
	f.Fuzz(func(t *testing.T, stream, tenant, actor string, seq int64) {
		r := &compliance.Record{Stream: stream, Seq: seq, Tenant: tenant, At: time.Unix(1795000000, 123456000).UTC(), Kind: compliance.Kind(actor),
			Actor: actor, ChatID: seq, Meta: []byte(`{"contact":"o1"}`), Body: []byte(`{"text":"hi"}`)}
		got := export.AppendLine(nil, r)
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(&export.Line{Stream: r.Stream, Seq: r.Seq, At: r.At, Tenant: r.Tenant, Kind: r.Kind, Actor: r.Actor, ChatID: r.ChatID,
			Meta: r.Meta, Content: r.Body, BodyHash: r.BodyHash, PrevHash: r.PrevHash, Hash: r.Hash}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("AppendLine:\n%s\nencoding/json:\n%s", got, want.Bytes())
		}
	})
}
