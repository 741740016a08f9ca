package bridge_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge"
)

// A WeChat send under way when the customer writes may reach them before or after their message.
// These scenarios hold a send at each point of its way and check what the customer's new streak
// counts.

// heldStore holds the first transaction after hold() until released: with a delivery, the moment
// after WeChat accepted the send and before the engine recorded it.
type heldStore struct {
	bridge.Store
	mu      sync.Mutex
	armed   bool
	reached chan struct{}
	release chan struct{}
}

func (h *heldStore) hold() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.armed, h.reached, h.release = true, make(chan struct{}), make(chan struct{})
}

func (h *heldStore) InTx(ctx context.Context, fn func(bridge.Tx) error) error {
	h.mu.Lock()
	armed, reached, release := h.armed, h.reached, h.release
	h.armed = false
	h.mu.Unlock()
	if armed {
		close(reached)
		<-release
	}
	return h.Store.InTx(ctx, fn)
}

// drainInBackground delivers what is due on another goroutine; wait reports its error.
func drainInBackground(w *world, e *bridge.Engine) (wait func()) {
	done := make(chan error, 1)
	go func() { _, err := e.Drain(w.ctx); done <- err }()
	return func() {
		w.t.Helper()
		if err := <-done; err != nil {
			w.t.Fatal(err)
		}
	}
}

func employeeWrites(w *world, e *bridge.Engine, chat bridge.ChatID, text string) bridge.Result {
	w.t.Helper()
	res, err := e.EmployeeWrites(w.ctx, bridge.EmployeeMessage{Employee: ann, Chat: chat, Message: bridge.TextMessage(text)})
	if err != nil {
		w.t.Fatal(err)
	}
	return res
}

func customerWrites(w *world, e *bridge.Engine, text string) {
	w.t.Helper()
	if _, err := e.CustomerWrites(w.ctx, bridge.Inbound{Contact: ming, Message: bridge.TextMessage(text)}); err != nil {
		w.t.Fatal(err)
	}
}

func TestASendWeChatHasNotAnsweredCountsTowardTheNextStreak(t *testing.T) {
	scenario(t, func(w *world) {
		chat := activeChat(w)
		inFlight, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		w.wechat.Block = func(ctx context.Context) error {
			once.Do(func() { close(inFlight); <-release }) // e.g. resent after a token refresh
			return nil
		}
		employeeWrites(w, w.engine, chat, "one")
		wait := drainInBackground(w, w.engine)
		<-inFlight
		w.clock.Advance(time.Second)
		customerWrites(w, w.engine, "are you there?")
		w.clock.Advance(time.Second)
		close(release) // "one" reaches the customer after their message
		wait()
		w.drain()
		want := map[string]bridge.Outcome{"two": bridge.OutcomeSent, "three": bridge.OutcomeSent, "four": bridge.OutcomeQueued}
		for _, text := range []string{"two", "three", "four"} {
			if res := w.employeeSays(ann, chat, text); res.Outcome != want[text] {
				t.Fatalf("%s: %+v; want %s", text, res, want[text])
			}
		}
		w.customerGets(ming, "one", "two", "three", w.en().OnHold)
	})
}

func TestASendWeChatAcceptedBeforeTheCustomerWroteDoesNotCount(t *testing.T) {
	scenario(t, func(w *world) {
		held := &heldStore{Store: w.store}
		e, err := bridge.NewEngine(bridge.Config{Store: held, WeChat: w.wechat, Teams: w.teams, Clock: w.clock, Policy: w.policy})
		if err != nil {
			t.Fatal(err)
		}
		w.engine = e
		chat := activeChat(w)
		employeeWrites(w, e, chat, "one")
		held.hold()
		wait := drainInBackground(w, e)
		<-held.reached // WeChat accepted "one"; the engine has not recorded it yet
		w.clock.Advance(time.Second)
		customerWrites(w, e, "thanks")
		want := map[string]bridge.Outcome{"two": bridge.OutcomeSent, "three": bridge.OutcomeSent, "four": bridge.OutcomeSent, "five": bridge.OutcomeQueued}
		for _, text := range []string{"two", "three", "four", "five"} {
			if res := employeeWrites(w, e, chat, text); res.Outcome != want[text] {
				t.Fatalf("%s: %+v; want %s (one reached the customer before their message)", text, res, want[text])
			}
		}
		close(held.release)
		wait()
		w.drain()
		w.customerGets(ming, "one", "two", "three", "four", w.en().OnHold)
		if n := count(w.teams.Texts(ann), w.staff().Limit); n != 1 {
			t.Errorf("limit notice %d times; want once, after four", n)
		}
	})
}

func TestASendAnotherProcessHadDeliveredIsTakenOffTheStreak(t *testing.T) {
	scenario(t, func(w *world) {
		held := &heldStore{Store: w.store}
		sender, err := bridge.NewEngine(bridge.Config{Store: held, WeChat: w.wechat, Teams: w.teams, Clock: w.clock, Policy: w.policy})
		if err != nil {
			t.Fatal(err)
		}
		// The other process takes the customer's callback and sends nothing itself.
		other, err := bridge.NewEngine(bridge.Config{Store: w.store, Clock: w.clock, Policy: w.policy})
		if err != nil {
			t.Fatal(err)
		}
		w.engine = sender
		chat := activeChat(w)
		employeeWrites(w, sender, chat, "one")
		held.hold()
		wait := drainInBackground(w, sender)
		<-held.reached
		w.clock.Advance(time.Second)
		customerWrites(w, other, "thanks") // counts "one": it cannot know WeChat has it
		close(held.release)
		wait()
		w.drain()
		for _, text := range []string{"two", "three", "four"} {
			if res := employeeWrites(w, other, chat, text); res.Outcome != bridge.OutcomeSent {
				t.Fatalf("%s: %+v; want sent (one reached the customer before their message)", text, res)
			}
			w.drain()
		}
		if res := employeeWrites(w, other, chat, "five"); res.Outcome != bridge.OutcomeQueued {
			t.Fatalf("five: %+v; want queued", res)
		}
		w.drain()
		w.customerGets(ming, "one", "two", "three", "four", w.en().OnHold)
		if n := count(w.teams.Texts(ann), w.staff().Limit); n != 1 {
			t.Errorf("limit notice %d times; want once, after four", n)
		}
	})
}

func TestAChatCappedByASendThatHadLandedFirstFlushesItsQueue(t *testing.T) {
	scenario(t, func(w *world) {
		held := &heldStore{Store: w.store}
		sender, err := bridge.NewEngine(bridge.Config{Store: held, WeChat: w.wechat, Teams: w.teams, Clock: w.clock, Policy: w.policy})
		if err != nil {
			t.Fatal(err)
		}
		other, err := bridge.NewEngine(bridge.Config{Store: w.store, Clock: w.clock, Policy: w.policy})
		if err != nil {
			t.Fatal(err)
		}
		w.engine = sender
		chat := activeChat(w)
		employeeWrites(w, sender, chat, "one")
		held.hold()
		wait := drainInBackground(w, sender)
		<-held.reached
		w.clock.Advance(time.Second)
		customerWrites(w, other, "thanks")
		// Until "one" is recorded, nobody knows it landed first: it counts.
		want := map[string]bridge.Outcome{"two": bridge.OutcomeSent, "three": bridge.OutcomeSent, "four": bridge.OutcomeQueued}
		for _, text := range []string{"two", "three", "four"} {
			if res := employeeWrites(w, other, chat, text); res.Outcome != want[text] {
				t.Fatalf("%s: %+v; want %s", text, res, want[text])
			}
		}
		close(held.release)
		wait()
		w.drain()
		// Now it is known: the next message finds room for one, and the queue goes first.
		if res := employeeWrites(w, other, chat, "five"); res.Outcome != bridge.OutcomeQueued {
			t.Fatalf("five: %+v; want queued behind four, which takes the room", res)
		}
		w.drain()
		w.customerGets(ming, "one", "two", "three", w.en().OnHold, "four")
		assertArchived(t, w.archived(chat), "chat.status(active→capped)", "message.queued(capped)", "message.released", "message.queued(capped)")
		if got := w.status(chat); got != bridge.StatusCapped {
			t.Errorf("status = %s; want capped", got)
		}
	})
}
