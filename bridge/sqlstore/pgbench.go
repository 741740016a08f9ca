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
	"strings"
	"time"
)

// Comparing wxteams with pgbench running the same SQL on the same database, side by side in one
// run, is how its speed is judged (BENCHMARKS.md): the benchmarks and `wxteams loadtest` use this.

// PgbenchFixture is what the script expects in the database: an employee "bench-emp" and, per
// client, a contact "bench-c<n>" whose chat with bench-emp has the n-th id of chats.
const PgbenchFixture = "employee bench-emp; contacts bench-c0, bench-c1, …; one chat each"

// PgbenchMessages is how many employee messages one run of PgbenchScript stands for: the rate of
// messages is pgbench's rate × PgbenchMessages.
const PgbenchMessages = 4

// PgbenchScript is, for pgbench, the SQL PgbenchMessages employee messages cost the engine (observed
// with log_statement = all): each message's step in its own transaction — idempotency key with the
// author, chat lock, the chat's details, chat state with the outbox row and its lane, archive head, record
// and head moved; then one claim of the PgbenchMessages deliveries (their lane heads with their recipients,
// marked sending, the lanes' due times moved) and one transaction recording their outcomes (items
// locked and marked done, lanes settled, the records archived and the head moved) — the engine
// claims and records deliveries in batches, and 4 is a small batch for a loaded engine. Each
// client writes its own chat: chats must be the ids of chats of the fixture PgbenchFixture
// describes. pgbench reads a colon even inside a string literal as a variable, so literals spell
// ":" as chr(58) and bytes as hex.
func PgbenchScript(chats []int64) string {
	lane := `'wechat' || chr(58) || 'bench-c' || :c::text`
	stream := `'chat' || chr(58) || :chat::text`
	hexOf := func(s string) string { return hex.EncodeToString([]byte(s)) }
	var step strings.Builder
	for i := 1; i <= PgbenchMessages; i++ {
		fmt.Fprintf(&step, `\set k random(1, 1000000000000)
BEGIN;
WITH deferred_0 AS (INSERT INTO seen (key, seen_us) VALUES ('pgbench' || chr(58) || :k::text, :now)) SELECT id, tenant, name, email, enabled, COALESCE(scene, ''), teams_service_url, teams_conversation_id, teams_user_id, reachable, current_chat, updated_us FROM employees WHERE id = 'bench-emp';
SELECT id, tenant, contact, status, last_inbound_us, connected_us, sent_since_inbound, employee_streak, on_hold_prompted, notified_24h, reinstate_sent, members_changed, created_us, updated_us FROM chats WHERE id = :chat FOR UPDATE;
SELECT (SELECT COUNT(*) FROM queue WHERE queue.chat_id = c.id), COALESCE(ct.open_id, ''), COALESCE(ct.union_id, ''), COALESCE(ct.name, ''), COALESCE(ct.language, ''), COALESCE(ct.following, FALSE), COALESCE(ct.updated_us, 0), COALESCE(ct.number, 0), COALESCE(m.employee_id, ''), COALESCE(e.tenant, ''), COALESCE(e.name, ''), COALESCE(e.email, ''), COALESCE(e.enabled, FALSE), COALESCE(e.scene, ''), COALESCE(e.teams_service_url, ''), COALESCE(e.teams_conversation_id, ''), COALESCE(e.teams_user_id, ''), COALESCE(e.reachable, FALSE), COALESCE(e.current_chat, 0), COALESCE(e.updated_us, 0) FROM chats c LEFT JOIN contacts ct ON ct.open_id = c.contact LEFT JOIN chat_members m ON m.chat_id = c.id LEFT JOIN employees e ON e.id = m.employee_id WHERE c.id = :chat ORDER BY m.position;
WITH deferred_0 AS (UPDATE chats SET status = 'active', last_inbound_us = last_inbound_us, connected_us = connected_us, sent_since_inbound = sent_since_inbound + 1, employee_streak = employee_streak + 1, on_hold_prompted = false, notified_24h = false, reinstate_sent = false, members_changed = false, updated_us = :now WHERE id = :chat), item AS (INSERT INTO outbox (chat_id, tenant, channel, lane, employee_id, contact, message_id, auto, payload, data_key, state, attempts, not_before_us, lease_until_us, created_us, template) VALUES (:chat, '', 'wechat', %[1]s, 'bench-emp', 'bench-c' || :c::text, 'm0123456789abcdef0123', false, decode('%[3]s', 'hex'), '', 'pending', 0, :now, 0, :now, '') RETURNING id, lane, channel, not_before_us, message_id), lane AS (INSERT INTO outbox_lanes (lane, channel, head_id, due_us) SELECT DISTINCT ON (lane) lane, channel, id, not_before_us FROM item ORDER BY lane, id ON CONFLICT (lane) DO UPDATE SET lane = EXCLUDED.lane) SELECT id AS ob%[5]d FROM item ORDER BY id \gset
INSERT INTO archive_heads (stream, seq, hash, updated_us) VALUES (%[2]s, 0, sha256(''::bytea), :now) ON CONFLICT (stream) DO UPDATE SET stream = EXCLUDED.stream RETURNING seq AS head \gset
\set next :head + 1
WITH records AS (INSERT INTO archive (stream, seq, tenant, at_us, kind, actor, chat_id, meta, body, body_key, body_hash, prev_hash, hash) VALUES (%[2]s, :next, '', :now, 'employee.message', 'employee' || chr(58) || 'bench-emp', :chat, decode('%[4]s', 'hex'), decode('%[6]s', 'hex'), '', sha256('a'::bytea), sha256('b'::bytea), sha256('c'::bytea))) UPDATE archive_heads SET seq = CASE stream WHEN %[2]s THEN CAST(:next AS BIGINT) END, hash = CASE stream WHEN %[2]s THEN CAST(sha256('c'::bytea) AS BYTEA) END, updated_us = :now WHERE stream IN (%[2]s);
END;
`, lane, stream, hexOf(`{"wechat":{"type":"text","text":"message 1234 of the benchmark"}}`),
			hexOf(`{"message_id":"m0123456789abcdef0123","channel":"teams","direction":"to_customer","employee":"bench-emp","contact":"bench-c1","msg_type":"text"}`),
			i, hexOf(`{"text":"message 1234 of the benchmark"}`))
	}
	var ids, whenAnswered, records []string
	for i := 1; i <= PgbenchMessages; i++ {
		ids = append(ids, fmt.Sprintf(":ob%d", i))
		whenAnswered = append(whenAnswered, fmt.Sprintf("WHEN :ob%d THEN CAST(:now AS BIGINT)", i))
		records = append(records, fmt.Sprintf(`(%s, :head + %d, '', :now, 'delivery.delivered', 'system', :chat, decode('%s', 'hex'), NULL, '', sha256(''::bytea), sha256('c'::bytea), sha256('d'::bytea))`,
			stream, i, hexOf(`{"message_id":"m0123456789abcdef0123","channel":"wechat","contact":"bench-c1","employee":"bench-emp","external_id":"ok","attempt":1}`)))
	}
	in := strings.Join(ids, ", ")
	return fmt.Sprintf(`\set c :client_id %% %[1]d
\set chat :c + %[2]d
\set now 1795000000000000
\set lease :now + 65000000
%[5]sBEGIN;
SELECT o.id, o.chat_id, o.tenant, o.channel, o.lane, o.employee_id, o.contact, o.message_id, o.auto, o.payload, o.data_key, o.state, o.attempts, o.not_before_us, o.lease_until_us, o.created_us, o.template, o.cancel_reason, COALESCE(ct.open_id, ''), COALESCE(ct.union_id, ''), COALESCE(ct.name, ''), COALESCE(ct.language, ''), COALESCE(ct.following, FALSE), COALESCE(ct.updated_us, 0), COALESCE(ct.number, 0), COALESCE(e.id, ''), COALESCE(e.tenant, ''), COALESCE(e.name, ''), COALESCE(e.email, ''), COALESCE(e.enabled, FALSE), COALESCE(e.scene, ''), COALESCE(e.teams_service_url, ''), COALESCE(e.teams_conversation_id, ''), COALESCE(e.teams_user_id, ''), COALESCE(e.reachable, FALSE), COALESCE(e.current_chat, 0), COALESCE(e.updated_us, 0) FROM outbox_lanes l JOIN outbox o ON o.id = l.head_id LEFT JOIN contacts ct ON o.channel = 'wechat' AND ct.open_id = o.contact LEFT JOIN employees e ON o.channel = 'teams' AND e.id = o.employee_id WHERE l.due_us <= :now AND l.channel IN ('wechat', 'teams') AND l.lane = %[3]s ORDER BY l.due_us, l.head_id LIMIT 64 FOR UPDATE OF l, o SKIP LOCKED;
UPDATE outbox SET state = 'sending', attempts = attempts + 1, lease_until_us = :lease WHERE id IN (%[6]s);
UPDATE outbox_lanes SET due_us = :lease WHERE lane IN (%[3]s);
END;
BEGIN;
SELECT id, attempts FROM outbox WHERE id IN (%[6]s) AND state = 'sending' ORDER BY id FOR UPDATE;
UPDATE outbox SET state = 'done', answered_us = CASE id %[7]s END WHERE id IN (%[6]s);
SELECT lane FROM outbox_lanes WHERE lane IN (%[3]s) ORDER BY lane FOR UPDATE;
SELECT lane, id, state, not_before_us, lease_until_us FROM outbox WHERE id IN (SELECT MIN(id) FROM outbox WHERE lane IN (%[3]s) AND state IN ('pending', 'sending') GROUP BY lane);
DELETE FROM outbox_lanes WHERE lane IN (%[3]s);
INSERT INTO archive_heads (stream, seq, hash, updated_us) VALUES (%[4]s, 0, sha256(''::bytea), :now) ON CONFLICT (stream) DO UPDATE SET stream = EXCLUDED.stream RETURNING seq AS head \gset
WITH records AS (INSERT INTO archive (stream, seq, tenant, at_us, kind, actor, chat_id, meta, body, body_key, body_hash, prev_hash, hash) VALUES %[8]s) UPDATE archive_heads SET seq = CASE stream WHEN %[4]s THEN CAST(:head + %[9]d AS BIGINT) END, hash = CASE stream WHEN %[4]s THEN CAST(sha256('d'::bytea) AS BYTEA) END, updated_us = :now WHERE stream IN (%[4]s);
END;
`, len(chats), chats[0], lane, stream, step.String(), in, strings.Join(whenAnswered, " "), strings.Join(records, ", "), PgbenchMessages)
}

// PgbenchInsertTable and PgbenchInsertScript are the floor wxteams is held against: a
// transaction of one single-row INSERT into a table with a primary key and nothing else — the
// least a durable message can cost.
const (
	PgbenchInsertTable  = `CREATE TABLE IF NOT EXISTS pgbench_one_row (id BIGSERIAL PRIMARY KEY, at_us BIGINT NOT NULL)`
	PgbenchInsertScript = "INSERT INTO pgbench_one_row (at_us) VALUES (1795000000000000);\n"
)

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
