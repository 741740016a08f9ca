package bridgetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/compliance"
)

// StoreSuite is the conformance suite of bridge.Store: every implementation must pass it, so that
// engine tests on one store say something about all of them. open returns a new, empty store.
func StoreSuite(t *testing.T, open func(testing.TB) bridge.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s bridge.Store)
	}{
		{"EmployeesAndScenes", testEmployees},
		{"Contacts", testContacts},
		{"ChatsOnePerContact", testChats},
		{"QueueFIFOAndFront", testQueue},
		{"OutboxLanesInOrder", testOutboxLanes},
		{"OutboxLeaseExpiry", testOutboxLease},
		{"OutboxConcurrentClaimers", testOutboxConcurrentClaims},
		{"OutboxSendsCrossingACustomerMessage", testOutboxCrossing},
		{"OutboxWithdrawnItems", testOutboxWithdraw},
		{"TimersFireOnce", testTimers},
		{"IdempotencyKeysAndPruning", testFirstSeen},
		{"ArchiveChains", testArchiveAppend},
		{"RollbackLeavesNothing", testRollback},
		{"ChatLockSerializes", testChatLock},
		{"OutboxBatchClaimAndDone", testOutboxBatch},
		{"OutboxClaimLoadsRecipients", testOutboxRecipients},
		{"ArchiveManyStreamsAtOnce", testArchiveManyStreams},
		{"TimersWrittenBeforeTheyAreRead", testTimersInOneTx},
		{"ChatLockSeesWhatTheHolderCommitted", testChatLockFresh},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// inTx runs fn and fails the test on error.
func inTx(t *testing.T, s bridge.Store, fn func(bridge.Tx) error) {
	t.Helper()
	if err := s.InTx(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// seedChat creates a contact, an employee and their chat.
func seedChat(t *testing.T, s bridge.Store, contact bridge.OpenID, emp bridge.EmployeeID) *bridge.Chat {
	t.Helper()
	ctx := context.Background()
	c := &bridge.Chat{Contact: contact, Members: []bridge.EmployeeID{emp}, Status: bridge.StatusPending, CreatedAt: t0}
	inTx(t, s, func(tx bridge.Tx) error {
		if err := tx.PutContact(ctx, &bridge.Contact{OpenID: contact, Following: true, UpdatedAt: t0}); err != nil {
			return err
		}
		if _, err := tx.Employee(ctx, emp); errors.Is(err, bridge.ErrNotFound) {
			if err := tx.PutEmployee(ctx, &bridge.Employee{ID: emp, Enabled: true, Scene: "emp:" + string(emp), Reachable: true, UpdatedAt: t0}); err != nil {
				return err
			}
		}
		return tx.CreateChat(ctx, c)
	})
	return c
}

func testEmployees(t *testing.T, s bridge.Store) {
	ctx := context.Background()
	want := &bridge.Employee{ID: "e1", Tenant: "t", Name: "Ann Lee", Email: "ann@example.com", Enabled: true, Scene: "emp:e1",
		Teams: bridge.TeamsAddress{ServiceURL: "https://smba.example/", ConversationID: "a:1", UserID: "29:1"}, Reachable: true, CurrentChat: 7, UpdatedAt: t0}
	inTx(t, s, func(tx bridge.Tx) error { return tx.PutEmployee(ctx, want) })
	inTx(t, s, func(tx bridge.Tx) error {
		got, err := tx.Employee(ctx, "e1")
		if err != nil {
			return err
		}
		if *got != *want {
			t.Errorf("Employee = %+v; want %+v", got, want)
		}
		got, err = tx.EmployeeByScene(ctx, "emp:e1")
		if err != nil || got.ID != "e1" {
			t.Errorf("EmployeeByScene = %v, %v; want e1", got, err)
		}
		if _, err := tx.Employee(ctx, "nobody"); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("Employee(nobody) error = %v; want ErrNotFound", err)
		}
		if _, err := tx.EmployeeByScene(ctx, "emp:nobody"); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("EmployeeByScene(nobody) error = %v; want ErrNotFound", err)
		}
		// Two employees without a scene are fine; two with the same scene are not.
		if err := tx.PutEmployee(ctx, &bridge.Employee{ID: "e2", UpdatedAt: t0}); err != nil {
			return err
		}
		return tx.PutEmployee(ctx, &bridge.Employee{ID: "e3", UpdatedAt: t0})
	})
	err := s.InTx(ctx, func(tx bridge.Tx) error {
		return tx.PutEmployee(ctx, &bridge.Employee{ID: "e4", Scene: "emp:e1", UpdatedAt: t0})
	})
	if !errors.Is(err, bridge.ErrConflict) {
		t.Errorf("second employee with scene emp:e1: error = %v; want ErrConflict", err)
	}
}

func testContacts(t *testing.T, s bridge.Store) {
	ctx := context.Background()
	want := &bridge.Contact{OpenID: "o1", UnionID: "u1", Name: "Mr Wang", Language: "zh_CN", Following: true, UpdatedAt: t0}
	inTx(t, s, func(tx bridge.Tx) error { return tx.PutContact(ctx, want) })
	want.Following = false
	inTx(t, s, func(tx bridge.Tx) error { return tx.PutContact(ctx, want) })
	inTx(t, s, func(tx bridge.Tx) error {
		got, err := tx.Contact(ctx, "o1")
		if err != nil {
			return err
		}
		if *got != *want {
			t.Errorf("Contact = %+v; want %+v", got, want)
		}
		if _, err := tx.Contact(ctx, "o2"); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("Contact(o2) error = %v; want ErrNotFound", err)
		}
		return nil
	})
	// Contacts are numbered in the order they were stored, and keep their number; one nobody named
	// is called by it.
	second := &bridge.Contact{OpenID: "o2", Following: true, UpdatedAt: t0}
	inTx(t, s, func(tx bridge.Tx) error { return tx.PutContact(ctx, second) })
	inTx(t, s, func(tx bridge.Tx) error { return tx.PutContact(ctx, second) })
	if want.Number != 1 || second.Number != 2 {
		t.Errorf("contact numbers = %d, %d; want 1, 2", want.Number, second.Number)
	}
	inTx(t, s, func(tx bridge.Tx) error {
		got, err := tx.Contact(ctx, "o2")
		if err != nil {
			return err
		}
		if got.Number != 2 || got.DisplayName() != "WeChat customer 2" {
			t.Errorf("second contact = number %d, called %q; want 2, WeChat customer 2", got.Number, got.DisplayName())
		}
		return nil
	})
}

func testChats(t *testing.T, s bridge.Store) {
	ctx := context.Background()
	c := seedChat(t, s, "o1", "e1")
	if c.ID == 0 {
		t.Fatal("CreateChat did not set the id")
	}
	inTx(t, s, func(tx bridge.Tx) error {
		return tx.PutEmployee(ctx, &bridge.Employee{ID: "e2", Enabled: true, UpdatedAt: t0})
	})
	inTx(t, s, func(tx bridge.Tx) error {
		got, err := tx.LockChat(ctx, c.ID)
		if err != nil {
			return err
		}
		got.Status = bridge.StatusCapped
		got.LastInboundAt = t0.Add(time.Hour)
		got.SentSinceInbound, got.EmployeeStreak = 4, 3
		got.OnHoldPrompted, got.Notified24h, got.ReinstateSent = true, true, true
		got.Members = []bridge.EmployeeID{"e2", "e1"}
		got.UpdatedAt = t0.Add(2 * time.Hour)
		return tx.SaveChat(ctx, got)
	})
	inTx(t, s, func(tx bridge.Tx) error {
		got, err := tx.LockChatByContact(ctx, "o1")
		if err != nil {
			return err
		}
		if got.ID != c.ID || got.Status != bridge.StatusCapped || !got.LastInboundAt.Equal(t0.Add(time.Hour)) ||
			got.SentSinceInbound != 4 || got.EmployeeStreak != 3 || !got.OnHoldPrompted || !got.Notified24h ||
			!got.ReinstateSent || !slices.Equal(got.Members, []bridge.EmployeeID{"e2", "e1"}) {
			t.Errorf("chat after save = %+v", got)
		}
		if _, err := tx.LockChat(ctx, 999999); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("LockChat(999999) error = %v; want ErrNotFound", err)
		}
		if _, err := tx.LockChatByContact(ctx, "o2"); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("LockChatByContact(o2) error = %v; want ErrNotFound", err)
		}
		return nil
	})
	// A customer has one chat.
	err := s.InTx(ctx, func(tx bridge.Tx) error {
		return tx.CreateChat(ctx, &bridge.Chat{Contact: "o1", Members: []bridge.EmployeeID{"e1"}, Status: bridge.StatusPending, CreatedAt: t0})
	})
	if !errors.Is(err, bridge.ErrConflict) {
		t.Errorf("second chat for o1: error = %v; want ErrConflict", err)
	}
}

func testQueue(t *testing.T, s bridge.Store) {
	ctx := context.Background()
	c := seedChat(t, s, "o1", "e1")
	push := func(id string, front bool) {
		inTx(t, s, func(tx bridge.Tx) error {
			return tx.PushQueue(ctx, &bridge.QueuedMessage{ChatID: c.ID, Employee: "e1", MessageID: id, Message: bridge.TextMessage("text " + id), QueuedAt: t0}, front)
		})
	}
	push("m1", false)
	push("m2", false)
	push("m0", true)
	push("m3", false)
	var ids []int64
	inTx(t, s, func(tx bridge.Tx) error {
		q, err := tx.Queue(ctx, c.ID)
		if err != nil {
			return err
		}
		var got []string
		for _, m := range q {
			got = append(got, m.MessageID+"="+m.Message.Text)
			ids = append(ids, m.ID)
		}
		if want := []string{"m0=text m0", "m1=text m1", "m2=text m2", "m3=text m3"}; !slices.Equal(got, want) {
			t.Errorf("queue = %v; want %v", got, want)
		}
		locked, err := tx.LockChat(ctx, c.ID)
		if err != nil {
			return err
		}
		if locked.QueueLen != 4 {
			t.Errorf("QueueLen = %d; want 4", locked.QueueLen)
		}
		return tx.RemoveQueued(ctx, ids[0], ids[2])
	})
	inTx(t, s, func(tx bridge.Tx) error {
		q, err := tx.Queue(ctx, c.ID)
		if err != nil {
			return err
		}
		if len(q) != 2 || q[0].MessageID != "m1" || q[1].MessageID != "m3" {
			t.Errorf("queue after removing m0, m2 = %v", q)
		}
		return nil
	})
}

func addOutbox(t *testing.T, s bridge.Store, lane, msg string, notBefore time.Time) *bridge.OutboxItem {
	t.Helper()
	it := &bridge.OutboxItem{Channel: bridge.ChannelWeChat, Lane: lane, Contact: "o1", MessageID: msg,
		WeChat: &bridge.WeChatMessage{Message: bridge.TextMessage(msg)}, State: bridge.OutboxPending, NotBefore: notBefore, CreatedAt: t0}
	inTx(t, s, func(tx bridge.Tx) error { return tx.AddOutbox(context.Background(), it) })
	if it.ID == 0 {
		t.Fatal("AddOutbox did not set the id")
	}
	return it
}

func claimIDs(t *testing.T, s bridge.Store, now time.Time, limit int) []string {
	t.Helper()
	items, err := s.ClaimOutbox(context.Background(), now, now.Add(time.Minute), limit, bridge.ChannelWeChat, bridge.ChannelTeams)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, it := range items {
		if it.State != bridge.OutboxSending || it.Attempts < 1 {
			t.Errorf("claimed %s in state %s attempt %d", it.MessageID, it.State, it.Attempts)
		}
		out = append(out, it.MessageID)
	}
	return out
}

func finishItem(t *testing.T, s bridge.Store, msg string, state bridge.OutboxState) {
	t.Helper()
	ctx := context.Background()
	inTx(t, s, func(tx bridge.Tx) error {
		for _, ch := range []bridge.Channel{bridge.ChannelWeChat, bridge.ChannelTeams} {
			items, err := tx.ChatOutbox(ctx, 0, ch)
			if err != nil {
				return err
			}
			for _, it := range items {
				if it.MessageID == msg {
					it.State = state
					return tx.UpdateOutbox(ctx, it)
				}
			}
		}
		t.Fatalf("outbox item %s not open", msg)
		return nil
	})
}

// testOutboxWithdraw: a withdrawn item still waiting is cancelled and its lane moves on; one under
// way keeps going, marked with the reason; one already answered is left alone.
func testOutboxWithdraw(t *testing.T, s bridge.Store) {
	ctx := context.Background()
	a1, a2, a3 := addOutbox(t, s, "A", "a1", t0), addOutbox(t, s, "A", "a2", t0), addOutbox(t, s, "A", "a3", t0)
	inTx(t, s, func(tx bridge.Tx) error {
		prompt := &bridge.OutboxItem{Channel: bridge.ChannelWeChat, Lane: "B", Contact: "o1", MessageID: "b1", Auto: true, Template: "customer.on_hold",
			WeChat: &bridge.WeChatMessage{Message: bridge.TextMessage("on hold")}, State: bridge.OutboxPending, NotBefore: t0, CreatedAt: t0}
		return tx.AddOutbox(ctx, prompt)
	})
	if got := claimIDs(t, s, t0, 10); !slices.Equal(got, []string{"a1", "b1"}) {
		t.Fatalf("claimed %v; want a1 and b1", got)
	}
	inTx(t, s, func(tx bridge.Tx) error {
		open, err := tx.OpenSends(ctx, 0, bridge.ChannelWeChat)
		if err != nil {
			return err
		}
		if len(open) != 4 || open[3].Template != "customer.on_hold" || !open[3].Auto {
			t.Errorf("open sends = %+v; want the prompt last with its template", open)
		}
		done, err := tx.LockOutbox(ctx, a3.ID)
		if err != nil {
			return err
		}
		done.State = bridge.OutboxDone
		return tx.UpdateOutbox(ctx, done)
	})
	inTx(t, s, func(tx bridge.Tx) error {
		cancelled, err := tx.WithdrawOutbox(ctx, "the customer left", a1.ID, a2.ID, a3.ID)
		if err != nil {
			return err
		}
		if !slices.Equal(cancelled, []int64{a2.ID}) {
			t.Errorf("cancelled now = %v; want only the waiting a2 (%d)", cancelled, a2.ID)
		}
		for id, want := range map[int64]struct {
			state  bridge.OutboxState
			reason string
		}{a1.ID: {bridge.OutboxSending, "the customer left"}, a2.ID: {bridge.OutboxCancelled, "the customer left"}, a3.ID: {bridge.OutboxDone, ""}} {
			it, err := tx.LockOutbox(ctx, id)
			if err != nil {
				return err
			}
			if it.State != want.state || it.CancelReason != want.reason {
				t.Errorf("item %s: %s %q; want %s %q", it.MessageID, it.State, it.CancelReason, want.state, want.reason)
			}
		}
		return nil
	})
	// a1 answered: lane A has nothing left to claim (a2 cancelled, a3 done).
	inTx(t, s, func(tx bridge.Tx) error {
		it, err := tx.LockOutbox(ctx, a1.ID)
		if err != nil {
			return err
		}
		it.State = bridge.OutboxCancelled
		return tx.UpdateOutbox(ctx, it)
	})
	if got := claimIDs(t, s, t0.Add(time.Hour), 10); !slices.Equal(got, []string{"b1"}) {
		t.Errorf("claimed %v after every item of lane A was answered; want only b1 (its claim ran out)", got)
	}
}

func testOutboxCrossing(t *testing.T, s bridge.Store) {
	ctx := context.Background()
	a1, a2, b1 := addOutbox(t, s, "A", "a1", t0), addOutbox(t, s, "A", "a2", t0), addOutbox(t, s, "B", "b1", t0)
	claimIDs(t, s, t0, 10) // a1 and b1 go out; a2 waits behind a1
	customer := t0.Add(2 * time.Second)
	inTx(t, s, func(tx bridge.Tx) error {
		open, err := tx.OpenSends(ctx, 0, bridge.ChannelWeChat)
		if err != nil {
			return err
		}
		want := []bridge.OpenSend{{ID: a1.ID, Sending: true, MessageID: "a1"}, {ID: a2.ID, MessageID: "a2"}, {ID: b1.ID, Sending: true, MessageID: "b1"}}
		if !slices.Equal(open, want) {
			t.Errorf("open sends = %+v; want %+v", open, want)
		}
		return tx.MarkCrossing(ctx, customer, a1.ID, b1.ID)
	})
	for id, answered := range map[int64]time.Time{a1.ID: t0.Add(time.Second), b1.ID: t0.Add(3 * time.Second)} {
		inTx(t, s, func(tx bridge.Tx) error {
			it, err := tx.LockOutbox(ctx, id)
			if err != nil {
				return err
			}
			it.State, it.AnsweredAt = bridge.OutboxDone, answered
			return tx.UpdateOutbox(ctx, it)
		})
	}
	settle := func(at time.Time) (employee, all int) {
		inTx(t, s, func(tx bridge.Tx) (err error) {
			employee, all, err = tx.SettleCrossing(ctx, 0, at)
			return err
		})
		return employee, all
	}
	if e, a := settle(t0.Add(5 * time.Second)); e != 0 || a != 0 {
		t.Errorf("settled %d/%d for a customer message that marked nothing; want 0/0", e, a)
	}
	// a1 was delivered before the customer's message, b1 after: only a1 comes off, and only once.
	if e, a := settle(customer); e != 1 || a != 1 {
		t.Errorf("settled %d/%d; want 1/1 (a1)", e, a)
	}
	if e, a := settle(customer); e != 0 || a != 0 {
		t.Errorf("settled %d/%d again; want 0/0", e, a)
	}
}

func testOutboxLanes(t *testing.T, s bridge.Store) {
	addOutbox(t, s, "A", "a1", t0)
	addOutbox(t, s, "A", "a2", t0)
	addOutbox(t, s, "B", "b1", t0)
	addOutbox(t, s, "C", "c1", t0.Add(30*time.Second)) // not due yet
	if got, want := claimIDs(t, s, t0, 10), []string{"a1", "b1"}; !slices.Equal(got, want) {
		t.Fatalf("first claim = %v; want the head of each due lane %v", got, want)
	}
	if got := claimIDs(t, s, t0, 10); len(got) != 0 {
		t.Fatalf("claim while a1 and b1 are sending = %v; want nothing", got)
	}
	teams := &bridge.OutboxItem{Channel: bridge.ChannelTeams, Lane: "T", Employee: "e1", MessageID: "t1",
		Teams: &bridge.TeamsMessage{Kind: bridge.TeamsNotice}, State: bridge.OutboxPending, NotBefore: t0, CreatedAt: t0}
	inTx(t, s, func(tx bridge.Tx) error { return tx.AddOutbox(context.Background(), teams) })
	if got, err := s.ClaimOutbox(context.Background(), t0, t0.Add(time.Minute), 10, bridge.ChannelWeChat); err != nil || len(got) != 0 {
		t.Fatalf("claim of WeChat items = %v, %v; want none (the only due item is for Teams)", got, err)
	}
	if got := claimIDs(t, s, t0, 10); !slices.Equal(got, []string{"t1"}) {
		t.Fatalf("claim of both channels = %v; want [t1]", got)
	}
	finishItem(t, s, "a1", bridge.OutboxDone)
	if got, want := claimIDs(t, s, t0, 10), []string{"a2"}; !slices.Equal(got, want) {
		t.Fatalf("claim after a1 done = %v; want %v", got, want)
	}
	if got, want := claimIDs(t, s, t0.Add(30*time.Second), 10), []string{"c1"}; !slices.Equal(got, want) {
		t.Fatalf("claim when c1 falls due = %v; want %v", got, want)
	}
	next, timer, err := s.NextDue(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !next.Equal(t0.Add(time.Minute)) || !timer.IsZero() { // the earliest lease (b1, a2) runs out a minute after t0
		t.Errorf("NextDue = %v, %v; want %v and no timer", next, timer, t0.Add(time.Minute))
	}
}

func testOutboxLease(t *testing.T, s bridge.Store) {
	ctx := context.Background()
	addOutbox(t, s, "A", "a1", t0)
	first, err := s.ClaimOutbox(ctx, t0, t0.Add(time.Minute), 10, bridge.ChannelWeChat)
	if err != nil || len(first) != 1 || first[0].Expired {
		t.Fatalf("claim = %v, %v; want a1, not expired", first, err)
	}
	if got := claimIDs(t, s, t0.Add(59*time.Second), 10); len(got) != 0 {
		t.Fatalf("claim before the lease ran out = %v; want nothing", got)
	}
	again, err := s.ClaimOutbox(ctx, t0.Add(time.Minute), t0.Add(2*time.Minute), 10, bridge.ChannelWeChat)
	if err != nil || len(again) != 1 || !again[0].Expired || again[0].Attempts != 2 {
		t.Fatalf("claim after the lease ran out = %+v, %v; want a1 again, expired, attempt 2", again, err)
	}
	inTx(t, s, func(tx bridge.Tx) error {
		it, err := tx.LockOutbox(ctx, first[0].ID)
		if err != nil {
			return err
		}
		if it.Attempts != 2 || !it.LeaseUntil.Equal(t0.Add(2*time.Minute)) {
			t.Errorf("stored item = attempt %d lease %v; want attempt 2 lease %v", it.Attempts, it.LeaseUntil, t0.Add(2*time.Minute))
		}
		return nil
	})
}

func testOutboxConcurrentClaims(t *testing.T, s bridge.Store) {
	const lanes, perLane = 20, 5
	for i := range perLane {
		for l := range lanes {
			addOutbox(t, s, "L"+string(rune('a'+l)), "L"+string(rune('a'+l))+string(rune('0'+i)), t0)
		}
	}
	var (
		mu      sync.Mutex
		claimed = map[string]int{}
		order   = map[string][]string{}
		wg      sync.WaitGroup
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for idle := 0; idle < 50; {
				items, err := s.ClaimOutbox(context.Background(), t0, t0.Add(time.Hour), 3, bridge.ChannelWeChat)
				if err != nil {
					t.Error(err)
					return
				}
				if len(items) == 0 {
					idle++
					time.Sleep(2 * time.Millisecond)
					continue
				}
				for _, it := range items {
					mu.Lock()
					claimed[it.MessageID]++
					order[it.Lane] = append(order[it.Lane], it.MessageID)
					mu.Unlock()
					finishItem(t, s, it.MessageID, bridge.OutboxDone)
				}
			}
		}()
	}
	wg.Wait()
	if len(claimed) != lanes*perLane {
		t.Errorf("claimed %d items; want %d", len(claimed), lanes*perLane)
	}
	for id, n := range claimed {
		if n != 1 {
			t.Errorf("item %s claimed %d times", id, n)
		}
	}
	for lane, got := range order {
		if !slices.IsSorted(got) {
			t.Errorf("lane %s delivered out of order: %v", lane, got)
		}
	}
}

func testTimers(t *testing.T, s bridge.Store) {
	ctx := context.Background()
	c1 := seedChat(t, s, "o1", "e1")
	c2 := seedChat(t, s, "o2", "e1")
	inTx(t, s, func(tx bridge.Tx) error {
		if err := tx.SetTimer(ctx, c1.ID, bridge.TimerNotice, t0.Add(time.Hour)); err != nil {
			return err
		}
		if err := tx.SetTimer(ctx, c1.ID, bridge.TimerNotice, t0.Add(2*time.Hour)); err != nil { // rescheduled
			return err
		}
		if err := tx.SetTimer(ctx, c1.ID, bridge.TimerInactive, t0.Add(3*time.Hour)); err != nil {
			return err
		}
		return tx.SetTimer(ctx, c2.ID, bridge.TimerNotice, t0.Add(time.Hour))
	})
	_, next, err := s.NextDue(ctx)
	if err != nil || !next.Equal(t0.Add(time.Hour)) {
		t.Errorf("NextDue timer = %v, %v; want %v", next, err, t0.Add(time.Hour))
	}
	claim := func(now time.Time) (out []bridge.Timer) {
		inTx(t, s, func(tx bridge.Tx) (err error) { out, err = tx.ClaimDueTimers(ctx, now, 10); return })
		return out
	}
	if got := claim(t0.Add(90 * time.Minute)); len(got) != 1 || got[0].ChatID != c2.ID || got[0].Kind != bridge.TimerNotice {
		t.Errorf("timers due at 1.5 h = %+v; want c2's notice only (c1's was rescheduled)", got)
	}
	if got := claim(t0.Add(90 * time.Minute)); len(got) != 0 {
		t.Errorf("claiming again = %+v; want nothing: a timer fires once", got)
	}
	inTx(t, s, func(tx bridge.Tx) error { return tx.ClearTimers(ctx, c1.ID, bridge.TimerInactive) })
	if got := claim(t0.Add(4 * time.Hour)); len(got) != 1 || got[0].Kind != bridge.TimerNotice || !got[0].Due.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("timers due at 4 h = %+v; want c1's notice at 2 h", got)
	}
	if _, next, _ := s.NextDue(ctx); !next.IsZero() {
		t.Errorf("NextDue timer with nothing waiting = %v; want zero", next)
	}
}

func testFirstSeen(t *testing.T, s bridge.Store) {
	ctx := context.Background()
	var first, second bool
	inTx(t, s, func(tx bridge.Tx) (err error) { first, err = tx.FirstSeen(ctx, "wechat:o1:123", t0); return })
	// The second time, FirstSeen says false, or the transaction fails with ErrDuplicate.
	err := s.InTx(ctx, func(tx bridge.Tx) (err error) { second, err = tx.FirstSeen(ctx, "wechat:o1:123", t0); return })
	if !first || second && !errors.Is(err, bridge.ErrDuplicate) || !second && err != nil {
		t.Errorf("FirstSeen twice = %v, %v (the second transaction: %v); want true, then false or ErrDuplicate", first, second, err)
	}
	// A duplicate step commits nothing and reports ErrDuplicate, whatever it reads first (with a row
	// or without; PostgreSQL sends the key with the first read) and whatever it makes of the error.
	chat := seedChat(t, s, "dup-o0", "dup-e0")
	steps := []struct {
		name string
		fn   func(tx bridge.Tx) error
	}{
		{"an employee who exists", func(tx bridge.Tx) error { _, err := tx.Employee(ctx, "dup-e0"); return err }},
		{"an employee who does not", func(tx bridge.Tx) error { _, err := tx.Employee(ctx, "nobody"); return err }},
		{"a chat's lock", func(tx bridge.Tx) error { _, err := tx.LockChat(ctx, chat.ID); return err }},
		{"a customer's chat's lock", func(tx bridge.Tx) error { _, err := tx.LockChatByContact(ctx, "dup-o0"); return err }},
		{"a customer who does not exist, the step failing on it", func(tx bridge.Tx) error { _, err := tx.Contact(ctx, "nobody"); return err }},
	}
	for _, step := range steps {
		err = s.InTx(ctx, func(tx bridge.Tx) error {
			again, err := tx.FirstSeen(ctx, "wechat:o1:123", t0)
			if err != nil || !again {
				return bridge.ErrDuplicate
			}
			if err := step.fn(tx); err != nil {
				return err
			}
			return tx.PutContact(ctx, &bridge.Contact{OpenID: "dup-o1", UpdatedAt: t0})
		})
		if !errors.Is(err, bridge.ErrDuplicate) {
			t.Errorf("a duplicate step beginning with %s: %v; want ErrDuplicate", step.name, err)
		}
		if _, err := s.Contact(ctx, "dup-o1"); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("what a duplicate step beginning with %s wrote was committed: %v", step.name, err)
		}
	}
	// Nor does a step that ignores what its read said and ends there.
	err = s.InTx(ctx, func(tx bridge.Tx) error {
		if again, err := tx.FirstSeen(ctx, "wechat:o1:123", t0); err != nil || !again {
			return bridge.ErrDuplicate
		}
		_, _ = tx.Employee(ctx, "dup-e0")
		return nil
	})
	if !errors.Is(err, bridge.ErrDuplicate) {
		t.Errorf("a duplicate step that ignored its read's error: %v; want ErrDuplicate", err)
	}
	// Pruning forgets old keys and finished deliveries, and keeps everything still open.
	done := addOutbox(t, s, "A", "a1", t0)
	addOutbox(t, s, "B", "b1", t0)
	finishItem(t, s, "a1", bridge.OutboxDone)
	n, err := s.Prune(ctx, t0.Add(time.Second), t0.Add(time.Second))
	if err != nil || n != 2 {
		t.Fatalf("Prune = %d, %v; want 2 rows (the key and a1)", n, err)
	}
	inTx(t, s, func(tx bridge.Tx) (err error) { first, err = tx.FirstSeen(ctx, "wechat:o1:123", t0); return })
	if !first {
		t.Error("a pruned key is still remembered")
	}
	inTx(t, s, func(tx bridge.Tx) error {
		if _, err := tx.LockOutbox(ctx, done.ID); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("finished item after pruning: %v; want ErrNotFound", err)
		}
		return nil
	})
	if got := claimIDs(t, s, t0, 10); !slices.Equal(got, []string{"b1"}) {
		t.Errorf("open item after pruning: claim = %v; want [b1]", got)
	}
}

func testArchiveAppend(t *testing.T, s bridge.Store) {
	ctx := context.Background()
	ev := func(stream, text string) compliance.Event {
		return compliance.Event{Stream: stream, At: t0, Kind: compliance.KindCustomerMessage, Actor: "customer:o1",
			Meta: compliance.Meta{Contact: "o1"}, Content: compliance.Content{Text: text}}
	}
	inTx(t, s, func(tx bridge.Tx) error {
		return tx.Append(ctx, ev("chat:1", "a"), ev("chat:2", "x"), ev("chat:1", "b"))
	})
	inTx(t, s, func(tx bridge.Tx) error { return tx.Append(ctx, ev("chat:1", "c")) })
	reader, ok := s.(ArchiveReader)
	if !ok {
		t.Skip("store cannot read its archive back")
	}
	recs, err := reader.ArchiveStream(ctx, "chat:1")
	if err != nil {
		t.Fatal(err)
	}
	v := compliance.NewChainVerifier("chat:1")
	var texts []string
	for i := range recs {
		if err := v.Add(&recs[i], true); err != nil {
			t.Fatal(err)
		}
		c, err := compliance.DecodeContent(recs[i].Body)
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, c.Text)
	}
	if !slices.Equal(texts, []string{"a", "b", "c"}) || v.Head().Seq != 3 {
		t.Errorf("chat:1 = %v (head seq %d); want [a b c] chained to seq 3", texts, v.Head().Seq)
	}
	heads, err := reader.ArchiveHeads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Finish(heads["chat:1"]); err != nil {
		t.Error(err)
	}
	if heads["chat:2"].Seq != 1 {
		t.Errorf("chat:2 head = %+v; want seq 1", heads["chat:2"])
	}
}

// ArchiveReader is implemented by stores that can read their archive back (for verification).
type ArchiveReader interface {
	ArchiveStream(ctx context.Context, stream string) ([]compliance.Record, error)
	ArchiveHeads(ctx context.Context) (map[string]compliance.Head, error)
}

func testRollback(t *testing.T, s bridge.Store) {
	ctx := context.Background()
	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx bridge.Tx) error {
		if err := tx.PutContact(ctx, &bridge.Contact{OpenID: "o9", UpdatedAt: t0}); err != nil {
			return err
		}
		if err := tx.Append(ctx, compliance.Event{Stream: "chat:9", At: t0, Kind: compliance.KindCustomerMessage, Actor: "x"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx error = %v; want boom", err)
	}
	inTx(t, s, func(tx bridge.Tx) error {
		if _, err := tx.Contact(ctx, "o9"); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("contact written by a rolled-back transaction: %v", err)
		}
		return nil
	})
	if reader, ok := s.(ArchiveReader); ok {
		recs, err := reader.ArchiveStream(ctx, "chat:9")
		if err != nil || len(recs) != 0 {
			t.Errorf("archive after rollback = %d records, %v; want none", len(recs), err)
		}
	}
}

func testChatLock(t *testing.T, s bridge.Store) {
	ctx := context.Background()
	c := seedChat(t, s, "o1", "e1")
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				err := s.InTx(ctx, func(tx bridge.Tx) error {
					got, err := tx.LockChat(ctx, c.ID)
					if err != nil {
						return err
					}
					got.SentSinceInbound++
					return tx.SaveChat(ctx, got)
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	inTx(t, s, func(tx bridge.Tx) error {
		got, err := tx.LockChat(ctx, c.ID)
		if err == nil && got.SentSinceInbound != 40 {
			t.Errorf("after 40 locked increments the counter is %d: a lock let two through", got.SentSinceInbound)
		}
		return err
	})
}

// testOutboxBatch: one claim takes the heads of many lanes; LockSending tells each one's attempt
// (so a claim that ran out and was taken over can be told apart); MarkDone records several at
// once, moves each lane on to its next item (and says which lanes have one due) and retires the
// lanes left empty.
func testOutboxBatch(t *testing.T, s bridge.Store) {
	ctx := context.Background()
	for _, l := range []string{"A", "B", "C", "D"} {
		addOutbox(t, s, l, l+"1", t0)
	}
	addOutbox(t, s, "A", "A2", t0)
	addOutbox(t, s, "B", "B2", t0.Add(time.Hour)) // behind B1, not due for an hour
	claimed, err := s.ClaimOutbox(ctx, t0, t0.Add(time.Minute), 10, bridge.ChannelWeChat)
	if err != nil {
		t.Fatal(err)
	}
	byMsg := map[string]*bridge.OutboxItem{}
	for _, it := range claimed {
		byMsg[it.MessageID] = it
	}
	if len(claimed) != 4 || byMsg["A1"] == nil || byMsg["D1"] == nil {
		t.Fatalf("claimed %v; want the four lane heads A1 B1 C1 D1", keys(byMsg))
	}
	// D1's claim runs out and another claimer takes it over (attempt 2).
	again, err := s.ClaimOutbox(ctx, t0.Add(time.Minute), t0.Add(2*time.Minute), 10, bridge.ChannelWeChat)
	if err != nil || len(again) != 4 {
		t.Fatalf("claim after the leases ran out = %d items, %v; want all four again", len(again), err)
	}
	for _, it := range again {
		if it.MessageID != "D1" {
			// The first claims of A1, B1, C1 are still theirs for this test: put them back.
			byMsg[it.MessageID] = it
		}
	}
	var due map[string]bool
	inTx(t, s, func(tx bridge.Tx) error {
		ids := []int64{byMsg["A1"].ID, byMsg["B1"].ID, byMsg["C1"].ID, byMsg["D1"].ID}
		sending, err := tx.LockSending(ctx, ids...)
		if err != nil {
			return err
		}
		if sending[byMsg["D1"].ID] != 2 || sending[byMsg["A1"].ID] != 2 || len(sending) != 4 {
			t.Errorf("LockSending = %v; want all four sending, at attempt 2", sending)
		}
		var done []*bridge.OutboxItem
		for _, m := range []string{"A1", "B1", "C1"} {
			it := byMsg[m]
			it.AnsweredAt = t0.Add(90 * time.Second)
			done = append(done, it)
		}
		due, err = tx.MarkDone(ctx, t0.Add(90*time.Second), done...)
		return err
	})
	if !due["A"] || due["B"] || due["C"] || len(due) != 1 {
		t.Errorf("MarkDone says lanes %v have an item due; want only A (B's next is an hour away, C is empty)", due)
	}
	inTx(t, s, func(tx bridge.Tx) error {
		sending, err := tx.LockSending(ctx, byMsg["A1"].ID, byMsg["D1"].ID)
		if err != nil {
			return err
		}
		if _, ok := sending[byMsg["A1"].ID]; ok || sending[byMsg["D1"].ID] != 2 {
			t.Errorf("LockSending after A1 was done = %v; want only D1, still sending", sending)
		}
		return nil
	})
	if got, want := claimIDs(t, s, t0.Add(90*time.Second), 10), []string{"A2"}; !slices.Equal(got, want) {
		t.Errorf("claim after the batch = %v; want %v (B2 not due, C empty, D1 still leased)", got, want)
	}
	if got, want := claimIDs(t, s, t0.Add(time.Hour), 10), []string{"A2", "B2", "D1"}; !slices.Equal(sorted(got), want) {
		t.Errorf("claim an hour later = %v; want %v (A2 and D1 again, their leases run out)", got, want)
	}
}

func keys[V any](m map[string]V) []string {
	return slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	})
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

// testOutboxRecipients: a claimed item comes with its recipient as stored: the customer of a
// WeChat item, the employee of a Teams item.
func testOutboxRecipients(t *testing.T, s bridge.Store) {
	ctx := context.Background()
	seedChat(t, s, "o1", "e1")
	inTx(t, s, func(tx bridge.Tx) error {
		return tx.PutContact(ctx, &bridge.Contact{OpenID: "o1", Name: "Ms Li", Language: "zh_CN", Following: true, UpdatedAt: t0})
	})
	addOutbox(t, s, "wechat:o1", "w1", t0)
	teams := &bridge.OutboxItem{Channel: bridge.ChannelTeams, Lane: "teams:e1", Employee: "e1", MessageID: "t1",
		Teams: &bridge.TeamsMessage{Kind: bridge.TeamsNotice}, State: bridge.OutboxPending, NotBefore: t0, CreatedAt: t0}
	inTx(t, s, func(tx bridge.Tx) error { return tx.AddOutbox(ctx, teams) })
	items, err := s.ClaimOutbox(ctx, t0, t0.Add(time.Minute), 10, bridge.ChannelWeChat, bridge.ChannelTeams)
	if err != nil || len(items) != 2 {
		t.Fatalf("claim = %d items, %v; want 2", len(items), err)
	}
	for _, it := range items {
		switch it.Channel {
		case bridge.ChannelWeChat:
			if it.To == nil || it.To.Name != "Ms Li" || it.To.Language != "zh_CN" || it.ToEmployee != nil {
				t.Errorf("WeChat item's recipient = %+v, %+v; want Ms Li only", it.To, it.ToEmployee)
			}
			if it.WeChat == nil || it.WeChat.Text != "w1" {
				t.Errorf("WeChat item's message = %+v; want w1", it.WeChat)
			}
		case bridge.ChannelTeams:
			if it.ToEmployee == nil || it.ToEmployee.ID != "e1" || !it.ToEmployee.Enabled || it.To != nil {
				t.Errorf("Teams item's recipient = %+v, %+v; want employee e1 only", it.To, it.ToEmployee)
			}
		}
	}
}

// testArchiveManyStreams: one Append across many streams (a batch of outcomes) chains each stream
// onto its own head, as one Append per stream would.
func testArchiveManyStreams(t *testing.T, s bridge.Store) {
	ctx := context.Background()
	reader, ok := s.(ArchiveReader)
	if !ok {
		t.Skip("store cannot read its archive back")
	}
	ev := func(stream, text string) compliance.Event {
		return compliance.Event{Stream: stream, At: t0, Kind: compliance.KindDelivered, Actor: "system",
			Meta: compliance.Meta{Contact: "o1"}, Content: compliance.Content{Text: text}}
	}
	inTx(t, s, func(tx bridge.Tx) error { return tx.Append(ctx, ev("chat:9", "first")) })
	var batch []compliance.Event
	for i := range 30 {
		batch = append(batch, ev(fmt.Sprintf("chat:%d", i%7), fmt.Sprint(i)))
	}
	batch = append(batch, ev("chat:9", "second"))
	inTx(t, s, func(tx bridge.Tx) error { return tx.Append(ctx, batch...) })
	heads, err := reader.ArchiveHeads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, stream := range []string{"chat:0", "chat:3", "chat:6", "chat:9"} {
		recs, err := reader.ArchiveStream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		v := compliance.NewChainVerifier(stream)
		var texts []string
		for i := range recs {
			if err := v.Add(&recs[i], true); err != nil {
				t.Fatal(err)
			}
			c, _ := compliance.DecodeContent(recs[i].Body)
			texts = append(texts, c.Text)
		}
		if err := v.Finish(heads[stream]); err != nil {
			t.Errorf("%s: %v", stream, err)
		}
		var want []string
		switch stream {
		case "chat:9":
			want = []string{"first", "second"}
		default:
			n := int(stream[len(stream)-1] - '0')
			for i := n; i < 30; i += 7 {
				want = append(want, fmt.Sprint(i))
			}
		}
		if !slices.Equal(texts, want) {
			t.Errorf("%s = %v; want %v, in order", stream, texts, want)
		}
	}
}

// testTimersInOneTx: timers set in a transaction are there for whatever reads or clears timers
// later in it, and after commit.
func testTimersInOneTx(t *testing.T, s bridge.Store) {
	ctx := context.Background()
	c1 := seedChat(t, s, "o1", "e1")
	c2 := seedChat(t, s, "o2", "e1")
	inTx(t, s, func(tx bridge.Tx) error {
		if err := tx.SetTimer(ctx, c1.ID, bridge.TimerNotice, t0); err != nil {
			return err
		}
		if err := tx.SetTimer(ctx, c1.ID, bridge.TimerNotice, t0.Add(time.Second)); err != nil { // moved
			return err
		}
		if err := tx.SetTimer(ctx, c1.ID, bridge.TimerInactive, t0); err != nil {
			return err
		}
		if err := tx.ClearTimers(ctx, c1.ID, bridge.TimerInactive); err != nil {
			return err
		}
		return tx.SetTimer(ctx, c2.ID, bridge.TimerInactive, t0)
	})
	var fired []bridge.Timer
	inTx(t, s, func(tx bridge.Tx) error {
		if err := tx.SetTimer(ctx, c2.ID, bridge.TimerNotice, t0); err != nil {
			return err
		}
		var err error
		fired, err = tx.ClaimDueTimers(ctx, t0.Add(time.Minute), 10)
		return err
	})
	var got []string
	for _, tm := range fired {
		got = append(got, fmt.Sprintf("%d/%s@%s", tm.ChatID, tm.Kind, tm.Due.Sub(t0)))
	}
	want := []string{fmt.Sprintf("%d/%s@0s", c2.ID, bridge.TimerInactive), fmt.Sprintf("%d/%s@0s", c2.ID, bridge.TimerNotice),
		fmt.Sprintf("%d/%s@1s", c1.ID, bridge.TimerNotice)}
	if !slices.Equal(sorted(got), sorted(want)) {
		t.Errorf("due timers = %v; want %v (c1's inactivity cleared, its notice moved, c2's set in the claiming transaction)", got, want)
	}
}

// testChatLockFresh: a step that waited for a chat's lock sees what the step holding it committed
// — members, queue — not what was there when it began to wait.
func testChatLockFresh(t *testing.T, s bridge.Store) {
	ctx := context.Background()
	c := seedChat(t, s, "o1", "e1")
	inTx(t, s, func(tx bridge.Tx) error {
		return tx.PutEmployee(ctx, &bridge.Employee{ID: "e2", Name: "Second", Enabled: true, Reachable: true, UpdatedAt: t0})
	})
	holding, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.InTx(ctx, func(tx bridge.Tx) error {
			ch, err := tx.LockChat(ctx, c.ID)
			if err != nil {
				return err
			}
			close(holding)
			<-release
			ch.Members = append(ch.Members, "e2")
			if err := tx.PutContact(ctx, &bridge.Contact{OpenID: "o1", Name: "Renamed", Following: true, UpdatedAt: t0}); err != nil {
				return err
			}
			if err := tx.PushQueue(ctx, &bridge.QueuedMessage{ChatID: c.ID, Employee: "e1", MessageID: "q1", Message: bridge.TextMessage("held"), QueuedAt: t0}, false); err != nil {
				return err
			}
			return tx.SaveChat(ctx, ch)
		})
	}()
	<-holding
	waited := make(chan struct{})
	var got *bridge.Chat
	var contact *bridge.Contact
	var second *bridge.Employee
	go func() {
		defer close(waited)
		inTx(t, s, func(tx bridge.Tx) error {
			var err error
			if got, err = tx.LockChat(ctx, c.ID); err != nil {
				return err
			}
			if contact, err = tx.Contact(ctx, "o1"); err != nil {
				return err
			}
			second, err = tx.Employee(ctx, "e2")
			return err
		})
	}()
	time.Sleep(100 * time.Millisecond) // the second step is waiting for the lock
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	<-waited
	if got == nil || !slices.Equal(got.Members, []bridge.EmployeeID{"e1", "e2"}) || got.QueueLen != 1 {
		t.Fatalf("chat locked after waiting = %+v; want members [e1 e2] and one queued message", got)
	}
	if contact.Name != "Renamed" || second == nil || second.Name != "Second" {
		t.Errorf("contact %+v, employee %+v; want what the first step committed", contact, second)
	}
}
