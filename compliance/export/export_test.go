package export_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/export"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from this run")

var (
	day1    = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	day2    = day1.Add(24 * time.Hour)
	signKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	pub     = signKey.Public().(ed25519.PublicKey)
	pngData = []byte("\x89PNG\r\n\x1a\n fake image bytes for the golden export")
)

const megan, ming, chat = "7faf8ab2-3d56-4244-b585-20c8a42ed2b8", "o6_bmjrPTlm6_2sgVt7hMZOPfL2M", int64(1)

// conversation archives a scripted two-day chat covering every kind an export renders: routing,
// auto-messages, both sides' messages (one with an image), the cap and the queue, delivery
// outcomes, members changing, an edit and a deletion in Teams, #LEAVE; plus an employee and an
// administrator stream.
func conversation(t *testing.T, s *sqlstore.Store) {
	t.Helper()
	ctx := context.Background()
	stream := compliance.ChatStream(chat)
	sha := sha256Hex(pngData)
	at := func(d time.Time, minutes int) time.Time { return d.Add(time.Duration(minutes) * time.Minute) }
	type ev = compliance.Event
	evs := []ev{
		{Stream: compliance.AdminStream, At: at(day1, -60), Kind: compliance.KindEmployeeEnabled, Actor: "admin:it@acme.example", Meta: compliance.Meta{Employee: megan}},
		{Stream: stream, ChatID: chat, At: at(day1, 0), Kind: compliance.KindRouting, Actor: "customer:" + ming, Meta: compliance.Meta{Contact: ming, Employee: megan, Scene: "emp:" + megan}},
		{Stream: stream, ChatID: chat, At: at(day1, 0), Kind: compliance.KindAutoMessage, Actor: "system", Meta: compliance.Meta{Contact: ming, Direction: "to_customer", Template: "customer.initial", Version: "v1", Language: "en"},
			Content: compliance.Content{Text: "Thank you! You can now start messaging your contact."}},
		{Stream: stream, ChatID: chat, At: at(day1, 1), Kind: compliance.KindCustomerMessage, Actor: "customer:" + ming, Meta: compliance.Meta{Contact: ming, MsgType: "text", ExternalID: "6054768590064713728"},
			Content: compliance.Content{Text: "Hello, about the bond fund <and> the \"prospectus\" & fees"}},
		{Stream: stream, ChatID: chat, At: at(day1, 2), Kind: compliance.KindEmployeeMessage, Actor: "employee:" + megan, Meta: compliance.Meta{Employee: megan, Contact: ming, MessageID: "m1", MsgType: "text"},
			Content: compliance.Content{Text: "=SUM(A1) Happy to help. 中文也可以。"}},
		{Stream: stream, ChatID: chat, At: at(day1, 2), Kind: compliance.KindDelivered, Actor: "system", Meta: compliance.Meta{MessageID: "m1", Channel: "wechat", ExternalID: "ok"}},
		{Stream: stream, ChatID: chat, At: at(day1, 3), Kind: compliance.KindEmployeeMessage, Actor: "employee:" + megan, Meta: compliance.Meta{Employee: megan, Contact: ming, MessageID: "m2", MsgType: "text"},
			Content: compliance.Content{Text: "The prospectus is attached."}},
		{Stream: stream, ChatID: chat, At: at(day1, 4), Kind: compliance.KindEmployeeMessage, Actor: "employee:" + megan, Meta: compliance.Meta{Employee: megan, Contact: ming, MessageID: "m3", MsgType: "text"},
			Content: compliance.Content{Text: "Anything else?"}},
		{Stream: stream, ChatID: chat, At: at(day1, 5), Kind: compliance.KindEmployeeMessage, Actor: "employee:" + megan, Meta: compliance.Meta{Employee: megan, Contact: ming, MessageID: "m4", MsgType: "text"},
			Content: compliance.Content{Text: "One more thing."}},
		{Stream: stream, ChatID: chat, At: at(day1, 5), Kind: compliance.KindQueued, Actor: "system", Meta: compliance.Meta{MessageID: "m4", Reason: "capped", QueueLength: 1}},
		{Stream: stream, ChatID: chat, At: at(day1, 6), Kind: compliance.KindEmployeeEdit, Actor: "employee:" + megan, Meta: compliance.Meta{Employee: megan, ExternalID: "1485983408511"},
			Content: compliance.Content{Text: "Anything else today?"}},
		{Stream: stream, ChatID: chat, At: at(day1, 7), Kind: compliance.KindMembers, Actor: "system", Meta: compliance.Meta{Added: []string{"bob"}, Reason: "admin"}},
		{Stream: stream, ChatID: chat, At: at(day2, 0), Kind: compliance.KindCustomerMessage, Actor: "customer:" + ming, Meta: compliance.Meta{Contact: ming, MsgType: "image", MediaSHA256: sha, MediaType: "image/png", MediaSize: int64(len(pngData)), MediaName: "statement.png"}},
		{Stream: stream, ChatID: chat, At: at(day2, 1), Kind: compliance.KindReleased, Actor: "system", Meta: compliance.Meta{MessageID: "m4", Count: 1}},
		{Stream: stream, ChatID: chat, At: at(day2, 1), Kind: compliance.KindDeliveryFailed, Actor: "system", Meta: compliance.Meta{MessageID: "m4", Channel: "wechat", ErrCode: 45015, Error: "response out of time limit or subscription is canceled"}},
		{Stream: stream, ChatID: chat, At: at(day2, 2), Kind: compliance.KindEmployeeDelete, Actor: "employee:bob", Meta: compliance.Meta{Employee: "bob", ExternalID: "1485983408999"}},
		{Stream: stream, ChatID: chat, At: at(day2, 3), Kind: compliance.KindLeave, Actor: "customer:" + ming, Meta: compliance.Meta{Contact: ming}, Content: compliance.Content{Text: "#LEAVE"}},
		{Stream: "employee:" + megan, At: at(day1, -30), Kind: compliance.KindEmployeeUpdated, Actor: "system", Meta: compliance.Meta{Employee: megan, Reason: "first seen in Teams"}},
	}
	err := s.InTx(ctx, func(tx bridge.Tx) error {
		if err := tx.PutEmployee(ctx, &bridge.Employee{ID: megan, Name: "Megan Bowen", Email: "megan@acme.example", Enabled: true, UpdatedAt: day1}); err != nil {
			return err
		}
		if err := tx.PutContact(ctx, &bridge.Contact{OpenID: ming, Name: "Ming Li"}); err != nil {
			return err
		}
		if err := tx.PutMedia(ctx, &bridge.Media{SHA256: sha, ContentType: "image/png", Size: int64(len(pngData)), Name: "statement.png"}, pngData, day2); err != nil {
			return err
		}
		for _, e := range evs {
			if err := tx.Append(ctx, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.MakeCheckpoint(ctx, signKey, "system:checkpoint", day2.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
}

func store(t *testing.T) *sqlstore.Store {
	t.Helper()
	s := sqlstoretest.SQLite(t)
	k, err := compliance.NewKeyring(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	s.UseKeyring(k)
	conversation(t, s)
	return s
}

func write(t *testing.T, s *sqlstore.Store, scope export.Scope) (string, *export.Manifest) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "export")
	m, err := export.Write(context.Background(), dir, s.ExportSource(), scope, export.Options{Operator: "cli:cco@compliance-host", Tool: "wxteams test", Key: signKey})
	if err != nil {
		t.Fatal(err)
	}
	return dir, m
}

// files reads every file of a folder.
func files(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out[filepath.ToSlash(rel)], err = os.ReadFile(path)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestGoldenExport(t *testing.T) {
	s := store(t)
	dir, m := write(t, s, export.Scope{Formats: export.AllFormats})
	got := files(t, dir)
	golden := filepath.Join("testdata", "golden")
	if *update {
		_ = os.RemoveAll(golden)
		for name, data := range got {
			p := filepath.Join(golden, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := files(t, golden)
	for name, data := range want {
		if !bytes.Equal(got[name], data) {
			t.Errorf("%s differs from testdata/golden (run with -update after checking the change)", name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s is not in testdata/golden", name)
		}
	}
	// The same records give the same bytes.
	again, _ := write(t, s, export.Scope{Formats: export.AllFormats})
	for name, data := range files(t, again) {
		if !bytes.Equal(got[name], data) {
			t.Errorf("%s differs between two exports of the same records", name)
		}
	}
	if m.Counts.Records != 19 || m.Counts.Conversations != 2 || m.Counts.Media != 1 || m.Checkpoint == nil {
		t.Errorf("manifest counts = %+v", m.Counts)
	}
	rep, err := export.Verify(dir, pub)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 19 || rep.Leaves != 3 || rep.Matched != 3 {
		t.Errorf("verify report = %+v; want 19 records and all 3 stream heads proven under the checkpoint", rep)
	}
}

func TestEMLParsesBack(t *testing.T) {
	dir, _ := write(t, store(t), export.Scope{Formats: []string{export.EML}})
	data, err := os.ReadFile(filepath.Join(dir, export.EMLName(chat, day2)))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	h := msg.Header
	if h.Get("X-GlobalRelay-MsgType") != "WeChat" || h.Get("Auto-Submitted") != "auto-generated" {
		t.Errorf("headers = %v", h)
	}
	from, err := mail.ParseAddress(h.Get("From"))
	if err != nil || from.Address != "o6_bmjrPTlm6_2sgVt7hMZOPfL2M@wechat.wxteams.invalid" || from.Name != "Ming Li" {
		t.Errorf("From = %v, %v; want the customer, who wrote first that day", from, err)
	}
	to, err := mail.ParseAddressList(h.Get("To"))
	if err != nil || len(to) != 3 {
		t.Errorf("To = %v, %v; want Ming, Megan and bob", to, err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if err != nil || !strings.Contains(subject, "Megan Bowen") || !strings.Contains(subject, "2026-11-03") {
		t.Errorf("Subject = %q, %v", subject, err)
	}
	if _, err := h.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	mediaType, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || mediaType != "multipart/mixed" {
		t.Fatalf("Content-Type = %q, %v", mediaType, err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var texts []string
	var attachment []byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ct, cparams, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		switch {
		case ct == "multipart/alternative":
			ar := multipart.NewReader(p, cparams["boundary"])
			for {
				ap, err := ar.NextPart()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(ap) // NextPart decodes quoted-printable
				texts = append(texts, string(b))
			}
		case p.FileName() == "statement.png":
			b, _ := io.ReadAll(p)
			attachment, err = decodeBase64(b)
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(texts) != 2 || !strings.Contains(texts[0], "Ming Li: #LEAVE") || !strings.Contains(texts[1], "<table") || !strings.Contains(texts[0], "errcode=45015") {
		t.Errorf("transcripts = %q", texts)
	}
	if !bytes.Equal(attachment, pngData) {
		t.Errorf("attachment = %q; want the customer's image", attachment)
	}
}

func decodeBase64(b []byte) ([]byte, error) {
	var out bytes.Buffer
	dec := base64Decoder(bytes.NewReader(b))
	_, err := io.Copy(&out, dec)
	return out.Bytes(), err
}

func TestActianceXMLStructure(t *testing.T) {
	dir, _ := write(t, store(t), export.Scope{Formats: []string{export.Actiance}})
	f, err := os.Open(filepath.Join(dir, export.ActianceName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := xml.NewDecoder(f)
	var (
		path          []string
		conversations int
		children      []string // element names directly inside the current Conversation
		all           [][]string
	)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v", err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if len(path) == 2 && path[1] == "Conversation" {
				children = append(children, el.Name.Local)
			}
			if el.Name.Local == "Conversation" {
				conversations++
				children = nil
				if len(el.Attr) != 1 || el.Attr[0].Name.Local != "Perspective" {
					t.Errorf("Conversation attributes = %v", el.Attr)
				}
			}
			path = append(path, el.Name.Local)
		case xml.EndElement:
			path = path[:len(path)-1]
			if el.Name.Local == "Conversation" {
				all = append(all, children)
			}
		}
	}
	if conversations != 2 {
		t.Fatalf("%d conversations; want one per chat per day (2)", conversations)
	}
	for i, c := range all {
		if c[0] != "RoomID" || c[1] != "StartTimeUTC" || c[len(c)-1] != "EndTimeUTC" {
			t.Errorf("conversation %d: children %v; want RoomID, StartTimeUTC first and EndTimeUTC last", i, c)
		}
		seenMessage, seenLeftAtEnd := false, false
		for j, name := range c {
			switch name {
			case "Message":
				seenMessage = true
			case "ParticipantLeft":
				seenLeftAtEnd = j == len(c)-2 || c[j+1] == "ParticipantLeft" || c[j+1] == "EndTimeUTC"
			}
		}
		if !seenMessage || !seenLeftAtEnd {
			t.Errorf("conversation %d: children %v", i, c)
		}
	}
	// Day 2 has the file transfer and bob entering (day 1's members change) at its start.
	if !strings.Contains(strings.Join(all[1], ","), "FileTransferStarted,FileTransferEnded") {
		t.Errorf("day 2 = %v; want the image as a file transfer", all[1])
	}
	if all[1][2] != "ParticipantEntered" {
		t.Errorf("day 2 = %v; want the participants present at its start", all[1])
	}
}

func TestCSVHasEveryRecord(t *testing.T) {
	dir, m := write(t, store(t), export.Scope{Formats: []string{export.CSV}})
	f, _ := os.Open(filepath.Join(dir, export.CSVName))
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != m.Counts.Records+1 || rows[0][0] != "time_utc" {
		t.Errorf("%d rows; want a header and %d records", len(rows), m.Counts.Records)
	}
	found := false
	for _, r := range rows {
		found = found || r[10] == "'=SUM(A1) Happy to help. 中文也可以。"
	}
	if !found {
		t.Error("a text starting with = is not neutralised against formula injection")
	}
}

func TestScopedExportsVerify(t *testing.T) {
	s := store(t)
	for _, scope := range []export.Scope{
		{From: day2, Formats: export.AllFormats},                   // day 2 only: segments start mid-chain
		{From: day1, To: day1.Add(3 * time.Minute)},                // a window inside day 1
		{Employee: megan, Formats: []string{export.EML}},           // Megan's chats and stream
		{Contact: ming, From: day2, Formats: []string{export.CSV}}, // Ming on day 2
		{Contact: "nobody"},                                        // nothing at all
	} {
		dir, m := write(t, s, scope)
		rep, err := export.Verify(dir, pub)
		if err != nil {
			t.Errorf("scope %+v: %v", scope, err)
			continue
		}
		if rep.Records != m.Counts.Records {
			t.Errorf("scope %+v: verified %d of %d records", scope, rep.Records, m.Counts.Records)
		}
	}
	_, m := write(t, s, export.Scope{Employee: megan})
	streams := []string{}
	for _, st := range m.Streams {
		streams = append(streams, st.Stream)
	}
	if strings.Join(streams, ",") != "chat:1,employee:"+megan {
		t.Errorf("Megan's export holds %v", streams)
	}
	if _, err := export.Write(context.Background(), t.TempDir(), s.ExportSource(), export.Scope{Formats: []string{"pdf"}}, export.Options{Key: signKey}); err == nil {
		t.Error("an unknown format was accepted")
	}
}

func TestVerifyExportNamesWhatWasTampered(t *testing.T) {
	s := store(t)
	edit := func(name string, fn func([]byte) []byte) func(string) {
		return func(dir string) {
			p := filepath.Join(dir, name)
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, fn(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	lines := func(fn func([]string) []string) func([]byte) []byte {
		return func(b []byte) []byte {
			ls := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			return []byte(strings.Join(fn(ls), "\n") + "\n")
		}
	}
	// Tampering with records.jsonl and then fixing its hash in the manifest needs the signing key;
	// so each records test also rewrites the manifest's file list as a forger would, and is caught
	// by the signature — unless it only reorders within the file the manifest hashes. The cases
	// therefore tamper the file alone (caught by its hash) and, separately, show the record checks
	// with a manifest re-signed by the key (as if the key had leaked): they still name the record.
	cases := []struct {
		name   string
		tamper func(dir string)
		want   string
	}{
		{"altered message text", edit(export.RecordsName, func(b []byte) []byte { return bytes.Replace(b, []byte("Happy to help"), []byte("Happy to hurt"), 1) }), "records.jsonl: its SHA-256 is not the manifest's"},
		{"altered EML", edit(export.EMLName(chat, day1), func(b []byte) []byte { return bytes.Replace(b, []byte("Megan"), []byte("Mallory"), 1) }), "its SHA-256 is not the manifest's"},
		{"altered manifest", edit(export.ManifestName, func(b []byte) []byte { return bytes.Replace(b, []byte(`"records": 19`), []byte(`"records": 18`), 1) }), "does not match its signature"},
		{"file added", func(dir string) { _ = os.WriteFile(filepath.Join(dir, "extra.txt"), []byte("x"), 0o644) }, "extra.txt: not in the manifest"},
		{"file removed", func(dir string) { _ = os.Remove(filepath.Join(dir, export.CSVName)) }, "records.csv: listed in the manifest but missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := write(t, s, export.Scope{Formats: export.AllFormats})
			tc.tamper(dir)
			_, err := export.Verify(dir, pub)
			var ve *export.VerifyError
			if !errors.As(err, &ve) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Verify = %v; want %q", err, tc.want)
			}
		})
	}
	if dir, _ := write(t, s, export.Scope{}); true {
		other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32)).Public().(ed25519.PublicKey)
		if _, err := export.Verify(dir, other); err == nil || !strings.Contains(err.Error(), "not by the key given") {
			t.Errorf("Verify with another key = %v", err)
		}
	}
	// With the manifest re-signed after the tampering (the signing key leaked), the record checks
	// still name the first bad record.
	recordCases := []struct {
		name, want string
		fn         func([]string) []string
	}{
		// Lines 1–2 are the admin stream; chat:1 seq 4 (Megan's first message) is line 6.
		{"altered text", "line 6 (stream chat:1, seq 4): content does not match its hash", func(ls []string) []string {
			ls[5] = strings.Replace(ls[5], "Happy to help", "Happy to hurt", 1)
			return ls
		}},
		{"removed record", "line 6 (stream chat:1, seq 4): missing", func(ls []string) []string { return append(ls[:5:5], ls[6:]...) }},
		{"inserted record", "line 7 (stream chat:1, seq 4): sequence number repeats", func(ls []string) []string {
			return append(append(ls[:6:6], ls[5]), ls[6:]...)
		}},
		{"reordered records", "line 6 (stream chat:1, seq 4): missing", func(ls []string) []string {
			ls[5], ls[6] = ls[6], ls[5]
			return ls
		}},
		{"record moved to another stream", "line 6 (stream chat:9, seq 4): stream not in the manifest", func(ls []string) []string {
			ls[5] = strings.Replace(ls[5], `"stream":"chat:1"`, `"stream":"chat:9"`, 1)
			return ls
		}},
	}
	for _, tc := range recordCases {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := write(t, s, export.Scope{})
			edit(export.RecordsName, lines(tc.fn))(dir)
			resign(t, dir)
			_, err := export.Verify(dir, pub)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Verify = %v; want %q", err, tc.want)
			}
		})
	}
}

// resign recomputes the manifest's file hashes and signs it again, as someone holding the signing
// key could.
func resign(t *testing.T, dir string) {
	t.Helper()
	data, _ := os.ReadFile(filepath.Join(dir, export.ManifestName))
	var m export.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for i, f := range m.Files {
		b, _ := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Name)))
		m.Files[i].SHA256, m.Files[i].Size = sha256Hex(b), int64(len(b))
	}
	data, _ = json.MarshalIndent(&m, "", "  ")
	data = append(data, '\n')
	_ = os.WriteFile(filepath.Join(dir, export.ManifestName), data, 0o644)
	sig := ed25519.Sign(signKey, data)
	_ = os.WriteFile(filepath.Join(dir, export.SignatureName), []byte(compliance.SigningKeyID(pub)+" "+base64Std(sig)+"\n"), 0o644)
}
