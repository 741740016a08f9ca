package intake_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/intake"
)

// fakeStore is the archive as the watcher sees it: when inbound traffic was last archived (by any
// replica), how many chats are live, and the refusal counts written.
type fakeStore struct {
	mu       sync.Mutex
	inbound  time.Time // zero: none
	live     int64
	down     bool
	refusals map[string]int64
}

func (f *fakeStore) AddReceiptRefusals(ctx context.Context, counts []bridge.RefusalCount) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errors.New("database unreachable")
	}
	if f.refusals == nil {
		f.refusals = map[string]int64{}
	}
	for _, c := range counts {
		f.refusals[c.Hour.Format("15")+" "+string(c.Channel)+" "+c.Reason] += c.N
	}
	return nil
}

func (f *fakeStore) LastInbound(ctx context.Context, since time.Time) (time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return time.Time{}, errors.New("database unreachable")
	}
	if f.inbound.Before(since) {
		return time.Time{}, nil
	}
	return f.inbound, nil
}

func (f *fakeStore) LiveChats(ctx context.Context) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.live, nil
}

var start = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

func watcher(store *fakeStore, stallAfter time.Duration) (*intake.Watcher, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.InfoLevel)
	return intake.New(intake.Config{Store: store, Log: zap.New(core), StallAfter: stallAfter}), logs
}

func TestStallIsCalledOnceWhileLiveChatsHearNothingAndClearedByTraffic(t *testing.T) {
	ctx := context.Background()
	store := &fakeStore{live: 3}
	w, logs := watcher(store, 30*time.Minute)
	w.Received(bridge.ChannelWeChat, start)
	now := start
	check := func(d time.Duration) {
		t.Helper()
		now = now.Add(d)
		if err := w.Check(ctx, now); err != nil {
			t.Fatal(err)
		}
	}

	check(29 * time.Minute) // a customer wrote 29 minutes ago
	if w.Stalled() || logs.Len() != 0 {
		t.Fatalf("stalled after 29 quiet minutes: %v, %v", w.Stalled(), logs.All())
	}
	check(time.Minute) // 30 minutes: stalled
	if !w.Stalled() {
		t.Fatal("not stalled after 30 quiet minutes with 3 live chats")
	}
	check(10 * time.Minute) // still stalled: no second line
	check(10 * time.Minute)
	stalls := logs.FilterMessage("bridge stalled").All()
	if len(stalls) != 1 || stalls[0].Level != zapcore.WarnLevel {
		t.Fatalf("stall lines = %v; want one warning", logs.All())
	}
	fields := stalls[0].ContextMap()
	if fields["live_chats"] != int64(3) || !fields["last_arrival"].(time.Time).Equal(start) {
		t.Errorf("stall line fields = %v; want 3 live chats and the last arrival", fields)
	}

	// An employee writes: traffic resumed.
	w.Received(bridge.ChannelTeams, now)
	check(time.Minute)
	if w.Stalled() || logs.FilterMessage("bridge traffic resumed").Len() != 1 {
		t.Errorf("after traffic: stalled %v, logs %v", w.Stalled(), logs.All())
	}
}

func TestAnotherReplicasTrafficIsNotAStall(t *testing.T) {
	ctx := context.Background()
	store := &fakeStore{live: 1}
	w, logs := watcher(store, 30*time.Minute)
	// This replica never saw anything, but another archived a customer's message 5 minutes ago.
	store.inbound = start.Add(-5 * time.Minute)
	if err := w.Check(ctx, start); err != nil || w.Stalled() {
		t.Errorf("stalled although another replica took traffic in: %v %v", w.Stalled(), err)
	}
	// An hour later nobody has heard anything.
	if err := w.Check(ctx, start.Add(time.Hour)); err != nil || !w.Stalled() {
		t.Fatalf("not stalled an hour after the last archived message: %v", err)
	}
	if f := logs.FilterMessage("bridge stalled").All(); len(f) != 1 || !f[0].ContextMap()["last_arrival"].(time.Time).Equal(store.inbound) {
		t.Errorf("stall lines = %v; want one naming the other replica's last arrival", logs.All())
	}
}

func TestNoLiveChatsOrNoLimitIsNeverAStall(t *testing.T) {
	ctx := context.Background()
	quiet, logs := watcher(&fakeStore{live: 0}, 30*time.Minute)
	off, offLogs := watcher(&fakeStore{live: 5}, 0)
	for _, w := range []*intake.Watcher{quiet, off} {
		if err := w.Check(ctx, start.Add(48*time.Hour)); err != nil || w.Stalled() {
			t.Errorf("stalled: %v %v", w.Stalled(), err)
		}
	}
	if logs.Len()+offLogs.Len() != 0 {
		t.Errorf("logged %v %v", logs.All(), offLogs.All())
	}
	// A store that cannot answer leaves the state as it was and says so.
	down := &fakeStore{live: 1, down: true}
	w, _ := watcher(down, 30*time.Minute)
	if err := w.Check(ctx, start); err == nil || w.Stalled() {
		t.Errorf("with the store down: %v, stalled %v", err, w.Stalled())
	}
}

func TestRefusalsAreKeptUntilTheStoreTakesThem(t *testing.T) {
	ctx := context.Background()
	store := &fakeStore{down: true}
	w, _ := watcher(store, 0)
	w.Refused(bridge.ChannelWeChat, "not_recorded", start)
	w.Refused(bridge.ChannelWeChat, "not_recorded", start.Add(time.Minute))
	w.Refused(bridge.ChannelTeams, "invalid", start.Add(time.Hour))
	if err := w.Flush(ctx); err == nil {
		t.Fatal("flushed to a store that is down")
	}
	w.Refused(bridge.ChannelWeChat, "not_recorded", start.Add(2*time.Minute))
	store.down = false
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"09 wechat not_recorded": 3, "10 teams invalid": 1}
	if len(store.refusals) != len(want) || store.refusals["09 wechat not_recorded"] != 3 || store.refusals["10 teams invalid"] != 1 {
		t.Errorf("written = %v; want %v", store.refusals, want)
	}
	if err := w.Flush(ctx); err != nil || store.refusals["09 wechat not_recorded"] != 3 {
		t.Errorf("a second flush wrote again: %v %v", store.refusals, err)
	}
	if got := w.RefusedSinceStart()["wechat not_recorded"]; got != 3 {
		t.Errorf("refused since start = %d; want 3", got)
	}
}

// refuseEverything has receipts arrive every minute for d from start, each refused (WeChat style:
// the refusal told some seconds after the receipt, with the receipt's time).
func refuseEverything(w *intake.Watcher, from time.Time, d time.Duration, reason string) {
	for at := from; at.Before(from.Add(d)); at = at.Add(time.Minute) {
		w.Received(bridge.ChannelWeChat, at)
		w.Refused(bridge.ChannelWeChat, reason, at)
	}
}

func TestABridgeRefusingEverythingIsStalled(t *testing.T) {
	ctx := context.Background()
	store := &fakeStore{live: 3}
	w, logs := watcher(store, 30*time.Minute)
	w.Received(bridge.ChannelWeChat, start) // accepted: never refused
	// From then on every push is refused (undecryptable after a key change).
	refuseEverything(w, start.Add(time.Minute), 40*time.Minute, "undecryptable")
	if err := w.Check(ctx, start.Add(29*time.Minute)); err != nil || w.Stalled() {
		t.Fatalf("stalled 29 minutes after the last accepted push: %v", err)
	}
	if err := w.Check(ctx, start.Add(31*time.Minute)); err != nil || !w.Stalled() {
		t.Fatalf("not stalled 31 minutes after the last accepted push, refusals arriving: %v", err)
	}
	stalls := logs.FilterMessage("bridge stalled").All()
	if len(stalls) != 1 || !stalls[0].ContextMap()["last_arrival"].(time.Time).Equal(start) {
		t.Errorf("stall lines = %v; want one naming the last accepted push", logs.All())
	}
	// The refusals are counted as ever.
	if got := w.RefusedSinceStart()["wechat undecryptable"]; got != 40 {
		t.Errorf("refused since start = %d; want 40", got)
	}
	// A push accepted again (told, never refused) clears the stall once it has settled.
	w.Received(bridge.ChannelWeChat, start.Add(45*time.Minute))
	if err := w.Check(ctx, start.Add(45*time.Minute+10*time.Second)); err != nil || !w.Stalled() {
		t.Errorf("cleared by a push not yet settled (it may still be refused): %v", err)
	}
	if err := w.Check(ctx, start.Add(47*time.Minute)); err != nil || w.Stalled() {
		t.Errorf("still stalled after an accepted push: %v", err)
	}
}

func TestADatabaseDownWhileReceiptsAreRefusedIsAStall(t *testing.T) {
	ctx := context.Background()
	store := &fakeStore{live: 3, down: true}
	w, logs := watcher(store, 30*time.Minute)
	// Nothing arrives: with the store down there is no judging (the state stays).
	if err := w.Check(ctx, start); err == nil || w.Stalled() {
		t.Fatalf("quiet with the store down: %v, stalled %v", err, w.Stalled())
	}
	refuseEverything(w, start, 40*time.Minute, "not_recorded")
	if err := w.Check(ctx, start.Add(40*time.Minute)); err != nil || !w.Stalled() {
		t.Fatalf("the store down and every receipt refused for 40 minutes: %v, stalled %v", err, w.Stalled())
	}
	stalls := logs.FilterMessage("bridge stalled").All()
	if len(stalls) != 1 || stalls[0].ContextMap()["store_error"] == nil {
		t.Errorf("stall lines = %v; want one naming the store's error", logs.All())
	}
}
