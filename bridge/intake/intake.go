// Package intake watches what arrives from the channels (bridge.Receipts): it counts the pushes
// and activities refused after they were received, for the daily completeness report, and judges
// whether the bridge has stalled — chats are live but no real traffic has arrived for a while.
//
// It judges from real traffic that was accepted only: a WeChat push that passed its signature
// check, or a Teams activity from a person, and was not then refused; and the inbound records
// every replica archives (a customer's message or event, an employee's message); never health
// checks or pings, and never receipts that were refused — a bridge refusing everything (its
// database down, pushes it cannot decrypt after a key change) is stalled however much arrives.
// With several replicas behind a load balancer one of them may see nothing while the others work,
// so a replica that has accepted nothing for a while asks the archive before it calls the bridge
// stalled.
//
// A receipt is known to be accepted once it has settled: Receipts says when one is received and,
// if it is refused, says so with the same time (WeChat's callback before and after handling the
// push, the bot after handling the activity). A receipt that has gone settleAfter without being
// refused was accepted.
//
// It imports bridge and zap only; the store comes in as an interface, wired by cmd/wxteams.
package intake

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wxteams/wxteams/bridge"
)

// Store is what the watcher asks of the store (sqlstore.Store).
type Store interface {
	// AddReceiptRefusals adds refusal counts to the durable ones every replica adds to.
	AddReceiptRefusals(ctx context.Context, counts []bridge.RefusalCount) error
	// LastInbound is when the latest inbound record was archived, by any replica, no earlier than
	// since (the zero time if none).
	LastInbound(ctx context.Context, since time.Time) (time.Time, error)
	// LiveChats counts the chats whose customer can be written to now.
	LiveChats(ctx context.Context) (int64, error)
}

// Config configures a Watcher.
type Config struct {
	Store Store
	Clock bridge.Clock
	Log   *zap.Logger
	// StallAfter is how long live chats may go without any inbound traffic before the bridge is
	// called stalled (WXTEAMS_STALL_AFTER); 0 never calls it stalled.
	StallAfter time.Duration
	// Every is how often Run writes the refusal counts and judges the stall [1 min, or
	// StallAfter/4 when that is shorter].
	Every time.Duration
}

// lastWeek bounds how far back the stall warning looks for the last arrival it names.
const lastWeek = 7 * 24 * time.Hour

// settleAfter is how long after its receipt a push or activity not refused counts as accepted:
// longer than a request may take (serve's write timeout is 30 s).
const settleAfter = time.Minute

// inflightKey groups receipts not settled yet by channel and the second they arrived in: a
// refusal is told with its receipt's time, so it lands in its receipt's group.
type inflightKey struct {
	channel bridge.Channel
	second  int64
}

// inflight counts the receipts of a group and the refusals among them.
type inflight struct {
	received, refused int64
	latest            time.Time
}

type refusalKey struct {
	hour    time.Time
	channel bridge.Channel
	reason  string
}

// Watcher is told of every receipt (it is a bridge.Receipts) and, run, keeps the stall state and
// writes the refusal counts.
type Watcher struct {
	cfg Config

	mu          sync.Mutex
	last        time.Time // latest receipt this replica saw accepted (settled, not refused)
	inflight    map[inflightKey]*inflight
	lastRefused time.Time            // latest receipt this replica refused
	pending     map[refusalKey]int64 // refusals not yet written
	sinceStart  map[refusalKey]int64 // refusals this process saw, written or not (for the log)
	stalled     bool
	stalledFrom time.Time // the last arrival known when the stall began
}

var _ bridge.Receipts = (*Watcher)(nil)

// New returns a Watcher.
func New(cfg Config) *Watcher {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Every <= 0 {
		cfg.Every = time.Minute
		if q := cfg.StallAfter / 4; q > 0 && q < cfg.Every {
			cfg.Every = q
		}
	}
	return &Watcher{cfg: cfg, pending: map[refusalKey]int64{}, sinceStart: map[refusalKey]int64{}, inflight: map[inflightKey]*inflight{}}
}

// Received records an arrival; it counts for the stall once it has settled unrefused.
func (w *Watcher) Received(ch bridge.Channel, at time.Time) {
	k := inflightKey{channel: ch, second: at.Unix()}
	w.mu.Lock()
	f := w.inflight[k]
	if f == nil {
		f = &inflight{}
		w.inflight[k] = f
	}
	f.received++
	if at.After(f.latest) {
		f.latest = at
	}
	w.mu.Unlock()
}

// Refused counts a receipt refused for reason; at is the time its receipt was told with.
func (w *Watcher) Refused(ch bridge.Channel, reason string, at time.Time) {
	k := refusalKey{hour: at.UTC().Truncate(time.Hour), channel: ch, reason: reason}
	w.mu.Lock()
	w.pending[k]++
	w.sinceStart[k]++
	if at.After(w.lastRefused) {
		w.lastRefused = at
	}
	if f := w.inflight[inflightKey{channel: ch, second: at.Unix()}]; f != nil && f.refused < f.received {
		f.refused++
	}
	w.mu.Unlock()
}

// settle takes the receipts older than settleAfter at now out of flight: a group with more
// receipts than refusals was (partly) accepted, and its latest receipt is this replica's latest
// accepted one. Call it with mu held.
func (w *Watcher) settle(now time.Time) {
	for k, f := range w.inflight {
		if now.Sub(f.latest) < settleAfter {
			continue
		}
		if f.received > f.refused && f.latest.After(w.last) {
			w.last = f.latest
		}
		delete(w.inflight, k)
	}
}

// Stalled reports whether the bridge was stalled when last judged (the wxteams_bridge_stalled
// gauge).
func (w *Watcher) Stalled() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stalled
}

// Flush writes the refusal counts not written yet. Counts that cannot be written (the store is
// down, which is often why they were refused) are kept for the next try.
func (w *Watcher) Flush(ctx context.Context) error {
	w.mu.Lock()
	batch := w.pending
	w.pending = map[refusalKey]int64{}
	w.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	counts := make([]bridge.RefusalCount, 0, len(batch))
	for k, n := range batch {
		counts = append(counts, bridge.RefusalCount{Hour: k.hour, Channel: k.channel, Reason: k.reason, N: n})
	}
	err := w.cfg.Store.AddReceiptRefusals(ctx, counts)
	if err != nil {
		w.mu.Lock()
		for k, n := range batch {
			w.pending[k] += n
		}
		w.mu.Unlock()
	}
	return err
}

// Check judges, at now, whether the bridge has stalled, and logs when that changes: a warning
// "bridge stalled" once when it stalls, "bridge traffic resumed" when traffic comes back.
func (w *Watcher) Check(ctx context.Context, now time.Time) error {
	if w.cfg.StallAfter <= 0 {
		return nil
	}
	w.mu.Lock()
	w.settle(now)
	last, wasStalled, refusing := w.last, w.stalled, now.Sub(w.lastRefused) < w.cfg.StallAfter
	w.mu.Unlock()
	stalled, live, err := w.judge(ctx, now, &last)
	var storeDown error
	if err != nil {
		if !refusing || now.Sub(last) < w.cfg.StallAfter {
			return err // judged again at the next check; the state stays as it was
		}
		// The store cannot be asked, but receipts keep arriving and being refused while none was
		// accepted: the channels are live and nothing gets through.
		stalled, storeDown = true, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stalled = stalled
	switch {
	case stalled && !wasStalled:
		w.stalledFrom = last
		fields := []zap.Field{zap.Duration("stall_after", w.cfg.StallAfter)}
		if storeDown != nil {
			fields = append(fields, zap.String("live_chats", "unknown: the store cannot be asked, and every receipt is refused"), zap.NamedError("store_error", storeDown))
		} else {
			fields = append(fields, zap.Int64("live_chats", live))
		}
		if last.IsZero() {
			fields = append(fields, zap.String("last_arrival", "none in the last 7 days"))
		} else {
			fields = append(fields, zap.Time("last_arrival", last), zap.Duration("quiet_for", now.Sub(last).Round(time.Second)))
		}
		w.cfg.Log.Warn("bridge stalled", fields...)
	case !stalled && wasStalled:
		w.cfg.Log.Info("bridge traffic resumed", zap.Time("stalled_since", w.stalledFrom), zap.Time("last_arrival", last))
	}
	return nil
}

// judge decides whether the bridge is stalled at now; last is this replica's last accepted
// arrival, and on return the latest known.
func (w *Watcher) judge(ctx context.Context, now time.Time, last *time.Time) (stalled bool, live int64, err error) {
	if now.Sub(*last) < w.cfg.StallAfter {
		return false, 0, nil // this replica saw traffic: no need to ask the store
	}
	other, err := w.cfg.Store.LastInbound(ctx, now.Add(-w.cfg.StallAfter))
	if err != nil {
		return false, 0, err
	}
	if !other.IsZero() {
		if other.After(*last) {
			*last = other
		}
		return false, 0, nil // another replica took traffic in
	}
	if live, err = w.cfg.Store.LiveChats(ctx); err != nil || live == 0 {
		return false, live, err // nobody to hear from: quiet is not a stall
	}
	if last.IsZero() { // name the last arrival, if there was one in the last week
		if other, err = w.cfg.Store.LastInbound(ctx, now.Add(-lastWeek)); err != nil {
			return false, live, err
		}
		*last = other
	}
	return true, live, nil
}

// Run writes the refusal counts and judges the stall every Config.Every until ctx ends, then
// writes what is left.
func (w *Watcher) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			w.flush(flushCtx)
			cancel()
			return
		case <-w.cfg.Clock.After(w.cfg.Every):
		}
		w.flush(ctx)
		if err := w.Check(ctx, w.cfg.Clock.Now()); err != nil {
			w.cfg.Log.Warn("stall check failed", zap.Error(err))
		}
	}
}

func (w *Watcher) flush(ctx context.Context) {
	if err := w.Flush(ctx); err != nil {
		w.mu.Lock()
		var n int64
		for _, c := range w.pending {
			n += c
		}
		w.mu.Unlock()
		w.cfg.Log.Warn("refusals after receipt not written yet; kept for the next try", zap.Int64("refusals", n), zap.Error(err))
	}
}

// RefusedSinceStart is how many receipts this process refused, by channel and reason ("wechat
// not_recorded" → 3), written to the store or not.
func (w *Watcher) RefusedSinceStart() map[string]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int64{}
	for k, n := range w.sinceStart {
		out[string(k.channel)+" "+k.reason] += n
	}
	return out
}
