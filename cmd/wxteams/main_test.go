package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge/clock"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
)

// testEnv runs commands in-process with the given environment variables only.
func testEnv(vars map[string]string) (*environment, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return &environment{stdout: &out, stderr: &errb, getenv: func(k string) string { return vars[k] }}, &out, &errb
}

func TestEveryCommandHasHelp(t *testing.T) {
	for _, c := range commands() {
		env, out, errb := testEnv(nil)
		if code := run(context.Background(), env, []string{c.name, "--help"}); code != 0 {
			t.Errorf("wxteams %s --help exited %d; stderr: %s", c.name, code, errb)
		}
		if !strings.Contains(out.String(), "Usage: wxteams "+c.name) {
			t.Errorf("wxteams %s --help printed %q; want its usage", c.name, out)
		}
	}
	env, out, _ := testEnv(nil)
	if code := run(context.Background(), env, []string{"--help"}); code != 0 || !strings.Contains(out.String(), "Commands:") {
		t.Errorf("wxteams --help = %d, %q", code, out)
	}
	env, _, errb := testEnv(nil)
	if code := run(context.Background(), env, []string{"frobnicate"}); code != 2 || !strings.Contains(errb.String(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command = %d, %q; want 2 and a clear message", code, errb)
	}
	env, _, errb = testEnv(nil)
	if code := run(context.Background(), env, []string{"version", "--bogus"}); code != 2 || !strings.Contains(errb.String(), "bogus") {
		t.Errorf("unknown flag = %d, %q; want 2", code, errb)
	}
}

func TestConfigurationIsValidatedWithClearErrors(t *testing.T) {
	good := map[string]string{
		"WXTEAMS_WECHAT_APPID":       "wxb11529c136998cb6",
		"WXTEAMS_WECHAT_SECRET":      "s3cret",
		"WXTEAMS_WECHAT_TOKEN":       "pamtest",
		"WXTEAMS_WECHAT_AES_KEY":     "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
		"WXTEAMS_WECHAT_ORIGINAL_ID": "gh_97417a04a28d",
		"WXTEAMS_BOT_APP_ID":         "c9e8c047-2a74-40a2-b28a-b162d5f5327c",
		"WXTEAMS_BOT_TENANT_ID":      "72f988bf-86f1-41af-91ab-2d7cd011db47",
		"WXTEAMS_BOT_CLIENT_SECRET":  "x",
		"WXTEAMS_PUBLIC_URL":         "https://wxteams.acme.example",
		"WXTEAMS_ARCHIVE_KEY":        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
	}
	cfg, err := loadConfig(func(k string) string { return good[k] })
	if err != nil {
		t.Fatalf("a good configuration was refused: %v", err)
	}
	if !cfg.Configured() || cfg.Listen != ":8080" || cfg.InternalListen != "127.0.0.1:9090" || cfg.DatabaseURL != "sqlite:wxteams.db" ||
		cfg.WeChat.APIBase != "https://api.weixin.qq.com" || len(cfg.ArchiveKey) != 32 || len(cfg.Bot.ServiceURLAllow) == 0 ||
		cfg.DBConnections != 16 {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	policyFile := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(policyFile, []byte(`{"cap": 0}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		set  map[string]string
		want string
	}{
		{map[string]string{"WXTEAMS_WECHAT_AES_KEY": "short"}, "WXTEAMS_WECHAT_AES_KEY: the EncodingAESKey must be 43"},
		{map[string]string{"WXTEAMS_WECHAT_TOKEN": ""}, "WXTEAMS_WECHAT_TOKEN: required"},
		{map[string]string{"WXTEAMS_WECHAT_ORIGINAL_ID": "wrong"}, "WXTEAMS_WECHAT_ORIGINAL_ID"},
		{map[string]string{"WXTEAMS_BOT_APP_ID": "not-a-guid"}, "is not a Microsoft App ID"},
		{map[string]string{"WXTEAMS_BOT_MANAGED_IDENTITY": "1"}, "set exactly one of"},
		{map[string]string{"WXTEAMS_BOT_MANAGED_IDENTITY": "perhaps"}, "is not a boolean"},
		{map[string]string{"WXTEAMS_PUBLIC_URL": "http://wxteams.acme.example"}, "must be an https URL"},
		{map[string]string{"WXTEAMS_ARCHIVE_KEY": "dG9vIHNob3J0"}, "WXTEAMS_ARCHIVE_KEY: must be 32 bytes"},
		{map[string]string{"WXTEAMS_DATABASE_URL": "mysql://db"}, "want sqlite:PATH or postgres://"},
		{map[string]string{"WXTEAMS_INTERNAL_LISTEN": ":8080"}, "must differ from WXTEAMS_LISTEN"},
		{map[string]string{"WXTEAMS_LOG_LEVEL": "loud"}, "WXTEAMS_LOG_LEVEL"},
		{map[string]string{"WXTEAMS_DB_CONNECTIONS": "1"}, "WXTEAMS_DB_CONNECTIONS: \"1\" is not a number of connections between 2 and 1000"},
		{map[string]string{"WXTEAMS_DB_CONNECTIONS": "many"}, "WXTEAMS_DB_CONNECTIONS"},
		{map[string]string{"WXTEAMS_POLICY_FILE": policyFile}, "cap must be at least 1"},
		{map[string]string{"WXTEAMS_POLICY_FILE": "/nonexistent/policy.json"}, "no such file"},
	} {
		env := map[string]string{}
		for k, v := range good {
			env[k] = v
		}
		for k, v := range tc.set {
			env[k] = v
		}
		_, err := loadConfig(func(k string) string { return env[k] })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("with %v: error = %v; want it to contain %q", tc.set, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("configuration error reveals a secret: %v", err)
		}
	}
	// Several problems are reported together.
	_, err = loadConfig(func(k string) string {
		return map[string]string{"WXTEAMS_WECHAT_APPID": "bad", "WXTEAMS_LISTEN": "nope"}[k]
	})
	if err == nil || strings.Count(err.Error(), "\n  - ") < 3 {
		t.Errorf("error = %v; want every problem listed", err)
	}
}

func TestServeHasHealthReadinessAndMetricsOnlyInternally(t *testing.T) {
	sqlstoretest.EachURL(t, func(t *testing.T, dbURL string) {
		env, _, logs := testEnv(nil)
		cfg, err := loadConfig(func(k string) string {
			return map[string]string{"WXTEAMS_LISTEN": "127.0.0.1:0", "WXTEAMS_INTERNAL_LISTEN": "127.0.0.1:0", "WXTEAMS_DATABASE_URL": dbURL}[k]
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, stop := context.WithCancel(context.Background())
		started := make(chan *server, 1)
		done := make(chan error, 1)
		go func() { done <- serve(ctx, env, cfg, serveOptions{clock: clock.System{}, started: started}) }()
		var s *server
		select {
		case s = <-started:
		case err := <-done:
			t.Fatalf("serve stopped: %v\n%s", err, logs)
		case <-time.After(10 * time.Second):
			t.Fatal("serve did not start")
		}
		get := func(addr, path string) (int, string) {
			resp, err := http.Get("http://" + addr + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		if code, body := get(s.publicAddr, "/healthz"); code != 200 || body != "ok\n" {
			t.Errorf("/healthz = %d %q", code, body)
		}
		code, body := get(s.publicAddr, "/readyz")
		var ready struct{ Status string }
		_ = json.Unmarshal([]byte(body), &ready)
		if code != 200 || ready.Status != "ready" {
			t.Errorf("/readyz = %d %s", code, body)
		}
		for _, path := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/heap", "/debug/vars", "/debug"} {
			if code, _ := get(s.publicAddr, path); code != http.StatusNotFound {
				t.Errorf("public listener serves %s (status %d)", path, code)
			}
		}
		if code, body := get(s.internalAddr, "/metrics"); code != 200 || !strings.Contains(body, "wxteams_database_up 1") || !strings.Contains(body, "go_goroutines") {
			t.Errorf("internal /metrics = %d, missing wxteams or Go metrics", code)
		}
		if code, _ := get(s.internalAddr, "/debug/pprof/"); code != 200 {
			t.Errorf("internal /debug/pprof/ = %d", code)
		}

		// Readiness follows the database.
		s.store.Close()
		if code, body := get(s.publicAddr, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "unreachable") {
			t.Errorf("/readyz with the database closed = %d %s; want 503", code, body)
		}
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve returned %v after shutdown", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("serve did not shut down")
		}
		if !strings.Contains(logs.String(), "stopped") {
			t.Errorf("no shutdown in the log:\n%s", logs)
		}
	})
}

func TestServeRefusesToRunUnconfigured(t *testing.T) {
	env, _, errb := testEnv(nil)
	if code := run(context.Background(), env, []string{"serve"}); code != 1 || !strings.Contains(errb.String(), "wxteams sandbox") {
		t.Errorf("serve without configuration = %d, %q; want 1 pointing at the sandbox", code, errb)
	}
}

func TestMigrateAndVerifyCommands(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "x.db")
	env, out, errb := testEnv(map[string]string{"WXTEAMS_DATABASE_URL": db})
	if code := run(context.Background(), env, []string{"verify"}); code != 1 || !strings.Contains(errb.String(), "wxteams migrate") {
		t.Errorf("verify before migrate = %d, %q; want 1 asking to migrate", code, errb)
	}
	if code := run(context.Background(), env, []string{"migrate"}); code != 0 || !strings.Contains(out.String(), "applied migrations [1 ") {
		t.Errorf("migrate = %d, %q, %q", code, out, errb)
	}
	out.Reset()
	if code := run(context.Background(), env, []string{"migrate"}); code != 0 || !strings.Contains(out.String(), "already at schema version ") {
		t.Errorf("second migrate = %d, %q", code, out)
	}
	out.Reset()
	if code := run(context.Background(), env, []string{"verify", "--database-url", db}); code != 0 || !strings.Contains(out.String(), "archive intact: 0 records") {
		t.Errorf("verify = %d, %q, %q", code, out, errb)
	}
}

func TestManifestCommand(t *testing.T) {
	out := filepath.Join(t.TempDir(), "app.zip")
	env, stdout, errb := testEnv(map[string]string{"WXTEAMS_BOT_APP_ID": "2b7c9e41-8a3d-4f6b-b1c2-7d8e9f0a1b2c", "WXTEAMS_PUBLIC_URL": "https://wxteams.acme.example"})
	if code := run(context.Background(), env, []string{"manifest", "--out", out, "--developer", "Acme Securities"}); code != 0 || !strings.Contains(stdout.String(), "app id") {
		t.Fatalf("manifest = %d %s %s", code, stdout, errb)
	}
	if data, err := os.ReadFile(out); err != nil || !bytes.HasPrefix(data, []byte("PK")) {
		t.Errorf("package: %v", err)
	}
	env, _, errb = testEnv(nil)
	if code := run(context.Background(), env, []string{"manifest", "--out", out}); code != 2 || !strings.Contains(errb.String(), "WXTEAMS_PUBLIC_URL") {
		t.Errorf("manifest without configuration = %d %s", code, errb)
	}
}

func TestLoadtestRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--chats", "0"}, {"--duration", "10ms"}, {"--window", "500ms"}} {
		env := &environment{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
		err := runLoadtest(context.Background(), env, args)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "at least") {
			t.Errorf("loadtest %v: error = %v; want a usage error saying what is allowed", args, err)
		}
	}
}
