package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bot/teamsfake"
	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/clock"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/bridge/wechat/wechatfake"
	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/export"
	"github.com/wxteams/wxteams/internal/loadtest"
)

// The crash tests run wxteams as its own process (the binary, built once) against the fakes,
// which live in the test and so survive it, and kill it with SIGKILL in the middle of a load, again
// and again; the PostgreSQL variants also cut the database away under load at the network, or
// crash and restart a PostgreSQL of the test's own. Afterwards every
// message that was acknowledged — WeChat got its answer, Teams got 200 — must be in the archive
// exactly once and must have arrived, the chains must verify, and a message may have arrived twice
// only if its send is archived as outcome unknown (WeChat) or it went to Teams, where a delivery
// whose outcome was lost is sent again.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// wxteamsBinary builds the wxteams binary once per test run.
func wxteamsBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "wxteams-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "wxteams")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func randomKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// process is a wxteams running as its own process.
type process struct {
	t    *testing.T
	bin  string
	env  []string
	addr string
	cmd  *exec.Cmd
	logs *syncWriter
}

func (p *process) start() {
	p.t.Helper()
	p.cmd = exec.Command(p.bin, "serve")
	p.cmd.Env = p.env
	p.cmd.Stdout, p.cmd.Stderr = io.Discard, p.logs
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + p.addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("wxteams did not come up:\n%s", p.logs)
}

func (p *process) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
}

func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(40 * time.Second):
		p.kill()
	}
}

// arrivals counts what reached each side, by the marker in the text.
type arrivals struct {
	mu   sync.Mutex
	seen map[string]int
}

func (a *arrivals) note(text string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, m := range loadtest.Marker.FindAllString(text, -1) {
		a.seen[m]++
	}
}

func (a *arrivals) count(m string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen[m]
}

type crashCase struct {
	name string
	// dbURL returns the database and, for PostgreSQL, an outage: the database taken away for a
	// while and given back. Every other restart is an outage instead of a kill.
	dbURL    func(t *testing.T) (url string, outage func())
	restarts int
}

func TestAcknowledgedMessagesSurviveKillsAndDatabaseOutages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills wxteams processes")
	}
	for _, c := range []crashCase{
		{name: "sqlite", restarts: 4, dbURL: func(t *testing.T) (string, func()) {
			return "sqlite:" + filepath.Join(t.TempDir(), "crash.db"), nil
		}},
		// The shared PostgreSQL, cut away at the network (connections reset and refused).
		{name: "postgres", restarts: 3, dbURL: func(t *testing.T) (string, func()) {
			u, proxy := sqlstoretest.ViaProxy(t, sqlstoretest.PostgresURL(t))
			return u, func() { proxy.Down(); time.Sleep(1200 * time.Millisecond); proxy.Up() }
		}},
		// A PostgreSQL of the test's own, crashed (pg_ctl -m immediate) and restarted under load:
		// it recovers from its WAL, and wxteams reconnects.
		{name: "postgres-restarted", restarts: 4, dbURL: func(t *testing.T) (string, func()) {
			cluster := sqlstoretest.NewCluster(t)
			return cluster.URL(), func() { cluster.Crash(); time.Sleep(500 * time.Millisecond); cluster.Start() }
		}},
	} {
		t.Run(c.name, func(t *testing.T) { crashRun(t, c) })
	}
}

func crashRun(t *testing.T, c crashCase) {
	bin := wxteamsBinary(t)
	dbURL, outage := c.dbURL(t)
	world, err := startSandboxWorld(&clock.Offset{})
	if err != nil {
		t.Fatal(err)
	}
	defer world.stop()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, world.caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	archiveKey, signingKey := randomKey(), randomKey()
	env := []string{"PATH=" + os.Getenv("PATH"), "SSL_CERT_FILE=" + ca, "WXTEAMS_LISTEN=" + addr, "WXTEAMS_INTERNAL_LISTEN=127.0.0.1:0",
		"WXTEAMS_DATABASE_URL=" + dbURL, "WXTEAMS_ARCHIVE_KEY=" + archiveKey, "WXTEAMS_SIGNING_KEY=" + signingKey,
		"WXTEAMS_BOT_TENANT_RPS=10000", "WXTEAMS_LOG_LEVEL=warn", "WXTEAMS_SHUTDOWN_GRACE=5s"}
	for k, v := range world.env {
		env = append(env, k+"="+v)
	}
	p := &process{t: t, bin: bin, env: env, addr: addr, logs: &syncWriter{w: &strings.Builder{}}}
	p.start()
	defer func() {
		if p.cmd.ProcessState == nil {
			p.kill()
		}
	}()
	base := "http://" + addr
	world.teams.BotEndpoint = base + "/api/messages"
	world.wechat.SetPusher(&wechatfake.Pusher{URL: base + "/wechat/callback", Token: world.env["WXTEAMS_WECHAT_TOKEN"], AESKey: world.env["WXTEAMS_WECHAT_AES_KEY"],
		AppID: sandboxWeChatApp, OriginalID: sandboxWeChatGH, Mode: wechatfake.Safe, Clock: world.clock, Timeout: 2 * time.Second})
	toEmployees, toCustomers := &arrivals{seen: map[string]int{}}, &arrivals{seen: map[string]int{}}
	world.wechat.OnDeliver = func(d wechatfake.Delivered) { toCustomers.note(d.Text) }
	world.teams.OnReceive = func(r teamsfake.Received) { toEmployees.note(teamsfake.VisibleText(&r.Activity)) }

	// Eight chats, each enabled through the admin API as an administrator would.
	const chats = 16
	token := world.Token()
	for i := range chats {
		id := loadtest.Employee(i)
		world.teams.AddUser(id, "Crash employee "+strconv.Itoa(i), sandboxTenant)
		req, _ := http.NewRequest(http.MethodPut, base+"/admin/v1/users/"+id+"/wechat", strings.NewReader(`{"name":"Crash employee"}`))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("enable %d: %v %v", i, err, resp)
		}
		resp.Body.Close()
		if r, err := world.wechat.ScanScene(context.Background(), loadtest.Customer(i), bridge.SceneFor(bridge.EmployeeID(id))); err != nil || !r.Acked {
			t.Fatalf("scan %d: %+v %v", i, r, err)
		}
	}

	// The load: each chat alternates a customer message and an employee answer (never over the
	// cap), recording what was acknowledged.
	type acked struct {
		marker  string
		inbound bool
		chat    int
	}
	var (
		mu       sync.Mutex
		ackedAll []acked
		next     int64
	)
	newMarker := func() string {
		mu.Lock()
		defer mu.Unlock()
		next++
		return "#L" + strconv.FormatInt(next, 10) + "#"
	}
	stopLoad := make(chan struct{})
	var wg sync.WaitGroup
	for i := range chats {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for {
				select {
				case <-stopLoad:
					return
				default:
				}
				m := newMarker()
				if r, _, err := world.wechat.Send(ctx, loadtest.Customer(i), "Customer says "+m); err == nil && r.Acked {
					mu.Lock()
					ackedAll = append(ackedAll, acked{m, true, i})
					mu.Unlock()
				} else {
					time.Sleep(50 * time.Millisecond)
					continue // wxteams is down: the customer tries again later
				}
				m = newMarker()
				if _, err := world.teams.Say(ctx, loadtest.Employee(i), "Employee says "+m); err == nil {
					mu.Lock()
					ackedAll = append(ackedAll, acked{m, false, i})
					mu.Unlock()
				} else {
					time.Sleep(50 * time.Millisecond)
				}
				// Under Teams' limit of 60 messages per 30 s to one employee's conversation.
				time.Sleep(400 * time.Millisecond)
			}
		}()
	}
	// Kill wxteams (and cut the database) again and again.
	for r := range c.restarts {
		time.Sleep(1500 * time.Millisecond)
		if outage != nil && r%2 == 1 {
			outage()
			continue
		}
		p.kill()
		time.Sleep(200 * time.Millisecond)
		p.start()
	}
	time.Sleep(1 * time.Second)
	close(stopLoad)
	wg.Wait()

	// Everything acknowledged arrives, after at most one more restart's worth of waiting.
	mu.Lock()
	all := append([]acked(nil), ackedAll...)
	mu.Unlock()
	if len(all) < 50 {
		t.Fatalf("only %d messages were acknowledged: the load did not run\n%s", len(all), p.logs)
	}
	// A send in flight at a kill holds its chat's WeChat lane until its claim runs out (2 × the
	// send timeout + 5 s) and is archived as outcome unknown. Meanwhile the messages behind it
	// count toward the cap, so later ones are queued until the customer writes — and refused once
	// the queue is full. So while anything is missing the customers keep writing, as they would.
	// The archive is read with the archive key as wxteams runs, and at the end.
	store, err := sqlstore.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ring, _ := compliance.NewKeyring(mustB64(archiveKey))
	store.UseKeyring(ring)
	deadline := time.Now().Add(150 * time.Second)
	// missing returns the acknowledged messages that have not arrived, except those the archive
	// settles otherwise: a send of unknown outcome, or a message the policy refused (a chat whose
	// lane a killed send held keeps its streak full, its queue fills, and the next is refused).
	missing := func() []acked {
		facts, err := loadtest.ReadArchive(context.Background(), store)
		if err != nil {
			return nil // the database is still coming back: ask again
		}
		var out []acked
		mu.Lock()
		defer mu.Unlock()
		for _, a := range ackedAll {
			side := toCustomers
			if a.inbound {
				side = toEmployees
			}
			if side.count(a.marker) == 0 && !facts.Settled(loadtest.MarkerID(a.marker)) {
				out = append(out, a)
			}
		}
		return out
	}
	for left := missing(); len(left) > 0 && time.Now().Before(deadline); left = missing() {
		waiting := map[int]bool{}
		for _, a := range left {
			waiting[a.chat] = waiting[a.chat] || !a.inbound
		}
		for i, queued := range waiting {
			if !queued {
				continue // only Teams deliveries are outstanding: they need time, not messages
			}
			m := newMarker()
			if r, _, err := world.wechat.Send(context.Background(), loadtest.Customer(i), "Customer nudges "+m); err == nil && r.Acked {
				mu.Lock()
				ackedAll = append(ackedAll, acked{m, true, i})
				mu.Unlock()
			}
		}
		time.Sleep(2 * time.Second)
	}
	mu.Lock()
	all = append([]acked(nil), ackedAll...)
	mu.Unlock()
	p.stop()

	facts, err := loadtest.ReadArchive(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	messageOf := func(marker string) string { return facts.MessageOf[loadtest.MarkerID(marker)] }
	var problems []string
	dupInTeams, nRefused := 0, 0
	for _, a := range all {
		if n := facts.Archived[loadtest.MarkerID(a.marker)]; n != 1 {
			problems = append(problems, fmt.Sprintf("%s archived %d times", a.marker, n))
		}
		if a.inbound {
			if n := toEmployees.count(a.marker); n == 0 {
				problems = append(problems, a.marker+" (customer → employee) never arrived")
			} else if n > 1 {
				dupInTeams++ // a Teams delivery whose outcome a kill lost is sent again, by design
			}
			continue
		}
		n, outcomeUnknown := toCustomers.count(a.marker), facts.Unknown[messageOf(a.marker)]
		switch {
		case facts.Refused[messageOf(a.marker)]:
			nRefused++
			if n > 0 {
				problems = append(problems, fmt.Sprintf("%s was refused and yet arrived", a.marker))
			}
		case n == 0 && !outcomeUnknown:
			problems = append(problems, fmt.Sprintf("%s (employee → customer) never arrived: %v", a.marker, facts.History[messageOf(a.marker)]))
		case n > 1 && !outcomeUnknown:
			problems = append(problems, fmt.Sprintf("%s arrived %d times at the customer without an outcome-unknown record", a.marker, n))
		case n > 1:
			problems = append(problems, fmt.Sprintf("%s was sent to WeChat %d times", a.marker, n)) // never resent blindly
		}
	}
	if len(problems) > 0 {
		t.Log(debugState(store))
		if os.Getenv("WXTEAMS_CRASH_DEBUG") != "" {
			for n := 1; n <= chats; n++ {
				st := compliance.ChatStream(int64(n))
				recs, _ := store.ArchiveStream(context.Background(), st)
				first := -1
				for i, r := range recs {
					m, _ := compliance.DecodeMeta(r.Meta)
					if r.Kind == compliance.KindStatus && m.To != "active" && m.To != "pending" && first < 0 {
						first = i
					}
				}
				for i := max(first-25, 0); first >= 0 && i < min(first+25, len(recs)); i++ {
					r := recs[i]
					m, _ := compliance.DecodeMeta(r.Meta)
					c, _ := compliance.DecodeContent(r.Body)
					t.Logf("%s #%d %s %s %s msg=%s ch=%s reason=%q err=%d %s→%s q=%d %q", st, r.Seq, r.At.Format("15:04:05.000"), r.Kind, r.Actor, m.MessageID, m.Channel, m.Reason, m.ErrCode, m.From, m.To, m.QueueLength, c.Text)
				}
			}
		}
		t.Errorf("%d of %d acknowledged messages:\n%s\nwxteams log:\n%s", len(problems), len(all), strings.Join(problems[:min(len(problems), 20)], "\n"), tail(p.logs.String(), 3000))
	}
	if n, err := store.VerifyArchive(context.Background()); err != nil {
		t.Errorf("archive after the kills (%d records): %v", n, err)
	}
	dbErrors := 0
	for _, sign := range []string{"connection refused", "terminating connection", "bad connection", "connection reset"} {
		dbErrors += strings.Count(p.logs.String(), sign)
	}
	if outage != nil && dbErrors == 0 {
		t.Error("wxteams logged no database error: the outages never reached it, and the test proved nothing about them")
	}
	t.Logf("%d acknowledged messages through %d kills/outages; %d outcome-unknown sends; %d refused (queue full); %d duplicate Teams cards; %d database errors logged",
		len(all), c.restarts, len(facts.Unknown), nRefused, dupInTeams, dbErrors)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func exportScopeAll() export.Scope { return export.Scope{} }

// debugState describes what is still undelivered, for a failure's report.
func debugState(s *sqlstore.Store) string {
	var b strings.Builder
	for _, q := range []string{
		`SELECT 'outbox', id, chat_id, channel, state, attempts, not_before_us, lease_until_us FROM outbox WHERE state IN ('pending', 'sending') ORDER BY id LIMIT 20`,
		`SELECT 'chat', id, 0, contact, status, employee_streak, sent_since_inbound, (SELECT COUNT(*) FROM queue WHERE queue.chat_id = chats.id) FROM chats ORDER BY id`,
		`SELECT 'lane', 0, 0, lane, channel, head_id, due_us, 0 FROM outbox_lanes`,
	} {
		rows, err := s.DB().Query(q)
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", q, err)
			continue
		}
		for rows.Next() {
			vals := make([]any, 8)
			ptrs := make([]any, 8)
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			_ = rows.Scan(ptrs...)
			fmt.Fprintln(&b, vals...)
		}
		rows.Close()
	}
	return b.String()
}
