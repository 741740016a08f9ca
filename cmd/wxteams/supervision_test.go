package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/compliance"
)

// The supervision commands as a compliance officer uses them on the database: a rule written,
// refused when it would overwrite one unawares, tried, listed and ended; the review queue sampled
// and its report exported, signed and verified offline.
func TestRulesAndReviewOnTheCommandLine(t *testing.T) {
	cli, env, dir := freshCLI(t)
	rule := filepath.Join(dir, "insider.json")
	if err := os.WriteFile(rule, []byte(`{"id": "insider", "name": "Inside information", "action": "block",
		"directions": ["to_customer"], "terms": [{"text": "内幕消息"}], "reason": "never pass on non-public information"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	grouped := filepath.Join(dir, "desk.json")
	if err := os.WriteFile(grouped, []byte(`{"id": "desk", "name": "Desk", "action": "flag", "directions": ["to_customer"],
		"terms": [{"text": "tip"}], "groups": ["equites"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"rules", "put", rule}, 0, "rule insider is now at version 1 (block)"},
		{[]string{"rules", "put", rule}, 2, `rule insider exists (version 1): set "version"`},
		{[]string{"rules", "list"}, 0, "insider"},
		{[]string{"rules", "put", grouped}, 2, `there is no supervision group "equites"`},
		{[]string{"rules", "check", "--direction", "to_customer", "我有內幕消息"}, 0, "action: block"},
		{[]string{"rules", "check", "--direction", "to_customer", "内部消息"}, 0, "action: none"},
		{[]string{"rules", "check", "我有內幕消息"}, 2, "--direction"},
		{[]string{"rules", "show", "insider"}, 0, "created by cli:"},
		{[]string{"rules", "delete", "--version", "7", "insider"}, 1, "version"},
		{[]string{"rules", "delete", "insider"}, 0, "rule insider deleted (version 2)"},
		{[]string{"rules", "show", "nope"}, 1, `there is no rule "nope"`},
		{[]string{"review", "sample", "--percent", "10", "--day", "2026-11-01"}, 0, "2026-11-01: 0 conversation(s) drawn"},
		{[]string{"review", "sample", "--day", "2026-11-01"}, 0, "was sampled already"},
		{[]string{"review", "decide", "999", "no_issue", "--note", "fine"}, 1, "999"},
		{[]string{"review", "report", "--from", "2026-11-05", "--to", "2026-11-01"}, 2, "the window is empty"},
		{[]string{"review", "report", "--from", "5 Nov"}, 2, `from: "5 Nov" is neither`},
		{[]string{"review", "report", "--format", "csv", "--out", filepath.Join(dir, "report")}, 0, "review report written to"},
		{[]string{"verify-export", filepath.Join(dir, "report")}, 0, ""},
	}
	for _, s := range steps {
		code, out := cli(s.args...)
		if code != s.code || !strings.Contains(out, s.want) {
			t.Errorf("wxteams %s = %d:\n%s\nwant %d saying %q", strings.Join(s.args, " "), code, out, s.code, s.want)
		}
	}
	if code, out := cli("review", "list"); code != 0 {
		t.Errorf("review list = %d %s", code, out)
	}
	// Every change is in the record with the operator as actor, and so are the reads.
	if code, out := cli("verify"); code != 0 {
		t.Errorf("verify = %d %s", code, out)
	}
	store, err := sqlstore.Open(context.Background(), env["WXTEAMS_DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	recs, err := store.ArchiveStream(context.Background(), compliance.AdminStream)
	if err != nil {
		t.Fatal(err)
	}
	reads := map[string]int{}
	for _, r := range recs {
		if m, _ := compliance.DecodeMeta(r.Meta); r.Kind == compliance.KindAccess && strings.HasPrefix(r.Actor, "cli:") {
			reads[m.Reason]++
			if strings.Contains(m.Query, "內幕") {
				t.Errorf("an access record holds the text checked: %q", m.Query)
			}
		}
	}
	if reads["check a message against the rules"] != 2 || reads["list review items"] != 1 {
		t.Errorf("reads archived: %v; want the two checks and the list", reads)
	}
}

// freshCLI runs wxteams commands on a new, migrated SQLite database with archive and signing
// keys, as an operator would; it returns the runner, the environment and the database's folder.
func freshCLI(t *testing.T) (cli func(args ...string) (int, string), env map[string]string, dir string) {
	t.Helper()
	dir = t.TempDir()
	key := func() string {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		return base64.StdEncoding.EncodeToString(b)
	}
	env = map[string]string{
		"WXTEAMS_DATABASE_URL": "sqlite:" + filepath.Join(dir, "wxteams.db"),
		"WXTEAMS_ARCHIVE_KEY":  key(),
		"WXTEAMS_SIGNING_KEY":  key(),
	}
	cli = func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		e := &environment{stdout: &out, stderr: &errOut, getenv: func(k string) string { return env[k] }}
		code := run(context.Background(), e, args)
		return code, out.String() + errOut.String()
	}
	if code, out := cli("migrate"); code != 0 {
		t.Fatalf("migrate = %d %s", code, out)
	}
	return cli, env, dir
}
