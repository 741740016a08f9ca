package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
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

const loadtestSummary = `Drive wxteams' public endpoints with the load of many chats and report throughput and latency.
wxteams runs in-process against the WeChat and Teams fakes (as in the sandbox): customers write
through signed, encrypted WeChat callbacks; employees write through Bot Framework activities with
real JWTs; wxteams archives, applies the policy and delivers to the other side's fake. Each chat
repeats a round — the customer writes, the employee answers one to four times (the fourth is
queued by the cap of three and flushed by the customer's next message); after one round in eight
the customer goes quiet for longer than the window (--window, the run's stand-in for 48 h; by
default four times a chat's round interval), so that the 24 h notice and the inactivity fire and
the next message wakes the chat. Every message is followed until it arrives. On PostgreSQL it
then runs pgbench with the SQL one message costs, on the same database for the same time and
clients, and prints the ratio.

With --faults, WeChat and Teams misbehave throughout (errors, slow answers, resets, throttling,
invalidated tokens, callbacks pushed three times) and afterwards the archive is held against what
arrived: each message archived once and arrived (or archived as outcome unknown, its employee
told), none twice or out of order, no customer over the cap, the chains verified.

Use a scratch database: the load adds its employees, customers and pgbench's fixture to it. Like
the sandbox, it runs only on a new, empty database or one the sandbox or a load run used before.`

func runLoadtest(ctx context.Context, env *environment, args []string) error {
	fs := flags(env, "loadtest", "[flags]", loadtestSummary)
	dbURL := fs.String("database-url", "", "the database to load (default: a new SQLite file in a temporary folder)")
	chats := fs.Int("chats", 32, "chats written concurrently (one employee and one customer each)")
	duration := fs.Duration("duration", 20*time.Second, "how long to load")
	rate := fs.Float64("rate", 0, "target rounds per second across all chats (0: as fast as they go)")
	pgbench := fs.Bool("pgbench", true, "on PostgreSQL, run pgbench with the same SQL afterwards and print the ratio")
	window := fs.Duration("window", 0, "the firm's window for this run, the 24 h notice at half of it, so that quiet customers' timers fire (default: four times a chat's round interval --chats/--rate, at least 6s; 48h for the policy's own)")
	faults := fs.Bool("faults", false, "inject WeChat and Teams faults throughout (see loadfaults.go) and check the archive afterwards")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run (wxteams and the fakes) to this file")
	blockProfile := fs.String("blockprofile", "", "write a profile of where goroutines waited (locks, channels, I/O) to this file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *blockProfile != "" {
		runtime.SetBlockProfileRate(int(100 * time.Microsecond))
		runtime.SetMutexProfileFraction(10)
		defer func() {
			if f, err := os.Create(*blockProfile); err == nil {
				_ = pprof.Lookup("block").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	if *chats < 1 || *duration < time.Second || (*window != 0 && *window < time.Second) {
		return fmt.Errorf("%w: --chats must be at least 1, --duration and --window at least 1s", errUsage)
	}
	if *window == 0 {
		// Long enough that a chat's normal rounds keep it open, short enough that quiet ones lapse.
		*window = 6 * time.Second
		if *rate > 0 {
			*window = max(*window, time.Duration(4*float64(*chats) / *rate * float64(time.Second)).Round(time.Second))
		}
	}
	tmp, err := os.MkdirTemp("", "wxteams-loadtest")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	db := *dbURL
	if db == "" {
		db = "sqlite:" + filepath.Join(tmp, "load.db")
	}
	res, err := runLoad(ctx, env, loadOptions{db: db, chats: *chats, duration: *duration, rate: *rate, keysDir: tmp, pgbench: *pgbench,
		window: *window, faults: *faults})
	if err != nil {
		return err
	}
	res.print(env.stdout)
	if res.lost > 0 {
		return fmt.Errorf("%d messages were acknowledged but never arrived", res.lost)
	}
	if len(res.problems) > 0 {
		return fmt.Errorf("%d problems found (see above)", len(res.problems))
	}
	return nil
}

type loadOptions struct {
	db       string
	chats    int
	duration time.Duration
	rate     float64
	keysDir  string
	pgbench  bool
	// logs receives wxteams' log (default: discarded); the security test reads it.
	logs io.Writer
	// logLevel is wxteams' log level [warn].
	logLevel string
	// window, when set, replaces the policy's window (and the 24 h notice, at half of it), and one
	// round in eight is followed by a pause longer than it, so that the chat timers fire.
	window time.Duration
	// faults injects WeChat and Teams faults throughout the load, has WeChat push every callback
	// three times, and checks the archive afterwards (see loadfaults.go).
	faults bool
}

// loadResult is what a run measured.
type loadResult struct {
	db                   string
	chats                int
	elapsed              time.Duration
	delivered            int64 // messages that arrived at the other side
	toEmployee, toClient int64
	queued               int64 // employee messages the cap queued (arrived after the next customer message)
	stillQueued          int64 // queued when the load stopped, waiting for a customer message
	// onTheWay were acknowledged and still on their way when the load stopped (a backlog, not a
	// loss); late of them arrived after the run's end (its grace period), the last lateBy after
	// it. lost never arrived.
	onTheWay, late int64
	lateBy         time.Duration
	// heldByPolicy were expected to arrive but the archive shows the policy queued or refused
	// them (the chat went inactive or capped meanwhile: a run slower than its window).
	heldByPolicy int64
	endedAt      time.Time
	lost         int64
	// Timers fired, as the employees saw them in Teams: the 24 h notice and the inactivity notice.
	notices24h, inactive int64
	ackWeChat, ackTeams  []time.Duration // how long WeChat's push and Teams' activity waited for their answer
	e2eIn, e2eOut        []time.Duration // from being written to arriving at the other side
	errors               []string
	pgbenchRate          float64
	pgbenchNote          string
	pgbenchInsert        float64 // single-row INSERT transactions per second, same clients
	pgbenchClients       int
	// secrets are the run's credentials and keys, for the test that none reaches the log.
	secrets []string

	// Order and duplicates, seen at the fakes.
	reordered  int64 // arrived before a message written earlier in the same chat and direction
	duplicates int64 // arrivals of a message that had arrived already
	// toCustomer is every employee message that reached a customer, for the cap check.
	toCustomer []arrival
	// With faults: what was injected, and what the archive says (see checkArchive).
	injected map[string]int
	unknown  int64 // acknowledged, archived as outcome unknown, never arrived (the employee was told)
	refused  int64 // employee messages the policy refused (a full queue; the employee was told)
	// unknownSends is how many sends the archive records as outcome unknown, arrived or not.
	unknownSends int
	problems     []string // broken promises: lost, archived twice, over the cap, reordered
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

func (r *loadResult) print(w io.Writer) {
	rate := float64(r.delivered) / r.elapsed.Seconds()
	fmt.Fprintf(w, "wxteams loadtest: %d chats on %s for %s\n\n", r.chats, redact(r.db), r.elapsed.Round(time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "messages delivered end to end\t%d\t(%.0f/s: %d customer→employee, %d employee→customer, %d of them queued first)\n",
		r.delivered, rate, r.toEmployee, r.toClient, r.queued)
	fmt.Fprintf(tw, "on its way when the load stopped (backlog)\t%d\t(%d arrived after the run's end, the last %s after it)\n",
		r.onTheWay, r.late, r.lateBy.Round(time.Millisecond))
	fmt.Fprintf(tw, "lost (acknowledged, never arrived)\t%d\t(%d more still queued at the end, as the policy wants; %d held by the policy after all)\n",
		r.lost, r.stillQueued, r.heldByPolicy)
	fmt.Fprintf(tw, "chat timers fired (seen in Teams)\t%d / %d\t(24 h notices / chats gone inactive)\n", r.notices24h, r.inactive)
	if r.injected != nil {
		var kinds []string
		for k, n := range r.injected {
			kinds = append(kinds, fmt.Sprintf("%s ×%d", k, n))
		}
		slices.Sort(kinds)
		fmt.Fprintf(tw, "faults injected\t%d kinds\t%s\n", len(kinds), strings.Join(kinds, ", "))
		fmt.Fprintf(tw, "outcome unknown (never confirmed, employee told)\t%d\t\n", r.unknown)
		fmt.Fprintf(tw, "refused by the policy (queue full, employee told)\t%d\t\n", r.refused)
		fmt.Fprintf(tw, "reordered / duplicated arrivals\t%d / %d\t\n", r.reordered, r.duplicates)
		fmt.Fprintf(tw, "problems (lost, archived ≠ once, over the cap)\t%d\t\n", len(r.problems))
	}
	fmt.Fprintf(tw, "WeChat push answered\tp50 %s\tp99 %s\n", pct(r.ackWeChat, .5), pct(r.ackWeChat, .99))
	fmt.Fprintf(tw, "Teams activity answered\tp50 %s\tp99 %s\n", pct(r.ackTeams, .5), pct(r.ackTeams, .99))
	fmt.Fprintf(tw, "customer → employee (end to end)\tp50 %s\tp99 %s\n", pct(r.e2eIn, .5), pct(r.e2eIn, .99))
	fmt.Fprintf(tw, "employee → customer (end to end)\tp50 %s\tp99 %s\n", pct(r.e2eOut, .5), pct(r.e2eOut, .99))
	switch {
	case r.pgbenchRate > 0:
		fmt.Fprintf(tw, "pgbench, the same SQL per message\t%.0f/s\tratio %.2f\n", r.pgbenchRate, rate/r.pgbenchRate)
	case r.pgbenchNote != "":
		fmt.Fprintf(tw, "pgbench\t%s\t\n", r.pgbenchNote)
	}
	if r.pgbenchInsert > 0 {
		fmt.Fprintf(tw, "pgbench, one-row INSERT transactions\t%.0f/s\tratio %.3f (%d clients)\n", r.pgbenchInsert, rate/r.pgbenchInsert, r.pgbenchClients)
	}
	if rss := peakRSS(); rss > 0 {
		fmt.Fprintf(tw, "peak RSS of this process\t%.0f MB\t(wxteams, both fakes and the load generator)\n", float64(rss)/(1<<20))
	}
	_ = tw.Flush()
	for i, p := range r.problems {
		if i == 10 {
			fmt.Fprintf(w, "… and %d more problems\n", len(r.problems)-10)
			break
		}
		fmt.Fprintln(w, "problem:", p)
	}
	for i, e := range r.errors {
		if i == 10 {
			fmt.Fprintf(w, "… and %d more errors\n", len(r.errors)-10)
			break
		}
		fmt.Fprintln(w, "error:", e)
	}
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

// loadEmployee is the Entra object id of the load's n-th employee.
func loadEmployee(n int) string { return fmt.Sprintf("10ad0000-0000-4000-8000-%012d", n) }

var marker = regexp.MustCompile(`#L(\d+)#`)

// tracker follows every message from the moment it is written until it arrives.
type tracker struct {
	mu      sync.Mutex
	next    atomic.Int64
	pending map[int64]sent
	arrived chan int64
	// changed is closed (and replaced) at each arrival, to wake waitFor.
	changed chan struct{}
	res     *loadResult
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
	for _, m := range marker.FindAllStringSubmatch(text, -1) {
		id, _ := strconv.ParseInt(m[1], 10, 64)
		t.mu.Lock()
		s, ok := t.pending[id]
		if w, written := t.written[id]; written && !ok {
			t.res.duplicates++
		} else if written {
			// Markers grow in the order a chat's messages are written, in each direction.
			key := direction{w.chat, w.inbound}
			if id < t.last[key] {
				t.res.reordered++
				t.res.problems = append(t.res.problems, fmt.Sprintf("chat %d: #L%d# arrived after #L%d#, written later", w.chat, id, t.last[key]))
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
			t.res.late++
			t.res.lateBy = max(t.res.lateBy, time.Since(t.res.endedAt))
		} else if ok {
			delete(t.pending, id)
			close(t.changed)
			t.changed = make(chan struct{})
			d := time.Since(s.at)
			switch {
			case s.inbound:
				t.res.toEmployee++
				t.res.e2eIn = append(t.res.e2eIn, d)
			case s.queued:
				t.res.toClient++
				t.res.queued++
			default:
				t.res.toClient++
				t.res.e2eOut = append(t.res.e2eOut, d)
			}
			t.res.delivered++
		}
		t.mu.Unlock()
		if ok {
			select {
			case t.arrived <- id:
			default:
			}
		}
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
	t.res.errors = append(t.res.errors, fmt.Sprintf(format, args...))
	t.mu.Unlock()
}

// runLoad runs the load and returns what it measured.
func runLoad(ctx context.Context, env *environment, lc loadOptions) (*loadResult, error) {
	logs := lc.logs
	if logs == nil {
		logs = io.Discard
	}
	level := lc.logLevel
	if level == "" {
		level = "warn"
	}
	loadEnv := &environment{stdout: io.Discard, stderr: logs, getenv: overlay(env.getenv, map[string]string{
		"WXTEAMS_INTERNAL_LISTEN": "127.0.0.1:0", "WXTEAMS_LOG_LEVEL": level, "WXTEAMS_LOG_FORMAT": "json",
		// The fake tenant is the only one; let the bot send as fast as wxteams can.
		"WXTEAMS_BOT_TENANT_RPS": "10000",
		// Nothing in the working folder: exports and keys go to the run's own folder.
		"WXTEAMS_EXPORT_DIR": filepath.Join(lc.keysDir, "exports"),
	})}
	world, cfg, sandboxEnv, err := prepareSandbox(ctx, loadEnv, "127.0.0.1:0", lc.db, "json", filepath.Join(lc.keysDir, "sandbox.keys.json"))
	if err != nil {
		return nil, err
	}
	defer world.stop()
	res := &loadResult{db: lc.db, chats: lc.chats}
	for _, k := range []string{"WXTEAMS_WECHAT_SECRET", "WXTEAMS_WECHAT_TOKEN", "WXTEAMS_WECHAT_AES_KEY", "WXTEAMS_BOT_CLIENT_SECRET"} {
		res.secrets = append(res.secrets, world.env[k])
	}
	// Before serve takes the keys out of cfg (loadCustody).
	res.secrets = append(res.secrets, base64.StdEncoding.EncodeToString(cfg.ArchiveKey), base64.StdEncoding.EncodeToString(cfg.SigningKey))
	serveCtx, stop := context.WithCancel(ctx)
	defer stop()
	started := make(chan *server, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(serveCtx, sandboxEnv, cfg, serveOptions{clock: world.clock, sandbox: world, started: started})
	}()
	var s *server
	select {
	case s = <-started:
	case err := <-done:
		return nil, fmt.Errorf("wxteams did not start: %w", err)
	case <-time.After(60 * time.Second):
		return nil, errors.New("wxteams did not start within a minute")
	}
	defer func() { stop(); <-done }()

	tr := &tracker{pending: map[int64]sent{}, written: map[int64]sent{}, last: map[direction]int64{}, arrived: make(chan int64, 1),
		changed: make(chan struct{}), res: res}
	world.wechat.SetOnDeliver(func(d wechatfake.Delivered) { tr.arrive(d.Text, d.At) })
	if lc.window > 0 {
		p := s.engine.Policy()
		p.Window, p.NoticeAfter = bridge.Duration(lc.window), bridge.Duration(lc.window/2)
		if err := p.Validate(); err != nil {
			return nil, err
		}
		s.engine.SetPolicy(p)
	}
	texts := s.engine.Policy().Employee
	tr.told, tr.toldTexts = map[int]int{}, []string{fixedPart(texts.OutcomeUnknown), fixedPart(texts.QueueFull)}
	notice24h, inactive := fixedPart(texts.Notice24h), fixedPart(texts.Inactive)
	world.teams.SetOnReceive(func(r teamsfake.Received) {
		text := teamsfake.VisibleText(&r.Activity)
		tr.arrive(text, r.At)
		switch {
		case strings.Contains(text, notice24h):
			atomic.AddInt64(&tr.res.notices24h, 1)
		case strings.Contains(text, inactive):
			atomic.AddInt64(&tr.res.inactive, 1)
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
	if lc.faults {
		world.wechat.Pusher().Duplicates = 2 // WeChat pushes every callback three times
	}

	// One employee and one customer per chat; the employee enabled as an administrator would.
	for i := range lc.chats {
		id := loadEmployee(i)
		world.teams.AddUser(id, "Load employee "+strconv.Itoa(i), sandboxTenant)
		if res, err := world.admin.Enable(ctx, bridge.EmployeeProfile{ID: bridge.EmployeeID(id), Name: "Load employee " + strconv.Itoa(i), Tenant: sandboxTenant}, "admin:loadtest"); err != nil || !res.Installed {
			return nil, fmt.Errorf("enable load employee %d: %v %s", i, err, res.InstallError)
		}
		if _, err := world.wechat.ScanScene(ctx, loadCustomer(i), bridge.SceneFor(bridge.EmployeeID(id))); err != nil {
			return nil, fmt.Errorf("customer %d scans: %w", i, err)
		}
	}
	_, _ = s.engine.Drain(ctx) // the welcomes and greetings

	start := time.Now()
	deadline := start.Add(lc.duration)
	var wg sync.WaitGroup
	var rounds atomic.Int64
	stopFaults := func() {}
	if lc.faults {
		stopFaults = injectFaults(world, 300*time.Millisecond, res)
	}
	for i := range lc.chats {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loadChat(ctx, world, tr, i, deadline, lc, &rounds, start)
		}()
	}
	wg.Wait()
	stopFaults()
	tr.mu.Lock()
	for _, p := range tr.pending {
		if !p.queued {
			res.onTheWay++
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
	res.elapsed = max(time.Since(start), lc.duration)
	// A backlog is not a loss: what is still on its way is followed until it arrives, for as long
	// as messages keep arriving.
	tr.mu.Lock()
	tr.over, res.endedAt = true, time.Now()
	tr.mu.Unlock()
	if !lc.faults {
		tr.follow(followIdle, followAtMost)
	}
	if lc.faults {
		if err := settle(ctx, world, s, tr, 3*time.Minute); err != nil {
			return nil, err
		}
	}
	// What has still not arrived may be held by the policy: queued because the chat went inactive
	// or capped meanwhile (a slow run outlasts its short window), or refused; the archive says.
	var facts *archiveFacts
	tr.mu.Lock()
	left := len(tr.pending)
	tr.mu.Unlock()
	if left > 0 && !lc.faults {
		var err error
		if facts, err = readArchive(ctx, s.store); err != nil {
			return nil, fmt.Errorf("read the archive: %w", err)
		}
	}
	tr.mu.Lock()
	for id, p := range tr.pending {
		switch {
		case p.queued:
			res.stillQueued++ // waiting, as it should, for a customer message that never came
		case facts != nil && !p.inbound && facts.queued[facts.messageOf[id]]:
			res.heldByPolicy++ // queued after all: the chat went inactive or capped meanwhile
		case facts != nil && !p.inbound && facts.refused[facts.messageOf[id]]:
			res.heldByPolicy++
		default:
			res.lost++
		}
	}
	tr.mu.Unlock()

	if lc.pgbench && s.store.Dialect() == sqlstore.Postgres {
		// pgbench's clients need connections: wxteams, idle now, keeps few open.
		s.store.DB().SetMaxIdleConns(2)
		res.pgbenchRate, res.pgbenchNote = pgbenchSameSQL(ctx, s, lc)
		res.pgbenchInsert, res.pgbenchClients = pgbenchOneRow(ctx, s, lc), pgbenchClients(lc.chats)
	} else if lc.pgbench {
		res.pgbenchNote = "only on PostgreSQL"
	}
	return res, nil
}

func loadCustomer(n int) string { return fmt.Sprintf("o-load-%05d", n) }

// capOf is the policy's cap of consecutive employee messages.
func capOf(world *sandboxWorld) int { return world.srv.engine.Policy().Cap }

// customerReadingTime is the least time a load customer takes to answer what arrived. A real
// customer reads before replying; one replying within the milliseconds an employee's message is
// still on its way to WeChat makes the engine count that message toward the new streak (it cannot
// know which landed first), and the round's last answer would be queued.
const customerReadingTime = 250 * time.Millisecond

// loadChat runs rounds on one chat until the deadline: the customer writes, the employee answers
// one to four times, and each message is followed until it arrives (a queued one until the next
// round's customer message flushes it).
func loadChat(ctx context.Context, world *sandboxWorld, tr *tracker, i int, deadline time.Time, lc loadOptions, rounds *atomic.Int64, start time.Time) {
	rng := rand.New(rand.NewPCG(uint64(i), 7)) // #nosec G115 G404 -- a load generator's reproducible choices; i >= 0
	employee, customer := loadEmployee(i), loadCustomer(i)
	var (
		queued  []int64
		arrived time.Time // when the last round's answers arrived (or the customer stopped waiting)
		quiet   bool      // the customer stays away past the window before the next round
	)
	for round := 0; time.Now().Before(deadline) && ctx.Err() == nil; round++ {
		pause := customerReadingTime
		if quiet {
			pause = lc.window + 500*time.Millisecond // the 24 h notice and the inactivity fire meanwhile
		}
		if d := pause - time.Since(arrived); d > 0 {
			if time.Now().Add(d).After(deadline) {
				return
			}
			time.Sleep(d)
		}
		quiet = lc.window > 0 && rng.IntN(8) == 0
		if lc.rate > 0 {
			// Spread the chats' rounds evenly at the total rate.
			due := start.Add(time.Duration(float64(rounds.Add(1)) / lc.rate * float64(time.Second)))
			if due.After(deadline) {
				return
			}
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		id, tag := tr.add(true, false, i)
		t0 := time.Now()
		res, _, err := world.wechat.Send(ctx, customer, "Question "+tag+" about the fund")
		ack := time.Since(t0)
		if err != nil || !res.Acked {
			tr.addError("chat %d: customer message not acknowledged: %v", i, err)
			return
		}
		tr.mu.Lock()
		tr.res.ackWeChat = append(tr.res.ackWeChat, ack)
		tr.mu.Unlock()
		// The customer's message flushes what was queued, oldest first, up to the cap of three
		// consecutive employee messages (the rest stay queued for the next one); answers beyond
		// the cap, or behind a queue, are queued.
		released := min(len(queued), capOf(world))
		waitIDs := append([]int64{id}, queued[:released]...)
		streak := released
		queued = slices.Clone(queued[released:])
		answers := 1 + rng.IntN(3)
		if rng.IntN(8) == 0 {
			answers = 4 // over the cap: the last is queued until the customer writes again
		}
		for range answers {
			if len(queued) >= world.srv.engine.Policy().QueueLimit {
				break // the queue is full: the employee waits for the customer, as they are told to
			}
			willQueue := streak >= capOf(world) || len(queued) > 0
			id, tag := tr.add(false, willQueue, i)
			t0 := time.Now()
			if _, err := world.teams.Say(ctx, employee, "Answer "+tag); err != nil {
				tr.addError("chat %d: employee message not accepted: %v", i, err)
				return
			}
			ack := time.Since(t0)
			tr.mu.Lock()
			tr.res.ackTeams = append(tr.res.ackTeams, ack)
			tr.mu.Unlock()
			if willQueue {
				queued = append(queued, id)
			} else {
				streak++
				waitIDs = append(waitIDs, id)
			}
		}
		if lc.faults {
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
func pgbenchOneRow(ctx context.Context, s *server, lc loadOptions) float64 {
	if _, err := s.store.DB().ExecContext(ctx, sqlstore.PgbenchInsertTable); err != nil {
		return 0
	}
	defer s.store.DB().ExecContext(context.WithoutCancel(ctx), `DROP TABLE pgbench_one_row`) //nolint:errcheck // a scratch table
	tps, err := sqlstore.Pgbench(ctx, lc.db, sqlstore.PgbenchInsertScript, pgbenchClients(lc.chats), lc.duration)
	if err != nil {
		return 0
	}
	return tps
}

// pgbenchSameSQL sets up pgbench's fixture (sqlstore.PgbenchFixture) and runs the SQL one message
// costs, with as many clients as the load had chats, for as long as the load ran.
func pgbenchSameSQL(ctx context.Context, s *server, lc loadOptions) (float64, string) {
	chats := make([]int64, lc.chats)
	if _, err := s.engine.EnableEmployee(ctx, bridge.EmployeeProfile{ID: "bench-emp", Name: "pgbench"}, "admin:loadtest"); err != nil {
		return 0, "fixture: " + err.Error()
	}
	for i := range chats {
		contact := bridge.OpenID("bench-c" + strconv.Itoa(i))
		r, err := s.engine.Connect(ctx, bridge.Connect{Contact: contact, Scene: bridge.SceneFor("bench-emp"), Event: "subscribe"})
		if err != nil {
			return 0, "fixture: " + err.Error()
		}
		chats[i] = int64(r.Chat)
	}
	// pgbench's script numbers its clients' chats from the first one.
	if !slices.IsSorted(chats) || chats[len(chats)-1]-chats[0] != int64(len(chats)-1) {
		return 0, "fixture: the chats' ids are not consecutive"
	}
	clients := pgbenchClients(lc.chats)
	runs, err := sqlstore.Pgbench(ctx, lc.db, sqlstore.PgbenchScript(chats[:clients]), clients, lc.duration)
	tps := runs * sqlstore.PgbenchMessages
	if errors.Is(err, exec.ErrNotFound) {
		return 0, "not installed"
	}
	if err != nil {
		return 0, strings.SplitN(err.Error(), "\n", 2)[0]
	}
	return tps, ""
}
