package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bot"
	"github.com/wxteams/wxteams/bot/teamsfake"
	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/clock"
	"github.com/wxteams/wxteams/bridge/wechat/wechatfake"
	"github.com/wxteams/wxteams/compliance"
)

const (
	testTenant   = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	testBotApp   = "3f1b2c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d"
	testTeamsApp = "b1c2d3e4-0000-4000-8000-000000000001"
	testMegan    = "7faf8ab2-3d56-4244-b585-20c8a42ed2b8"
	testWxApp    = "wxb11529c136998cb6"
	testWxGH     = "gh_97417a04a28d"
	testAESKey   = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	// 32 bytes each, base64: as `openssl rand -base64 32` makes them.
	testArchiveKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	testSigningKey = "c2lnbmluZy1rZXktc2VlZC0wMTIzNDU2Nzg5YWJjZGU="
)

// microsoft is the fake Microsoft side — Entra and Graph over TLS, the Bot Framework issuer, the
// Bot Connector, and an Entra issuer for administrators — plus a fake WeChat, configured for
// wxteams through its environment variables only.
type microsoft struct {
	clock     *clock.Fake
	entra     *teamsfake.Entra
	teams     *teamsfake.Teams
	graph     *teamsfake.Graph
	admins    *teamsfake.Issuer
	wechat    *wechatfake.WeChat
	env       map[string]string
	transport http.RoundTripper
}

func newMicrosoft(t *testing.T) *microsoft {
	t.Helper()
	m := &microsoft{clock: clock.NewFake(time.Now().Truncate(time.Second))}
	serve := func(h http.Handler) string {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	entra := teamsfake.NewEntra(testTenant)
	m.entra = entra
	entra.AddClient(testBotApp, "bot-secret")
	bf := teamsfake.NewIssuer(teamsfake.BotFrameworkIssuer, m.clock, "msteams")
	bf.URL = serve(bf.Handler())
	m.teams = teamsfake.New(testBotApp, bf, entra, m.clock)
	m.teams.ThreadLimits = nil // the fake's windows run on real time; the bot's limiter stays on
	m.graph = teamsfake.NewGraph(entra, m.teams, testTeamsApp)
	ms := httptest.NewTLSServer(teamsfake.MicrosoftHandler(entra, m.graph))
	t.Cleanup(ms.Close)
	entra.URL = ms.URL
	m.transport = ms.Client().Transport
	m.teams.URL = serve(m.teams.Handler()) + "/"
	m.admins = teamsfake.NewIssuer("https://login.microsoftonline.com/"+testTenant+"/v2.0", m.clock)
	m.admins.URL = serve(m.admins.Handler())
	m.wechat = wechatfake.New(wechatfake.Config{AppID: testWxApp, Secret: "wx-secret", OriginalID: testWxGH}, m.clock)

	m.env = map[string]string{
		"WXTEAMS_ARCHIVE_KEY":          testArchiveKey,
		"WXTEAMS_SIGNING_KEY":          testSigningKey,
		"WXTEAMS_DATABASE_URL":         "sqlite:" + filepath.Join(t.TempDir(), "wxteams.db"),
		"WXTEAMS_WECHAT_APPID":         testWxApp,
		"WXTEAMS_WECHAT_SECRET":        "wx-secret",
		"WXTEAMS_WECHAT_TOKEN":         "pamtest",
		"WXTEAMS_WECHAT_AES_KEY":       testAESKey,
		"WXTEAMS_WECHAT_ORIGINAL_ID":   testWxGH,
		"WXTEAMS_WECHAT_API_BASE":      serve(m.wechat.Handler()),
		"WXTEAMS_BOT_APP_ID":           testBotApp,
		"WXTEAMS_BOT_TENANT_ID":        testTenant,
		"WXTEAMS_BOT_CLIENT_SECRET":    "bot-secret",
		"WXTEAMS_BOT_OPENID_URL":       bf.URL + "/v1/.well-known/openidconfiguration",
		"WXTEAMS_BOT_SERVICEURL_ALLOW": "127.0.0.1",
		"WXTEAMS_BOT_PROACTIVE_URL":    m.teams.URL,
		"WXTEAMS_GRAPH_BASE":           ms.URL + "/v1.0",
		"WXTEAMS_TEAMS_APP_ID":         testTeamsApp,
		"WXTEAMS_ADMIN_OPENID_URL":     m.admins.URL + "/.well-known/openid-configuration",
		"AZURE_AUTHORITY_HOST":         ms.URL + "/",
	}
	return m
}

// start runs `wxteams serve` on the environment and points the fakes at it.
func (m *microsoft) start(t *testing.T) *server {
	t.Helper()
	s, _ := startServeWith(t, m.env, m.clock, m.transport)
	m.teams.BotEndpoint = "http://" + s.publicAddr + "/api/messages"
	m.wechat.SetPusher(&wechatfake.Pusher{URL: "http://" + s.publicAddr + "/wechat/callback", Token: "pamtest", AESKey: testAESKey,
		AppID: testWxApp, OriginalID: testWxGH, Mode: wechatfake.Safe, Clock: m.clock})
	return s
}

// eventually waits for cond, moving the virtual clock a minute every half second so that
// deliveries scheduled for a retry fall due.
func (m *microsoft) eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for i := 1; !cond(); i++ {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
		if i%25 == 0 {
			m.clock.Advance(time.Minute)
		}
	}
}

func (m *microsoft) adminCall(t *testing.T, s *server, method, path, token string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+s.publicAddr+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func lastText(texts []string) string {
	if len(texts) == 0 {
		return ""
	}
	return texts[len(texts)-1]
}

// The whole product wired by `wxteams serve` from its environment: an administrator enables an
// employee through the admin API (the app is installed through Graph and the bot greets her), a
// customer scans her QR code and writes, she answers from Teams, and the archive holds it all.
func TestServeWithTeamsAndWeChat(t *testing.T) {
	m := newMicrosoft(t)
	s := m.start(t)
	m.teams.AddUser(testMegan, "Megan Bowen", testTenant)

	admin := m.admins.UserToken("api://"+testBotApp, testTenant, "it@acme.example", "oid-it", bot.AdminRole)
	status, body := m.adminCall(t, s, http.MethodPut, "/admin/v1/users/"+testMegan+"/wechat", admin)
	var res bot.EnableResult
	if err := json.Unmarshal(body, &res); status != 200 || err != nil || !res.Installed {
		t.Fatalf("enable = %d %s", status, body)
	}
	if !m.graph.Installed(testMegan) {
		t.Error("Graph does not have the app installed for Megan")
	}
	m.eventually(t, "the welcome", func() bool { return strings.Contains(lastText(m.teams.Texts(testMegan)), "WeChat is enabled for you") })

	status, png := m.adminCall(t, s, http.MethodGet, res.QR, admin)
	if status != 200 || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("QR = %d", status)
	}
	ctx := context.Background()
	if r, err := m.wechat.ScanScene(ctx, "o-ming", bridge.SceneFor(testMegan)); err != nil || !r.Acked {
		t.Fatalf("scan = %+v, %v", r, err)
	}
	if r, _, err := m.wechat.Send(ctx, "o-ming", "Hello Megan, about my portfolio"); err != nil || !r.Acked {
		t.Fatalf("customer message = %+v, %v", r, err)
	}
	m.eventually(t, "the customer's message in Teams", func() bool {
		return strings.Contains(lastText(m.teams.Texts(testMegan)), "Hello Megan, about my portfolio")
	})
	if _, err := m.teams.Say(ctx, testMegan, "Hi! Happy to help."); err != nil {
		t.Fatal(err)
	}
	m.eventually(t, "Megan's answer in WeChat", func() bool { return lastText(m.wechat.Texts("o-ming")) == "Hi! Happy to help." })

	// The internal listener's metrics count what happened.
	resp, err := http.Get("http://" + s.internalAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`wxteams_messages_total{direction="from_customer"} 1`, `wxteams_messages_total{direction="from_employee"} 1`,
		`wxteams_deliveries_total{channel="wechat",outcome="delivered"}`, `wxteams_delivery_seconds_count{channel="teams"}`,
		`wxteams_chats{status="active"} 1`, `wxteams_chats_window_open{status="active"} 1`, `wxteams_queued_messages 0`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Refusals on the public listener: no token, a forged token, no metrics.
	for _, c := range []struct{ path, token string }{{"/api/messages", ""}, {"/api/messages", "x.y.z"}} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+s.publicAddr+c.path, strings.NewReader(`{"type":"message"}`))
		req.Header.Set("Content-Type", "application/json")
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST /api/messages with token %q = %d; want 401", c.token, resp.StatusCode)
		}
	}
	if status, _ := m.adminCall(t, s, http.MethodGet, "/admin/v1/users", m.admins.UserToken("api://"+testBotApp, testTenant, "bob@acme.example", "oid-bob")); status != http.StatusForbidden {
		t.Errorf("admin API without the role = %d; want 403", status)
	}
	if status, _ := m.adminCall(t, s, http.MethodGet, "/metrics", ""); status != http.StatusNotFound {
		t.Errorf("/metrics on the public listener = %d; want 404", status)
	}

	recs, err := s.store.ArchiveStream(ctx, compliance.AdminStream)
	if err != nil {
		t.Fatal(err)
	}
	// The first administrator action (the completeness job may have archived yesterday's report first).
	enabled := slices.IndexFunc(recs, func(r compliance.Record) bool { return strings.HasPrefix(string(r.Kind), "admin.") })
	if enabled < 0 || recs[enabled].Kind != compliance.KindEmployeeEnabled || recs[enabled].Actor != "admin:it@acme.example" {
		t.Errorf("admin archive = %+v; want Megan enabled by admin:it@acme.example", recs)
	}
	if n, err := s.store.VerifyArchive(ctx); err != nil || n == 0 {
		t.Errorf("archive: %d records, %v", n, err)
	}

	// The database files (and SQLite's write-ahead log) hold no message text.
	dbPath := strings.TrimPrefix(m.env["WXTEAMS_DATABASE_URL"], "sqlite:")
	for _, f := range []string{dbPath, dbPath + "-wal"} {
		data, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, text := range []string{"about my portfolio", "Happy to help"} {
			if bytes.Contains(data, []byte(text)) {
				t.Errorf("%s holds %q in the clear", filepath.Base(f), text)
			}
		}
	}
	// The operator's commands on the same database: a checkpoint, then verify with the public key.
	cli := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		e := &environment{stdout: &out, stderr: &errOut, getenv: func(k string) string { return m.env[k] }}
		code := run(ctx, e, args)
		return code, out.String() + errOut.String()
	}
	if code, out := cli("checkpoint"); code != 0 || !strings.Contains(out, "signed by ed25519-") {
		t.Errorf("checkpoint = %d %s", code, out)
	}
	_, pubOut := cli("keys", "public")
	pub, _, _ := strings.Cut(pubOut, " ")
	if code, out := cli("verify", "--public-key", pub); code != 0 || !strings.Contains(out, "contents checked") || !strings.Contains(out, "1 checkpoints verified") {
		t.Errorf("verify = %d %s", code, out)
	}
}

func TestServeRefusesToStoreMessagesInTheClear(t *testing.T) {
	m := newMicrosoft(t)
	delete(m.env, "WXTEAMS_ARCHIVE_KEY")
	var out, errOut bytes.Buffer
	e := &environment{stdout: &out, stderr: &errOut, getenv: func(k string) string { return m.env[k] }}
	if code := run(context.Background(), e, []string{"serve"}); code != 1 || !strings.Contains(errOut.String(), "WXTEAMS_ARCHIVE_KEY and WXTEAMS_SIGNING_KEY are required") {
		t.Errorf("serve without an archive key = %d, %q", code, errOut.String())
	}
}

// `wxteams admin` does what the admin API does, against the same database as the running server.
func TestAdminCommand(t *testing.T) {
	m := newMicrosoft(t)
	s := m.start(t)
	m.teams.AddUser(testMegan, "Megan Bowen", testTenant)
	cli := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		e := &environment{stdout: &out, stderr: &errOut, getenv: func(k string) string { return m.env[k] }, transport: m.transport}
		code := run(context.Background(), e, append([]string{"admin"}, args...))
		return code, out.String(), errOut.String()
	}

	if code, out, errOut := cli("enable", "--name", "Megan Bowen", testMegan); code != 0 || !strings.Contains(out, "Teams app installed") {
		t.Fatalf("admin enable = %d\n%s%s", code, out, errOut)
	}
	m.eventually(t, "the welcome sent by the server", func() bool {
		return strings.Contains(lastText(m.teams.Texts(testMegan)), "WeChat is enabled for you")
	})
	// By e-mail address: looked up in Entra ID through Graph, stored as the object id.
	m.teams.AddUser(testAlex, "Alex Wilber", testTenant)
	m.teams.SetUPN(testAlex, "alex.wilber@acme.example")
	if code, out, errOut := cli("enable", "Alex.Wilber@acme.example"); code != 0 || !strings.Contains(out, "WeChat enabled for Alex Wilber ("+testAlex+")") {
		t.Fatalf("admin enable by e-mail = %d\n%s%s", code, out, errOut)
	}
	if alex, err := s.engine.Employee(context.Background(), testAlex); err != nil || !alex.Enabled || alex.Email != "alex.wilber@acme.example" {
		t.Errorf("Alex after enable by e-mail = %+v, %v", alex, err)
	}
	code, out, errOut := cli("list")
	if code != 0 || !strings.Contains(out, testMegan) || !strings.Contains(out, "Megan Bowen") || !strings.Contains(out, "enabled") {
		t.Errorf("admin list = %d\n%s%s", code, out, errOut)
	}
	png := filepath.Join(t.TempDir(), "megan.png")
	if code, out, errOut := cli("qr", testMegan, "--out", png); code != 0 {
		t.Fatalf("admin qr = %d\n%s%s", code, out, errOut)
	}
	if data, err := os.ReadFile(png); err != nil || !bytes.HasPrefix(data, []byte("\x89PNG")) {
		t.Errorf("QR file: %v", err)
	}
	if code, out, errOut := cli("disable", testMegan); code != 0 {
		t.Fatalf("admin disable = %d\n%s%s", code, out, errOut)
	}
	emp, err := s.engine.Employee(context.Background(), testMegan)
	if err != nil || emp.Enabled {
		t.Errorf("after disable: %+v, %v", emp, err)
	}
	recs, err := s.store.ArchiveStream(context.Background(), compliance.AdminStream)
	if err != nil {
		t.Fatal(err)
	}
	actors := 0
	for _, r := range recs {
		if strings.HasPrefix(r.Actor, "cli:") {
			actors++
		}
	}
	if actors < 2 {
		t.Errorf("%d admin records name a cli: actor; want the enable and the disable", actors)
	}

	// Usage errors exit 2 and say what is wrong; unknown users are refused clearly.
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"frobnicate"}, 2, "unknown action"},
		{[]string{"enable"}, 2, "exactly one USER-ID"},
		{[]string{"list", "extra"}, 2, "no arguments"},
		{[]string{"enable", "a b"}, 1, "Entra ID object id"},
		{[]string{"enable", "nobody@acme.example"}, 1, "Entra ID has no user nobody@acme.example"},
		{[]string{"disable", "nobody"}, 1, "no employee"},
		{[]string{"qr", "nobody"}, 1, "not enabled"},
	} {
		if code, _, errOut := cli(c.args...); code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("admin %v = %d %q; want %d and %q", c.args, code, errOut, c.code, c.want)
		}
	}
}
