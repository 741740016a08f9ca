package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxteams/wxteams/internal/loadtest"
)

// A load run with every log at debug level: no message text, no secret, no key and no token
// appears in the log.
func TestLogsHoldNoSecretsOrBodiesUnderLoad(t *testing.T) {
	logs := &syncWriter{w: &strings.Builder{}}
	env := &environment{getenv: func(string) string { return "" }}
	res, secrets, err := runLoad(context.Background(), env, loadOptions{db: "sqlite:" + filepath.Join(t.TempDir(), "load.db"),
		keysDir: t.TempDir(), logs: logs, logLevel: "debug", load: loadtest.Options{Chats: 4, Duration: 3 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Delivered < 20 || res.Lost > 0 {
		t.Fatalf("the load did not run: %+v", res)
	}
	text := logs.String()
	if !strings.Contains(text, `"level":"debug"`) {
		t.Fatal("no debug log was written: the test would prove nothing")
	}
	if len(secrets) < 6 {
		t.Fatal("the run's secrets are not known to the test")
	}
	for _, secret := range append([]string{"Question #L", "Answer #L", "about the fund", "eyJ", "Bearer "}, secrets...) {
		if strings.Contains(text, secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
}
