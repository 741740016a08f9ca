package main

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxteams/wxteams/console"
)

// sandboxRun is a `wxteams sandbox` running in-process.
type sandboxRun struct {
	srv   *server
	world *sandboxWorld
	logs  *syncWriter
	stop  func() // stops it; safe to call twice
}

// startSandboxOn runs the sandbox on addr (127.0.0.1:0 for a free port) with the given SQLite
// database; it is stopped when the test ends, or earlier with stop.
func startSandboxOn(t *testing.T, db, addr string) *sandboxRun {
	t.Helper()
	logs := &syncWriter{w: &strings.Builder{}}
	vars := map[string]string{"WXTEAMS_INTERNAL_LISTEN": "127.0.0.1:0", "WXTEAMS_EXPORT_DIR": filepath.Join(filepath.Dir(db), "exports")}
	env := &environment{stdout: io.Discard, stderr: logs, getenv: func(k string) string { return vars[k] }}
	world, cfg, sandboxEnv, err := prepareSandbox(context.Background(), env, addr, "sqlite:"+db, "console", sandboxKeysPath("sqlite:"+db))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan *server, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, sandboxEnv, cfg, serveOptions{clock: world.clock, sandbox: world, started: started})
	}()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
			world.stop()
		}
	}
	t.Cleanup(stop)
	select {
	case s := <-started:
		return &sandboxRun{srv: s, world: world, logs: logs, stop: stop}
	case err := <-done:
		t.Fatalf("sandbox stopped: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		t.Fatal("sandbox did not start")
	}
	return nil
}

// startSandbox runs the sandbox on a free port with a fresh database.
func startSandbox(t *testing.T) *server {
	t.Helper()
	return startSandboxOn(t, filepath.Join(t.TempDir(), "sandbox.db"), "127.0.0.1:0").srv
}

var (
	megan = sandboxStaff[0]
	leeGu = sandboxStaff[2]
)

// waitPane waits until a pane shows want, and returns what it shows.
func waitPane(t *testing.T, what string, pane func() ([]console.PaneItem, error), want string) []console.PaneItem {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var items []console.PaneItem
	var err error
	for time.Now().Before(deadline) {
		if items, err = pane(); err == nil && paneHas(items, want) {
			return items
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never showed %q (err %v); it shows:\n%s", what, want, err, paneText(items))
	return nil
}

func paneHas(items []console.PaneItem, want string) bool {
	return strings.Contains(paneText(items), want)
}

func paneText(items []console.PaneItem) string {
	var b strings.Builder
	for _, it := range items {
		b.WriteString(it.Text)
		if it.Failed {
			b.WriteString(" [failed]")
		}
		b.WriteString("\n")
	}
	return b.String()
}

func (r *sandboxRun) teams(t *testing.T, employee string) func() ([]console.PaneItem, error) {
	return func() ([]console.PaneItem, error) { return r.world.TeamsPane(context.Background(), employee) }
}

func (r *sandboxRun) phone(t *testing.T, openID string) func() ([]console.PaneItem, error) {
	return func() ([]console.PaneItem, error) { return r.world.WeChatPane(context.Background(), openID) }
}

// archived returns the kinds and details of the archive's records, one a line.
func (r *sandboxRun) archived(t *testing.T) string {
	t.Helper()
	items, err := r.world.Timeline(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, it := range items {
		b.WriteString(it.Kind + " · " + it.Detail + "\n")
	}
	return b.String()
}

// connect makes a customer who scans Megan's QR code and writes first.
func (r *sandboxRun) connect(t *testing.T, first string) string {
	t.Helper()
	ctx := context.Background()
	openID, err := r.world.WeChatNew(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.world.WeChatScan(ctx, openID, megan.id); err != nil {
		t.Fatal(err)
	}
	waitPane(t, "the phone", r.phone(t, openID), "You can now start messaging your contact")
	if err := r.world.WeChatSay(ctx, openID, first); err != nil {
		t.Fatal(err)
	}
	waitPane(t, "Megan's Teams", r.teams(t, megan.id), first)
	return openID
}

// Jumping the clock must not break Teams: the fake Entra ID runs on real time, as Microsoft's does
// and as azidentity's token cache does, so a token the bot holds stays good across a jump of the
// sandbox's clock. Before, every delivery after a jump failed with 401.
func TestSandboxTeamsSurvivesClockJumps(t *testing.T) {
	r := startSandboxOn(t, filepath.Join(t.TempDir(), "sandbox.db"), "127.0.0.1:0")
	ctx := context.Background()
	customer := r.connect(t, "Hello Megan")

	if err := r.world.Advance(ctx, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	waitPane(t, "Megan's Teams after 24 h", r.teams(t, megan.id), "has not responded for 24 hours")

	// A new customer after the jump reaches Megan too.
	other := r.connect(t, "Hello from a new customer after the jump")
	if err := r.world.WeChatSay(ctx, customer, "Sorry, I was away"); err != nil {
		t.Fatal(err)
	}
	waitPane(t, "Megan's Teams", r.teams(t, megan.id), "Sorry, I was away")

	if err := r.world.Advance(ctx, 48*time.Hour); err != nil {
		t.Fatal(err)
	}
	waitPane(t, "Megan's Teams after 48 h", r.teams(t, megan.id), "inactive")
	if err := r.world.WeChatSay(ctx, other, "#LEAVE"); err != nil {
		t.Fatal(err)
	}
	waitPane(t, "the phone", r.phone(t, other), "You have left the chat")
	waitPane(t, "Megan's Teams after #LEAVE", r.teams(t, megan.id), "left the chat")

	if log := r.archived(t); strings.Contains(log, "delivery.failed") || strings.Contains(log, "errcode 401") {
		t.Errorf("deliveries failed after the clock jumps:\n%s", log)
	}
}

// #LEAVE on a fresh sandbox, the clock never moved: the customer is told, and so is Megan, whose
// queued message is cancelled.
func TestSandboxLeaveIsShownToTheEmployee(t *testing.T) {
	r := startSandboxOn(t, filepath.Join(t.TempDir(), "sandbox.db"), "127.0.0.1:0")
	ctx := context.Background()
	customer := r.connect(t, "Hi")
	for _, text := range []string{"One", "Two", "Three", "Four, queued"} {
		if err := r.world.TeamsSay(ctx, megan.id, text); err != nil {
			t.Fatal(err)
		}
	}
	waitPane(t, "Megan's Teams", r.teams(t, megan.id), "Queued")
	if err := r.world.WeChatSay(ctx, customer, "#LEAVE"); err != nil {
		t.Fatal(err)
	}
	waitPane(t, "the phone", r.phone(t, customer), "You have left the chat")
	items := waitPane(t, "Megan's Teams", r.teams(t, megan.id), "left the chat")
	if !paneHas(items, "cancelled") {
		t.Errorf("Megan is not told her queued message was cancelled:\n%s", paneText(items))
	}
}

// A restart on the same database keeps Teams working: the fake Bot Connector listens on a new
// port, and Teams tells the bot where its users are now, as it does whenever their serviceUrl
// changes. Before, deliveries went to the old port and were retried for ever.
func TestSandboxRestartOnTheSameDatabase(t *testing.T) {
	db := filepath.Join(t.TempDir(), "sandbox.db")
	first := startSandboxOn(t, db, "127.0.0.1:0")
	ctx := context.Background()
	customer := first.connect(t, "Before the restart")
	first.stop()

	r := startSandboxOn(t, db, "127.0.0.1:0")
	if err := r.world.WeChatSay(ctx, customer, "After the restart"); err != nil {
		t.Fatal(err)
	}
	waitPane(t, "Megan's Teams after the restart", r.teams(t, megan.id), "After the restart")
	if err := r.world.TeamsSay(ctx, megan.id, "Welcome back"); err != nil {
		t.Fatal(err)
	}
	waitPane(t, "the phone after the restart", r.phone(t, customer), "Welcome back")
	log := r.archived(t)
	if strings.Contains(log, "delivery.retry") || strings.Contains(log, "delivery.failed") {
		t.Errorf("deliveries failed after the restart:\n%s", log)
	}
	if !strings.Contains(log, "Teams address updated") {
		t.Errorf("the employees' new Teams address is not archived:\n%s", log)
	}
}

// Lee Gu, the README's employee without WeChat, is known to wxteams (the Users page lists him) and
// is told so when he writes to the bot.
func TestSandboxKnowsLeeGu(t *testing.T) {
	r := startSandboxOn(t, filepath.Join(t.TempDir(), "sandbox.db"), "127.0.0.1:0")
	ctx := context.Background()
	emps, err := r.srv.engine.Employees(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, e := range emps {
		if string(e.ID) == leeGu.id {
			found = true
			if e.Enabled || e.Name != leeGu.name {
				t.Errorf("Lee Gu = %+v; want known by name and not enabled", e)
			}
		}
	}
	if !found {
		t.Fatalf("Lee Gu is not known to wxteams: %d employees", len(emps))
	}
	if err := r.world.TeamsSay(ctx, leeGu.id, "Hello?"); err != nil {
		t.Fatal(err)
	}
	waitPane(t, "Lee Gu's Teams", r.teams(t, leeGu.id), "not enabled")
}

// When wxteams cannot deliver to an employee in Teams, the console says so: a failed delivery
// shows in their Teams pane, and while deliveries are retried the state says why, until one gets
// through.
func TestSandboxShowsTeamsDeliveryFailures(t *testing.T) {
	r := startSandboxOn(t, filepath.Join(t.TempDir(), "sandbox.db"), "127.0.0.1:0")
	ctx := context.Background()
	customer := r.connect(t, "Hello")
	trouble := func() string {
		st, err := r.world.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range st.Employees {
			if e.ID == megan.id {
				return e.TeamsTrouble
			}
		}
		t.Fatal("Megan is not in the sandbox's state")
		return ""
	}
	if got := trouble(); got != "" {
		t.Fatalf("trouble before any failure: %q", got)
	}

	// Teams answers 500, which is not retried: the delivery fails.
	r.world.teams.Storm(http.StatusInternalServerError, 1)
	if err := r.world.WeChatSay(ctx, customer, "This one is lost"); err != nil {
		t.Fatal(err)
	}
	items := waitPane(t, "Megan's Teams", r.teams(t, megan.id), "Not delivered")
	if !strings.Contains(paneText(items), "(Teams answered HTTP 500). It is in the compliance archive. [failed]") {
		t.Errorf("the failure is not marked with Teams' answer:\n%s", paneText(items))
	}
	if got := trouble(); !strings.Contains(got, "did not reach you") {
		t.Errorf("trouble after a failed delivery = %q", got)
	}

	// Teams answers 503 for a while: the delivery is retried, and the state says so.
	r.world.teams.Storm(http.StatusServiceUnavailable, 2)
	if err := r.world.WeChatSay(ctx, customer, "This one arrives late"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for got := trouble(); !strings.Contains(got, "keeps trying"); got = trouble() {
		if time.Now().After(deadline) {
			t.Fatalf("no trouble shown while deliveries are retried: %q", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitPane(t, "Megan's Teams", r.teams(t, megan.id), "This one arrives late")
	if got := trouble(); got != "" {
		t.Errorf("trouble after a delivery got through = %q", got)
	}
}
