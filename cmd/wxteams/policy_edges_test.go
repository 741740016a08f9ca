package main

import (
	"context"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bot"
	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/wechat/wechatfake"
)

// The policy's edges (issue 12, stories 1–7) told from outside: `wxteams serve` wired from its
// environment, the fake WeChat and the fake Teams over HTTP, the engine delivering on its own.

const (
	testAlex  = "bd1f3c55-1b4e-4d2c-9a5f-6d8e7c9b0a11"
	sendPath  = "/cgi-bin/message/custom/send"
	edgeMing  = "o-edge-ming"
	waitSteps = 500
)

// edge is one story's world: serve running, Megan (and Alex) enabled.
type edge struct {
	t     *testing.T
	ctx   context.Context
	m     *microsoft
	s     *server
	admin string
	en    bridge.CustomerTexts // WeChat does not tell the callback a customer's language
}

func newEdge(t *testing.T, employees ...string) *edge { return newEdgeOn(t, "", employees...) }

// newEdgeOn is newEdge on a database of its own (dbURL; "" for a fresh SQLite file).
func newEdgeOn(t *testing.T, dbURL string, employees ...string) *edge {
	e := &edge{t: t, ctx: context.Background(), m: newMicrosoft(t), en: bridge.DefaultPolicy().Customer[bridge.LangEnglish]}
	if dbURL != "" {
		e.m.env["WXTEAMS_DATABASE_URL"] = dbURL
	}
	e.m.env["WXTEAMS_EXPORT_DIR"] = filepath.Join(t.TempDir(), "exports")
	e.s = e.m.start(t)
	e.admin = e.m.admins.UserToken("api://"+testBotApp, testTenant, "it@acme.example", "oid-it", bot.AdminRole)
	names := map[string]string{testMegan: "Megan Bowen", testAlex: "Alex Wilber"}
	for _, id := range employees {
		e.m.teams.AddUser(id, names[id], testTenant)
		if status, body := e.m.adminCall(t, e.s, http.MethodPut, "/admin/v1/users/"+id+"/wechat", e.admin); status != http.StatusOK {
			t.Fatalf("enable %s = %d %s", names[id], status, body)
		}
		e.waitFor("the welcome of "+names[id], func() bool { return e.teamsGot(id, "WeChat is enabled for you") })
	}
	return e
}

// waitFor waits for cond in real time, without moving the virtual clock.
func (e *edge) waitFor(what string, cond func() bool) {
	e.t.Helper()
	for range waitSteps {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("timed out waiting for %s\ncustomer received %q\nMegan received %q", what, e.m.wechat.Texts(edgeMing), e.m.teams.Texts(testMegan))
}

func (e *edge) teamsGot(id, part string) bool {
	return slices.ContainsFunc(e.m.teams.Texts(id), func(s string) bool { return strings.Contains(s, part) })
}

func (e *edge) customerGot(text string) bool {
	return slices.Contains(e.m.wechat.Texts(edgeMing), text)
}

func (e *edge) scan(id string) {
	e.t.Helper()
	if r, err := e.m.wechat.ScanScene(e.ctx, edgeMing, bridge.SceneFor(bridge.EmployeeID(id))); err != nil || !r.Acked {
		e.t.Fatalf("scan = %+v, %v", r, err)
	}
}

func (e *edge) customerSays(text string) {
	e.t.Helper()
	if r, _, err := e.m.wechat.Send(e.ctx, edgeMing, text); err != nil || !r.Acked {
		e.t.Fatalf("customer message = %+v, %v", r, err)
	}
}

func (e *edge) employeeSays(id, text string) {
	e.t.Helper()
	if _, err := e.m.teams.Say(e.ctx, id, text); err != nil {
		e.t.Fatal(err)
	}
}

// active connects the customer to Megan and has them write.
func (e *edge) active() {
	e.t.Helper()
	e.scan(testMegan)
	e.waitFor("the initial message", func() bool { return len(e.m.wechat.Texts(edgeMing)) > 0 })
	e.customerSays("你好")
	e.waitFor("the customer's message in Teams", func() bool { return e.teamsGot(testMegan, "你好") })
}

// withWeChat runs fn while a send is with WeChat: the next send is answered with f after 1.5 s.
func (e *edge) withWeChat(f wechatfake.Fault, send, fn func()) {
	e.t.Helper()
	before := e.m.wechat.Requests(sendPath)
	f.Delay = 1500 * time.Millisecond
	e.m.wechat.Fail(sendPath, f)
	send()
	e.waitFor("the send to reach WeChat", func() bool { return e.m.wechat.Requests(sendPath) > before })
	fn()
}

func (e *edge) never(texts ...string) {
	e.t.Helper()
	for _, text := range texts {
		if e.customerGot(text) {
			e.t.Errorf("the customer received %q; got %q", text, e.m.wechat.Texts(edgeMing))
		}
	}
}

func TestServePolicyEdges(t *testing.T) {
	t.Run("1 a disabled employee's queued message never goes out", func(t *testing.T) {
		e := newEdge(t, testMegan)
		e.scan(testMegan)
		e.employeeSays(testMegan, "Hello, this is Megan")
		e.waitFor("queued", func() bool { return e.teamsGot(testMegan, "Queued (1 of 10)") })
		if status, body := e.m.adminCall(t, e.s, http.MethodDelete, "/admin/v1/users/"+testMegan+"/wechat", e.admin); status != http.StatusNoContent {
			t.Fatalf("disable = %d %s", status, body)
		}
		e.waitFor("Megan told", func() bool { return e.teamsGot(testMegan, "cancelled: WeChat was disabled for your account") })
		e.customerSays("有人吗？")
		e.waitFor("the customer told the contact is unavailable", func() bool { return e.customerGot(e.en.Unavailable) })
		e.never("Hello, this is Megan")
	})

	t.Run("2 a re-binding scan cancels the previous employee's queue", func(t *testing.T) {
		e := newEdge(t, testMegan, testAlex)
		e.scan(testMegan)
		e.employeeSays(testMegan, "Megan one")
		e.employeeSays(testMegan, "Megan two")
		e.waitFor("both queued", func() bool { return e.teamsGot(testMegan, "Queued (2 of 10)") })
		e.scan(testAlex)
		e.customerSays("Alex 你好")
		e.waitFor("Alex sees the customer", func() bool { return e.teamsGot(testAlex, "Alex 你好") })
		e.waitFor("Megan told", func() bool { return e.teamsGot(testMegan, "2 of your message(s)") })
		e.never("Megan one", "Megan two")
		if e.teamsGot(testAlex, "queued message(s) sent") {
			t.Errorf("Alex was told Megan's queue was sent: %q", e.m.teams.Texts(testAlex))
		}
	})

	t.Run("3 a chat capped by a message that fails for good opens again", func(t *testing.T) {
		e := newEdge(t, testMegan)
		e.active()
		e.employeeSays(testMegan, "one")
		e.employeeSays(testMegan, "two")
		e.waitFor("two delivered", func() bool { return e.customerGot("two") })
		e.m.wechat.Fail(sendPath, wechatfake.Fault{Code: 45002})
		e.employeeSays(testMegan, "three")
		e.waitFor("the failure told", func() bool { return e.teamsGot(testMegan, "could not be delivered (WeChat error 45002)") })
		e.employeeSays(testMegan, "three, shorter")
		e.waitFor("the next message delivered", func() bool { return e.customerGot("three, shorter") })
	})

	t.Run("4 a retried send never reaches a customer who left", func(t *testing.T) {
		e := newEdge(t, testMegan)
		e.active()
		e.withWeChat(wechatfake.Fault{Code: -1}, func() { e.employeeSays(testMegan, "The report you asked for") }, func() { e.customerSays("#LEAVE") })
		e.waitFor("Megan told", func() bool { return e.teamsGot(testMegan, "cancelled: the customer left the chat (#LEAVE)") })
		e.m.eventually(t, "the leave confirmation", func() bool { return e.customerGot(e.en.LeaveConfirm) })
		for range 5 {
			e.m.clock.Advance(time.Minute)
			time.Sleep(50 * time.Millisecond)
		}
		e.never("The report you asked for")
	})

	t.Run("5 a 45015 after an unfollow cancels the message", func(t *testing.T) {
		e := newEdge(t, testMegan, testAlex)
		e.active()
		e.withWeChat(wechatfake.Fault{Code: 45015}, func() { e.employeeSays(testMegan, "Stale news") }, func() {
			if r, err := e.m.wechat.Unfollow(e.ctx, edgeMing); err != nil || !r.Acked {
				t.Fatalf("unfollow = %+v, %v", r, err)
			}
		})
		e.waitFor("Megan told", func() bool { return e.teamsGot(testMegan, "cancelled: the customer unfollowed the WeChat account") })
		e.m.clock.Advance(21 * 24 * time.Hour)
		e.scan(testAlex)
		e.customerSays("Alex 你好")
		e.waitFor("Alex sees the customer", func() bool { return e.teamsGot(testAlex, "Alex 你好") })
		e.never("Stale news")
	})

	t.Run("6 a delayed on-hold prompt is cancelled when the customer replies", func(t *testing.T) {
		e := newEdge(t, testMegan)
		e.active()
		for _, m := range []string{"1", "2", "3", "4"} {
			e.employeeSays(testMegan, m)
		}
		e.waitFor("the fourth queued", func() bool { return e.teamsGot(testMegan, "Queued (1 of 10)") && e.customerGot("3") })
		sends := e.m.wechat.Requests(sendPath)
		e.m.wechat.Fail(sendPath, wechatfake.Fault{Code: 45009})
		e.m.clock.Advance(24 * time.Hour)
		e.waitFor("the 24 h notice and the prompt's first try", func() bool {
			return e.teamsGot(testMegan, "has not responded for 24 hours") && e.m.wechat.Requests(sendPath) > sends
		})
		e.customerSays("抱歉，刚才在忙")
		e.m.eventually(t, "the queued message", func() bool { return e.customerGot("4") })
		e.never(e.en.OnHold)
	})

	t.Run("7 a refused scan leaves a live chat as it was", func(t *testing.T) {
		e := newEdge(t, testMegan)
		e.active()
		if r, err := e.m.wechat.ScanScene(e.ctx, edgeMing, "emp:nobody"); err != nil || !r.Acked {
			t.Fatalf("scan = %+v, %v", r, err)
		}
		e.waitFor("the customer told", func() bool { return e.customerGot(e.en.Unavailable) })
		e.employeeSays(testMegan, "Following up")
		e.waitFor("Megan's message delivered at once", func() bool { return e.customerGot("Following up") })
	})
}
