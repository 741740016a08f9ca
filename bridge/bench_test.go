package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/clock"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
)

// BenchmarkEngine measures messages per second through the engine and the store: each message is an
// employee message in an active chat, taken from the engine step (archive, state, outbox in one
// transaction) through delivery (claim, send to an in-memory channel, outcome archived), with
// benchChats chats written concurrently. It reports msgs/s and the p50/p99 latency of the engine
// step. On PostgreSQL it then runs pgbench, in the same run on the same database, with the same SQL
// statements per message (benchScript), and reports pgbench's rate and our ratio to it.
//
//	go test -run '^$' -bench BenchmarkEngine -benchtime 20000x ./bridge/
func BenchmarkEngine(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchEngine(b, sqlstoretest.SQLiteURL(b)) })
	b.Run("postgres", func(b *testing.B) { benchEngine(b, sqlstoretest.PostgresURL(b)) })
}

// BenchmarkEngineAtRate measures the engine step's latency when the database is not saturated:
// the same messages as BenchmarkEngine, paced to a fixed total rate across the chats.
//
//	go test -run '^$' -bench BenchmarkEngineAtRate -benchtime 6000x ./bridge/
func BenchmarkEngineAtRate(b *testing.B) {
	for _, rate := range []int{100, 300, 450} {
		b.Run(fmt.Sprintf("sqlite-%d", rate), func(b *testing.B) { benchEngineAt(b, sqlstoretest.SQLiteURL(b), rate) })
		b.Run(fmt.Sprintf("postgres-%d", rate), func(b *testing.B) { benchEngineAt(b, sqlstoretest.PostgresURL(b), rate) })
	}
}

const benchChats = 8

// countingSender accepts every delivery and counts it.
type countingSender struct{ n atomic.Int64 }

func (c *countingSender) SendWeChat(context.Context, *bridge.Contact, *bridge.WeChatMessage) (bridge.Delivery, error) {
	c.n.Add(1)
	return bridge.Delivery{ID: "ok"}, nil
}

func (c *countingSender) SendTeams(context.Context, *bridge.Employee, *bridge.TeamsMessage) (bridge.Delivery, error) {
	c.n.Add(1)
	return bridge.Delivery{ID: "ok"}, nil
}

func benchEngine(b *testing.B, dbURL string) { benchEngineAt(b, dbURL, 0) }

// benchEngineAt runs the benchmark with the total message rate paced to rate per second, or as
// fast as the chats go when rate is 0.
func benchEngineAt(b *testing.B, dbURL string, rate int) {
	ctx := context.Background()
	store := sqlstoretest.Open(b, dbURL)
	policy := bridge.DefaultPolicy()
	policy.Cap, policy.Quota = 1<<30, 1<<30 // every message is delivered: measure the path, not the queue
	wechat, teams := &countingSender{}, &countingSender{}
	engine, err := bridge.NewEngine(bridge.Config{Store: store, WeChat: wechat, Teams: teams, Clock: clock.System{}, Policy: policy, PollInterval: 50 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := engine.EnableEmployee(ctx, bridge.EmployeeProfile{ID: "bench-emp", Name: "Bench"}, "admin:bench"); err != nil {
		b.Fatal(err)
	}
	chats := make([]bridge.ChatID, benchChats)
	for i := range chats {
		contact := bridge.OpenID(fmt.Sprintf("bench-c%d", i))
		res, err := engine.Connect(ctx, bridge.Connect{Contact: contact, Scene: bridge.SceneFor("bench-emp"), Event: "subscribe"})
		if err != nil {
			b.Fatal(err)
		}
		chats[i] = res.Chat
		if _, err := engine.CustomerWrites(ctx, bridge.Inbound{Contact: contact, Message: bridge.TextMessage("hello")}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := engine.Drain(ctx); err != nil {
		b.Fatal(err)
	}
	base := wechat.n.Load()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = engine.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()

	latencies := make([][]time.Duration, benchChats)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for c := range benchChats {
		n := b.N / benchChats
		if c < b.N%benchChats {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, n)
			var tick <-chan time.Time
			if rate > 0 {
				// Each chat writes every period, the chats spread evenly over it (no bursts).
				period := time.Duration(benchChats) * time.Second / time.Duration(rate)
				time.Sleep(period * time.Duration(c) / benchChats)
				ticker := time.NewTicker(period)
				defer ticker.Stop()
				tick = ticker.C
			}
			for i := range n {
				if tick != nil {
					<-tick
				}
				t := time.Now()
				_, err := engine.EmployeeWrites(ctx, bridge.EmployeeMessage{Employee: "bench-emp", Chat: chats[c], Message: bridge.TextMessage("message " + strconv.Itoa(i) + " of the benchmark")})
				if err != nil {
					b.Error(err)
					return
				}
				lat = append(lat, time.Since(t))
			}
			latencies[c] = lat
		}()
	}
	wg.Wait()
	for wechat.n.Load()-base < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()

	all := slices.Concat(latencies...)
	slices.Sort(all)
	achieved := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(achieved, "msgs/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	if store.Dialect() != sqlstore.Postgres || rate > 0 || elapsed < 2*time.Second {
		return // pgbench only for a saturated run long enough to compare
	}
	pg := runPgbench(b, dbURL, chats, elapsed)
	b.ReportMetric(pg, "pgbench-msgs/s")
	b.ReportMetric(achieved/pg, "ratio")
}

// runPgbench runs the equivalent SQL (sqlstore.PgbenchScript) with one client per chat for about
// as long as our run took, and returns its messages (script runs) per second.
func runPgbench(b *testing.B, dbURL string, chats []bridge.ChatID, d time.Duration) float64 {
	b.Helper()
	ids := make([]int64, len(chats))
	for i, c := range chats {
		ids[i] = int64(c)
	}
	tps, err := sqlstore.Pgbench(context.Background(), dbURL, sqlstore.PgbenchScript(ids), len(chats), d)
	if errors.Is(err, exec.ErrNotFound) {
		b.Log("pgbench not installed; no comparison")
		return 0
	}
	if err != nil {
		b.Fatal(err)
	}
	return tps * sqlstore.PgbenchMessages
}
