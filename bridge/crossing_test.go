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
		writes(w, w.engine, chat, map[string]bridge.Outcome{"two": bridge.OutcomeSent, "three": bridge.OutcomeSent,
			"four": bridge.OutcomeQueued}, "two", "three", "four")
		w.drain()
		w.customerGets(ming, "one", "two", "three")
	})
}

// heldSend is "one", sent to ming in an active chat by the sender engine, accepted by WeChat and
// held before the sender records it, while the customer writes through the engine the test names.
type heldSend struct {
	sender, other *bridge.Engine // other: a second process that takes callbacks and sends nothing
	chat          bridge.ChatID
	held          *heldStore
	wait          func()
}

func newHeldSend(w *world) *heldSend {
	h := &heldSend{held: &heldStore{Store: w.store}}
	var err error
	if h.sender, err = bridge.NewEngine(bridge.Config{Store: h.held, WeChat: w.wechat, Teams: w.teams, Clock: w.clock, Policy: w.policy}); err != nil {
		w.t.Fatal(err)
	}
	if h.other, err = bridge.NewEngine(bridge.Config{Store: w.store, Clock: w.clock, Policy: w.policy}); err != nil {
		w.t.Fatal(err)
	}
	w.engine = h.sender
	h.chat = activeChat(w)
	employeeWrites(w, h.sender, h.chat, "one")
	h.held.hold()
	h.wait = drainInBackground(w, h.sender)
	<-h.held.reached // WeChat accepted "one"; the sender has not recorded it yet
	w.clock.Advance(time.Second)
	return h
}

// release lets the sender record "one" and delivers what is due.
func (h *heldSend) release(w *world) {
	close(h.held.release)
	h.wait()
	w.drain()
}

// writes has ann write each text through e and checks the outcomes.
func writes(w *world, e *bridge.Engine, chat bridge.ChatID, want map[string]bridge.Outcome, texts ...string) {
	w.t.Helper()
	for _, text := range texts {
		if res := employeeWrites(w, e, chat, text); res.Outcome != want[text] {
			w.t.Fatalf("%s: %+v; want %s", text, res, want[text])
		}
	}
}

func TestASendWeChatAcceptedBeforeTheCustomerWroteDoesNotCount(t *testing.T) {
	scenario(t, func(w *world) {
		h := newHeldSend(w)
		customerWrites(w, h.sender, "thanks")
		// The sender knows WeChat has "one": it reached the customer before their message.
		writes(w, h.sender, h.chat, map[string]bridge.Outcome{"two": bridge.OutcomeSent, "three": bridge.OutcomeSent,
			"four": bridge.OutcomeSent, "five": bridge.OutcomeQueued}, "two", "three", "four", "five")
		h.release(w)
		w.customerGets(ming, "one", "two", "three", "four")
		if n := count(w.teams.Texts(ann), w.staff().Limit); n != 1 {
			t.Errorf("limit notice %d times; want once, after four", n)
		}
	})
}

func TestASendAnotherProcessHadDeliveredIsTakenOffTheStreak(t *testing.T) {
	scenario(t, func(w *world) {
		h := newHeldSend(w)
		customerWrites(w, h.other, "thanks") // counts "one": it cannot know WeChat has it
		h.release(w)
		writes(w, h.other, h.chat, map[string]bridge.Outcome{"two": bridge.OutcomeSent, "three": bridge.OutcomeSent,
			"four": bridge.OutcomeSent, "five": bridge.OutcomeQueued}, "two", "three", "four", "five")
		w.drain()
		w.customerGets(ming, "one", "two", "three", "four")
		if n := count(w.teams.Texts(ann), w.staff().Limit); n != 1 {
			t.Errorf("limit notice %d times; want once, after four", n)
		}
	})
}

func TestAChatCappedByASendThatHadLandedFirstFlushesItsQueue(t *testing.T) {
	scenario(t, func(w *world) {
		h := newHeldSend(w)
		customerWrites(w, h.other, "thanks")
		// Until "one" is recorded, nobody knows it landed first: it counts.
		writes(w, h.other, h.chat, map[string]bridge.Outcome{"two": bridge.OutcomeSent, "three": bridge.OutcomeSent,
			"four": bridge.OutcomeQueued}, "two", "three", "four")
		h.release(w)
		// Now it is known: the next message finds room for one, and the queue goes first.
		writes(w, h.other, h.chat, map[string]bridge.Outcome{"five": bridge.OutcomeQueued}, "five")
		w.drain()
		w.customerGets(ming, "one", "two", "three", "four")
		assertArchived(t, w.archived(h.chat), "chat.status(active→capped)", "message.queued(capped)", "message.released", "message.queued(capped)")
		if got := w.status(h.chat); got != bridge.StatusCapped {
			t.Errorf("status = %s; want capped", got)
		}
	})
}
