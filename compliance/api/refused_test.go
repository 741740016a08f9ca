package api_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/wxteams/wxteams/bridge/clock"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/api"
	"github.com/wxteams/wxteams/compliance/export"
)

// tokens stands for the Entra ID token check: "Bearer cco" is a compliance officer, "Bearer bob" a
// valid token without the role; anything else is refused as unauthenticated.
type tokens struct{}

func (tokens) Authorize(r *http.Request, role, prefix string) (string, int, error) {
	switch r.Header.Get("Authorization") {
	case "Bearer cco":
		return prefix + "cco@acme.example", http.StatusOK, nil
	case "Bearer bob":
		return prefix + "bob@acme.example", http.StatusForbidden, errors.New("the token lacks the app role " + role)
	}
	return "", http.StatusUnauthorized, errors.New("unauthorized: no valid token")
}

type fixture struct {
	api    *api.API
	router *mux.Router
	store  *sqlstore.Store
	clock  *clock.Fake
	path   string // the SQLite file, "" on PostgreSQL
}

func newFixture(t *testing.T, url string) *fixture {
	t.Helper()
	store := sqlstoretest.Open(t, url)
	clk := clock.NewFake(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	a, err := api.New(api.Config{Auth: tokens{}, Archive: store, ExportDir: t.TempDir(), Clock: clk,
		Export: func(context.Context, string, export.Scope, string) (*export.Manifest, error) {
			return nil, errors.New("no exports here")
		}})
	if err != nil {
		t.Fatal(err)
	}
	r := mux.NewRouter()
	a.Routes(r)
	f := &fixture{api: a, router: r, store: store, clock: clk}
	if p, ok := strings.CutPrefix(url, "sqlite:"); ok {
		f.path = p
	}
	return f
}

func (f *fixture) get(target, token, remote string) int {
	req := httptest.NewRequest(http.MethodGet, target, nil)
	req.RemoteAddr = remote
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	f.router.ServeHTTP(w, req)
	return w.Code
}

// size is what the archive holds, in bytes: logically (every stored field of every record) and
// physically (the SQLite file, its write-ahead log checkpointed into it, or PostgreSQL's table
// with its indexes and TOAST).
func (f *fixture) size(t *testing.T) (logical, physical int64) {
	t.Helper()
	ctx := context.Background()
	err := f.store.DB().QueryRowContext(ctx, `SELECT COALESCE(SUM(LENGTH(stream) + LENGTH(tenant) + LENGTH(kind) + LENGTH(actor) + LENGTH(meta)
		+ COALESCE(LENGTH(body), 0) + LENGTH(body_key) + LENGTH(body_hash) + LENGTH(prev_hash) + LENGTH(hash) + 32), 0) FROM archive`).Scan(&logical)
	if err != nil {
		t.Fatal(err)
	}
	if f.path == "" {
		if err := f.store.DB().QueryRowContext(ctx, `SELECT pg_total_relation_size('archive')`).Scan(&physical); err != nil {
			t.Fatal(err)
		}
		return logical, physical
	}
	if _, err := f.store.DB().ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(f.path)
	if err != nil {
		t.Fatal(err)
	}
	return logical, st.Size()
}

// accesses returns the access records of the admin stream, decoded.
func (f *fixture) accesses(t *testing.T) []access {
	t.Helper()
	recs, err := f.store.ArchiveStream(context.Background(), compliance.AdminStream)
	if err != nil {
		t.Fatal(err)
	}
	var out []access
	for _, r := range recs {
		if r.Kind != compliance.KindAccess {
			continue
		}
		m, err := compliance.DecodeMeta(r.Meta)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, access{actor: r.Actor, meta: m})
	}
	return out
}

type access struct {
	actor string
	meta  compliance.Meta
}

// The penetration test's attack, in small: bursts of unauthenticated searches with a 60,000-byte
// query from many addresses. Each window archives ten of them one by one, their query cut to 256
// bytes, and one summary when the window ends; the archive grows by a few kilobytes per window
// however many calls come. Calls with a valid token are archived in full.
func TestRefusedCallsCostTheArchiveABoundedAmount(t *testing.T) {
	sqlstoretest.EachURL(t, func(t *testing.T, url string) {
		f := newFixture(t, url)
		huge := "/compliance/v1/records?q=" + strings.Repeat("A", 60000)
		const windows, burst = 3, 150
		logical0, physical0 := f.size(t)
		for w := range windows {
			var wg sync.WaitGroup
			var mu sync.Mutex
			statuses := map[int]int{}
			for g := range 6 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := g; i < burst; i += 6 {
						// 40 addresses: more than a summary names.
						status := f.get(huge, "", fmt.Sprintf("203.0.113.%d:%d", i%40, 40000+i))
						mu.Lock()
						statuses[status]++
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if statuses[http.StatusUnauthorized] != burst {
				t.Fatalf("window %d: answers %v; want %d × 401", w, statuses, burst)
			}
			// Within the window: ten records of at most ~700 bytes.
			if logical, _ := f.size(t); logical-logical0 > int64(w*(10*700+2048)+10*700) {
				t.Fatalf("window %d: %d calls grew the archive to %d bytes more than before the first", w, burst, logical-logical0)
			}
			f.clock.Advance(time.Minute)
			// The summary is archived when the window ends, by a timer on the clock.
			waitFor(t, "window's summary", func() bool { return summaries(f.accesses(t)) == w+1 })
		}
		logical, physical := f.size(t)
		growth := logical - logical0
		t.Logf("%d unauthenticated calls of 60 kB in %d windows: the archive grew by %d bytes (%d bytes on disk; %d → %d)",
			windows*burst, windows, growth, physical-physical0, physical0, physical)
		// Ten records of at most ~700 bytes and a summary of at most ~2 kB per window.
		if bound := int64(windows * (10*700 + 2048)); growth > bound {
			t.Errorf("the archive grew by %d bytes; the bound is %d", growth, bound)
		}
		if physical-physical0 > 256<<10 {
			t.Errorf("the archive's files grew by %d bytes", physical-physical0)
		}

		recs := f.accesses(t)
		single, summarised := 0, 0
		for _, r := range recs {
			if r.actor != "unauthenticated" || r.meta.ErrCode != http.StatusUnauthorized {
				t.Errorf("access record %+v", r)
				continue
			}
			if r.meta.Query == "" {
				summarised += r.meta.Count
				if len(r.meta.Callers) != 17 || !strings.HasPrefix(r.meta.Callers[16], "other addresses ×") {
					t.Errorf("summary names %d callers (%q); want 16 and the others counted together", len(r.meta.Callers), r.meta.Callers)
				}
				continue
			}
			single++
			if len(r.meta.Query) > 300 || !strings.HasSuffix(r.meta.Query, "(60025 bytes, cut)") || len(r.meta.Callers) != 1 || !strings.HasPrefix(r.meta.Callers[0], "203.0.113.") {
				t.Errorf("a refused call archived as %q from %q", r.meta.Query[:min(len(r.meta.Query), 80)], r.meta.Callers)
			}
		}
		if single != windows*10 || single+summarised != windows*burst {
			t.Errorf("%d calls archived one by one and %d summed up; want %d and %d", single, summarised, windows*10, windows*burst-windows*10)
		}

		// Calls with a valid token are archived in full: the officer's, and one without the role.
		if status := f.get(huge, "cco", "198.51.100.1:5000"); status != http.StatusOK {
			t.Fatalf("the officer's search = %d", status)
		}
		if status := f.get(huge, "bob", "198.51.100.2:5000"); status != http.StatusForbidden {
			t.Fatalf("a search without the role = %d", status)
		}
		full := map[string]bool{}
		for _, r := range f.accesses(t) {
			if r.meta.Query == huge {
				full[r.actor] = true
			}
		}
		if !full["compliance:cco@acme.example"] || !full["unauthorized:bob@acme.example"] {
			t.Errorf("calls with a valid token archived in full: %v; want the officer's and bob's", full)
		}
		if n, err := f.store.VerifyArchive(context.Background()); err != nil {
			t.Errorf("the archive (%d records) does not verify: %v", n, err)
		}
	})
}

// A window's counted calls are archived when the server stops (Close), not lost.
func TestRefusedCallsSummedUpOnClose(t *testing.T) {
	f := newFixture(t, "sqlite:"+filepath.Join(t.TempDir(), "wxteams.db"))
	for i := range 25 {
		f.get("/compliance/v1/holds", "forged", fmt.Sprintf("[2001:db8::%x]:443", i%3))
	}
	if n := summaries(f.accesses(t)); n != 0 {
		t.Fatalf("%d summaries before the window ended", n)
	}
	f.api.Close()
	recs := f.accesses(t)
	if summaries(recs) != 1 {
		t.Fatalf("no summary archived on close: %+v", recs)
	}
	s := recs[len(recs)-1].meta
	want := []string{"2001:db8::0 ×5", "2001:db8::1 ×5", "2001:db8::2 ×5"}
	if s.Count != 15 || strings.Join(s.Callers, ",") != strings.Join(want, ",") {
		t.Errorf("summary = %d calls from %q; want 15 from %q", s.Count, s.Callers, want)
	}
}

func summaries(recs []access) int {
	n := 0
	for _, r := range recs {
		if r.actor == "unauthenticated" && r.meta.Query == "" && r.meta.Count > 0 {
			n++
		}
	}
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for the %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
