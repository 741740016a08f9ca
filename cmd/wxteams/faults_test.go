package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/internal/loadtest"
)

// A load with every kind of fault injected throughout — WeChat answering -1, slowly, 45015 and
// 45047, connections reset before and after WeChat acted, access tokens invalidated, Teams 429
// storms and 502/503/504, and WeChat pushing every callback three times — loses nothing: every
// message is archived once and arrives, or is archived as outcome unknown with its employee told;
// nothing arrives twice or out of order within a chat; no customer sees more than the cap in a
// row; the archive verifies. (The checks are the load tool's: internal/loadtest.)
func TestNothingLostUnderFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("a load run with faults")
	}
	for _, db := range []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "faults.db") }},
		{"postgres", func(t *testing.T) string { return sqlstoretest.PostgresURL(t) }},
	} {
		t.Run(db.name, func(t *testing.T) {
			env := &environment{getenv: func(string) string { return "" }}
			res, _, err := runLoad(context.Background(), env, loadOptions{db: db.url(t), keysDir: t.TempDir(),
				load: loadtest.Options{Chats: 8, Duration: 8 * time.Second, Window: 3 * time.Second, Faults: true}})
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			res.Print(&out)
			t.Log("\n" + out.String())
			if len(res.Injected) != len(loadtest.Faults()) {
				t.Errorf("%d kinds of fault injected; want all %d", len(res.Injected), len(loadtest.Faults()))
			}
			// About 120 arrive on a quiet machine; under -race with other work on the cores, 45.
			if res.Delivered < 20 {
				t.Errorf("only %d messages delivered: the load did not run", res.Delivered)
			}
			if res.Notices24h == 0 || res.Inactive == 0 {
				t.Errorf("timers seen in Teams: %d 24 h notices, %d chats gone inactive; want both (customers go quiet past the window)", res.Notices24h, res.Inactive)
			}
			if res.UnknownSends == 0 {
				t.Error("no send was archived as outcome unknown: the connection resets did not bite")
			}
			if res.Lost > 0 || len(res.Problems) > 0 || len(res.Errors) > 0 {
				t.Errorf("lost %d; problems %q; errors %q", res.Lost, res.Problems, res.Errors)
			}
		})
	}
}
