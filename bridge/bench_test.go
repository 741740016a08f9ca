package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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
	"github.com/wxteams/wxteams/compliance/supervision"
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

func benchEngineAt(b *testing.B, dbURL string, rate int) {
	benchEngineWith(b, dbURL, rate, nil, benchMessage)
}

// benchMessage is the text of BenchmarkEngine's messages, the one pgbench's script mirrors.
const benchMessage = "message %d of the benchmark"

// BenchmarkEngineRules measures what checking every message against 10,000 terms costs the
// engine: the same saturated run as BenchmarkEngine with the firm's rules off and on, one after
// the other in the same run, with a 300-byte mixed Chinese and English message that matches no term.
//
//	go test -run '^$' -bench BenchmarkEngineRules -benchtime 20000x -count 3 ./bridge/
func BenchmarkEngineRules(b *testing.B) {
	set, err := supervision.Compile(benchRules(10000), nil)
	if err != nil {
		b.Fatal(err)
	}
	const text = "您好，关于您上周询问的基金产品，我们已经整理了最新的季度报告和风险说明。Please find the quarterly factsheet attached; " +
		"the fund's benchmark, fees and risk rating are on page two. 如有任何问题，请随时联系我。Message %d."
	for _, db := range []string{"sqlite", "postgres"} {
		for _, mode := range []string{"off", "on"} {
			b.Run(db+"-"+mode, func(b *testing.B) {
				url := sqlstoretest.SQLiteURL(b)
				if db == "postgres" {
					url = sqlstoretest.PostgresURL(b)
				}
				var rules *supervision.Set
				if mode == "on" {
					rules = set
				}
				benchEngineWith(b, url, 0, rules, text)
			})
		}
	}
}

// benchRules makes n terms in ten rules (block, redact and flag): half Chinese, half English, a
// Traditional variant of every tenth Chinese term, from a fixed seed.
func benchRules(n int) []supervision.Rule {
	rng := rand.New(rand.NewPCG(15, 10000))
	common := []rune("的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坏兴")
	word := func(min, max int) string {
		letters := "abcdefghijklmnopqrstuvwxyz"
		buf := make([]byte, min+rng.IntN(max-min+1))
		for i := range buf {
			buf[i] = letters[rng.IntN(len(letters))]
		}
		return string(buf)
	}
	actions := []supervision.Action{supervision.ActionBlock, supervision.ActionRedact, supervision.ActionFlag}
	rules := make([]supervision.Rule, 10)
	for i := range rules {
		rules[i] = supervision.Rule{ID: "bench-" + strconv.Itoa(i), Version: 1, Name: "Bench " + strconv.Itoa(i),
			Action: actions[i%3], Directions: []supervision.Direction{supervision.ToCustomer, supervision.ToEmployee}}
	}
	for i := range n {
		var term string
		if i%2 == 0 {
			r := make([]rune, 3+rng.IntN(3))
			for j := range r {
				r[j] = common[rng.IntN(len(common))]
			}
			term = string(r)
		} else {
			term = word(6, 10) + " " + word(5, 9)
		}
		rules[i%10].Terms = append(rules[i%10].Terms, supervision.Term{Text: term})
	}
	return rules
}

// benchEngineWith runs the benchmark with the total message rate paced to rate per second, or as
// fast as the chats go when rate is 0, with the firm's rules (nil: none), each message text format
// filled with its number.
func benchEngineWith(b *testing.B, dbURL string, rate int, rules *supervision.Set, format string) {
	ctx := context.Background()
	store := sqlstoretest.Open(b, dbURL)
	policy := bridge.DefaultPolicy()
	policy.Cap, policy.Quota = 1<<30, 1<<30 // every message is delivered: measure the path, not the queue
	wechat, teams := &countingSender{}, &countingSender{}
	engine, err := bridge.NewEngine(bridge.Config{Store: store, WeChat: wechat, Teams: teams, Clock: clock.System{}, Policy: policy, PollInterval: 50 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	engine.SetRules(rules)
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
				_, err := engine.EmployeeWrites(ctx, bridge.EmployeeMessage{Employee: "bench-emp", Chat: chats[c], Message: bridge.TextMessage(fmt.Sprintf(format, i))})
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
	if store.Dialect() != sqlstore.Postgres || rate > 0 || format != benchMessage || elapsed < 2*time.Second {
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
