package sqlstore

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// Comparing wxteams with pgbench running the same SQL on the same database, side by side in one
// run, is how its speed is judged (BENCHMARKS.md): the benchmarks and `wxteams loadtest` use this.

// PgbenchFixture is what the script expects in the database: an employee "bench-emp" and, per
// client, a contact "bench-c<n>" whose chat with bench-emp has the n-th id of chats.
const PgbenchFixture = "employee bench-emp; contacts bench-c0, bench-c1, …; one chat each"

// PgbenchScript is, for pgbench, the SQL one employee message costs the engine: the statements of
// the engine step, the claim, the sender's contact lookup and the recording of the outcome, in the
// same transactions (observed with log_statement = all). Each client writes its own chat: chats
// must be the ids of chats of the fixture PgbenchFixture describes. pgbench
// reads a colon even inside a string literal as a variable, so literals spell ":" as chr(58) and
// bytes as hex.
func PgbenchScript(chats []int64) string {
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
UPDATE outbox SET state = 'done', attempts = 1, not_before_us = :now, lease_until_us = :lease, answered_us = :now WHERE id = :ob;
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

var tpsLine = regexp.MustCompile(`tps = ([0-9.]+)`)

// Pgbench runs script with clients for about d on the database at dbURL (PostgreSQL; its
// search_path is passed on) and returns the script runs per second. It returns an error wrapping
// exec.ErrNotFound when pgbench is not installed.
func Pgbench(ctx context.Context, dbURL, script string, clients int, d time.Duration) (float64, error) {
	if _, err := exec.LookPath("pgbench"); err != nil {
		return 0, err
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		return 0, err
	}
	dir, err := os.MkdirTemp("", "wxteams-pgbench")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "message.sql")
	if err := os.WriteFile(file, []byte(script), 0o600); err != nil {
		return 0, err
	}
	secs := max(int(d.Seconds()+0.5), 2)
	pass, _ := u.User.Password()
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	cmd := exec.CommandContext(ctx, "pgbench", "-n", "-M", "prepared", "-c", strconv.Itoa(clients), "-j", "2", "-T", strconv.Itoa(secs),
		"-f", file, "-h", u.Hostname(), "-p", port, "-U", u.User.Username(), u.Path[1:]) // #nosec G204 -- pgbench, with numbers and the test database's URL
	cmd.Env = append(os.Environ(), "PGPASSWORD="+pass)
	if sp := u.Query().Get("search_path"); sp != "" {
		cmd.Env = append(cmd.Env, "PGOPTIONS=-c search_path="+sp)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("pgbench: %w\n%s", err, out)
	}
	m := tpsLine.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no tps in pgbench output:\n%s", out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}
