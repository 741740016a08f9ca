package bridge_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/clock"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/compliance"
)

// BenchmarkScale grows one PostgreSQL database to WXTEAMS_BENCH_SCALE chats [10000,100000,1000000],
// ten archived events each (10,000,000 at a million chats), and at each size measures, in the
// same process: the engine step of a customer message and an employee answer on chats picked at
// random among all of them (8 at a time, delivered by the engine as it runs), the timer scan when
// nothing is due and when 1,000 chats' timers fall due at once, and the process's memory while it
// does so (peak RSS from /proc, reset after the fill, and the Go heap). It also times the metrics
// scrape's count of chats by status, which is linear.
//
// The chats are copies of one made through the engine (its rows cloned with SQL); the archive is
// written with compliance.Seal and COPY, so the chains verify.
//
//	WXTEAMS_TEST_POSTGRES=… go test -run '^$' -bench BenchmarkScale -benchtime 1x -timeout 3h ./bridge/
func BenchmarkScale(b *testing.B) {
	sizes := []int{10_000, 100_000, 1_000_000}
	if v := os.Getenv("WXTEAMS_BENCH_SCALE"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(f)
			if err != nil || n < 100 {
				b.Fatalf("WXTEAMS_BENCH_SCALE: %q is not a chat count of at least 100", f)
			}
			sizes = append(sizes, n)
		}
	}
	ctx := context.Background()
	// WXTEAMS_BENCH_SCALE_URL keeps the grown database (a schema of your own, empty at first),
	// for example to run wxteams loadtest on it afterwards.
	dbURL := os.Getenv("WXTEAMS_BENCH_SCALE_URL")
	if dbURL == "" {
		dbURL = sqlstoretest.PostgresURL(b)
	}
	store := sqlstoretest.Open(b, dbURL)
	if store.Dialect() != sqlstore.Postgres {
		b.Skip("PostgreSQL only")
	}
	policy := bridge.DefaultPolicy()
	policy.Cap, policy.Quota = 1<<30, 1<<30 // every message is delivered: measure the path, not the queue
	sender := &countingSender{}
	clk := &clock.Offset{}
	engine, err := bridge.NewEngine(bridge.Config{Store: store, WeChat: sender, Teams: sender, Clock: clk, Policy: policy, PollInterval: 50 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	fill := &scaleFill{db: store.DB(), engine: engine}
	if err := fill.template(ctx); err != nil {
		b.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = engine.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()

	for _, size := range sizes {
		b.Run(fmt.Sprintf("chats-%d", size), func(b *testing.B) {
			t0 := time.Now()
			if err := fill.growTo(ctx, size); err != nil {
				b.Fatal(err)
			}
			b.Logf("grew to %d chats, %d archived events in %s", fill.chats, fill.events, time.Since(t0).Round(time.Second))
			runtime.GC()
			debug.FreeOSMemory()
			resetPeakRSS()
			for b.Loop() {
				steps := scaleSteps(b, engine, fill, 3000)
				slices.Sort(steps.lat)
				b.ReportMetric(float64(len(steps.lat))/steps.elapsed.Seconds(), "steps/s")
				b.ReportMetric(ms(steps.lat[len(steps.lat)/2]), "step-p50-ms")
				b.ReportMetric(ms(steps.lat[len(steps.lat)*99/100]), "step-p99-ms")

				idle, perTimer := scaleTimers(b, engine, fill, clk)
				b.ReportMetric(ms(idle), "idle-scan-ms")
				b.ReportMetric(ms(perTimer), "per-fired-timer-ms")

				// The metrics scrape's count of chats by status (not per message: linear).
				t := time.Now()
				if _, err := store.ChatStates(ctx, clk.Now().Add(-48*time.Hour)); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(ms(time.Since(t)), "chat-states-ms")
			}
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			b.ReportMetric(float64(peakRSS())/(1<<20), "peak-rss-MB")
			b.ReportMetric(float64(m.HeapInuse)/(1<<20), "heap-MB")
		})
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

type stepTimes struct {
	lat     []time.Duration
	elapsed time.Duration
}

// scaleSteps runs n engine steps — a customer message, then the employee's answer — on chats
// picked at random, 8 at a time, and waits for their deliveries.
func scaleSteps(b *testing.B, engine *bridge.Engine, fill *scaleFill, n int) stepTimes {
	ctx := context.Background()
	const workers = 8
	var mu sync.Mutex
	var out stepTimes
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(fill.chats)))
			var lat []time.Duration
			for i := 0; i < n/workers/2; i++ {
				k := rng.IntN(fill.chats) // chat k of the copies: contact, chat id and employee follow from k
				contact := bridge.OpenID(scaleContact(k))
				t := time.Now()
				res, err := engine.CustomerWrites(ctx, bridge.Inbound{Contact: contact, Message: bridge.TextMessage("Is the fund still open? " + strconv.Itoa(i))})
				if err != nil || res.Outcome != bridge.OutcomeSent {
					b.Errorf("customer %s: %+v %v", contact, res, err)
					return
				}
				lat = append(lat, time.Since(t))
				t = time.Now()
				if _, err := engine.EmployeeWrites(ctx, bridge.EmployeeMessage{Employee: bridge.EmployeeID(scaleEmployee(k)), Chat: res.Chat, Message: bridge.TextMessage("It is, until Friday.")}); err != nil {
					b.Errorf("employee of chat %d: %v", res.Chat, err)
					return
				}
				lat = append(lat, time.Since(t))
			}
			mu.Lock()
			out.lat = append(out.lat, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if _, err := engine.Drain(ctx); err != nil {
		b.Fatal(err)
	}
	out.elapsed = time.Since(start)
	return out
}

// scaleTimers measures FireDueTimers with nothing due (the scan every process runs each poll)
// and then with 1,000 chats' 24-hour notice timers made due at once (per timer fired).
func scaleTimers(b *testing.B, engine *bridge.Engine, fill *scaleFill, clk *clock.Offset) (idle, perTimer time.Duration) {
	ctx := context.Background()
	const idleScans = 200
	t := time.Now()
	for range idleScans {
		n, err := engine.FireDueTimers(ctx)
		if err != nil || n != 0 {
			b.Fatalf("idle scan fired %d: %v", n, err)
		}
	}
	idle = time.Since(t) / idleScans
	now := clk.Now().UnixMicro()
	res, err := fill.db.ExecContext(ctx, `UPDATE timers SET due_us = $1 WHERE kind = 'notice24' AND chat_id IN (
		SELECT chat_id FROM timers WHERE kind = 'notice24' AND due_us > $1 AND chat_id <> $3 ORDER BY chat_id LIMIT 1000 OFFSET $2)`,
		now, rand.IntN(max(fill.chats/2, 1)), fill.tmpl) // the template's timers stay: the copies take theirs from it
	if err != nil {
		b.Fatal(err)
	}
	due, _ := res.RowsAffected()
	if due == 0 {
		var kinds string
		_ = fill.db.QueryRowContext(ctx, `SELECT string_agg(kind || ':' || n, ', ') FROM (SELECT kind, count(*) n FROM timers WHERE due_us > $1 GROUP BY kind) k`, now).Scan(&kinds)
		b.Fatalf("no timer was made due (future timers: %s)", kinds)
	}
	// The engine's own timer loop fires some of them too, as another replica would.
	t = time.Now()
	for {
		n, err := engine.FireDueTimers(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if n > 0 {
			continue
		}
		var left int
		if err := fill.db.QueryRowContext(ctx, `SELECT count(*) FROM timers WHERE due_us <= $1`, now).Scan(&left); err != nil {
			b.Fatal(err)
		}
		if left == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	return idle, time.Since(t) / time.Duration(due)
}

// scaleFill grows the database by copying one chat made through the engine.
type scaleFill struct {
	db     *sql.DB
	engine *bridge.Engine
	chats  int   // copies made
	events int64 // archived events of the copies
	tmpl   int64 // the template chat's id
}

const (
	scalePerEmployee = 100 // chats per employee
	scaleEvents      = 10  // archived events per chat
)

func scaleContact(k int) string  { return "o-scale-" + strconv.Itoa(k) }
func scaleEmployee(k int) string { return "scale-emp-" + strconv.Itoa(k/scalePerEmployee) }

// template makes the chat every copy is made from: an enabled employee, a customer who scanned
// the employee's code and wrote (the chat is active, its timers set).
func (f *scaleFill) template(ctx context.Context) error {
	if _, err := f.engine.EnableEmployee(ctx, bridge.EmployeeProfile{ID: "scale-template", Name: "Template"}, "admin:bench"); err != nil {
		return err
	}
	res, err := f.engine.Connect(ctx, bridge.Connect{Contact: "o-scale-template", Scene: bridge.SceneFor("scale-template"), Event: "SCAN"})
	if err != nil {
		return err
	}
	if _, err := f.engine.CustomerWrites(ctx, bridge.Inbound{Contact: "o-scale-template", Message: bridge.TextMessage("hello")}); err != nil {
		return err
	}
	f.tmpl = int64(res.Chat)
	_, err = f.engine.Drain(ctx)
	return err
}

// growTo adds copies of the template until there are n, with their archive.
func (f *scaleFill) growTo(ctx context.Context, n int) error {
	for f.chats < n {
		from, to := f.chats, min(n, f.chats+50_000)
		if err := f.copyChats(ctx, from, to); err != nil {
			return err
		}
		if err := f.archive(ctx, from, to); err != nil {
			return err
		}
		f.chats = to
	}
	_, err := f.db.ExecContext(ctx, `ANALYZE`)
	return err
}

// copyChats clones the template's rows for copies [from, to): employees (one per 100 chats),
// contacts, chats, members and timers (spread over a day, so that they fall due apart).
func (f *scaleFill) copyChats(ctx context.Context, from, to int) error {
	tx, err := f.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmts := []string{
		`INSERT INTO employees (id, tenant, name, email, enabled, scene, teams_service_url, teams_conversation_id, teams_user_id, reachable, current_chat, updated_us)
		 SELECT 'scale-emp-' || g, tenant, 'Employee ' || g, email, enabled, 'scale-scene-' || g, teams_service_url, teams_conversation_id || g, teams_user_id, reachable, 0, updated_us
		 FROM employees, generate_series(($1::int + 99) / 100, ($2::int - 1) / 100) g WHERE id = 'scale-template'`,
		`INSERT INTO contacts (open_id, union_id, name, language, following, updated_us)
		 SELECT 'o-scale-' || g, '', 'Customer ' || g, language, following, updated_us
		 FROM contacts, generate_series($1::int, $2::int - 1) g WHERE open_id = 'o-scale-template'`,
		`INSERT INTO chats (tenant, contact, status, last_inbound_us, connected_us, sent_since_inbound, employee_streak, on_hold_prompted, notified_24h, reinstate_sent, created_us, updated_us)
		 SELECT tenant, 'o-scale-' || g, status, last_inbound_us, connected_us, sent_since_inbound, employee_streak, on_hold_prompted, notified_24h, reinstate_sent, created_us, updated_us
		 FROM chats, generate_series($1::int, $2::int - 1) g WHERE contact = 'o-scale-template' ORDER BY g`,
		`INSERT INTO chat_members (chat_id, employee_id, position)
		 SELECT c.id, 'scale-emp-' || (substr(c.contact, 9)::int / 100), 0 FROM chats c
		 WHERE c.contact LIKE 'o-scale-%' AND c.contact <> 'o-scale-template' AND substr(c.contact, 9)::int >= $1 AND substr(c.contact, 9)::int < $2`,
		`INSERT INTO timers (chat_id, kind, due_us)
		 SELECT c.id, t.kind, t.due_us + (substr(c.contact, 9)::int % 86400)::bigint * 1000000 FROM chats c, timers t
		 WHERE t.chat_id = $3 AND c.contact LIKE 'o-scale-%' AND c.contact <> 'o-scale-template' AND substr(c.contact, 9)::int >= $1 AND substr(c.contact, 9)::int < $2`,
	}
	for i, q := range stmts {
		args := []any{from, to}
		if i == len(stmts)-1 {
			args = append(args, f.tmpl)
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("copy chats [%d, %d) step %d: %w", from, to, i+1, err)
		}
	}
	return tx.Commit()
}

// archive writes scaleEvents chained records per copy [from, to) with COPY, and their heads.
func (f *scaleFill) archive(ctx context.Context, from, to int) error {
	ids := map[int]int64{}
	rows, err := f.db.QueryContext(ctx, `SELECT id, substr(contact, 9)::int FROM chats
		WHERE contact LIKE 'o-scale-%' AND contact <> 'o-scale-template' AND substr(contact, 9)::int >= $1 AND substr(contact, 9)::int < $2`, from, to)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id int64
		var k int
		if err := rows.Scan(&id, &k); err != nil {
			rows.Close()
			return err
		}
		ids[k] = id
	}
	rows.Close()
	tx, err := f.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	records, err := tx.PrepareContext(ctx, pq.CopyIn("archive", "stream", "seq", "tenant", "at_us", "kind", "actor", "chat_id", "meta", "body", "body_key", "body_hash", "prev_hash", "hash"))
	if err != nil {
		return err
	}
	heads := map[string]compliance.Head{}
	at := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	for k := from; k < to; k++ {
		chat := ids[k]
		stream := compliance.ChatStream(chat)
		var head compliance.Head
		for i := range scaleEvents {
			ev := compliance.Event{Stream: stream, ChatID: chat, At: at.Add(time.Duration(k)*time.Second + time.Duration(i)*time.Minute),
				Kind: compliance.KindCustomerMessage, Actor: "customer:" + scaleContact(k),
				Meta:    compliance.Meta{MessageID: fmt.Sprintf("m%07d%02d", k, i), Contact: scaleContact(k), MsgType: "text", Direction: "to_employee"},
				Content: compliance.Content{Text: fmt.Sprintf("Could we talk about the bond fund's fees tomorrow morning? (%d)", i)}}
			if i%2 == 1 {
				ev.Kind, ev.Actor = compliance.KindEmployeeMessage, "employee:"+scaleEmployee(k)
				ev.Meta.Direction, ev.Meta.Employee = "to_customer", scaleEmployee(k)
			}
			r, err := compliance.Seal(head, ev)
			if err != nil {
				return err
			}
			if _, err := records.ExecContext(ctx, r.Stream, r.Seq, r.Tenant, r.At.UnixMicro(), string(r.Kind), r.Actor, r.ChatID, r.Meta, r.Body, "",
				r.BodyHash[:], r.PrevHash[:], r.Hash[:]); err != nil {
				return err
			}
			head = compliance.Head{Seq: r.Seq, Hash: r.Hash}
		}
		heads[stream] = head
	}
	if _, err := records.ExecContext(ctx); err != nil {
		return err
	}
	if err := records.Close(); err != nil {
		return err
	}
	headRows, err := tx.PrepareContext(ctx, pq.CopyIn("archive_heads", "stream", "seq", "hash", "updated_us"))
	if err != nil {
		return err
	}
	for stream, h := range heads {
		if _, err := headRows.ExecContext(ctx, stream, h.Seq, h.Hash[:], at.UnixMicro()); err != nil {
			return err
		}
	}
	if _, err := headRows.ExecContext(ctx); err != nil {
		return err
	}
	if err := headRows.Close(); err != nil {
		return err
	}
	f.events += int64((to - from) * scaleEvents)
	return tx.Commit()
}

// resetPeakRSS resets the kernel's record of the process's peak resident set (Linux ≥ 4.0).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS is the process's peak resident set since resetPeakRSS, in bytes (0 where unknown).
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
