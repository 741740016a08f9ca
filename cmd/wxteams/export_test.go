package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/wxteams/wxteams/bridge"
)

// mailbox is a local SMTP server (go-smtp) that keeps what it is sent, with PLAIN authentication.
type mailbox struct {
	mu   sync.Mutex
	msgs []delivered
}

type delivered struct {
	from string
	to   []string
	data []byte
}

type mailSession struct {
	box    *mailbox
	authed bool
	cur    delivered
}

func (b *mailbox) NewSession(*smtp.Conn) (smtp.Session, error) { return &mailSession{box: b}, nil }

func (s *mailSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *mailSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "archive" || pass != "s3cret" {
			return errors.New("invalid credentials")
		}
		s.authed = true
		return nil
	}), nil
}

func (s *mailSession) Mail(from string, _ *smtp.MailOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	s.cur.from = from
	return nil
}

func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = data
	s.box.mu.Lock()
	s.box.msgs = append(s.box.msgs, s.cur)
	s.box.mu.Unlock()
	s.cur = delivered{}
	return nil
}

func (s *mailSession) Reset()        { s.cur = delivered{} }
func (s *mailSession) Logout() error { return nil }

func (b *mailbox) received() []delivered {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]delivered(nil), b.msgs...)
}

func startMailbox(t *testing.T) (*mailbox, string) {
	t.Helper()
	box := &mailbox{}
	srv := smtp.NewServer(box)
	srv.Domain, srv.AllowInsecureAuth = "localhost", true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return box, ln.Addr().String()
}

// The compliance officer's tools on a database the running product filled: a one-off export and
// its offline verification, a scheduled job that exports only what is new and mails EML over SMTP,
// and holds.
func TestExportCommands(t *testing.T) {
	m := newMicrosoft(t)
	box, smtpAddr := startMailbox(t)
	m.env["WXTEAMS_SMTP_URL"] = "smtp://archive:s3cret@" + smtpAddr + "?tls=none"
	m.env["WXTEAMS_SMTP_FROM"] = "wxteams@acme.example"
	s := m.start(t)
	ctx := context.Background()
	if _, err := s.engine.EnableEmployee(ctx, bridge.EmployeeProfile{ID: testMegan, Name: "Megan Bowen", Email: "megan@acme.example"}, "admin:test"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.wechat.ScanScene(ctx, "o-ming", bridge.SceneFor(testMegan)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.wechat.Send(ctx, "o-ming", "Please send me the fund's factsheet"); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		e := &environment{stdout: &out, stderr: &errOut, getenv: func(k string) string { return m.env[k] }}
		code := run(ctx, e, args)
		return code, out.String() + errOut.String()
	}
	_, pubOut := cli("keys", "public")
	pub, _, _ := strings.Cut(pubOut, " ")
	cli("checkpoint")

	dir := filepath.Join(t.TempDir(), "export-1")
	if code, out := cli("export", "--out", dir, "--format", "all", "--employee", testMegan); code != 0 || !strings.Contains(out, "exported") {
		t.Fatalf("export = %d %s", code, out)
	}
	if code, out := cli("verify-export", dir, "--public-key", pub); code != 0 || !strings.Contains(out, "export intact") {
		t.Errorf("verify-export = %d %s", code, out)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "records.jsonl"))
	if !bytes.Contains(data, []byte("fund's factsheet")) {
		t.Error("the export lacks the customer's message in plaintext (exports hand the record over readable)")
	}
	if code, out := cli("export", "--out", dir); code != 1 || !strings.Contains(out, "not empty") {
		t.Errorf("export into a used folder = %d %s; want refused", code, out)
	}
	if code, out := cli("export", "--out", t.TempDir()+"/x", "--from", "yesterday"); code != 2 || !strings.Contains(out, "--from") {
		t.Errorf("export with a bad date = %d %s", code, out)
	}

	// A scheduled job: the first run exports everything and mails the EML; a second run with
	// nothing new makes no folder; after new messages, the next run holds only those.
	jobs := t.TempDir()
	if code, out := cli("export-job", "add", "--name", "gr-daily", "--out", jobs, "--every", "24h", "--format", "eml", "--smtp-to", "journal@gr.example"); code != 0 {
		t.Fatalf("export-job add = %d %s", code, out)
	}
	if code, out := cli("export-job", "run", "--name", "gr-daily"); code != 0 || !strings.Contains(out, "gr-daily-000001") {
		t.Fatalf("first run = %d %s", code, out)
	}
	mails := box.received()
	if len(mails) == 0 || mails[0].from != "wxteams@acme.example" || mails[0].to[0] != "journal@gr.example" {
		t.Fatalf("mailed = %+v", mails)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(mails[0].data))
	if err != nil || msg.Header.Get("X-GlobalRelay-MsgType") != "WeChat" {
		t.Errorf("mailed message: %v, %v", msg, err)
	}
	if code, out := cli("export-job", "run", "--name", "gr-daily"); code != 0 || !strings.Contains(out, "nothing new") {
		t.Errorf("second run = %d %s", code, out)
	}
	if _, _, err := m.wechat.Send(ctx, "o-ming", "And the annual report, please"); err != nil {
		t.Fatal(err)
	}
	if code, out := cli("export-job", "run", "--name", "gr-daily"); code != 0 || !strings.Contains(out, "gr-daily-000002") {
		t.Fatalf("third run = %d %s", code, out)
	}
	first, _ := os.ReadFile(filepath.Join(jobs, "gr-daily-000001", "records.jsonl"))
	second, _ := os.ReadFile(filepath.Join(jobs, "gr-daily-000002", "records.jsonl"))
	if !bytes.Contains(second, []byte("annual report")) || bytes.Contains(second, []byte("factsheet")) || bytes.Contains(first, []byte("annual report")) {
		t.Error("the second run does not hold exactly the new records")
	}
	for _, d := range []string{"gr-daily-000001", "gr-daily-000002"} {
		if code, out := cli("verify-export", filepath.Join(jobs, d), "--public-key", pub); code != 0 {
			t.Errorf("verify-export %s = %d %s", d, code, out)
		}
	}
	// Each line of both runs is a distinct record: nothing exported twice.
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(first))+"\n"+strings.TrimSpace(string(second)), "\n") {
		key := line[:strings.Index(line, `"at"`)]
		if seen[key] {
			t.Errorf("exported twice: %s", key)
		}
		seen[key] = true
	}
	if code, out := cli("export-job", "list"); code != 0 || !strings.Contains(out, "2 runs") {
		t.Errorf("export-job list = %d %s", code, out)
	}

	// Holds from the command line, archived.
	if code, out := cli("hold", "place", "--scope", "employee", "--subject", testMegan, "--reason", "FINRA 2026-114"); code != 0 {
		t.Errorf("hold place = %d %s", code, out)
	}
	if code, out := cli("hold", "list"); code != 0 || !strings.Contains(out, "FINRA 2026-114") {
		t.Errorf("hold list = %d %s", code, out)
	}
	if code, out := cli("hold", "place", "--scope", "planet", "--subject", "x", "--reason", "y"); code != 1 || !strings.Contains(out, "scope") {
		t.Errorf("a bad hold = %d %s", code, out)
	}
	if code, out := cli("purge"); code != 0 || !strings.Contains(out, "removed 0 records") {
		t.Errorf("purge = %d %s", code, out)
	}
	if code, out := cli("verify", "--public-key", pub); code != 0 {
		t.Errorf("verify after it all = %d %s", code, out)
	}
}
