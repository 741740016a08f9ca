package bridge_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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

var tpsLine = regexp.MustCompile(`tps = ([0-9.]+)`)

// runPgbench runs benchScript with one client per chat for about as long as our run took, and
// returns its messages (script runs) per second.
func runPgbench(b *testing.B, dbURL string, chats []bridge.ChatID, d time.Duration) float64 {
	b.Helper()
	if _, err := exec.LookPath("pgbench"); err != nil {
		b.Log("pgbench not installed; no comparison")
		return 0
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		b.Fatal(err)
	}
	script := filepath.Join(b.TempDir(), "message.sql")
	if err := os.WriteFile(script, []byte(benchScript(chats)), 0o600); err != nil {
		b.Fatal(err)
	}
	secs := max(int(d.Seconds()+0.5), 2)
	pass, _ := u.User.Password()
	cmd := exec.Command("pgbench", "-n", "-M", "prepared", "-c", strconv.Itoa(len(chats)), "-j", "2", "-T", strconv.Itoa(secs),
		"-f", script, "-h", u.Hostname(), "-p", u.Port(), "-U", u.User.Username(), u.Path[1:])
	cmd.Env = append(os.Environ(), "PGOPTIONS=-c search_path="+u.Query().Get("search_path"), "PGPASSWORD="+pass)
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("pgbench: %v\n%s", err, out)
	}
	m := tpsLine.FindSubmatch(out)
	if m == nil {
		b.Fatalf("no tps in pgbench output:\n%s", out)
	}
	tps, _ := strconv.ParseFloat(string(m[1]), 64)
	return tps
}

// benchScript is, for pgbench, the SQL one benchmark message costs the engine: the statements of
// the engine step, the claim, the sender's contact lookup and the recording of the outcome, in the
// same transactions (observed with log_statement = all). Each client writes its own chat. pgbench
// reads a colon even inside a string literal as a variable, so literals spell ":" as chr(58) and
// bytes as hex.
func benchScript(chats []bridge.ChatID) string {
	lane := `'wechat' || chr(58) || 'bench-c' || :c::text`
	stream := `'chat' || chr(58) || :chat::text`
	hexOf := func(s string) string { return hex.EncodeToString([]byte(s)) }
	return fmt.Sprintf(`\set c :client_id %% %[1]d
\set chat :c + %[2]d
\set now 1795000000000000
\set lease :now + 65000000
BEGIN;
SELECT id, tenant, name, email, enabled, COALESCE(scene, ''), teams_service_url, teams_conversation_id, teams_user_id, reachable, current_chat, updated_us FROM employees WHERE id = 'bench-emp';
SELECT id, tenant, contact, status, last_inbound_us, connected_us, sent_since_inbound, employee_streak, on_hold_prompted, notified_24h, reinstate_sent, created_us, updated_us, (SELECT COUNT(*) FROM queue WHERE queue.chat_id = chats.id) FROM chats WHERE id = :chat FOR UPDATE;
SELECT employee_id FROM chat_members WHERE chat_id = :chat ORDER BY position;
SELECT open_id, union_id, name, language, following, updated_us FROM contacts WHERE open_id = 'bench-c' || :c::text;
UPDATE chats SET status = 'active', last_inbound_us = last_inbound_us, connected_us = connected_us, sent_since_inbound = sent_since_inbound + 1, employee_streak = employee_streak + 1, on_hold_prompted = false, notified_24h = false, reinstate_sent = false, updated_us = :now WHERE id = :chat;
INSERT INTO outbox (chat_id, tenant, channel, lane, employee_id, contact, message_id, auto, payload, state, attempts, not_before_us, lease_until_us, created_us) VALUES (:chat, '', 'wechat', %[3]s, 'bench-emp', 'bench-c' || :c::text, 'm0123456789abcdef0123', false, decode('%[5]s', 'hex'), 'pending', 0, :now, 0, :now) RETURNING id AS ob \gset
INSERT INTO outbox_lanes (lane, channel, head_id, due_us) VALUES (%[3]s, 'wechat', :ob, :now) ON CONFLICT (lane) DO UPDATE SET lane = EXCLUDED.lane;
INSERT INTO archive_heads (stream, seq, hash, updated_us) VALUES (%[4]s, 0, sha256(''::bytea), :now) ON CONFLICT (stream) DO UPDATE SET stream = EXCLUDED.stream RETURNING seq AS head \gset
\set next :head + 1
INSERT INTO archive (stream, seq, tenant, at_us, kind, actor, chat_id, meta, body, body_key, body_hash, prev_hash, hash) VALUES (%[4]s, :next, '', :now, 'employee.message', 'employee' || chr(58) || 'bench-emp', :chat, decode('%[6]s', 'hex'), decode('%[7]s', 'hex'), '', sha256('a'::bytea), sha256('b'::bytea), sha256('c'::bytea));
UPDATE archive_heads SET seq = :next, hash = sha256('c'::bytea), updated_us = :now WHERE stream = %[4]s;
END;
BEGIN;
SELECT head_id FROM outbox_lanes WHERE due_us <= :now AND channel IN ('wechat', 'teams') AND lane = %[3]s ORDER BY due_us LIMIT 16 FOR UPDATE SKIP LOCKED;
SELECT id, chat_id, tenant, channel, lane, employee_id, contact, message_id, auto, payload, state, attempts, not_before_us, lease_until_us, created_us FROM outbox WHERE id = :ob FOR UPDATE SKIP LOCKED;
UPDATE outbox SET state = 'sending', attempts = 1, lease_until_us = :lease WHERE id = :ob;
UPDATE outbox_lanes SET due_us = :lease WHERE lane = %[3]s;
END;
SELECT open_id, union_id, name, language, following, updated_us FROM contacts WHERE open_id = 'bench-c' || :c::text;
BEGIN;
SELECT id, chat_id, tenant, channel, lane, employee_id, contact, message_id, auto, payload, state, attempts, not_before_us, lease_until_us, created_us FROM outbox WHERE id = :ob FOR UPDATE;
UPDATE outbox SET state = 'done', attempts = 1, not_before_us = :now, lease_until_us = :lease WHERE id = :ob;
SELECT head_id FROM outbox_lanes WHERE lane = %[3]s FOR UPDATE;
SELECT id, state, not_before_us, lease_until_us FROM outbox WHERE lane = %[3]s AND state IN ('pending', 'sending') ORDER BY id LIMIT 1;
DELETE FROM outbox_lanes WHERE lane = %[3]s;
INSERT INTO archive_heads (stream, seq, hash, updated_us) VALUES (%[4]s, 0, sha256(''::bytea), :now) ON CONFLICT (stream) DO UPDATE SET stream = EXCLUDED.stream RETURNING seq AS head \gset
\set next :head + 1
INSERT INTO archive (stream, seq, tenant, at_us, kind, actor, chat_id, meta, body, body_key, body_hash, prev_hash, hash) VALUES (%[4]s, :next, '', :now, 'delivery.delivered', 'system', :chat, decode('%[8]s', 'hex'), NULL, '', sha256(''::bytea), sha256('c'::bytea), sha256('d'::bytea));
UPDATE archive_heads SET seq = :next, hash = sha256('d'::bytea), updated_us = :now WHERE stream = %[4]s;
END;
`, len(chats), chats[0], lane, stream,
		hexOf(`{"wechat":{"type":"text","text":"message 1234 of the benchmark"}}`),
		hexOf(`{"message_id":"m0123456789abcdef0123","channel":"teams","direction":"to_customer","employee":"bench-emp","contact":"bench-c1","msg_type":"text"}`),
		hexOf(`{"text":"message 1234 of the benchmark"}`),
		hexOf(`{"message_id":"m0123456789abcdef0123","channel":"wechat","contact":"bench-c1","employee":"bench-emp","external_id":"ok","attempt":1}`))
}
