package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bot"
	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/bridge/wechat/wechatfake"
	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/export"
)

// Canary credentials: recognisable values that may travel only in the requests that need them.
const (
	canaryAppSecret = "CANARYwxAPPSECRET0123456789abcd"
	canaryBotSecret = "CANARY~botCLIENTsecret.0123456789abcdefXYZ"
)

// With WeChat unreachable, resetting connections and timing out (classic token mode, so the
// AppSecret travels in a query string), and Microsoft failing (Entra, Graph and the Bot Connector
// resetting connections, Teams answering 5xx), no credential — the AppSecret, WeChat access tokens,
// the bot's client secret, the bot's and the administrators' bearer tokens — reaches the log, any
// table of the database, an HTTP answer, or any export format.
func TestCredentialsStayOutOfLogsArchiveAnswersAndExports(t *testing.T) {
	if testing.Short() {
		t.Skip("a run with faults")
	}
	sqlstoretest.EachURL(t, runCanaries)
}

func runCanaries(t *testing.T, dbURL string) {
	ctx := context.Background()
	m := newMicrosoft(t)
	m.wechat = wechatfake.New(wechatfake.Config{AppID: testWxApp, Secret: canaryAppSecret, OriginalID: testWxGH}, m.clock)
	gate := newGate(t, m.wechat.Handler())
	m.entra.AddClient(testBotApp, canaryBotSecret)
	ms := &faultyTransport{base: m.transport, bearers: map[string]bool{}}
	for k, v := range map[string]string{
		"WXTEAMS_DATABASE_URL": dbURL, "WXTEAMS_WECHAT_API_BASE": gate.url(), "WXTEAMS_WECHAT_SECRET": canaryAppSecret,
		"WXTEAMS_WECHAT_CLASSIC_TOKEN": "1", "WXTEAMS_BOT_CLIENT_SECRET": canaryBotSecret, "WXTEAMS_LOG_LEVEL": "debug",
	} {
		m.env[k] = v
	}
	s, logs := startServeWith(t, m.env, m.clock, ms)
	m.teams.BotEndpoint = "http://" + s.publicAddr + "/api/messages"
	m.wechat.SetPusher(&wechatfake.Pusher{URL: "http://" + s.publicAddr + "/wechat/callback", Token: "pamtest", AESKey: testAESKey,
		AppID: testWxApp, OriginalID: testWxGH, Mode: wechatfake.Safe, Clock: m.clock})
	p := s.engine.Policy()
	p.SendTimeout = bridge.Duration(time.Second)
	s.engine.SetPolicy(p)
	m.teams.AddUser(testMegan, "Megan Bowen", testTenant)
	admin := m.admins.UserToken("api://"+testBotApp, testTenant, "it@acme.example", "oid-it", bot.AdminRole)
	var answers strings.Builder // every answer wxteams gave the test
	call := func(method, path string) (int, string) {
		status, body := m.adminCall(t, s, method, path, admin)
		fmt.Fprintf(&answers, "%s %s → %d %s\n", method, path, status, body)
		return status, string(body)
	}

	// Microsoft: Entra refuses the bot's token request, then Graph resets the connection; the third
	// time works.
	ms.answer("/oauth2/v2.0/token", 100, http.StatusUnauthorized, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}`)
	if status, body := call(http.MethodPut, "/admin/v1/users/"+testMegan+"/wechat"); status != 200 || !strings.Contains(body, "install_error") {
		t.Fatalf("enable while Entra resets = %d %s", status, body)
	}
	ms.fail("/oauth2/v2.0/token", 0)
	ms.fail("/teamwork/installedApps", 100)
	if status, body := call(http.MethodPut, "/admin/v1/users/"+testMegan+"/wechat"); status != 200 || !strings.Contains(body, "install_error") {
		t.Fatalf("enable while Graph resets = %d %s", status, body)
	}
	ms.fail("/teamwork/installedApps", 0)
	if status, body := call(http.MethodPut, "/admin/v1/users/"+testMegan+"/wechat"); status != 200 || !strings.Contains(body, `"teams_app_installed":true`) {
		t.Fatalf("enable = %d %s", status, body)
	}

	// WeChat unreachable: the QR code cannot be made (classic token mode: the AppSecret is in the
	// token request's query), and the welcome to a customer who scans is retried.
	gate.down()
	if status, _ := call(http.MethodGet, "/admin/v1/users/"+testMegan+"/qr"); status != http.StatusBadGateway {
		t.Errorf("QR code with WeChat unreachable = %d; want 502", status)
	}
	if status, _ := call(http.MethodGet, "/readyz"); status != http.StatusOK {
		t.Errorf("/readyz with WeChat unreachable = %d; want 200 (only a misconfiguration makes a replica unready)", status)
	}
	if r, err := m.wechat.ScanScene(ctx, "o-ming", bridge.SceneFor(testMegan)); err != nil || !r.Acked {
		t.Fatalf("scan = %+v, %v", r, err)
	}
	m.eventually(t, "a WeChat delivery retried", func() bool { return archived(t, s, compliance.KindDeliveryRetry, "wechat") > 0 })
	gate.up(t)
	if r, _, err := m.wechat.Send(ctx, "o-ming", "Hello Megan"); err != nil || !r.Acked {
		t.Fatalf("customer message = %+v, %v", r, err)
	}
	m.eventually(t, "the customer's message in Teams", func() bool { return strings.Contains(lastText(m.teams.Texts(testMegan)), "Hello Megan") })

	// WeChat with an access token: a reset connection, a timeout, then unreachable again.
	m.wechat.Fail(sendPath, wechatfake.Fault{Reset: true})
	say(t, m, "Reset #1")
	m.eventually(t, "the reset send archived as outcome unknown", func() bool { return archived(t, s, compliance.KindOutcomeUnknown, "wechat") >= 1 })
	m.wechat.Fail(sendPath, wechatfake.Fault{Delay: 3 * time.Second})
	say(t, m, "Slow #2")
	m.eventually(t, "the slow send archived as outcome unknown", func() bool { return archived(t, s, compliance.KindOutcomeUnknown, "wechat") >= 2 })
	if r, _, err := m.wechat.Send(ctx, "o-ming", "Still there?"); err != nil || !r.Acked {
		t.Fatalf("customer message = %+v, %v", r, err)
	}
	before := archived(t, s, compliance.KindDeliveryRetry, "wechat")
	gate.down()
	say(t, m, "Unreachable #3")
	m.eventually(t, "the send retried", func() bool { return archived(t, s, compliance.KindDeliveryRetry, "wechat") > before })
	gate.up(t)
	m.eventually(t, "the retried send delivered", func() bool { return lastText(m.wechat.Texts("o-ming")) == "Unreachable #3" })

	// Teams: 500, 503, and the Bot Connector resetting the connection.
	m.teams.Storm(500, 1)
	m.teams.Storm(503, 1)
	ms.fail("/v3/conversations/", 1)
	for _, text := range []string{"To Teams #1", "To Teams #2", "To Teams #3"} {
		if r, _, err := m.wechat.Send(ctx, "o-ming", text); err != nil || !r.Acked {
			t.Fatalf("customer message = %+v, %v", r, err)
		}
	}
	m.eventually(t, "Teams deliveries failed and retried", func() bool {
		return archived(t, s, compliance.KindDeliveryFailed, "teams") > 0 && archived(t, s, compliance.KindDeliveryRetry, "teams") >= 2
	})
	m.eventually(t, "the last message in Teams", func() bool { return strings.Contains(lastText(m.teams.Texts(testMegan)), "To Teams #3") })

	// Every export format, the whole database as text, the log and the answers.
	dir := filepath.Join(t.TempDir(), "export")
	keys, err := loadCustody(&Config{SigningKey: mustB64(testSigningKey)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exportAndArchive(ctx, s.store, keys, dir, export.Scope{Formats: export.AllFormats}, "compliance:test", m.clock.Now()); err != nil {
		t.Fatal(err)
	}
	places := map[string]string{"the log": logs.String(), "the HTTP answers": answers.String()}
	for name, text := range dumpTables(t, s.store) {
		places["table "+name] = text
	}
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			data, _ := os.ReadFile(path)
			rel, _ := filepath.Rel(dir, path)
			places["export "+rel] = string(data)
		}
		return err
	})
	for _, f := range []string{"records.jsonl", "records.csv"} {
		if !strings.Contains(places["export "+f], "delivery.unknown") {
			t.Errorf("export %s has no delivery.unknown record: the faults did not bite", f)
		}
	}
	if !strings.Contains(places["table archive"], "/cgi-bin/token") || !strings.Contains(places["table archive"], "/cgi-bin/message/custom/send") {
		t.Error("the archive names neither the token request nor the send that failed: the faults did not bite")
	}
	errorsSeen := map[string]bool{}
	_ = s.store.ExportSource().Scan(ctx, export.Scope{}, func(r *compliance.Record) error {
		if m, err := compliance.DecodeMeta(r.Meta); err == nil && m.Error != "" && !errorsSeen[m.Error] {
			errorsSeen[m.Error] = true
			t.Logf("archived: %s %q", r.Kind, m.Error)
		}
		return nil
	})
	canaries := map[string]string{"the AppSecret": canaryAppSecret, "the bot's client secret": canaryBotSecret, "an administrator's token": admin}
	for i, tok := range gate.tokens() {
		canaries[fmt.Sprintf("WeChat access token #%d", i+1)] = tok
	}
	for i, tok := range ms.tokens() {
		canaries[fmt.Sprintf("bearer token #%d sent to Microsoft", i+1)] = tok
	}
	if len(canaries) < 6 {
		t.Fatalf("only %d credentials known to the test: %v", len(canaries), canaries)
	}
	for place, text := range places {
		for what, secret := range canaries {
			if i := strings.Index(text, secret); i >= 0 {
				t.Errorf("%s holds %s: …%s…", place, what, text[max(0, i-120):min(len(text), i+len(secret)+20)])
			}
		}
	}
}

// say has Megan write to the customer from Teams.
func say(t *testing.T, m *microsoft, text string) {
	t.Helper()
	if _, err := m.teams.Say(context.Background(), testMegan, text); err != nil {
		t.Fatal(err)
	}
}

// archived counts the archive's records of a kind for a channel.
func archived(t *testing.T, s *server, kind compliance.Kind, channel string) int {
	t.Helper()
	n := 0
	err := s.store.ExportSource().Scan(context.Background(), export.Scope{}, func(r *compliance.Record) error {
		if r.Kind == kind {
			if m, err := compliance.DecodeMeta(r.Meta); err == nil && m.Channel == channel {
				n++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// dumpTables returns every table of the database as text: one line per row, each value as text
// (bytes as they are stored).
func dumpTables(t *testing.T, store *sqlstore.Store) map[string]string {
	t.Helper()
	ctx := context.Background()
	db := store.DB()
	q := `SELECT name FROM sqlite_master WHERE type = 'table'`
	if store.Dialect() == sqlstore.Postgres {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`
	}
	names, err := column(ctx, db, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 10 {
		t.Fatalf("only %d tables: %v", len(names), names)
	}
	out := map[string]string{}
	for _, name := range names {
		rows, err := db.QueryContext(ctx, `SELECT * FROM "`+name+`"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		var b strings.Builder
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				if raw, ok := v.([]byte); ok {
					v = string(raw)
				}
				fmt.Fprintf(&b, "%s=%v\t", cols[i], v)
			}
			b.WriteByte('\n')
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		out[name] = b.String()
	}
	return out
}

func column(ctx context.Context, db *sql.DB, q string) ([]string, error) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// gate puts WeChat's API behind a listener that can be closed (connections refused) and opened
// again on the same address; it notes every access token that passes.
type gate struct {
	h    http.Handler
	addr string

	mu   sync.Mutex
	srv  *http.Server
	seen map[string]bool
}

func newGate(t *testing.T, h http.Handler) *gate {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{h: h, addr: ln.Addr().String(), seen: map[string]bool{}}
	g.serve(ln)
	t.Cleanup(g.down)
	return g
}

func (g *gate) url() string { return "http://" + g.addr }

func (g *gate) serve(ln net.Listener) {
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok := r.URL.Query().Get("access_token"); tok != "" {
			g.mu.Lock()
			g.seen[tok] = true
			g.mu.Unlock()
		}
		g.h.ServeHTTP(w, r)
	})}
	g.mu.Lock()
	g.srv = srv
	g.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// down closes the listener and every connection: WeChat is unreachable.
func (g *gate) down() {
	g.mu.Lock()
	srv := g.srv
	g.mu.Unlock()
	_ = srv.Close()
}

// up listens again on the same address.
func (g *gate) up(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	g.serve(ln)
}

func (g *gate) tokens() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for tok := range g.seen {
		out = append(out, tok)
	}
	return out
}

// faultyTransport carries wxteams' calls to Microsoft; requests whose path contains a configured
// part fail with a reset connection or get a set answer, as many times as set. It notes every
// bearer token sent.
type faultyTransport struct {
	base http.RoundTripper

	mu      sync.Mutex
	faults  map[string]*transportFault
	bearers map[string]bool
}

type transportFault struct {
	times  int
	status int // 0: the connection is reset
	body   string
}

// fail resets the connection of the next requests whose path contains pathPart (0 times: none).
func (f *faultyTransport) fail(pathPart string, times int) { f.answer(pathPart, times, 0, "") }

// answer answers the next requests whose path contains pathPart with status and a JSON body.
func (f *faultyTransport) answer(pathPart string, times, status int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.faults == nil {
		f.faults = map[string]*transportFault{}
	}
	f.faults[pathPart] = &transportFault{times: times, status: status, body: body}
}

func (f *faultyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		f.bearers[tok] = true
	}
	for part, fault := range f.faults {
		if fault.times > 0 && strings.Contains(r.URL.Path, part) {
			fault.times--
			f.mu.Unlock()
			if r.Body != nil {
				_, _ = io.Copy(io.Discard, r.Body)
				r.Body.Close()
			}
			if fault.status == 0 {
				return nil, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
			}
			return &http.Response{StatusCode: fault.status, Status: fmt.Sprintf("%d %s", fault.status, http.StatusText(fault.status)), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
				Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(fault.body)),
				ContentLength: int64(len(fault.body)), Request: r}, nil
		}
	}
	f.mu.Unlock()
	return f.base.RoundTrip(r)
}

func (f *faultyTransport) tokens() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for tok := range f.bearers {
		out = append(out, tok)
	}
	return out
}
