// Package loadtest drives a running wxteams with the load of many chats through the WeChat and
// Teams fakes, follows every message until it arrives, and reports throughput, latency and the
// pgbench ratios; with faults injected into the fakes, it then holds the archive against what
// arrived. It is `wxteams loadtest`: cmd/wxteams starts wxteams and the fakes and hands them over
// in a World.
//
// Only cmd/wxteams imports it; it imports the product's packages and fakes, never cmd.
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/wxteams/wxteams/bot/teamsfake"
	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/bridge/wechat/wechatfake"
)

// World is a running wxteams and the fakes it talks to.
type World struct {
	WeChat *wechatfake.WeChat
	Teams  *teamsfake.Teams
	// Tenant is the Teams tenant the load's employees belong to.
	Tenant string
	// Enable enables an employee for WeChat as an administrator would, the Teams app installed.
	Enable func(ctx context.Context, p bridge.EmployeeProfile) error
	Engine *bridge.Engine
	Store  *sqlstore.Store
	// DatabaseURL is the store's database: the report names it (without a password), pgbench
	// connects to it.
	DatabaseURL string
}

// Options are how a run loads.
type Options struct {
	Chats    int           // chats written concurrently, one employee and one customer each
	Duration time.Duration // how long to load
	Rate     float64       // target rounds per second across all chats (0: as fast as they go)
	// Pgbench runs pgbench with the same SQL afterwards, on PostgreSQL.
	Pgbench bool
	// Window, when set, replaces the policy's window (and the 24 h notice, at half of it), and one
	// round in eight is followed by a pause longer than it, so that the chat timers fire.
	Window time.Duration
	// Faults injects WeChat and Teams faults throughout the load, has WeChat push every callback
	// three times, and checks the archive afterwards (faults.go).
	Faults bool
}

// Result is what a run measured.
type Result struct {
	Database             string
	Chats                int
	Elapsed              time.Duration
	Delivered            int64 // messages that arrived at the other side
	ToEmployee, ToClient int64
	Queued               int64 // employee messages the cap queued (arrived after the next customer message)
	StillQueued          int64 // queued when the load stopped, waiting for a customer message
	// OnTheWay were acknowledged and still on their way when the load stopped (a backlog, not a
	// loss); Late of them arrived after the run's end (its grace period), the last LateBy after
	// it. Lost never arrived.
	OnTheWay, Late int64
	LateBy         time.Duration
	// HeldByPolicy were expected to arrive but the archive shows the policy queued or refused
	// them (the chat went inactive or capped meanwhile: a run slower than its window).
	HeldByPolicy int64
	Lost         int64
	// Timers fired, as the employees saw them in Teams: the 24 h notice and the inactivity notice.
	Notices24h, Inactive int64
	AckWeChat, AckTeams  []time.Duration // how long WeChat's push and Teams' activity waited for their answer
	E2EIn, E2EOut        []time.Duration // from being written to arriving at the other side
	Errors               []string
	PgbenchRate          float64
	PgbenchNote          string
	PgbenchInsert        float64 // single-row INSERT transactions per second, same clients
	PgbenchClients       int

	// Order and duplicates, seen at the fakes.
	Reordered  int64 // arrived before a message written earlier in the same chat and direction
	Duplicates int64 // arrivals of a message that had arrived already
	// With faults: what was injected, and what the archive says (see checkArchive).
	Injected map[string]int
	Unknown  int64 // acknowledged, archived as outcome unknown, never arrived (the employee was told)
	Refused  int64 // employee messages the policy refused (a full queue; the employee was told)
	// UnknownSends is how many sends the archive records as outcome unknown, arrived or not.
	UnknownSends int
	Problems     []string // broken promises: lost, archived twice, over the cap, reordered

	endedAt time.Time
	// toCustomer is every employee message that reached a customer, for the cap check.
	toCustomer []arrival
}

// arrival is a message that reached the other side of chat at a time on the fakes' clock.
type arrival struct {
	chat int
	id   int64
	at   time.Time
}

func pct(d []time.Duration, p float64) string {
	if len(d) == 0 {
		return "-"
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return fmt.Sprintf("%.1f ms", float64(s[min(len(s)-1, int(float64(len(s))*p))].Microseconds())/1000)
}

// Print writes the report of wxteams loadtest.
func (r *Result) Print(w io.Writer) {
	rate := float64(r.Delivered) / r.Elapsed.Seconds()
	fmt.Fprintf(w, "wxteams loadtest: %d chats on %s for %s\n\n", r.Chats, redact(r.Database), r.Elapsed.Round(time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "messages delivered end to end\t%d\t(%.0f/s: %d customer→employee, %d employee→customer, %d of them queued first)\n",
		r.Delivered, rate, r.ToEmployee, r.ToClient, r.Queued)
	fmt.Fprintf(tw, "on its way when the load stopped (backlog)\t%d\t(%d arrived after the run's end, the last %s after it)\n",
		r.OnTheWay, r.Late, r.LateBy.Round(time.Millisecond))
	fmt.Fprintf(tw, "lost (acknowledged, never arrived)\t%d\t(%d more still queued at the end, as the policy wants; %d held by the policy after all)\n",
		r.Lost, r.StillQueued, r.HeldByPolicy)
	fmt.Fprintf(tw, "chat timers fired (seen in Teams)\t%d / %d\t(24 h notices / chats gone inactive)\n", r.Notices24h, r.Inactive)
	if r.Injected != nil {
		var kinds []string
		for k, n := range r.Injected {
			kinds = append(kinds, fmt.Sprintf("%s ×%d", k, n))
		}
		slices.Sort(kinds)
		fmt.Fprintf(tw, "faults injected\t%d kinds\t%s\n", len(kinds), strings.Join(kinds, ", "))
		fmt.Fprintf(tw, "outcome unknown (never confirmed, employee told)\t%d\t\n", r.Unknown)
		fmt.Fprintf(tw, "refused by the policy (queue full, employee told)\t%d\t\n", r.Refused)
		fmt.Fprintf(tw, "reordered / duplicated arrivals\t%d / %d\t\n", r.Reordered, r.Duplicates)
		fmt.Fprintf(tw, "problems (lost, archived ≠ once, over the cap)\t%d\t\n", len(r.Problems))
	}
	fmt.Fprintf(tw, "WeChat push answered\tp50 %s\tp99 %s\n", pct(r.AckWeChat, .5), pct(r.AckWeChat, .99))
	fmt.Fprintf(tw, "Teams activity answered\tp50 %s\tp99 %s\n", pct(r.AckTeams, .5), pct(r.AckTeams, .99))
	fmt.Fprintf(tw, "customer → employee (end to end)\tp50 %s\tp99 %s\n", pct(r.E2EIn, .5), pct(r.E2EIn, .99))
	fmt.Fprintf(tw, "employee → customer (end to end)\tp50 %s\tp99 %s\n", pct(r.E2EOut, .5), pct(r.E2EOut, .99))
	switch {
	case r.PgbenchRate > 0:
		fmt.Fprintf(tw, "pgbench, the same SQL per message\t%.0f/s\tratio %.2f\n", r.PgbenchRate, rate/r.PgbenchRate)
	case r.PgbenchNote != "":
		fmt.Fprintf(tw, "pgbench\t%s\t\n", r.PgbenchNote)
	}
	if r.PgbenchInsert > 0 {
		fmt.Fprintf(tw, "pgbench, one-row INSERT transactions\t%.0f/s\tratio %.3f (%d clients)\n", r.PgbenchInsert, rate/r.PgbenchInsert, r.PgbenchClients)
	}
	if rss := peakRSS(); rss > 0 {
		fmt.Fprintf(tw, "peak RSS of this process\t%.0f MB\t(wxteams, both fakes and the load generator)\n", float64(rss)/(1<<20))
	}
	_ = tw.Flush()
	for i, p := range r.Problems {
		if i == 10 {
			fmt.Fprintf(w, "… and %d more problems\n", len(r.Problems)-10)
			break
		}
		fmt.Fprintln(w, "problem:", p)
	}
	for i, e := range r.Errors {
		if i == 10 {
			fmt.Fprintf(w, "… and %d more errors\n", len(r.Errors)-10)
			break
		}
		fmt.Fprintln(w, "error:", e)
	}
}

// redact hides a password in a database URL.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		return u.Redacted()
	}
	return raw
}

// peakRSS is the process's peak resident set in bytes, from /proc (0 where there is none).
func peakRSS() int64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// Employee is the Entra object id of the load's n-th employee.
func Employee(n int) string { return fmt.Sprintf("10ad0000-0000-4000-8000-%012d", n) }

// Customer is the OpenID of the load's n-th customer.
func Customer(n int) string { return fmt.Sprintf("o-load-%05d", n) }

// Marker finds the markers ("#L42#") that tell a load's messages apart in their text.
var Marker = regexp.MustCompile(`#L(\d+)#`)

// MarkerID is the id in a marker ("#L42#" → 42).
func MarkerID(m string) int64 {
	id, _ := strconv.ParseInt(strings.Trim(m, "#L"), 10, 64)
	return id
}

// tracker follows every message from the moment it is written until it arrives.
type tracker struct {
	mu      sync.Mutex
	next    atomic.Int64
	pending map[int64]sent
	// changed is closed (and replaced) at each arrival, to wake waitFor.
	changed chan struct{}
	res     *Result
	// written is every message ever written, by marker id; last is the newest arrival per chat
	// and direction (inbound or not), for the order check.
	written map[int64]sent
	last    map[direction]int64
	// told counts, per chat, the notices its employee got that a message's outcome is unknown
	// or that a message was refused; toldTexts are those notices' fixed parts.
	told      map[int]int
	toldTexts []string
	// over is set when the run's measurement ends; what arrives after it is counted as late.
	over bool
}

// direction is one side of a chat: its customer's messages (inbound) or its employee's.
type direction struct {
	chat    int
	inbound bool
}

type sent struct {
	at      time.Time
	inbound bool // customer → employee
	queued  bool // expected to wait in the queue
	chat    int
}

func (t *tracker) add(inbound, queued bool, chat int) (int64, string) {
	id := t.next.Add(1)
	t.mu.Lock()
	t.pending[id] = sent{at: time.Now(), inbound: inbound, queued: queued, chat: chat}
	t.written[id] = t.pending[id]
	t.mu.Unlock()
	return id, "#L" + strconv.FormatInt(id, 10) + "#"
}

// arrive is called by the fakes (with their lock held) for everything delivered, with the time
// on the fakes' clock.
func (t *tracker) arrive(text string, at time.Time) {
	for _, m := range Marker.FindAllStringSubmatch(text, -1) {
		id, _ := strconv.ParseInt(m[1], 10, 64)
		t.mu.Lock()
		s, ok := t.pending[id]
		if w, written := t.written[id]; written && !ok {
			t.res.Duplicates++
		} else if written {
			// Markers grow in the order a chat's messages are written, in each direction.
			key := direction{w.chat, w.inbound}
			if id < t.last[key] {
				t.res.Reordered++
				t.res.Problems = append(t.res.Problems, fmt.Sprintf("chat %d: #L%d# arrived after #L%d#, written later", w.chat, id, t.last[key]))
			}
			t.last[key] = max(t.last[key], id)
			if !w.inbound {
				t.res.toCustomer = append(t.res.toCustomer, arrival{chat: w.chat, id: id, at: at})
			}
		}
		if ok && t.over {
			// The run is over: it counts as arrived, not in the run's rates and latencies.
			delete(t.pending, id)
			close(t.changed)
			t.changed = make(chan struct{})
			t.res.Late++
			t.res.LateBy = max(t.res.LateBy, time.Since(t.res.endedAt))
		} else if ok {
			delete(t.pending, id)
			close(t.changed)
			t.changed = make(chan struct{})
			d := time.Since(s.at)
			switch {
			case s.inbound:
				t.res.ToEmployee++
				t.res.E2EIn = append(t.res.E2EIn, d)
			case s.queued:
				t.res.ToClient++
				t.res.Queued++
			default:
				t.res.ToClient++
				t.res.E2EOut = append(t.res.E2EOut, d)
			}
			t.res.Delivered++
		}
		t.mu.Unlock()
	}
}

// waitFor waits until none of ids is pending, or the deadline. It wakes at arrivals, not on a
// timer: at thousands of messages a second, polling would cost the load generator more than the
// load.
func (t *tracker) waitFor(ids []int64, deadline time.Time) bool {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		t.mu.Lock()
		left := 0
		for _, id := range ids {
			if _, ok := t.pending[id]; ok {
				left++
			}
		}
		changed := t.changed
		t.mu.Unlock()
		if left == 0 {
			return true
		}
		select {
		case <-changed:
		case <-timer.C:
			return false
		}
	}
}

// Following what was on its way when a run ended: it stops once nothing has arrived for
// followIdle, or after followAtMost.
const (
	followIdle   = 30 * time.Second
	followAtMost = 10 * time.Minute
)

// follow waits until no message that is not meant to wait in a queue is pending, for as long as
// one arrives at least every idle, at most until most.
func (t *tracker) follow(idle, most time.Duration) {
	end := time.Now().Add(most)
	for {
		t.mu.Lock()
		left := 0
		for _, p := range t.pending {
			if !p.queued {
				left++
			}
		}
		changed := t.changed
		t.mu.Unlock()
		if left == 0 || !time.Now().Before(end) {
			return
		}
		select {
		case <-changed:
		case <-time.After(min(idle, time.Until(end))):
			return // nothing arrived for idle: what is left is lost
		}
	}
}

func (t *tracker) addError(format string, args ...any) {
	t.mu.Lock()
	t.res.Errors = append(t.res.Errors, fmt.Sprintf(format, args...))
	t.mu.Unlock()
}

// Run loads w as opts say and returns what it measured. It sets the fakes' delivery hooks and, with
// Options.Window, the engine's policy.
func Run(ctx context.Context, w *World, opts Options) (*Result, error) {
	res := &Result{Database: w.DatabaseURL, Chats: opts.Chats}
	tr := &tracker{pending: map[int64]sent{}, written: map[int64]sent{}, last: map[direction]int64{},
		changed: make(chan struct{}), res: res}
	w.WeChat.SetOnDeliver(func(d wechatfake.Delivered) { tr.arrive(d.Text, d.At) })
	if opts.Window > 0 {
		p := w.Engine.Policy()
		p.Window, p.NoticeAfter = bridge.Duration(opts.Window), bridge.Duration(opts.Window/2)
		if err := p.Validate(); err != nil {
			return nil, err
		}
		w.Engine.SetPolicy(p)
	}
	texts := w.Engine.Policy().Employee
	tr.told, tr.toldTexts = map[int]int{}, []string{fixedPart(texts.OutcomeUnknown), fixedPart(texts.QueueFull)}
	notice24h, inactive := fixedPart(texts.Notice24h), fixedPart(texts.Inactive)
	w.Teams.SetOnReceive(func(r teamsfake.Received) {
		text := teamsfake.VisibleText(&r.Activity)
		tr.arrive(text, r.At)
		switch {
		case strings.Contains(text, notice24h):
			atomic.AddInt64(&tr.res.Notices24h, 1)
		case strings.Contains(text, inactive):
			atomic.AddInt64(&tr.res.Inactive, 1)
		}
		var chat int
		if _, err := fmt.Sscanf(r.User, "10ad0000-0000-4000-8000-%d", &chat); err != nil {
			return
		}
		for _, told := range tr.toldTexts {
			if told != "" && strings.Contains(text, told) {
				tr.mu.Lock()
				tr.told[chat]++
				tr.mu.Unlock()
			}
		}
	})
	if opts.Faults {
		w.WeChat.Pusher().Duplicates = 2 // WeChat pushes every callback three times
	}

	// One employee and one customer per chat; the employee enabled as an administrator would.
	for i := range opts.Chats {
		id := Employee(i)
		w.Teams.AddUser(id, "Load employee "+strconv.Itoa(i), w.Tenant)
		if err := w.Enable(ctx, bridge.EmployeeProfile{ID: bridge.EmployeeID(id), Name: "Load employee " + strconv.Itoa(i), Tenant: w.Tenant}); err != nil {
			return nil, fmt.Errorf("enable load employee %d: %w", i, err)
		}
		if _, err := w.WeChat.ScanScene(ctx, Customer(i), bridge.SceneFor(bridge.EmployeeID(id))); err != nil {
			return nil, fmt.Errorf("customer %d scans: %w", i, err)
		}
	}
	_, _ = w.Engine.Drain(ctx) // the welcomes and greetings

	start := time.Now()
	deadline := start.Add(opts.Duration)
	var wg sync.WaitGroup
	var rounds atomic.Int64
	stopFaults := func() {}
	if opts.Faults {
		stopFaults = injectFaults(w, 300*time.Millisecond, res)
	}
	for i := range opts.Chats {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loadChat(ctx, w, tr, i, deadline, opts, &rounds, start)
		}()
	}
	wg.Wait()
	stopFaults()
	tr.mu.Lock()
	for _, p := range tr.pending {
		if !p.queued {
			res.OnTheWay++
		}
	}
	tr.mu.Unlock()
	// Whatever is still on its way gets a grace period to arrive within the run.
	grace := time.Now().Add(10 * time.Second)
	for {
		left := 0
		tr.mu.Lock()
		for _, p := range tr.pending {
			if !p.queued {
				left++
			}
		}
		tr.mu.Unlock()
		if left == 0 || time.Now().After(grace) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	res.Elapsed = max(time.Since(start), opts.Duration)
	// A backlog is not a loss: what is still on its way is followed until it arrives, for as long
	// as messages keep arriving.
	tr.mu.Lock()
	tr.over, res.endedAt = true, time.Now()
	tr.mu.Unlock()
	if !opts.Faults {
		tr.follow(followIdle, followAtMost)
	}
	if opts.Faults {
		if err := settle(ctx, w, tr, 3*time.Minute); err != nil {
			return nil, err
		}
	}
	// What has still not arrived may be held by the policy: queued because the chat went inactive
	// or capped meanwhile (a slow run outlasts its short window), or refused; the archive says.
	var facts *ArchiveFacts
	tr.mu.Lock()
	left := len(tr.pending)
	tr.mu.Unlock()
	if left > 0 && !opts.Faults {
		var err error
		if facts, err = ReadArchive(ctx, w.Store); err != nil {
			return nil, fmt.Errorf("read the archive: %w", err)
		}
	}
	tr.mu.Lock()
	for id, p := range tr.pending {
		switch {
		case p.queued:
			res.StillQueued++ // waiting, as it should, for a customer message that never came
		case facts != nil && !p.inbound && facts.Queued[facts.MessageOf[id]]:
			res.HeldByPolicy++ // queued after all: the chat went inactive or capped meanwhile
		case facts != nil && !p.inbound && facts.Refused[facts.MessageOf[id]]:
			res.HeldByPolicy++
		default:
			res.Lost++
		}
	}
	tr.mu.Unlock()

	if opts.Pgbench && w.Store.Dialect() == sqlstore.Postgres {
		// pgbench's clients need connections: wxteams, idle now, keeps few open.
		w.Store.DB().SetMaxIdleConns(2)
		res.PgbenchRate, res.PgbenchNote = pgbenchSameSQL(ctx, w, opts)
		res.PgbenchInsert, res.PgbenchClients = pgbenchOneRow(ctx, w, opts), pgbenchClients(opts.Chats)
	} else if opts.Pgbench {
		res.PgbenchNote = "only on PostgreSQL"
	}
	return res, nil
}

// capOf is the policy's cap of consecutive employee messages.
func capOf(w *World) int { return w.Engine.Policy().Cap }

// customerReadingTime is the least time a load customer takes to answer what arrived. A real
// customer reads before replying; one replying within the milliseconds an employee's message is
// still on its way to WeChat makes the engine count that message toward the new streak (it cannot
// know which landed first), and the round's last answer would be queued.
const customerReadingTime = 250 * time.Millisecond

// loadChat runs rounds on one chat until the deadline: the customer writes, the employee answers
// one to four times, and each message is followed until it arrives (a queued one until the next
// round's customer message flushes it).
func loadChat(ctx context.Context, w *World, tr *tracker, i int, deadline time.Time, opts Options, rounds *atomic.Int64, start time.Time) {
	rng := rand.New(rand.NewPCG(uint64(i), 7)) // #nosec G115 G404 -- a load generator's reproducible choices; i >= 0
	employee, customer := Employee(i), Customer(i)
	var (
		queued  []int64
		arrived time.Time // when the last round's answers arrived (or the customer stopped waiting)
		quiet   bool      // the customer stays away past the window before the next round
	)
	for round := 0; time.Now().Before(deadline) && ctx.Err() == nil; round++ {
		pause := customerReadingTime
		if quiet {
			pause = opts.Window + 500*time.Millisecond // the 24 h notice and the inactivity fire meanwhile
		}
		if d := pause - time.Since(arrived); d > 0 {
			if time.Now().Add(d).After(deadline) {
				return
			}
			time.Sleep(d)
		}
		quiet = opts.Window > 0 && rng.IntN(8) == 0
		if opts.Rate > 0 {
			// Spread the chats' rounds evenly at the total rate.
			due := start.Add(time.Duration(float64(rounds.Add(1)) / opts.Rate * float64(time.Second)))
			if due.After(deadline) {
				return
			}
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		id, tag := tr.add(true, false, i)
		t0 := time.Now()
		res, _, err := w.WeChat.Send(ctx, customer, "Question "+tag+" about the fund")
		ack := time.Since(t0)
		if err != nil || !res.Acked {
			tr.addError("chat %d: customer message not acknowledged: %v", i, err)
			return
		}
		tr.mu.Lock()
		tr.res.AckWeChat = append(tr.res.AckWeChat, ack)
		tr.mu.Unlock()
		// The customer's message flushes what was queued, oldest first, up to the cap of three
		// consecutive employee messages (the rest stay queued for the next one); answers beyond
		// the cap, or behind a queue, are queued.
		released := min(len(queued), capOf(w))
		waitIDs := append([]int64{id}, queued[:released]...)
		streak := released
		queued = slices.Clone(queued[released:])
		answers := 1 + rng.IntN(3)
		if rng.IntN(8) == 0 {
			answers = 4 // over the cap: the last is queued until the customer writes again
		}
		for range answers {
			if len(queued) >= w.Engine.Policy().QueueLimit {
				break // the queue is full: the employee waits for the customer, as they are told to
			}
			willQueue := streak >= capOf(w) || len(queued) > 0
			id, tag := tr.add(false, willQueue, i)
			t0 := time.Now()
			if _, err := w.Teams.Say(ctx, employee, "Answer "+tag); err != nil {
				tr.addError("chat %d: employee message not accepted: %v", i, err)
				return
			}
			ack := time.Since(t0)
			tr.mu.Lock()
			tr.res.AckTeams = append(tr.res.AckTeams, ack)
			tr.mu.Unlock()
			if willQueue {
				queued = append(queued, id)
			} else {
				streak++
				waitIDs = append(waitIDs, id)
			}
		}
		if opts.Faults {
			// Under faults a message may be retried for half a minute, or wait in the queue for
			// the customer's next message: the customer waits a little, then writes again, as
			// customers do; what is missing is followed to the end (settle).
			tr.waitFor(waitIDs, time.Now().Add(time.Second))
			arrived = time.Now()
			continue
		}
		if !tr.waitFor(waitIDs, time.Now().Add(30*time.Second)) {
			tr.addError("chat %d: round %d did not arrive within 30 s", i, round)
			return
		}
		arrived = time.Now()
	}
}

// pgbenchClients is how many clients pgbench runs with: as many as chats, up to what a default
// PostgreSQL accepts beside wxteams' own pools.
func pgbenchClients(chats int) int { return min(chats, 64) }

// pgbenchOneRow runs single-row INSERT transactions (sqlstore.PgbenchInsertScript) with the
// clients of pgbenchSameSQL for as long as the load ran; 0 if it cannot.
func pgbenchOneRow(ctx context.Context, w *World, opts Options) float64 {
	if _, err := w.Store.DB().ExecContext(ctx, sqlstore.PgbenchInsertTable); err != nil {
		return 0
	}
	defer w.Store.DB().ExecContext(context.WithoutCancel(ctx), `DROP TABLE pgbench_one_row`) //nolint:errcheck // a scratch table
	tps, err := sqlstore.Pgbench(ctx, w.DatabaseURL, sqlstore.PgbenchInsertScript, pgbenchClients(opts.Chats), opts.Duration)
	if err != nil {
		return 0
	}
	return tps
}

// pgbenchSameSQL sets up pgbench's fixture (sqlstore.PgbenchFixture) and runs the SQL one message
// costs, with as many clients as the load had chats, for as long as the load ran.
func pgbenchSameSQL(ctx context.Context, w *World, opts Options) (float64, string) {
	chats := make([]int64, opts.Chats)
	if _, err := w.Engine.EnableEmployee(ctx, bridge.EmployeeProfile{ID: "bench-emp", Name: "pgbench"}, "admin:loadtest"); err != nil {
		return 0, "fixture: " + err.Error()
	}
	for i := range chats {
		contact := bridge.OpenID("bench-c" + strconv.Itoa(i))
		r, err := w.Engine.Connect(ctx, bridge.Connect{Contact: contact, Scene: bridge.SceneFor("bench-emp"), Event: "subscribe"})
		if err != nil {
			return 0, "fixture: " + err.Error()
		}
		chats[i] = int64(r.Chat)
	}
	// pgbench's script numbers its clients' chats from the first one.
	if !slices.IsSorted(chats) || chats[len(chats)-1]-chats[0] != int64(len(chats)-1) {
		return 0, "fixture: the chats' ids are not consecutive"
	}
	clients := pgbenchClients(opts.Chats)
	runs, err := sqlstore.Pgbench(ctx, w.DatabaseURL, sqlstore.PgbenchScript(chats[:clients]), clients, opts.Duration)
	tps := runs * sqlstore.PgbenchMessages
	if errors.Is(err, exec.ErrNotFound) {
		return 0, "not installed"
	}
	if err != nil {
		return 0, strings.SplitN(err.Error(), "\n", 2)[0]
	}
	return tps, ""
}
