package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/compliance"
)

// batchingStore counts how many deliveries each MarkDone records, and can fail every MarkDone of
// more than one item.
type batchingStore struct {
	*sqlstore.Store
	failBatches bool
	mu          sync.Mutex
	batches     []int
	first       sync.Once
}

func (b *batchingStore) InTx(ctx context.Context, fn func(bridge.Tx) error) error {
	return b.Store.InTx(ctx, func(tx bridge.Tx) error { return fn(batchingTx{tx, b}) })
}

type batchingTx struct {
	bridge.Tx
	b *batchingStore
}

var errBatch = errors.New("batch refused")

func (t batchingTx) MarkDone(ctx context.Context, now time.Time, items ...*bridge.OutboxItem) (map[string]bool, error) {
	// The first recording takes its time, as a busy database would: the deliveries finishing
	// meanwhile queue behind it, whatever the scheduler does.
	t.b.first.Do(func() { time.Sleep(300 * time.Millisecond) })
	if t.b.failBatches && len(items) > 1 {
		return nil, errBatch
	}
	due, err := t.Tx.MarkDone(ctx, now, items...)
	if err == nil {
		t.b.mu.Lock()
		t.b.batches = append(t.b.batches, len(items))
		t.b.mu.Unlock()
	}
	return due, err
}

// TestDeliveriesFinishingTogetherAreRecordedTogether: successful deliveries that finish while
// another batch is being recorded are recorded together, in one transaction (group commit); each
// exactly once, in its own chat's chain, which verifies. If a batch cannot be recorded, each of its
// deliveries is recorded on its own: still once each.
func TestDeliveriesFinishingTogetherAreRecordedTogether(t *testing.T) {
	for _, failBatches := range []bool{false, true} {
		t.Run(fmt.Sprintf("failBatches=%v", failBatches), func(t *testing.T) {
			eachDB(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
				const chats = 12
				w := newWorld(t, open(t))
				var ids []bridge.ChatID
				for i := range chats {
					emp, contact := bridge.EmployeeID(fmt.Sprintf("e%d", i)), bridge.OpenID(fmt.Sprintf("o%d", i))
					w.enable(emp, fmt.Sprintf("Employee %d", i))
					ids = append(ids, w.scan(contact, emp))
					w.customerSays(contact, "hello")
				}
				for i, chat := range ids {
					if res, err := w.engine.EmployeeWrites(w.ctx, bridge.EmployeeMessage{Employee: bridge.EmployeeID(fmt.Sprintf("e%d", i)),
						Chat: chat, Message: bridge.TextMessage(fmt.Sprintf("answer %d", i))}); err != nil || res.Outcome != bridge.OutcomeSent {
						t.Fatalf("employee %d: %+v, %v", i, res, err)
					}
				}
				// Every send waits until all of them are under way, so they finish together.
				var inflight atomic.Int32
				release := make(chan struct{})
				w.wechat.Block = func(ctx context.Context) error {
					if inflight.Add(1) == chats {
						close(release)
					}
					select {
					case <-release:
					case <-time.After(10 * time.Second):
					}
					return nil
				}
				store := &batchingStore{Store: w.store, failBatches: failBatches}
				engine, err := bridge.NewEngine(bridge.Config{Store: store, WeChat: w.wechat, Teams: w.teams, Clock: w.clock, Policy: w.policy})
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(w.ctx)
				done := make(chan error, 1)
				go func() { done <- engine.Run(ctx) }()
				// answers counts, per chat, the archived deliveries of its employee's answer.
				answers := func() []int {
					out := make([]int, len(ids))
					for i, chat := range ids {
						recs, err := w.store.ArchiveStream(w.ctx, compliance.ChatStream(int64(chat)))
						if err != nil {
							t.Fatal(err)
						}
						for _, r := range recs {
							m, _ := compliance.DecodeMeta(r.Meta)
							if r.Kind == compliance.KindDelivered && m.Channel == string(bridge.ChannelWeChat) && m.Employee == fmt.Sprintf("e%d", i) {
								out[i]++
							}
						}
					}
					return out
				}
				for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
					if !slices.Contains(answers(), 0) {
						break
					}
				}
				cancel()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				for i, n := range answers() {
					if n != 1 {
						t.Errorf("chat %d: the answer's delivery is archived %d times; want once", ids[i], n)
					}
				}
				largest := 0
				for _, n := range store.batches {
					largest = max(largest, n)
				}
				if !failBatches && largest < 2 {
					t.Errorf("batches %v: deliveries that finished together were recorded one by one", store.batches)
				}
				if failBatches && largest > 1 {
					t.Errorf("batches %v: a batch that failed was recorded", store.batches)
				}
				if n, err := w.store.VerifyArchive(w.ctx); err != nil {
					t.Errorf("archive (%d records) does not verify: %v", n, err)
				}
			})
		})
	}
}
