package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/clock"
	"github.com/wxteams/wxteams/bridge/wechat/wechatfake"
	"github.com/wxteams/wxteams/compliance"
)

// startServe runs serve with env and returns the running server; it stops when the test ends.
func startServe(t *testing.T, env map[string]string, clk bridge.Clock) (*server, *syncWriter) {
	t.Helper()
	return startServeWith(t, env, clk, nil)
}

// startServeWith is startServe with the transport for calls to Microsoft.
func startServeWith(t *testing.T, env map[string]string, clk bridge.Clock, transport http.RoundTripper) (*server, *syncWriter) {
	t.Helper()
	env["WXTEAMS_LISTEN"], env["WXTEAMS_INTERNAL_LISTEN"] = "127.0.0.1:0", "127.0.0.1:0"
	cfg, err := loadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncWriter{w: &strings.Builder{}}
	e := &environment{stdout: io.Discard, stderr: logs, getenv: func(k string) string { return env[k] }, transport: transport}
	ctx, stop := context.WithCancel(context.Background())
	started := make(chan *server, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, e, cfg, serveOptions{clock: clk, started: started}) }()
	t.Cleanup(func() { stop(); <-done })
	select {
	case s := <-started:
		return s, logs
	case err := <-done:
		t.Fatalf("serve stopped: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not start")
	}
	return nil, nil
}

func TestServeWithWeChatReceivesPushesAndDelivers(t *testing.T) {
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	fake := wechatfake.New(wechatfake.Config{AppID: "wxb11529c136998cb6", Secret: "s3cret", OriginalID: "gh_97417a04a28d"}, clk)
	api := httptest.NewServer(fake.Handler())
	defer api.Close()
	env := map[string]string{
		"WXTEAMS_ARCHIVE_KEY":        testArchiveKey,
		"WXTEAMS_SIGNING_KEY":        testSigningKey,
		"WXTEAMS_DATABASE_URL":       "sqlite:" + filepath.Join(t.TempDir(), "x.db"),
		"WXTEAMS_WECHAT_APPID":       "wxb11529c136998cb6",
		"WXTEAMS_WECHAT_SECRET":      "s3cret",
		"WXTEAMS_WECHAT_TOKEN":       "pamtest",
		"WXTEAMS_WECHAT_AES_KEY":     "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
		"WXTEAMS_WECHAT_ORIGINAL_ID": "gh_97417a04a28d",
		"WXTEAMS_WECHAT_API_BASE":    api.URL,
	}
	s, logs := startServe(t, env, clk)
	fake.SetPusher(&wechatfake.Pusher{URL: "http://" + s.publicAddr + "/wechat/callback", Token: "pamtest", AESKey: env["WXTEAMS_WECHAT_AES_KEY"],
		AppID: "wxb11529c136998cb6", OriginalID: "gh_97417a04a28d", Mode: wechatfake.Safe, Clock: clk})

	ok, err := fake.Pusher().VerifyURL(context.Background(), "1234567890")
	if err != nil || !ok {
		t.Fatalf("URL verification = %v, %v", ok, err)
	}
	ctx := context.Background()
	if _, err := s.engine.EnableEmployee(ctx, bridge.EmployeeProfile{ID: "ann"}, "admin:test"); err != nil {
		t.Fatal(err)
	}
	if res, err := fake.ScanScene(ctx, "o-ming", bridge.SceneFor("ann")); err != nil || !res.Acked {
		t.Fatalf("scan = %+v, %v", res, err)
	}
	if res, _, err := fake.Send(ctx, "o-ming", "hello from WeChat"); err != nil || !res.Acked {
		t.Fatalf("message = %+v, %v", res, err)
	}
	// The engine's loop delivers the initial message through the real client.
	deadline := time.Now().Add(10 * time.Second)
	for len(fake.Texts("o-ming")) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := fake.Texts("o-ming"); len(got) != 1 || !strings.HasPrefix(got[0], "Thank you!") {
		t.Errorf("customer received %q; want the initial message", got)
	}
	recs, err := s.store.ArchiveStream(ctx, compliance.ChatStream(1))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range recs {
		if r.Kind == compliance.KindCustomerMessage {
			c, _ := compliance.DecodeContent(r.Body)
			found = c.Text == "hello from WeChat"
		}
	}
	if !found {
		t.Error("the customer's message is not in the archive")
	}
	resp, err := http.Get("http://" + s.publicAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"wechat_token":"ok"`) {
		t.Errorf("/readyz = %d %s", resp.StatusCode, body)
	}
	if strings.Contains(logs.String(), "hello from WeChat") || strings.Contains(logs.String(), "s3cret") {
		t.Error("the log contains a message body or the AppSecret")
	}
}

func TestReadinessFailsOnAWeChatConfigurationError(t *testing.T) {
	clk := clock.NewFake(time.Now())
	fake := wechatfake.New(wechatfake.Config{AppID: "wxb11529c136998cb6", Secret: "right", OriginalID: "gh_97417a04a28d"}, clk)
	api := httptest.NewServer(fake.Handler())
	defer api.Close()
	s, _ := startServe(t, map[string]string{
		"WXTEAMS_DATABASE_URL":       "sqlite:" + filepath.Join(t.TempDir(), "x.db"),
		"WXTEAMS_WECHAT_APPID":       "wxb11529c136998cb6",
		"WXTEAMS_WECHAT_SECRET":      "wrong",
		"WXTEAMS_WECHAT_TOKEN":       "pamtest",
		"WXTEAMS_WECHAT_ORIGINAL_ID": "gh_97417a04a28d",
		"WXTEAMS_WECHAT_API_BASE":    api.URL,
	}, clk)
	resp, err := http.Get("http://" + s.publicAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "configuration error 40125") {
		t.Errorf("/readyz with a wrong AppSecret = %d %s; want 503 naming errcode 40125", resp.StatusCode, body)
	}
}

// syncWriter serializes writes to a builder shared with the test.
type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}
