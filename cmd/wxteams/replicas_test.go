package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bot/teamsfake"
	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/clock"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/bridge/wechat/wechatfake"
	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/internal/loadtest"
)

// Two replicas of `wxteams serve` on one PostgreSQL, behind a round-robin balancer, under load:
// the cap of three holds in every chat although its messages land on either replica, nothing is
// delivered twice, one replica fetches WeChat's access token for both, and each chat's 24 h timer
// fires once.
func TestTwoReplicasOnOnePostgres(t *testing.T) {
	dbURL := sqlstoretest.PostgresURL(t)
	clk := &clock.Offset{}
	world, err := startSandboxWorld(clk)
	if err != nil {
		t.Fatal(err)
	}
	defer world.stop()
	env := map[string]string{"WXTEAMS_DATABASE_URL": dbURL, "WXTEAMS_ARCHIVE_KEY": testArchiveKey, "WXTEAMS_SIGNING_KEY": testSigningKey,
		"WXTEAMS_BOT_TENANT_RPS": "10000", "WXTEAMS_LISTEN": "127.0.0.1:0", "WXTEAMS_INTERNAL_LISTEN": "127.0.0.1:0", "WXTEAMS_LOG_LEVEL": "warn"}
	for k, v := range world.env {
		env[k] = v
	}
	var replicas []*server
	for range 2 {
		cfg, err := loadConfig(func(k string) string { return env[k] })
		if err != nil {
			t.Fatal(err)
		}
		e := &environment{stdout: io.Discard, stderr: io.Discard, getenv: func(k string) string { return env[k] }, transport: world.transport}
		ctx, stop := context.WithCancel(context.Background())
		started := make(chan *server, 1)
		done := make(chan error, 1)
		go func() { done <- serve(ctx, e, cfg, serveOptions{clock: clk, started: started}) }()
		t.Cleanup(func() { stop(); <-done })
		select {
		case s := <-started:
			replicas = append(replicas, s)
		case err := <-done:
			t.Fatalf("replica: %v", err)
		}
	}
	// The balancer sends each request to the next replica.
	var turn atomic.Int64
	targets := []*url.URL{{Scheme: "http", Host: replicas[0].publicAddr}, {Scheme: "http", Host: replicas[1].publicAddr}}
	lb := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(targets[turn.Add(1)%2])
	}})
	defer lb.Close()
	world.teams.BotEndpoint = lb.URL + "/api/messages"
	world.wechat.SetPusher(&wechatfake.Pusher{URL: lb.URL + "/wechat/callback", Token: world.env["WXTEAMS_WECHAT_TOKEN"], AESKey: world.env["WXTEAMS_WECHAT_AES_KEY"],
		AppID: sandboxWeChatApp, OriginalID: sandboxWeChatGH, Mode: wechatfake.Safe, Clock: clk})
	var deliveredMu sync.Mutex
	delivered := map[string]int{}
	world.wechat.OnDeliver = func(d wechatfake.Delivered) {
		deliveredMu.Lock()
		for _, m := range loadtest.Marker.FindAllString(d.Text, -1) {
			delivered[m]++
		}
		deliveredMu.Unlock()
	}
	world.teams.OnReceive = func(r teamsfake.Received) {
		deliveredMu.Lock()
		for _, m := range loadtest.Marker.FindAllString(teamsfake.VisibleText(&r.Activity), -1) {
			delivered[m]++
		}
		deliveredMu.Unlock()
	}

	const chats = 8
	token := world.Token()
	for i := range chats {
		id := loadtest.Employee(i)
		world.teams.AddUser(id, "Replica employee "+strconv.Itoa(i), sandboxTenant)
		req, _ := http.NewRequest(http.MethodPut, lb.URL+"/admin/v1/users/"+id+"/wechat", strings.NewReader(`{}`))
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
	// Each round: the customer writes, the employee answers four times at once (two replicas race
	// on the chat), the fourth must be queued.
	var n atomic.Int64
	mark := func() string { return "#L" + strconv.FormatInt(n.Add(1), 10) + "#" }
	var wg sync.WaitGroup
	for i := range chats {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for range 6 {
				if r, _, err := world.wechat.Send(ctx, loadtest.Customer(i), "Question "+mark()); err != nil || !r.Acked {
					t.Errorf("chat %d: customer message: %+v %v", i, r, err)
					return
				}
				var answers sync.WaitGroup
				for range 4 {
					answers.Add(1)
					go func() {
						defer answers.Done()
						if _, err := world.teams.Say(ctx, loadtest.Employee(i), "Answer "+mark()); err != nil {
							t.Errorf("chat %d: employee message: %v", i, err)
						}
					}()
				}
				answers.Wait()
				time.Sleep(2 * time.Second) // under Teams' limits for the employee's conversation
			}
		}()
	}
	wg.Wait()
	for _, s := range replicas {
		if _, err := s.engine.Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)

	// Nothing delivered twice.
	deliveredMu.Lock()
	for m, c := range delivered {
		if c > 1 {
			t.Errorf("%s delivered %d times", m, c)
		}
	}
	deliveredMu.Unlock()
	// One token refresher for both replicas.
	if got := world.wechat.Requests("/cgi-bin/stable_token"); got != 1 {
		t.Errorf("WeChat's access token was fetched %d times by two replicas; want once", got)
	}

	// 25 hours pass; both replicas look for due timers at once.
	clk.Jump(25 * time.Hour)
	var timers sync.WaitGroup
	for _, s := range replicas {
		timers.Add(1)
		go func() { defer timers.Done(); _, _ = s.engine.FireDueTimers(context.Background()) }()
	}
	timers.Wait()
	store := replicas[0].store
	// The replicas' own loops, woken by the jump, may hold the timers: wait for their steps.
	count24 := func() int {
		total := 0
		for c := int64(1); c <= chats; c++ {
			recs, _ := store.ArchiveStream(context.Background(), compliance.ChatStream(c))
			for _, r := range recs {
				if m, _ := compliance.DecodeMeta(r.Meta); r.Kind == compliance.KindAutoMessage && m.Template == "employee.notice_24h" {
					total++
				}
			}
		}
		return total
	}
	for deadline := time.Now().Add(15 * time.Second); count24() < chats && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // a second firing, if there were one, would show by now

	for c := int64(1); c <= chats; c++ {
		recs, err := store.ArchiveStream(context.Background(), compliance.ChatStream(c))
		if err != nil {
			t.Fatal(err)
		}
		streak, notices24 := 0, 0
		for i, r := range recs {
			meta, _ := compliance.DecodeMeta(r.Meta)
			switch r.Kind {
			case compliance.KindCustomerMessage:
				streak = 0
			case compliance.KindReleased:
				streak += max(meta.Count, 1)
			case compliance.KindEmployeeMessage:
				queued := i+1 < len(recs) && recs[i+1].Kind == compliance.KindQueued
				if !queued {
					streak++
				}
			case compliance.KindAutoMessage:
				if meta.Template == "employee.notice_24h" {
					notices24++
				}
			}
			if streak > 3 {
				t.Errorf("chat %d: %d employee messages handed to WeChat without a customer message (record %d)", c, streak, r.Seq)
				break
			}
		}
		if notices24 != 1 {
			t.Errorf("chat %d: the 24 h notice was archived %d times; want once", c, notices24)
		}
	}
	if n, err := store.VerifyArchive(context.Background()); err != nil {
		t.Errorf("archive (%d records): %v", n, err)
	}
}
