package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge/clock"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/export"
	"github.com/wxteams/wxteams/internal/loadtest"
)

// These tests are the security review's findings about start-up (issue 13: 1 the bare command and
// the sandbox, 6 keys, 8 weak settings, 9 files and processes), each reproduced against the
// commands as an operator runs them.

// runFor runs a command line in-process with exactly vars as its environment, for at most d: a
// refusal returns at once; a server that starts runs until d is over (or until stdout shows
// stopWhen, if set) and then stops.
func runFor(t *testing.T, vars map[string]string, d time.Duration, stopWhen string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	out, errb := &syncWriter{w: &strings.Builder{}}, &syncWriter{w: &strings.Builder{}}
	env := &environment{stdout: out, stderr: errb, getenv: func(k string) string { return vars[k] }}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- run(ctx, env, args) }()
	if stopWhen != "" {
		go func() {
			for ctx.Err() == nil && !strings.Contains(out.String(), stopWhen) {
				time.Sleep(20 * time.Millisecond)
			}
			cancel()
		}()
	}
	select {
	case code = <-done:
	case <-time.After(d + 40*time.Second):
		t.Fatalf("wxteams %v did not stop", args)
	}
	return code, out.String(), errb.String()
}

// loopbackListeners keeps a test's servers on loopback and free ports.
func loopbackListeners(vars map[string]string) map[string]string {
	vars["WXTEAMS_LISTEN"], vars["WXTEAMS_INTERNAL_LISTEN"] = "127.0.0.1:0", "127.0.0.1:0"
	return vars
}

// deploymentDatabase is a deployment's database: migrated, with an administrator's action archived.
func deploymentDatabase(t *testing.T, dbURL string) *sqlstore.Store {
	t.Helper()
	s := sqlstoretest.Open(t, dbURL)
	if err := s.Archive(context.Background(), compliance.Event{Stream: compliance.AdminStream, At: time.Now(), Kind: compliance.KindHoldPlaced,
		Actor: "admin:real-officer", Meta: compliance.Meta{Scope: "chat", Subject: "1", Reason: "investigation"}}); err != nil {
		t.Fatal(err)
	}
	return s
}

func adminRecords(t *testing.T, s *sqlstore.Store) int {
	t.Helper()
	recs, err := s.RecentRecords(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

// Finding 1: `wxteams` without a channel on another database (a missing secret mount) started the
// sandbox — no sign-in, a fake administrator — on a deployment's archive.
func TestBareCommandStartsTheSandboxOnlyOnItsOwnDatabase(t *testing.T) {
	t.Run("another database", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "prod.db")
		s := deploymentDatabase(t, "sqlite:"+path)
		before := adminRecords(t, s)
		code, _, stderr := runFor(t, loopbackListeners(map[string]string{"WXTEAMS_DATABASE_URL": "sqlite:" + path}), 8*time.Second, "")
		if code != 1 {
			t.Fatalf("wxteams on a deployment's database = %d; want 1 (refused)\n%s", code, stderr)
		}
		for _, want := range []string{"WXTEAMS_WECHAT_APPID", "WXTEAMS_BOT_APP_ID", "WXTEAMS_DATABASE_URL names a database other than the sandbox's own", "wxteams sandbox"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("the refusal does not say %q:\n%s", want, stderr)
			}
		}
		if after := adminRecords(t, s); after != before {
			t.Errorf("the archive went from %d to %d records", before, after)
		}
		if _, err := os.Stat(path + ".keys.json"); err == nil {
			t.Error("sandbox keys were written beside the deployment's database")
		}
	})
	t.Run("deployment variables", func(t *testing.T) {
		code, _, stderr := runFor(t, loopbackListeners(map[string]string{"WXTEAMS_ARCHIVE_KEY": randomKey(), "WXTEAMS_WECHAT_SECRET": "s"}), 8*time.Second, "")
		if code != 1 || !strings.Contains(stderr, "WXTEAMS_ARCHIVE_KEY is set") || !strings.Contains(stderr, "WXTEAMS_WECHAT_SECRET is set") {
			t.Errorf("wxteams with a deployment's keys and no channel = %d; want 1 naming what is set\n%s", code, stderr)
		}
	})
	t.Run("the sandbox's own database", func(t *testing.T) {
		dir := t.TempDir()
		t.Chdir(dir)
		for _, vars := range []map[string]string{{}, {"WXTEAMS_DATABASE_URL": sandboxDatabaseURL}} {
			code, stdout, stderr := runFor(t, loopbackListeners(vars), 60*time.Second, "open http://")
			if code != 0 || !strings.Contains(stdout, "wxteams sandbox: open http://localhost:") {
				t.Fatalf("wxteams with %v = %d; want the sandbox\n%s%s", vars, code, stdout, stderr)
			}
		}
		for _, name := range []string{"wxteams-sandbox.db", "wxteams-sandbox.db.keys.json"} {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: %v; want mode 0600", name, err)
			}
		}
	})
}

// Finding 1: `wxteams sandbox --database-url` took any database. It takes only a new one or its own.
func TestSandboxRefusesADeploymentsDatabase(t *testing.T) {
	sqlstoretest.EachURL(t, func(t *testing.T, dbURL string) {
		s := deploymentDatabase(t, dbURL)
		before := adminRecords(t, s)
		code, _, stderr := runFor(t, loopbackListeners(map[string]string{}), 15*time.Second, "", "sandbox", "--database-url", dbURL)
		if code != 1 || !strings.Contains(stderr, "was not created by the sandbox") || !strings.Contains(stderr, "--database-url "+sandboxDatabaseURL) {
			t.Errorf("the sandbox on a deployment's database = %d; want 1 saying why\n%s", code, stderr)
		}
		if after := adminRecords(t, s); after != before {
			t.Errorf("the sandbox wrote %d records into a deployment's archive", after-before)
		}
		if path, ok := strings.CutPrefix(dbURL, "sqlite:"); ok {
			if _, err := os.Stat(path + ".keys.json"); err == nil {
				t.Error("sandbox keys were written beside the deployment's database")
			}
		}
	})
}

// The other way round: serve never runs on the sandbox's database.
func TestServeRefusesASandboxDatabase(t *testing.T) {
	sqlstoretest.EachURL(t, func(t *testing.T, dbURL string) {
		if err := claimSandboxDatabase(context.Background(), dbURL); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadConfig(func(k string) string { return loopbackListeners(map[string]string{"WXTEAMS_DATABASE_URL": dbURL})[k] })
		if err != nil {
			t.Fatal(err)
		}
		env, _, _ := testEnv(nil)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // a serve that starts stops then
		defer cancel()
		if err := serve(ctx, env, cfg, serveOptions{clock: clock.System{}}); !errors.Is(err, errSandboxDatabase) {
			t.Errorf("serve on the sandbox's database: %v; want errSandboxDatabase", err)
		}
	})
}

// Finding 1: the sandbox bound any address (":18082" is every interface) although it has no sign-in.
func TestSandboxListensOnLoopbackOnly(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "sandbox.db")
	for _, tc := range []struct {
		vars map[string]string
		args []string
		want string
	}{
		{map[string]string{}, []string{"--listen", ":18082"}, `WXTEAMS_LISTEN (--listen): the sandbox has no sign-in and listens on loopback only, not on ":18082"`},
		{map[string]string{}, []string{"--listen", "0.0.0.0:0"}, `not on "0.0.0.0:0"`},
		{map[string]string{"WXTEAMS_LISTEN": "[::]:0"}, nil, `not on "[::]:0"`},
		{map[string]string{"WXTEAMS_LISTEN": "192.0.2.1:0"}, nil, `not on "192.0.2.1:0"`},
		{map[string]string{"WXTEAMS_INTERNAL_LISTEN": "0.0.0.0:0"}, []string{"--listen", "127.0.0.1:0"}, `WXTEAMS_INTERNAL_LISTEN: the sandbox has no sign-in and listens on loopback only`},
	} {
		vars := map[string]string{"WXTEAMS_INTERNAL_LISTEN": "127.0.0.1:0"}
		for k, v := range tc.vars {
			vars[k] = v
		}
		code, _, stderr := runFor(t, vars, 15*time.Second, "", append([]string{"sandbox", "--database-url", db}, tc.args...)...)
		if code != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("sandbox %v with %v = %d; want 1 and %q\n%s", tc.args, tc.vars, code, tc.want, stderr)
		}
	}
	for addr, want := range map[string]bool{"127.0.0.1:8080": true, "localhost:0": true, "[::1]:8080": true, "127.0.0.2:1": true,
		":8080": false, "0.0.0.0:8080": false, "[::]:1": false, "10.0.0.1:1": false, "localhost.example:1": false, "127.0.0.1": false} {
		if got := loopbackListen(addr); got != want {
			t.Errorf("loopbackListen(%q) = %v; want %v", addr, got, want)
		}
	}
}

// Finding 1: the sandbox answered any Host, so a web page whose DNS name is rebound to 127.0.0.1
// could read the archive through the visitor's browser. It answers only loopback names.
func TestSandboxAnswersOnlyLoopbackHostNames(t *testing.T) {
	s := startSandbox(t)
	do := func(addr, path, host string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		req.Host = host
		req.Header.Set("X-Wxteams-Console", "1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	_, port, _ := strings.Cut(s.publicAddr, ":")
	for _, host := range []string{"attacker.example", "attacker.example:" + port, "127.0.0.1.nip.io:" + port, "localhost.attacker.example", "0.0.0.0:" + port, "10.1.2.3"} {
		for _, path := range []string{"/", "/healthz", "/console/api/sandbox/state", "/compliance/v1/records"} {
			if code, body := do(s.publicAddr, path, host); code != http.StatusMisdirectedRequest || !strings.Contains(body, "localhost") {
				t.Errorf("GET %s with Host %q = %d %q; want 421", path, host, code, body)
			}
		}
		if code, _ := do(s.internalAddr, "/metrics", host); code != http.StatusMisdirectedRequest {
			t.Errorf("internal /metrics with Host %q = %d; want 421", host, code)
		}
	}
	for _, host := range []string{"localhost:" + port, "LOCALHOST:" + port, "127.0.0.1:" + port, "[::1]:" + port, "localhost"} {
		if code, body := do(s.publicAddr, "/healthz", host); code != http.StatusOK {
			t.Errorf("GET /healthz with Host %q = %d %q; want 200", host, code, body)
		}
	}
}

// Finding 6: the sandbox reused a keys file committed to the repository, accepted one anybody could
// read, and took the environment's keys. Its keys are its own, private, and marked.
func TestSandboxKeysArePrivateAndItsOwn(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix file modes")
	}
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "sandbox.db")
	keysPath := sandboxKeysPath(db)
	if keysPath != filepath.Join(dir, "sandbox.db.keys.json") {
		t.Fatalf("keys path %s", keysPath)
	}
	// The environment's keys (a deployment's, say) are not the sandbox's.
	prodArchive, prodSigning := randomKey(), randomKey()
	env := &environment{stdout: io.Discard, stderr: io.Discard, getenv: func(k string) string {
		return map[string]string{"WXTEAMS_INTERNAL_LISTEN": "127.0.0.1:0", "WXTEAMS_ARCHIVE_KEY": prodArchive, "WXTEAMS_SIGNING_KEY": prodSigning,
			"WXTEAMS_ARCHIVE_KEY_PREVIOUS": randomKey()}[k]
	}}
	world, cfg, _, err := prepareSandbox(context.Background(), env, "127.0.0.1:0", db, "json", keysPath)
	if err != nil {
		t.Fatal(err)
	}
	world.stop()
	if base64.StdEncoding.EncodeToString(cfg.ArchiveKey) == prodArchive || base64.StdEncoding.EncodeToString(cfg.SigningKey) == prodSigning || cfg.ArchiveKeyPrevious != nil {
		t.Error("the sandbox took the environment's keys")
	}
	if !bytes.HasPrefix(cfg.ArchiveKey, sandboxKeyMark) || !bytes.HasPrefix(cfg.SigningKey, sandboxKeyMark) || bytes.Equal(cfg.ArchiveKey, cfg.SigningKey) {
		t.Error("the sandbox's keys do not carry the sandbox mark")
	}
	fi, err := os.Stat(keysPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("keys file: %v; want mode 0600 even with umask 0", err)
	}
	a, s, err := sandboxKeys(keysPath)
	if err != nil || !bytes.Equal(a, cfg.ArchiveKey) || !bytes.Equal(s, cfg.SigningKey) {
		t.Errorf("the keys file does not give the same keys again: %v", err)
	}

	// Readable by others: refused, naming the file and the fix.
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		if err := os.Chmod(keysPath, mode); err != nil {
			t.Fatal(err)
		}
		_, _, err := sandboxKeys(keysPath)
		if err == nil || !strings.Contains(err.Error(), keysPath) || !strings.Contains(err.Error(), "chmod 600 "+keysPath) {
			t.Errorf("a keys file with mode %#o: %v; want a refusal naming it and chmod 600", mode, err)
		}
	}
	code, _, stderr := runFor(t, map[string]string{"WXTEAMS_INTERNAL_LISTEN": "127.0.0.1:0"}, 15*time.Second, "", "sandbox", "--listen", "127.0.0.1:0", "--database-url", db)
	if code != 1 || !strings.Contains(stderr, "chmod 600") {
		t.Errorf("the sandbox with a world-readable keys file = %d; want 1\n%s", code, stderr)
	}

	// The keys once committed to the repository (no mark) are refused too.
	old1 := filepath.Join(dir, "old.keys.json")
	if err := os.WriteFile(old1, []byte(`{"archive_key": "Xtqnywygdzq7Uo5FuiZ7BQIfPkDJkMJC96VLqUvzTD0=", "signing_key": "qkQ5ZZLVL5o+wGK66UGN4iEl4nDidddPggTtYTkM2Fo="}`), 0o600); err != nil { // secretscan:allow -- the keys once committed, which must be refused
		t.Fatal(err)
	}
	if _, _, err := sandboxKeys(old1); err == nil || !strings.Contains(err.Error(), "older wxteams") {
		t.Errorf("the committed keys file: %v; want refused", err)
	}
}

// Finding 6: the repository held keys files, and nothing kept new ones out.
func TestNoKeysFileIsCommitted(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git not installed")
	}
	root, err := exec.Command(git, "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skip("not in a git checkout")
	}
	top := strings.TrimSpace(string(root))
	out, err := exec.Command(git, "-C", top, "ls-files", "*.keys.json", "*.db", "*.db-wal", "*.db-shm").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(out)) {
		if !strings.Contains("/"+f, "/testdata/") {
			t.Errorf("%s is committed", f)
		}
	}
	for _, f := range []string{"wxteams-sandbox.db", "wxteams-sandbox.db-wal", "wxteams-sandbox.db.keys.json", "wxteams-sandbox.keys.json", "cmd/wxteams/wxteams-sandbox.keys.json", "x/any.keys.json"} {
		if err := exec.Command(git, "-C", top, "check-ignore", "-q", "--no-index", f).Run(); err != nil {
			t.Errorf("%s is not ignored by .gitignore", f)
		}
	}
}

// strongServeEnv is a configuration serve accepts: WeChat in safe mode with a strong Token, random
// keys, a local database, loopback listeners, and an API base on loopback (nothing listens there:
// the test's serve never reaches WeChat).
func strongServeEnv(t *testing.T) map[string]string {
	return loopbackListeners(map[string]string{
		"WXTEAMS_DATABASE_URL":       "sqlite:" + filepath.Join(t.TempDir(), "serve.db"),
		"WXTEAMS_WECHAT_APPID":       "wxb11529c136998cb6",
		"WXTEAMS_WECHAT_SECRET":      "s3cret",
		"WXTEAMS_WECHAT_TOKEN":       randomAlnum(32),
		"WXTEAMS_WECHAT_AES_KEY":     randomAlnum(43),
		"WXTEAMS_WECHAT_ORIGINAL_ID": "gh_97417a04a28d",
		"WXTEAMS_WECHAT_API_BASE":    "http://127.0.0.1:9",
		"WXTEAMS_ARCHIVE_KEY":        randomKey(),
		"WXTEAMS_SIGNING_KEY":        randomKey(),
	})
}

// withBot adds a Teams bot whose Microsoft endpoints are, unless vars names them, on loopback.
func withBot(vars map[string]string) map[string]string {
	for k, v := range map[string]string{
		"WXTEAMS_BOT_APP_ID": sandboxBotApp, "WXTEAMS_BOT_TENANT_ID": sandboxTenant, "WXTEAMS_BOT_CLIENT_SECRET": "x",
		"WXTEAMS_BOT_OPENID_URL": "http://127.0.0.1:9/v1/.well-known/openidconfiguration", "WXTEAMS_BOT_PROACTIVE_URL": "http://127.0.0.1:9/teams/",
		"WXTEAMS_GRAPH_BASE": "https://127.0.0.1:9/v1.0", "WXTEAMS_ADMIN_OPENID_URL": "http://127.0.0.1:9/.well-known/openid-configuration",
		"AZURE_AUTHORITY_HOST": "https://127.0.0.1:9/",
	} {
		if _, set := vars[k]; !set {
			vars[k] = v
		}
	}
	return vars
}

func key64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// Finding 8: serve started with all-zero keys, a 3-character Token, plaintext callbacks, http://
// endpoints, an exposed internal listener and sslmode=disable to a remote PostgreSQL. Each is
// refused at start, naming the variable and the fix (and the opt-in, where there is one).
func TestServeRefusesWeakSettings(t *testing.T) {
	if cfg, err := loadConfig(func(k string) string { return withBot(strongServeEnv(t))[k] }); err != nil {
		t.Fatal(err)
	} else if warnings, err := serveSafety(cfg); err != nil || len(warnings) != 0 {
		t.Fatalf("a strong configuration: %v, warnings %q", err, warnings)
	}
	sandboxArchive, sandboxSigning := newSandboxKey(), newSandboxKey()
	pattern := bytes.Repeat([]byte("0123456789abcdef"), 2)
	lowEntropy := sha256.Sum256([]byte("few values"))
	for i := range lowEntropy {
		lowEntropy[i] = lowEntropy[i] % 9 * 29
	}
	same := randomKey()
	const remoteDB = "postgres://wxteams:pw@192.0.2.10:5432/wxteams"
	for _, tc := range []struct {
		name string
		set  map[string]string
		want []string
	}{
		{"all-zero archive key", map[string]string{"WXTEAMS_ARCHIVE_KEY": key64(make([]byte, 32))}, []string{"WXTEAMS_ARCHIVE_KEY: not a key", "all its bytes are equal", "openssl rand -base64 32"}},
		{"all-equal signing key", map[string]string{"WXTEAMS_SIGNING_KEY": key64(bytes.Repeat([]byte{0xa5}, 32))}, []string{"WXTEAMS_SIGNING_KEY: not a key", "all its bytes are equal"}},
		{"a repeated pattern", map[string]string{"WXTEAMS_ARCHIVE_KEY": key64(pattern)}, []string{"WXTEAMS_ARCHIVE_KEY", "repeats a pattern of 16 bytes"}},
		{"a password", map[string]string{"WXTEAMS_SIGNING_KEY": key64([]byte("correct horse battery staple 42!"))}, []string{"WXTEAMS_SIGNING_KEY", "it is text"}},
		{"few byte values", map[string]string{"WXTEAMS_ARCHIVE_KEY": key64(lowEntropy[:])}, []string{"WXTEAMS_ARCHIVE_KEY", "different byte values, where a random key has about 30"}},
		{"the sandbox's keys", map[string]string{"WXTEAMS_ARCHIVE_KEY": key64(sandboxArchive), "WXTEAMS_SIGNING_KEY": key64(sandboxSigning)}, []string{"WXTEAMS_ARCHIVE_KEY", "WXTEAMS_SIGNING_KEY", "it is a sandbox key"}},
		{"a key once committed", map[string]string{"WXTEAMS_ARCHIVE_KEY": "s97nIq8lUTNIoOhvIY5SLv/qrTmJm5v0w056GoLvptg=", "WXTEAMS_SIGNING_KEY": "C9dBDgcrenGnv/+DqBqc8ErWU3BeGGCu1qBWjneAoJ0="}, []string{"WXTEAMS_ARCHIVE_KEY", "WXTEAMS_SIGNING_KEY", "published in the wxteams repository"}}, // secretscan:allow -- the keys once committed, which must be refused
		{"one key for both", map[string]string{"WXTEAMS_ARCHIVE_KEY": same, "WXTEAMS_SIGNING_KEY": same}, []string{"WXTEAMS_SIGNING_KEY: the same key as WXTEAMS_ARCHIVE_KEY"}},
		{"a 3-character Token", map[string]string{"WXTEAMS_WECHAT_TOKEN": "abc"}, []string{"WXTEAMS_WECHAT_TOKEN: too weak", "3 characters, fewer than 16", "32 random letters and digits"}},
		{"a Token of one letter", map[string]string{"WXTEAMS_WECHAT_TOKEN": strings.Repeat("a", 32)}, []string{"WXTEAMS_WECHAT_TOKEN", "only 1 different characters"}},
		{"plaintext callbacks", map[string]string{"WXTEAMS_WECHAT_AES_KEY": ""}, []string{"WXTEAMS_WECHAT_AES_KEY", "plaintext mode", "safe mode", "WXTEAMS_INSECURE_PLAINTEXT_CALLBACK=1"}},
		{"http WeChat API", map[string]string{"WXTEAMS_WECHAT_API_BASE": "http://user:pw@192.0.2.10"}, []string{"WXTEAMS_WECHAT_API_BASE", "plain http", "use https", "WXTEAMS_INSECURE_TRANSPORT=1"}},
		{"http bot OpenID", withBot(map[string]string{"WXTEAMS_BOT_OPENID_URL": "http://192.0.2.10/v1/.well-known/openidconfiguration"}), []string{"WXTEAMS_BOT_OPENID_URL", "plain http"}},
		{"http admin OpenID", withBot(map[string]string{"WXTEAMS_ADMIN_OPENID_URL": "http://192.0.2.10/.well-known/openid-configuration"}), []string{"WXTEAMS_ADMIN_OPENID_URL", "plain http"}},
		{"http proactive serviceUrl", withBot(map[string]string{"WXTEAMS_BOT_PROACTIVE_URL": "http://192.0.2.10/teams/"}), []string{"WXTEAMS_BOT_PROACTIVE_URL", "plain http"}},
		{"internal listener on every interface", map[string]string{"WXTEAMS_INTERNAL_LISTEN": "0.0.0.0:0"}, []string{"WXTEAMS_INTERNAL_LISTEN", "metrics and pprof", "WXTEAMS_INSECURE_INTERNAL_LISTEN=1"}},
		{"sslmode=disable to a remote PostgreSQL", map[string]string{"WXTEAMS_DATABASE_URL": remoteDB + "?sslmode=disable"}, []string{"WXTEAMS_DATABASE_URL", "192.0.2.10 with sslmode=disable", "verify-full", "WXTEAMS_INSECURE_TRANSPORT=1"}},
		{"sslmode=prefer to a remote PostgreSQL", map[string]string{"WXTEAMS_DATABASE_URL": remoteDB + "?sslmode=prefer"}, []string{"WXTEAMS_DATABASE_URL", "sslmode=prefer"}},
	} {
		vars := strongServeEnv(t)
		for k, v := range tc.set {
			vars[k] = v
		}
		code, _, stderr := runFor(t, vars, 8*time.Second, "", "serve")
		if code != 1 {
			t.Errorf("%s: serve = %d; want 1 (refused)\n%s", tc.name, code, stderr)
			continue
		}
		for _, want := range tc.want {
			if !strings.Contains(stderr, want) {
				t.Errorf("%s: the refusal does not say %q:\n%s", tc.name, want, stderr)
			}
		}
		if strings.Contains(stderr, "pw@") {
			t.Errorf("%s: the refusal shows the database password", tc.name)
		}
	}
}

// The opt-ins: each allows its setting, and serve logs it at every start.
func TestServeLogsEveryInsecureOptIn(t *testing.T) {
	vars := withBot(strongServeEnv(t))
	for k, v := range map[string]string{
		"WXTEAMS_WECHAT_AES_KEY": "", "WXTEAMS_WECHAT_API_BASE": "http://192.0.2.10", "WXTEAMS_BOT_OPENID_URL": "http://192.0.2.10/openid",
		"WXTEAMS_INTERNAL_LISTEN": "0.0.0.0:0", "WXTEAMS_DATABASE_URL": "postgres://u@192.0.2.10/db?sslmode=disable",
		"WXTEAMS_INSECURE_PLAINTEXT_CALLBACK": "1", "WXTEAMS_INSECURE_TRANSPORT": "1", "WXTEAMS_INSECURE_INTERNAL_LISTEN": "1",
	} {
		vars[k] = v
	}
	cfg, err := loadConfig(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	warnings, err := serveSafety(cfg)
	if err != nil {
		t.Fatalf("the opt-ins did not allow their settings: %v", err)
	}
	joined := strings.Join(warnings, "\n")
	for _, want := range []string{"WXTEAMS_WECHAT_AES_KEY: not set", "allowed by WXTEAMS_INSECURE_PLAINTEXT_CALLBACK=1", "WXTEAMS_WECHAT_API_BASE", "WXTEAMS_BOT_OPENID_URL",
		"WXTEAMS_DATABASE_URL", "allowed by WXTEAMS_INSECURE_TRANSPORT=1", "WXTEAMS_INTERNAL_LISTEN", "allowed by WXTEAMS_INSECURE_INTERNAL_LISTEN=1"} {
		if !strings.Contains(joined, want) {
			t.Errorf("the warnings do not say %q:\n%s", want, joined)
		}
	}
	// serve writes them to its log at start.
	plain := strongServeEnv(t)
	plain["WXTEAMS_WECHAT_AES_KEY"], plain["WXTEAMS_INSECURE_PLAINTEXT_CALLBACK"] = "", "1"
	cfg, err = loadConfig(func(k string) string { return plain[k] })
	if err != nil {
		t.Fatal(err)
	}
	if warnings, err = serveSafety(cfg); err != nil || len(warnings) != 1 {
		t.Fatalf("plaintext allowed: %q %v", warnings, err)
	}
	logs := &syncWriter{w: &strings.Builder{}}
	env := &environment{stdout: io.Discard, stderr: logs, getenv: func(k string) string { return plain[k] }}
	ctx, stop := context.WithCancel(context.Background())
	started := make(chan *server, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, env, cfg, serveOptions{clock: clock.System{}, started: started, warnings: warnings})
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("serve stopped: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not start")
	}
	stop()
	<-done
	if !strings.Contains(logs.String(), `"level":"warn"`) || !strings.Contains(logs.String(), "start-up check: WXTEAMS_WECHAT_AES_KEY: not set") {
		t.Errorf("the opt-in is not in the log:\n%s", logs)
	}
}

func TestPostgresTransportIsJudgedAsLibPQConnects(t *testing.T) {
	if os.Getenv("PGSSLMODE") != "" || os.Getenv("PGHOST") != "" || os.Getenv("PGHOSTADDR") != "" {
		t.Skip("PG* variables in the environment change what lib/pq does")
	}
	for dsn, want := range map[string]string{
		"postgres://u@127.0.0.1/x?sslmode=disable":                     "",
		"postgres://u@localhost:5432/x?sslmode=disable":                "",
		"postgres://u@[::1]/x?sslmode=disable":                         "",
		"postgres://u@/x?host=/var/run/postgresql&sslmode=disable":     "",
		"postgres://u@10.1.2.3/x?sslmode=prefer":                       "problem",
		"postgres://u@db.example/x?sslmode=allow":                      "problem",
		"postgres://u@127.0.0.1,db.example/x?sslmode=disable":          "problem",
		"postgres://u@db.example/x?sslmode=disable&hostaddr=127.0.0.1": "",
		"postgres://u@db.example/x":                                    "warning", // lib/pq's default is require
		"postgres://u@db.example/x?sslmode=require":                    "warning",
		"postgres://u@db.example/x?sslmode=verify-full":                "",
		"sqlite:wxteams.db":                                            "",
	} {
		problem, warning := postgresWithoutTLS(dsn)
		got := ""
		if problem != "" {
			got = "problem"
		} else if warning != "" {
			got = "warning"
		}
		if got != want {
			t.Errorf("%s: %q %q; want %s", dsn, problem, warning, want)
		}
	}
}

// Finding 9: serve ran with core dumps on, so a crash wrote keys and decrypted messages to disk.
// serve (in a child process, as it changes the process) disables them and makes itself undumpable.
func TestServeDisablesCoreDumps(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("core dumps are disabled on Linux")
	}
	if dir := os.Getenv("WXTEAMS_TEST_HARDEN_CHILD"); dir != "" {
		var lim syscall.Rlimit
		if syscall.Getrlimit(syscall.RLIMIT_CORE, &lim) == nil && lim.Cur < lim.Max {
			lim.Cur = lim.Max // a core limit the parent process may have: serve must lower it
			_ = syscall.Setrlimit(syscall.RLIMIT_CORE, &lim)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // serve hardens the process before it opens the database, then stops
		vars := strongServeEnv(t)
		env := &environment{stdout: io.Discard, stderr: io.Discard, getenv: func(k string) string { return vars[k] }}
		run(ctx, env, []string{"serve"})
		_ = syscall.Getrlimit(syscall.RLIMIT_CORE, &lim)
		dumpable, _, _ := syscall.RawSyscall(syscall.SYS_PRCTL, 3 /* PR_GET_DUMPABLE */, 0, 0)
		fmt.Printf("HARDENED core=%d/%d dumpable=%d\n", lim.Cur, lim.Max, dumpable)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeDisablesCoreDumps$", "-test.count=1")
	cmd.Env = append(os.Environ(), "WXTEAMS_TEST_HARDEN_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "HARDENED core=0/0 dumpable=0") {
		t.Errorf("serve left core dumps possible:\n%s", out)
	}
}

// Finding 9: export folders — decrypted copies of the archive — stayed for ever. serve removes the
// compliance API's exports after WXTEAMS_EXPORT_RETENTION, and archives each removal.
func TestExportRetentionRemovesOldExportFolders(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		store := open(t)
		ctx := context.Background()
		dir := t.TempDir()
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		old := now.Add(-40 * 24 * time.Hour)
		write := func(path, content string, at time.Time) {
			if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(content), 0o640); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(path, at, at); err != nil {
				t.Fatal(err)
			}
		}
		id := func(at time.Time, suffix string) string { return "x-" + at.Format("20060102T150405Z") + "-" + suffix }
		finishedOld, failedOld, abandoned, stillWritten, recent := id(old, "aaaaaaaa"), id(old, "bbbbbbbb"), id(old, "cccccccc"), id(old, "dddddddd"), id(now.Add(-time.Hour), "eeeeeeee")
		for _, f := range []string{finishedOld, recent} {
			write(filepath.Join(dir, f, export.ManifestName), `{"records": 1}`, old)
			write(filepath.Join(dir, f, export.SignatureName), "sig", old)
			write(filepath.Join(dir, f, export.RecordsName), "secret records", old)
		}
		write(filepath.Join(dir, failedOld+".failed"), "export failed", old)
		write(filepath.Join(dir, abandoned, export.RecordsName), "half", old)
		if err := os.Chtimes(filepath.Join(dir, abandoned), old, old); err != nil {
			t.Fatal(err)
		}
		write(filepath.Join(dir, stillWritten, export.RecordsName), "being written", now.Add(-time.Minute))
		write(filepath.Join(dir, "notes", "readme"), "not an export", old)
		write(filepath.Join(dir, "x-20260101T000000Z-zzzz"), "not an export id", old)
		before := adminRecords(t, store)

		n, err := pruneExports(ctx, store, dir, 30*24*time.Hour, now)
		if err != nil || n != 3 {
			t.Fatalf("pruneExports = %d, %v; want 3 removed", n, err)
		}
		for name, want := range map[string]bool{finishedOld: false, failedOld + ".failed": false, abandoned: false, stillWritten: true, recent: true, "notes": true, "x-20260101T000000Z-zzzz": true} {
			if _, err := os.Stat(filepath.Join(dir, name)); (err == nil) != want {
				t.Errorf("%s: exists = %v; want %v", name, err == nil, want)
			}
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".removing-") {
				t.Errorf("%s left behind", e.Name())
			}
		}
		recs, err := store.RecentRecords(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		manifest := sha256.Sum256([]byte(`{"records": 1}`))
		removed := map[string]compliance.Meta{}
		for _, r := range recs {
			if r.Kind == compliance.KindExportRemoved {
				m, _ := compliance.DecodeMeta(r.Meta)
				removed[m.Subject] = m
				if r.Actor != "system:export-retention" || r.Stream != compliance.AdminStream {
					t.Errorf("removal archived as %s in %s", r.Actor, r.Stream)
				}
			}
		}
		if len(removed) != 3 || removed[finishedOld].Hash != hex.EncodeToString(manifest[:]) || removed[failedOld].Subject == "" || removed[abandoned].Subject == "" {
			t.Errorf("archived removals: %+v; want the three, the finished one with its manifest hash", removed)
		}
		if len(recs) != before+3 {
			t.Errorf("%d records added; want 3", len(recs)-before)
		}
		if _, err := store.VerifyArchive(ctx); err != nil {
			t.Errorf("the archive does not verify after the removals: %v", err)
		}
		// Again: nothing more to do; and retention 0 keeps everything.
		if n, err := pruneExports(ctx, store, dir, 30*24*time.Hour, now); n != 0 || err != nil {
			t.Errorf("second run = %d, %v", n, err)
		}
		if n, err := pruneExports(ctx, store, dir, 0, now.Add(1000*24*time.Hour)); n != 0 || err != nil {
			t.Errorf("retention 0 = %d, %v", n, err)
		}
	})
}

func TestExportRetentionIsConfigured(t *testing.T) {
	for v, want := range map[string]time.Duration{"": 30 * 24 * time.Hour, "7d": 7 * 24 * time.Hour, "48h": 48 * time.Hour, "0": 0} {
		cfg, err := loadConfig(func(k string) string { return map[string]string{"WXTEAMS_EXPORT_RETENTION": v}[k] })
		if err != nil || cfg.ExportRetention != want {
			t.Errorf("WXTEAMS_EXPORT_RETENTION=%q: %v, %v; want %v", v, cfg, err, want)
		}
	}
	for _, v := range []string{"soon", "30m", "-1h", "-3d", "1.5d"} {
		if _, err := loadConfig(func(k string) string { return map[string]string{"WXTEAMS_EXPORT_RETENTION": v}[k] }); err == nil || !strings.Contains(err.Error(), "WXTEAMS_EXPORT_RETENTION") {
			t.Errorf("WXTEAMS_EXPORT_RETENTION=%q: %v; want refused", v, err)
		}
	}
}

// Finding 9: the configured keys stayed in the configuration for the life of the process beside
// the keyring. loadCustody takes them out and zeroes them.
func TestLoadCustodyZeroesTheConfiguredKeys(t *testing.T) {
	archive, previous, signing := make([]byte, 32), make([]byte, 32), make([]byte, 32)
	for _, k := range [][]byte{archive, previous, signing} {
		_, _ = rand.Read(k)
	}
	cfg := &Config{ArchiveKey: archive, ArchiveKeyPrevious: previous, SigningKey: signing}
	archiveCopy := bytes.Clone(archive)
	keys, err := loadCustody(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if keys.ring == nil || keys.sign == nil || len(keys.cookie) != 32 || bytes.Equal(keys.cookie, archiveCopy) {
		t.Fatalf("custody: %+v", keys)
	}
	if keys.ring.Current() != compliance.KEKID(archiveCopy) {
		t.Error("the keyring is not the configured key's")
	}
	if cfg.ArchiveKey != nil || cfg.ArchiveKeyPrevious != nil || cfg.SigningKey != nil {
		t.Error("the configuration still holds keys")
	}
	for i, k := range [][]byte{archive, previous, signing} {
		if !bytes.Equal(k, make([]byte, 32)) {
			t.Errorf("key %d was not zeroed", i)
		}
	}
}

// Finding 6: the committed cmd/wxteams/wxteams-sandbox.keys.json came from the load test on
// PostgreSQL, which wrote the sandbox's keys into the working folder. They go to its own folder.
func TestLoadtestKeepsItsKeysInItsOwnFolder(t *testing.T) {
	dbURL := sqlstoretest.PostgresURL(t)
	cwd := t.TempDir()
	t.Chdir(cwd)
	keysDir := t.TempDir()
	env := &environment{getenv: func(string) string { return "" }}
	if _, _, err := runLoad(context.Background(), env, loadOptions{db: dbURL, keysDir: keysDir, load: loadtest.Options{Chats: 1, Duration: time.Second}}); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(cwd); len(entries) != 0 {
		t.Errorf("the load test wrote %v into the working folder", entries)
	}
	if fi, err := os.Stat(filepath.Join(keysDir, "sandbox.keys.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the load test's keys: %v", err)
	}
}
