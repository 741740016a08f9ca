package bridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/bridgetest"
	"github.com/wxteams/wxteams/bridge/clock"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/compliance"
)

// world is one firm running wxteams in a test: the real engine and store, a fake clock, and
// recording senders standing in for WeChat and Teams.
type world struct {
	t      *testing.T
	ctx    context.Context
	clock  *clock.Fake
	store  *sqlstore.Store
	engine *bridge.Engine
	wechat *bridgetest.WeChat
	teams  *bridgetest.Teams
	policy bridge.Policy

	seenWeChat map[bridge.OpenID]int
	seenTeams  map[bridge.EmployeeID]int
}

var start = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// eachDB runs a scenario on SQLite and, when configured, PostgreSQL.
func eachDB(t *testing.T, scenario func(t *testing.T, open func(testing.TB) *sqlstore.Store)) {
	sqlstoretest.Each(t, scenario)
}

// scenario runs fn in a fresh world on each database.
func scenario(t *testing.T, fn func(w *world), policy ...func(*bridge.Policy)) {
	eachDB(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		fn(newWorld(t, open(t), policy...))
	})
}

func newWorld(t *testing.T, store *sqlstore.Store, policy ...func(*bridge.Policy)) *world {
	t.Helper()
	p := bridge.DefaultPolicy()
	p.FirmName = "Acme Securities"
	for _, f := range policy {
		f(&p)
	}
	w := &world{
		t: t, ctx: context.Background(), clock: clock.NewFake(start), store: store,
		wechat: &bridgetest.WeChat{}, teams: &bridgetest.Teams{}, policy: p,
		seenWeChat: map[bridge.OpenID]int{}, seenTeams: map[bridge.EmployeeID]int{},
	}
	var err error
	w.engine, err = bridge.NewEngine(bridge.Config{Store: store, WeChat: w.wechat, Teams: w.teams, Clock: w.clock, Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// en and staff are the default texts, for assertions.
func (w *world) en() bridge.CustomerTexts    { return w.policy.Customer[bridge.LangEnglish] }
func (w *world) staff() bridge.EmployeeTexts { return w.policy.Employee }

func (w *world) initialToCustomer() string {
	return w.en().Initial + "\n\n" + strings.ReplaceAll(w.en().RecordingNotice, "{firm}", "Acme Securities")
}

// enable has an administrator enable an employee.
func (w *world) enable(id bridge.EmployeeID, name string) {
	w.t.Helper()
	if _, err := w.engine.EnableEmployee(w.ctx, bridge.EmployeeProfile{ID: id, Name: name, Tenant: "acme"}, "admin:it@acme.example"); err != nil {
		w.t.Fatal(err)
	}
}

// scan has a customer scan an employee's QR code, and delivers what follows.
func (w *world) scan(contact bridge.OpenID, emp bridge.EmployeeID) bridge.ChatID {
	w.t.Helper()
	res, err := w.engine.Connect(w.ctx, bridge.Connect{Contact: contact, Scene: bridge.SceneFor(emp), Event: "subscribe"})
	if err != nil {
		w.t.Fatal(err)
	}
	w.drain()
	return res.Chat
}

// customerSays delivers a customer's message through the engine.
func (w *world) customerSays(contact bridge.OpenID, text string) bridge.Result {
	w.t.Helper()
	res, err := w.engine.CustomerWrites(w.ctx, bridge.Inbound{Contact: contact, Message: bridge.TextMessage(text)})
	if err != nil {
		w.t.Fatal(err)
	}
	w.drain()
	return res
}

// employeeSays delivers an employee's message through the engine.
func (w *world) employeeSays(emp bridge.EmployeeID, chat bridge.ChatID, text string) bridge.Result {
	w.t.Helper()
	res, err := w.engine.EmployeeWrites(w.ctx, bridge.EmployeeMessage{Employee: emp, Chat: chat, Message: bridge.TextMessage(text)})
	if err != nil {
		w.t.Fatal(err)
	}
	w.drain()
	return res
}

// after moves the clock on and lets due timers fire and deliveries go out.
func (w *world) after(d time.Duration) {
	w.t.Helper()
	w.clock.Advance(d)
	w.drain()
}

func (w *world) drain() {
	w.t.Helper()
	if _, err := w.engine.Drain(w.ctx); err != nil {
		w.t.Fatal(err)
	}
}

// customerGets asserts the texts a customer received since the last check.
func (w *world) customerGets(contact bridge.OpenID, want ...string) {
	w.t.Helper()
	all := w.wechat.Texts(contact)
	got := all[w.seenWeChat[contact]:]
	w.seenWeChat[contact] = len(all)
	if !slices.Equal(got, want) {
		w.t.Errorf("customer %s received:\n%s\nwant:\n%s", contact, list(got), list(want))
	}
}

// employeeGets asserts the texts an employee received in Teams since the last check.
func (w *world) employeeGets(emp bridge.EmployeeID, want ...string) {
	w.t.Helper()
	all := w.teams.Texts(emp)
	got := all[w.seenTeams[emp]:]
	w.seenTeams[emp] = len(all)
	if !slices.Equal(got, want) {
		w.t.Errorf("employee %s received:\n%s\nwant:\n%s", emp, list(got), list(want))
	}
}

// lastTeams is the last message an employee received.
func (w *world) lastTeams(emp bridge.EmployeeID) *bridge.TeamsMessage {
	w.t.Helper()
	msgs := w.teams.Messages(emp)
	if len(msgs) == 0 {
		w.t.Fatalf("employee %s received nothing", emp)
	}
	return msgs[len(msgs)-1]
}

func list(s []string) string {
	if len(s) == 0 {
		return "  (nothing)"
	}
	var b strings.Builder
	for i, x := range s {
		if len(x) > 90 {
			x = x[:90] + "…"
		}
		fmt.Fprintf(&b, "  %d. %s\n", i+1, x)
	}
	return b.String()
}

// status reads a chat's status.
func (w *world) status(chat bridge.ChatID) bridge.Status {
	w.t.Helper()
	var st bridge.Status
	err := w.store.InTx(w.ctx, func(tx bridge.Tx) error {
		c, err := tx.LockChat(w.ctx, chat)
		if err == nil {
			st = c.Status
		}
		return err
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return st
}

// archived lists a chat's archive events since seq from as "kind" or "kind(detail)", and checks the
// chain as it goes.
func (w *world) archived(chat bridge.ChatID) []string {
	w.t.Helper()
	recs, err := w.store.ArchiveStream(w.ctx, compliance.ChatStream(int64(chat)))
	if err != nil {
		w.t.Fatal(err)
	}
	v := compliance.NewChainVerifier(compliance.ChatStream(int64(chat)))
	var out []string
	for i := range recs {
		if err := v.Add(&recs[i], true); err != nil {
			w.t.Fatal(err)
		}
		out = append(out, describe(w.t, recs[i]))
	}
	return out
}

// describe renders an archive record for assertions.
func describe(t *testing.T, r compliance.Record) string {
	var m compliance.Meta
	if err := json.Unmarshal(r.Meta, &m); err != nil {
		t.Fatal(err)
	}
	detail := m.Template
	switch r.Kind {
	case compliance.KindStatus:
		detail = m.From + "→" + m.To
	case compliance.KindQueued, compliance.KindRefused, compliance.KindCancelled:
		detail = m.Reason
	case compliance.KindDeliveryFailed, compliance.KindRequeued:
		detail = fmt.Sprint(m.ErrCode)
	case compliance.KindDelivered, compliance.KindDeliveryRetry, compliance.KindOutcomeUnknown:
		detail = m.Channel
	}
	if detail == "" {
		return string(r.Kind)
	}
	return string(r.Kind) + "(" + detail + ")"
}

// assertArchived checks that want appears, in order, within got.
func assertArchived(t *testing.T, got []string, want ...string) {
	t.Helper()
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	if i < len(want) {
		t.Errorf("archive lacks %q (in this order) from %q onwards; archive:\n%s", want, want[i], list(got))
	}
}

func count(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

// wechatError builds a WeChat delivery error as the WeChat adapter reports it.
func wechatError(kind error, code int, msg string) error {
	return &bridge.DeliveryError{Kind: kind, Status: code, Message: msg}
}

func isErr(err, target error) bool { return errors.Is(err, target) }
