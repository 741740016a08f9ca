package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// startSandbox runs `wxteams sandbox` in-process on a free port with a fresh database.
func startSandbox(t *testing.T) *server {
	t.Helper()
	logs := &syncWriter{w: &strings.Builder{}}
	exports := t.TempDir()
	env := &environment{stdout: io.Discard, stderr: logs, getenv: func(k string) string {
		return map[string]string{"WXTEAMS_INTERNAL_LISTEN": "127.0.0.1:0", "WXTEAMS_EXPORT_DIR": exports}[k]
	}}
	db := "sqlite:" + filepath.Join(t.TempDir(), "sandbox.db")
	world, cfg, sandboxEnv, err := prepareSandbox(context.Background(), env, "127.0.0.1:0", db, "console", sandboxKeysPath(db))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	started := make(chan *server, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, sandboxEnv, cfg, serveOptions{clock: world.clock, sandbox: world, started: started})
	}()
	t.Cleanup(func() { stop(); <-done; world.stop() })
	select {
	case s := <-started:
		return s
	case err := <-done:
		t.Fatalf("sandbox stopped: %v\n%s", err, logs)
	case <-time.After(20 * time.Second):
		t.Fatal("sandbox did not start")
	}
	return nil
}

// chromium finds Debian's chromium; without it the browser test is skipped, except under CI.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed: under CI the browser test must run (.ci/run installs it)")
	}
	t.Skip("chromium not installed")
	return ""
}

// artifacts is where screenshots go: WXTEAMS_ARTIFACTS, else the test's temporary folder.
func artifacts(t *testing.T) string {
	dir := os.Getenv("WXTEAMS_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The sandbox story in a real browser, asserting what the page shows: a customer scans Megan's QR
// code, they chat, Megan hits the cap of three and her fourth message is queued, the customer
// replies and the queue flushes, the clock jumps 48 h and the chat goes inactive, the customer
// sends #LEAVE.
func TestSandboxStoryInTheBrowser(t *testing.T) {
	exe := chromium(t)
	s := startSandbox(t)
	shots := artifacts(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.Headless,
		chromedp.WindowSize(1600, 1000), chromedp.Flag("disable-gpu", true))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	defer cancelTimeout()

	url := "http://" + s.publicAddr + "/"
	step := func(name string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			var page string
			_ = chromedp.Run(ctx, chromedp.Text("body", &page, chromedp.ByQuery))
			t.Fatalf("%s: %v\npage:\n%s", name, err, page)
		}
	}
	shot := func(name string) {
		t.Helper()
		var png []byte
		step("screenshot "+name, chromedp.FullScreenshot(&png, 100))
		if err := os.WriteFile(filepath.Join(shots, "sandbox-"+name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// waitText waits until the element's text contains want.
	waitText := func(sel, want string) chromedp.Action {
		return chromedp.ActionFunc(func(ctx context.Context) error {
			deadline := time.Now().Add(20 * time.Second)
			var got string
			for time.Now().Before(deadline) {
				if err := chromedp.Run(ctx, chromedp.Text(sel, &got, chromedp.ByQuery)); err == nil && strings.Contains(got, want) {
					return nil
				}
				time.Sleep(200 * time.Millisecond)
			}
			return &waitError{sel: sel, want: want, got: got}
		})
	}
	say := func(input, text string) chromedp.Action {
		send := strings.TrimSuffix(input, "-text") + "-send"
		return chromedp.Tasks{chromedp.SetValue(input, text, chromedp.ByID), chromedp.Click(send, chromedp.ByID)}
	}

	step("open the console", chromedp.Navigate(url), waitText("#now", "UTC"), waitText("#employee", "Megan Bowen"))
	step("a new customer scans Megan's QR code",
		chromedp.Click("#new-customer", chromedp.ByID), waitText("#customer", "WeChat customer"),
		chromedp.Click("#scan", chromedp.ByID),
		waitText("#wechat-messages", "You can now start messaging your contact"),
		waitText("#teams-messages", "WeChat allows you to send four consecutive messages"))
	shot("1-connected")
	step("the customer writes first", say("wechat-text", "Hello Megan, about the bond fund"),
		waitText("#teams-messages", "Hello Megan, about the bond fund"), waitText("#teams-messages", "3 of 3 replies left"))
	step("Megan answers three times and hits the cap",
		say("teams-text", "Hello! Happy to help."), waitText("#wechat-messages", "Happy to help"),
		say("teams-text", "The fund's fees are 0.4% a year."), waitText("#wechat-messages", "0.4%"),
		say("teams-text", "Shall I send the prospectus?"), waitText("#wechat-messages", "prospectus"),
		waitText("#teams-messages", "maximum limit of three consecutive messages"))
	step("her fourth message is queued and the customer is told the chat is on hold",
		say("teams-text", "It is on its way."), waitText("#teams-messages", "Queued (1 of 10)"),
		waitText("#wechat-messages", "this conversation is on-hold"), waitText("#timeline", "message.queued"))
	shot("2-capped-and-queued")
	step("the customer replies and the queue flushes", say("wechat-text", "Yes please"),
		waitText("#wechat-messages", "It is on its way."), waitText("#timeline", "message.released"))
	shot("3-queue-flushed")
	step("48 hours pass: the chat is inactive", chromedp.Click("#advance-48h", chromedp.ByID),
		waitText("#jumped", "48h"), waitText("#chat-status", "inactive"), waitText("#timeline", "chat.status"))
	shot("4-inactive")
	step("the customer leaves with #LEAVE", chromedp.Click("#leave", chromedp.ByID),
		waitText("#wechat-messages", "You have left the chat"), waitText("#chat-status", "left"))
	shot("5-left")

	// The other pages work in the sandbox too: users with QR codes, the policy, verification.
	step("users", chromedp.Click("#tab-users", chromedp.ByID), waitText("#users-rows", "Megan Bowen"),
		chromedp.WaitVisible("#users-rows img.qr", chromedp.ByQuery))
	shot("6-users")
	step("verify", chromedp.Click("#tab-compliance", chromedp.ByID), chromedp.Click("#verify", chromedp.ByID),
		waitText("#verify-result", "Intact"))
	step("policy", chromedp.Click("#tab-policy", chromedp.ByID), waitText("#policy-json", `"cap": 3`))
	var errorHidden bool
	var errText string
	step("no error shown", chromedp.Evaluate(`document.getElementById("error").hidden`, &errorHidden),
		chromedp.Evaluate(`document.getElementById("error").textContent`, &errText))
	if !errorHidden {
		t.Errorf("the page shows an error: %s", errText)
	}
	t.Logf("screenshots in %s", shots)
}

type waitError struct{ sel, want, got string }

func (e *waitError) Error() string {
	return "waiting for " + e.sel + " to contain " + strconvQuote(e.want) + "; it reads " + strconvQuote(e.got)
}

func strconvQuote(s string) string {
	if len(s) > 600 {
		s = "…" + s[len(s)-600:]
	}
	return "«" + s + "»"
}
