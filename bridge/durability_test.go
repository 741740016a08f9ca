package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/bridgetest"
	"github.com/wxteams/wxteams/bridge/clock"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/compliance"
)

// Bad input, a database that fails, restarts, and several engines on one database.

func TestBadInputGetsAClearAnswer(t *testing.T) {
	scenario(t, func(w *world) {
		chat := activeChat(w)

		if _, err := w.engine.EmployeeWrites(w.ctx, bridge.EmployeeMessage{Employee: "nobody", Chat: chat, Message: bridge.TextMessage("hi")}); !errors.Is(err, bridge.ErrUnknownEmployee) {
			t.Errorf("message from an unknown employee: error = %v; want ErrUnknownEmployee", err)
		}
		if res := w.employeeSays(ann, 424242, "hi"); res.Outcome != bridge.OutcomeRefused || res.Reason != "unknown_chat" {
			t.Errorf("message to an unknown chat = %+v; want refused (unknown_chat)", res)
		}
		w.employeeGets(ann, w.staff().NotMember)

		for _, empty := range []string{"", "   ", "\n\t"} {
			if res := w.employeeSays(ann, chat, empty); res.Reason != "empty" {
				t.Errorf("empty message %q = %+v; want refused (empty)", empty, res)
			}
		}
		w.employeeGets(ann, w.staff().Empty, w.staff().Empty, w.staff().Empty)

		long := strings.Repeat("长", 683) // 2049 bytes in UTF-8
		if res := w.employeeSays(ann, chat, long); res.Reason != "too_long" {
			t.Errorf("2049-byte message = %+v; want refused (too_long)", res)
		}
		w.employeeGets(ann, "Not sent: the message is 2049 bytes and WeChat takes at most 2048 bytes in one message. Shorten it or send it in parts.")
		if res := w.employeeSays(ann, chat, strings.Repeat("长", 682)); res.Outcome != bridge.OutcomeSent {
			t.Errorf("2046-byte message = %+v; want sent", res)
		}
		w.customerGets(ming, strings.Repeat("长", 682))

		if _, err := w.engine.Connect(w.ctx, bridge.Connect{Contact: ming}); !errors.Is(err, bridge.ErrInvalid) {
			t.Errorf("connect without a scene: error = %v; want ErrInvalid", err)
		}
		if _, err := w.engine.CustomerWrites(w.ctx, bridge.Inbound{Message: bridge.TextMessage("x")}); !errors.Is(err, bridge.ErrInvalid) {
			t.Errorf("customer message without a contact: error = %v; want ErrInvalid", err)
		}
		if err := w.engine.ChangeMembers(w.ctx, bridge.MembersChange{Chat: chat, Remove: []bridge.EmployeeID{ann}, Actor: "admin:x"}); !errors.Is(err, bridge.ErrInvalid) {
			t.Errorf("removing the last employee: error = %v; want ErrInvalid", err)
		}
		if err := w.engine.ChangeMembers(w.ctx, bridge.MembersChange{Chat: 999, Add: []bridge.EmployeeID{ann}, Actor: "admin:x"}); !errors.Is(err, bridge.ErrUnknownChat) {
			t.Errorf("changing an unknown chat: error = %v; want ErrUnknownChat", err)
		}
		if err := w.engine.ChangeMembers(w.ctx, bridge.MembersChange{Chat: chat, Add: []bridge.EmployeeID{"nobody"}, Actor: "admin:x"}); !errors.Is(err, bridge.ErrUnknownEmployee) {
			t.Errorf("adding an unknown employee: error = %v; want ErrUnknownEmployee", err)
		}
		assertArchived(t, w.archived(chat), "message.refused(empty)", "message.refused(too_long)")
	})
}

// faultyStore fails the archive write of every step, the last write the engine makes.
type faultyStore struct{ bridge.Store }

func (f faultyStore) InTx(ctx context.Context, fn func(bridge.Tx) error) error {
	return f.Store.InTx(ctx, func(tx bridge.Tx) error { return fn(faultyTx{tx}) })
}

type faultyTx struct{ bridge.Tx }

var errDiskFull = errors.New("could not write: disk full")

func (faultyTx) Append(context.Context, ...compliance.Event) error { return errDiskFull }

func TestAFailedStepWritesNothing(t *testing.T) {
	scenario(t, func(w *world) {
		chat := activeChat(w)
		before := w.archived(chat)
		broken, err := bridge.NewEngine(bridge.Config{Store: faultyStore{w.store}, WeChat: w.wechat, Teams: w.teams, Clock: w.clock, Policy: w.policy})
		if err != nil {
			t.Fatal(err)
		}
		_, err = broken.CustomerWrites(w.ctx, bridge.Inbound{Contact: ming, Message: bridge.TextMessage("lost?")})
		if !errors.Is(err, errDiskFull) {
			t.Fatalf("error = %v; want the archive failure", err)
		}
		_, err = broken.EmployeeWrites(w.ctx, bridge.EmployeeMessage{Employee: ann, Chat: chat, Message: bridge.TextMessage("lost?")})
		if !errors.Is(err, errDiskFull) {
			t.Fatalf("error = %v; want the archive failure", err)
		}
		w.drain()
		w.customerGets(ming)
		w.employeeGets(ann)
		if got := w.archived(chat); len(got) != len(before) {
			t.Errorf("archive grew from %d to %d records after failed steps", len(before), len(got))
		}
		// The chat is as it was: Ann can still send three.
		for i := range 3 {
			if res := w.employeeSays(ann, chat, fmt.Sprint(i)); res.Outcome != bridge.OutcomeSent {
				t.Errorf("message %d after the failed steps = %+v; want sent", i, res)
			}
		}
	})
}

func TestPostgresGoingDownGivesClearErrorsAndLosesNothing(t *testing.T) {
	direct := sqlstoretest.PostgresURL(t)
	sqlstoretest.Open(t, direct) // migrate
	viaProxy, proxy := sqlstoretest.ViaProxy(t, direct)
	store := sqlstoretest.Open(t, viaProxy)
	w := newWorld(t, store)
	chat := activeChat(w)

	proxy.Down()
	_, err := w.engine.CustomerWrites(w.ctx, bridge.Inbound{Contact: ming, Message: bridge.TextMessage("while down")})
	if err == nil || !errors.Is(err, sqlstore.ErrUnavailable) {
		t.Fatalf("customer message while the database is down: error = %v; want ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "database unavailable") {
		t.Errorf("error %q does not say the database is unavailable", err)
	}
	if err := store.Ping(w.ctx); err == nil {
		t.Error("Ping succeeded with the database down")
	}
	proxy.Up()
	w.customerSays(ming, "after")
	w.employeeGets(ann, "after")
	got := w.archived(chat)
	if n := count(got, "customer.message"); n != 2 {
		t.Errorf("customer messages archived = %d; want 2 (hello, after)", n)
	}
}

func TestTimersSurviveARestart(t *testing.T) {
	sqlstoretest.EachURL(t, func(t *testing.T, url string) {
		ctx := context.Background()
		clk := clock.NewFake(start)
		policy := bridge.DefaultPolicy()

		// The first process handles the customer's message and stops an hour later.
		first := sqlstoretest.Open(t, url)
		w := newWorld(t, first)
		w.clock = clk
		w.engine, _ = bridge.NewEngine(bridge.Config{Store: first, WeChat: w.wechat, Teams: w.teams, Clock: clk, Policy: policy})
		chat := activeChat(w)
		clk.Advance(time.Hour)
		w.drain()
		first.Close()

		// A second process starts after the 48 h deadline and runs as a server would.
		clk.Advance(48 * time.Hour)
		second := sqlstoretest.Open(t, url)
		teams := &bridgetest.Teams{}
		engine, err := bridge.NewEngine(bridge.Config{Store: second, WeChat: &bridgetest.WeChat{}, Teams: teams, Clock: clk, Policy: policy, PollInterval: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error)
		go func() { done <- engine.Run(runCtx) }()
		inactive := "Your chat with WeChat customer 1 is now inactive: they have not replied for 48 hours. Messages you send will be queued (up to 10) and delivered when they reply."
		deadline := time.Now().Add(10 * time.Second)
		for count(teams.Texts(ann), inactive) == 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		// A third process starts later still: nothing fires again.
		clk.Advance(24 * time.Hour)
		third := sqlstoretest.Open(t, url)
		teams3 := &bridgetest.Teams{}
		engine3, _ := bridge.NewEngine(bridge.Config{Store: third, WeChat: &bridgetest.WeChat{}, Teams: teams3, Clock: clk, Policy: policy})
		if _, err := engine3.Drain(ctx); err != nil {
			t.Fatal(err)
		}
		if got := teams.Texts(ann); count(got, inactive) != 1 || count(got, policy.Employee.Notice24h) != 1 {
			t.Errorf("after the restart the employee got:\n%s\nwant the 24 h notice and the inactive notice once each", list(got))
		}
		if got := teams3.Texts(ann); len(got) != 0 {
			t.Errorf("a later restart delivered again:\n%s", list(got))
		}
		w.store = third
		got := w.archived(chat)
		if n := count(got, "chat.status(active→inactive)"); n != 1 {
			t.Errorf("chat went inactive %d times; want exactly once", n)
		}
	})
}

// TestTwoEnginesShareOnePostgres runs two engines, as two replicas would, against the same chats at
// the same time: the cap is never exceeded and nothing is delivered twice.
func TestTwoEnginesShareOnePostgres(t *testing.T) {
	url := sqlstoretest.PostgresURL(t)
	ctx := context.Background()
	clk := clock.NewFake(start)
	policy := bridge.DefaultPolicy()
	policy.OnHoldPrompt = bridge.OnHoldAtQueue // the prompt as two replicas queue at once: once per pause
	wechat := &bridgetest.WeChat{}             // both replicas talk to the same WeChat
	teams := &bridgetest.Teams{}
	var engines [2]*bridge.Engine
	for i := range engines {
		store := sqlstoretest.Open(t, url)
		e, err := bridge.NewEngine(bridge.Config{Store: store, WeChat: wechat, Teams: teams, Clock: clk, Policy: policy, PollInterval: time.Millisecond, Workers: 4})
		if err != nil {
			t.Fatal(err)
		}
		engines[i] = e
	}
	const chats, perEngine = 8, 6
	if _, err := engines[0].EnableEmployee(ctx, bridge.EmployeeProfile{ID: ann, Name: "Ann"}, "admin:test"); err != nil {
		t.Fatal(err)
	}
	ids := make([]bridge.ChatID, chats)
	contacts := make([]bridge.OpenID, chats)
	for c := range chats {
		contacts[c] = bridge.OpenID(fmt.Sprintf("o-customer-%02d", c))
		// Both engines receive the same scan (WeChat retried it to another replica).
		var wg sync.WaitGroup
		for _, e := range engines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := e.Connect(ctx, bridge.Connect{Contact: contacts[c], Scene: bridge.SceneFor(ann), Event: "subscribe", DedupeKey: "scan:" + string(contacts[c])})
				if err != nil && !errors.Is(err, bridge.ErrDuplicate) {
					t.Error(err)
				}
				if err == nil {
					ids[c] = res.Chat
				}
			}()
		}
		wg.Wait()
	}

	runCtx, stop := context.WithCancel(ctx)
	var running sync.WaitGroup
	for _, e := range engines {
		running.Add(1)
		go func() { defer running.Done(); _ = e.Run(runCtx) }()
	}
	defer func() { stop(); running.Wait() }()

	round := func(r int) {
		var wg sync.WaitGroup
		for c := range chats {
			if _, err := engines[c%2].CustomerWrites(ctx, bridge.Inbound{Contact: contacts[c], Message: bridge.TextMessage(fmt.Sprintf("round %d", r))}); err != nil {
				t.Fatal(err)
			}
			for ei, e := range engines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range perEngine {
						text := fmt.Sprintf("r%d c%d e%d m%d", r, c, ei, i)
						if _, err := e.EmployeeWrites(ctx, bridge.EmployeeMessage{Employee: ann, Chat: ids[c], Message: bridge.TextMessage(text)}); err != nil {
							t.Error(err)
						}
					}
				}()
			}
		}
		wg.Wait()
		waitQuiet(t, wechat, teams)
	}
	round(1)
	round1 := wechat.All()
	round(2)

	employeeMessages := func(sent []bridgetest.Sent, contact bridge.OpenID) (n int) {
		for _, s := range sent {
			if s.Contact == contact && strings.HasPrefix(s.Text(), "r") {
				n++
			}
		}
		return n
	}
	for c, contact := range contacts {
		var employeeTexts []string
		seen := map[string]int{}
		for _, s := range wechat.All() {
			if s.Contact != contact {
				continue
			}
			seen[s.Text()]++
			if strings.HasPrefix(s.Text(), "r") {
				employeeTexts = append(employeeTexts, s.Text())
			}
		}
		for text, n := range seen {
			if n > 1 && !strings.HasPrefix(text, "Your contact is unable") {
				t.Errorf("chat %d: %q delivered %d times", c, text, n)
			}
		}
		// Round 1: 3 of 12 sent. Round 2: the customer writes and 3 queued ones go out; the rest wait.
		if n := employeeMessages(round1, contact); n != 3 || len(employeeTexts) != 6 {
			t.Errorf("chat %d: employee messages delivered = %d in round 1, %v in all; want 3, then 6", c, n, employeeTexts)
		}
		if got := seen[policy.Customer["en"].OnHold]; got != 2 {
			t.Errorf("chat %d: on-hold prompts = %d; want one per pause (2)", c, got)
		}
	}
	store := sqlstoretest.Open(t, url)
	if n, err := store.VerifyArchive(ctx); err != nil {
		t.Errorf("archive after concurrent engines: %v (after %d records)", err, n)
	}
}

// waitQuiet waits until the senders have seen no delivery for a while.
func waitQuiet(t *testing.T, wechat *bridgetest.WeChat, teams *bridgetest.Teams) {
	t.Helper()
	last, quietSince := -1, time.Now()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		n := len(wechat.All()) + len(teams.All())
		if n != last {
			last, quietSince = n, time.Now()
		}
		if time.Since(quietSince) > 300*time.Millisecond {
			return
		}
	}
	t.Fatal("deliveries did not settle within 30 s")
}
