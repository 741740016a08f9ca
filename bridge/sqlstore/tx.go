package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/compliance"
)

// querier is a connection pool or a transaction.
type querier interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

// conn runs this store's queries, rebound for its dialect, on a pool or in a transaction.
type conn struct {
	s *Store
	q querier
}

// context is ctx without its cancellation in a transaction shared by a group (SQLite's group
// commit, group.go), where one interrupted statement could roll the others back.
func (t conn) context(ctx context.Context) context.Context {
	if _, shared := t.q.(groupTx); shared {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

func (t conn) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	ctx = t.context(ctx)
	q = t.s.rebind(q)
	if st := t.prepared(ctx, q); st != nil {
		r, err := st.ExecContext(ctx, storable(args)...)
		return r, t.s.wrap(err)
	}
	r, err := t.q.ExecContext(ctx, q, storable(args)...)
	return r, t.s.wrap(err)
}

func (t conn) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	ctx = t.context(ctx)
	q = t.s.rebind(q)
	if st := t.prepared(ctx, q); st != nil {
		rows, err := st.QueryContext(ctx, storable(args)...)
		return rows, t.s.wrap(err)
	}
	rows, err := t.q.QueryContext(ctx, q, storable(args)...)
	return rows, t.s.wrap(err)
}

func (t conn) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	ctx = t.context(ctx)
	q = t.s.rebind(q)
	if st := t.prepared(ctx, q); st != nil {
		return st.QueryRowContext(ctx, storable(args)...)
	}
	return t.q.QueryRowContext(ctx, q, storable(args)...)
}

// prepared returns q as a statement prepared on this connection (stmts), or nil to run it
// unprepared.
func (t conn) prepared(ctx context.Context, q string) *sql.Stmt {
	switch c := t.q.(type) {
	case *sql.Tx:
		if st := t.s.stmts.get(ctx, t.s.db, q); st != nil {
			return c.StmtContext(ctx, st)
		}
	case outboxTx:
		if st := t.s.outboxStmts.get(ctx, t.s.outbox, q); st != nil {
			return c.StmtContext(ctx, st)
		}
	case groupTx:
		if st := t.s.stmts.get(ctx, t.s.db, q); st != nil {
			return c.StmtContext(ctx, st)
		}
	case *sql.DB:
		return t.s.stmts.get(ctx, c, q)
	}
	return nil
}

// outboxTx is a transaction on the store's outbox pool.
type outboxTx struct{ *sql.Tx }

// groupTx is a SQLite transaction shared by a group of write transactions (group.go).
type groupTx struct{ *sql.Tx }

// inTx reports whether the connection is a transaction, whose reads may yet be rolled back.
func (t conn) inTx() bool {
	switch t.q.(type) {
	case *sql.Tx, outboxTx, groupTx:
		return true
	}
	return false
}

// storable makes every string argument storable (compliance.StorableText): PostgreSQL refuses NUL
// bytes and invalid UTF-8 in text, and a message that cannot be stored would be refused forever.
// Both dialects do it, so they hold the same text. Byte slices (bytea) pass unchanged.
func storable(args []any) []any {
	for i, a := range args {
		switch v := a.(type) {
		case string:
			args[i] = compliance.StorableText(v)
		case nil, []byte, int, int64, bool, time.Time, driver.Valuer:
		default:
			if rv := reflect.ValueOf(a); rv.Kind() == reflect.String {
				args[i] = compliance.StorableText(rv.String())
			}
		}
	}
	return args
}

// tx is one transaction; it implements bridge.Tx.
type tx struct {
	conn
	// members remembers each locked chat's members as loaded, so SaveChat rewrites them only on change.
	members map[bridge.ChatID]string
	// pendingKeys are data keys this transaction made or read for sealing, cached after commit.
	pendingKeys map[string]*compliance.DataKey
	// contacts and employees read with a locked chat (its customer and members), or written, in
	// this transaction: Contact and Employee answer from them instead of reading again. A chat's
	// customer changes only in steps that hold the chat's lock; an employee read moments earlier
	// in the same transaction is what a step reading it then would have seen.
	contacts  map[bridge.OpenID]bridge.Contact
	employees map[bridge.EmployeeID]bridge.Employee
	// timers are SetTimer calls not written yet: they are written together, before anything
	// else reads or clears timers and at the latest before commit.
	timers []pendingTimer
	// deferred are writes (PostgreSQL) whose results nothing in the transaction reads: each rides
	// along with a later statement as a data-modifying WITH clause (deferred.go).
	deferred []deferredWrite
	// failed is the first error of writes sent on their own: the transaction ends with it.
	failed error
}

type pendingTimer struct {
	chat bridge.ChatID
	kind bridge.TimerKind
	due  time.Time
}

var _ bridge.Tx = (*tx)(nil)

// Employee reads an employee outside any transaction.
func (s *Store) Employee(ctx context.Context, id bridge.EmployeeID) (*bridge.Employee, error) {
	return conn{s, s.db}.Employee(ctx, id)
}

// Employees lists every employee, outside any transaction.
func (s *Store) Employees(ctx context.Context) ([]*bridge.Employee, error) {
	return conn{s, s.db}.Employees(ctx)
}

// EmployeeByScene reads the employee a QR scene names, outside any transaction.
func (s *Store) EmployeeByScene(ctx context.Context, scene string) (*bridge.Employee, error) {
	return conn{s, s.db}.EmployeeByScene(ctx, scene)
}

// Contact reads a customer outside any transaction.
func (s *Store) Contact(ctx context.Context, id bridge.OpenID) (*bridge.Contact, error) {
	return conn{s, s.db}.Contact(ctx, id)
}

// MediaBySource finds media already fetched from a channel source, outside any transaction.
func (s *Store) MediaBySource(ctx context.Context, source string) (*bridge.Media, error) {
	return conn{s, s.db}.MediaBySource(ctx, source)
}

// MediaData returns stored media bytes by SHA-256, outside any transaction.
func (s *Store) MediaData(ctx context.Context, sha256 string) (*bridge.Media, []byte, error) {
	return conn{s, s.db}.MediaData(ctx, sha256)
}

// notFound turns sql.ErrNoRows into bridge.ErrNotFound and classifies other errors.
func (t conn) notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, bridge.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, t.s.wrap(err))
	}
	return nil
}

// FirstSeen records an idempotency key. On SQLite it says at once whether the key is new. On
// PostgreSQL the key rides with the transaction's next statement (deferred.go), saving the round
// trip of its own that every step of a WeChat push or a Teams activity paid, and FirstSeen says
// true: a key recorded before fails that statement, and the transaction, with bridge.ErrDuplicate
// (wrap), before the step has written anything.
func (t *tx) FirstSeen(ctx context.Context, key string, now time.Time) (bool, error) {
	if t.s.dialect == Postgres {
		return true, t.later(ctx, "seen", `INSERT INTO seen (key, seen_us) VALUES ($1, $2)`, key, us(now))
	}
	r, err := t.exec(ctx, `INSERT INTO seen (key, seen_us) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`, key, us(now))
	if err != nil {
		return false, fmt.Errorf("record idempotency key: %w", err)
	}
	n, err := r.RowsAffected()
	return n == 1, err
}

const employeeColumns = `id, tenant, name, email, enabled, COALESCE(scene, ''), teams_service_url, teams_conversation_id,
	teams_user_id, reachable, current_chat, updated_us`

func scanEmployee(row interface{ Scan(...any) error }) (*bridge.Employee, error) {
	var (
		e       bridge.Employee
		current int64
		updated int64
	)
	err := row.Scan(&e.ID, &e.Tenant, &e.Name, &e.Email, &e.Enabled, &e.Scene, &e.Teams.ServiceURL,
		&e.Teams.ConversationID, &e.Teams.UserID, &e.Reachable, &current, &updated)
	e.CurrentChat, e.UpdatedAt = bridge.ChatID(current), fromUS(updated)
	return &e, err
}

// Employee reads an employee, or returns the one this transaction read or wrote already.
func (t *tx) Employee(ctx context.Context, id bridge.EmployeeID) (*bridge.Employee, error) {
	if e, ok := t.employees[id]; ok {
		return &e, nil
	}
	// The first read of an employee's step: it carries the step's idempotency key.
	q, args, err := t.carryingKey(ctx, `SELECT `+employeeColumns+` FROM employees WHERE id = $1`, []any{id}, false)
	if err != nil {
		return nil, err
	}
	e, err := scanEmployee(t.conn.queryRow(ctx, q, args...))
	if err = t.carried(t.notFound(err, "employee "+string(id))); err != nil {
		return nil, err
	}
	t.rememberEmployee(e)
	return e, nil
}

func (t *tx) rememberEmployee(e *bridge.Employee) {
	if t.employees == nil {
		t.employees = map[bridge.EmployeeID]bridge.Employee{}
	}
	t.employees[e.ID] = *e
}

// Contact reads a customer, or returns the one this transaction read or wrote already.
func (t *tx) Contact(ctx context.Context, id bridge.OpenID) (*bridge.Contact, error) {
	if c, ok := t.contacts[id]; ok {
		return &c, nil
	}
	c, err := t.conn.Contact(ctx, id)
	if err == nil {
		t.rememberContact(c)
	}
	return c, err
}

func (t *tx) rememberContact(c *bridge.Contact) {
	if t.contacts == nil {
		t.contacts = map[bridge.OpenID]bridge.Contact{}
	}
	t.contacts[c.OpenID] = *c
}

func (t conn) Employee(ctx context.Context, id bridge.EmployeeID) (*bridge.Employee, error) {
	e, err := scanEmployee(t.queryRow(ctx, `SELECT `+employeeColumns+` FROM employees WHERE id = $1`, id))
	return e, t.notFound(err, "employee "+string(id))
}

func (t conn) Employees(ctx context.Context) ([]*bridge.Employee, error) {
	rows, err := t.query(ctx, `SELECT `+employeeColumns+` FROM employees ORDER BY name, id`)
	if err != nil {
		return nil, fmt.Errorf("list employees: %w", err)
	}
	defer rows.Close()
	var out []*bridge.Employee
	for rows.Next() {
		e, err := scanEmployee(rows)
		if err != nil {
			return nil, fmt.Errorf("list employees: %w", t.s.wrap(err))
		}
		out = append(out, e)
	}
	return out, t.s.wrap(rows.Err())
}

func (t conn) EmployeeByScene(ctx context.Context, scene string) (*bridge.Employee, error) {
	e, err := scanEmployee(t.queryRow(ctx, `SELECT `+employeeColumns+` FROM employees WHERE scene = $1`, scene))
	return e, t.notFound(err, "employee with scene "+scene)
}

func (t *tx) PutEmployee(ctx context.Context, e *bridge.Employee) error {
	var scene any
	if e.Scene != "" {
		scene = e.Scene
	}
	_, err := t.exec(ctx, `INSERT INTO employees (id, tenant, name, email, enabled, scene, teams_service_url,
			teams_conversation_id, teams_user_id, reachable, current_chat, updated_us)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (id) DO UPDATE SET tenant = EXCLUDED.tenant, name = EXCLUDED.name, email = EXCLUDED.email,
			enabled = EXCLUDED.enabled, scene = EXCLUDED.scene, teams_service_url = EXCLUDED.teams_service_url,
			teams_conversation_id = EXCLUDED.teams_conversation_id, teams_user_id = EXCLUDED.teams_user_id,
			reachable = EXCLUDED.reachable, current_chat = EXCLUDED.current_chat, updated_us = EXCLUDED.updated_us`,
		e.ID, e.Tenant, e.Name, e.Email, e.Enabled, scene, e.Teams.ServiceURL, e.Teams.ConversationID,
		e.Teams.UserID, e.Reachable, int64(e.CurrentChat), us(e.UpdatedAt))
	if err != nil {
		return fmt.Errorf("store employee %s: %w", e.ID, err)
	}
	t.rememberEmployee(e)
	return nil
}

func (t conn) Contact(ctx context.Context, id bridge.OpenID) (*bridge.Contact, error) {
	var (
		c       bridge.Contact
		updated int64
	)
	err := t.queryRow(ctx, `SELECT open_id, union_id, name, language, following, updated_us, number FROM contacts WHERE open_id = $1`, id).
		Scan(&c.OpenID, &c.UnionID, &c.Name, &c.Language, &c.Following, &updated, &c.Number)
	c.UpdatedAt = fromUS(updated)
	return &c, t.notFound(err, "contact "+string(id))
}

// PutContact stores a contact; a new one gets the next number (two writers that take the same
// one meet the unique index and the step is retried). The next number is read backwards from the
// partial index on number, one index entry on either database.
func (t *tx) PutContact(ctx context.Context, c *bridge.Contact) error {
	err := t.queryRow(ctx, `INSERT INTO contacts (open_id, union_id, name, language, following, updated_us, number)
		VALUES ($1, $2, $3, $4, $5, $6, (SELECT COALESCE(MAX(number), 0) + 1 FROM contacts WHERE number > 0))
		ON CONFLICT (open_id) DO UPDATE SET union_id = EXCLUDED.union_id, name = EXCLUDED.name,
			language = EXCLUDED.language, following = EXCLUDED.following, updated_us = EXCLUDED.updated_us
		RETURNING number`,
		c.OpenID, c.UnionID, c.Name, c.Language, c.Following, us(c.UpdatedAt)).Scan(&c.Number)
	if err != nil {
		return fmt.Errorf("store contact %s: %w", c.OpenID, t.s.wrap(err))
	}
	t.rememberContact(c)
	return nil
}

const chatColumns = `id, tenant, contact, status, last_inbound_us, connected_us, sent_since_inbound, employee_streak,
	on_hold_prompted, notified_24h, reinstate_sent, members_changed, created_us, updated_us`

// chatDetailsSQL reads, once a chat is locked, what changes under its lock (the queue's length,
// the members) and what its steps read next (its customer, its members' employee records), in
// one round trip. It runs after the lock is granted, as its own statement, so it sees what the
// transaction that held the lock before committed.
const chatDetailsSQL = `SELECT (SELECT COUNT(*) FROM queue WHERE queue.chat_id = c.id),
		COALESCE(ct.open_id, ''), COALESCE(ct.union_id, ''), COALESCE(ct.name, ''), COALESCE(ct.language, ''),
		COALESCE(ct.following, FALSE), COALESCE(ct.updated_us, 0), COALESCE(ct.number, 0),
		COALESCE(m.employee_id, ''), COALESCE(e.tenant, ''), COALESCE(e.name, ''), COALESCE(e.email, ''), COALESCE(e.enabled, FALSE),
		COALESCE(e.scene, ''), COALESCE(e.teams_service_url, ''), COALESCE(e.teams_conversation_id, ''),
		COALESCE(e.teams_user_id, ''), COALESCE(e.reachable, FALSE), COALESCE(e.current_chat, 0), COALESCE(e.updated_us, 0)
	FROM chats c LEFT JOIN contacts ct ON ct.open_id = c.contact
		LEFT JOIN chat_members m ON m.chat_id = c.id LEFT JOIN employees e ON e.id = m.employee_id
	WHERE c.id = $1 ORDER BY m.position`

func (t *tx) LockChat(ctx context.Context, id bridge.ChatID) (*bridge.Chat, error) {
	return t.lockChat(ctx, `SELECT `+chatColumns+` FROM chats WHERE id = $1 FOR UPDATE`, int64(id), "chat "+id.String())
}

func (t *tx) LockChatByContact(ctx context.Context, contact bridge.OpenID) (*bridge.Chat, error) {
	return t.lockChat(ctx, `SELECT `+chatColumns+` FROM chats WHERE contact = $1 FOR UPDATE`, string(contact), "chat of "+string(contact))
}

func (t *tx) lockChat(ctx context.Context, q string, arg any, what string) (*bridge.Chat, error) {
	var (
		c                                  bridge.Chat
		id, lastIn, conn, created, updated int64
	)
	// The first read of a customer's step: it carries the step's idempotency key.
	q, args, err := t.carryingKey(ctx, q, []any{arg}, true)
	if err != nil {
		return nil, err
	}
	err = t.conn.queryRow(ctx, q, args...).Scan(&id, &c.Tenant, &c.Contact, &c.Status, &lastIn, &conn, &c.SentSinceInbound,
		&c.EmployeeStreak, &c.OnHoldPrompted, &c.Notified24h, &c.ReinstateSent, &c.MembersChanged, &created, &updated)
	if err := t.carried(t.notFound(err, what)); err != nil {
		return nil, err
	}
	c.ID = bridge.ChatID(id)
	c.LastInboundAt, c.ConnectedAt, c.CreatedAt, c.UpdatedAt = fromUS(lastIn), fromUS(conn), fromUS(created), fromUS(updated)
	rows, err := t.query(ctx, chatDetailsSQL, id)
	if err != nil {
		return nil, fmt.Errorf("members of %s: %w", what, err)
	}
	defer rows.Close()
	var (
		contact    bridge.Contact
		employees  []*bridge.Employee
		ctUpdated  int64
		empUpdated int64
		current    int64
	)
	for rows.Next() {
		var e bridge.Employee
		if err := rows.Scan(&c.QueueLen, &contact.OpenID, &contact.UnionID, &contact.Name, &contact.Language, &contact.Following, &ctUpdated,
			&contact.Number, &e.ID, &e.Tenant, &e.Name, &e.Email, &e.Enabled, &e.Scene, &e.Teams.ServiceURL, &e.Teams.ConversationID,
			&e.Teams.UserID, &e.Reachable, &current, &empUpdated); err != nil {
			return nil, fmt.Errorf("members of %s: %w", what, t.s.wrap(err))
		}
		if e.ID == "" {
			continue // no members
		}
		e.CurrentChat, e.UpdatedAt = bridge.ChatID(current), fromUS(empUpdated)
		c.Members = append(c.Members, e.ID)
		employees = append(employees, &e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("members of %s: %w", what, t.s.wrap(err))
	}
	if contact.OpenID != "" {
		contact.UpdatedAt = fromUS(ctUpdated)
		t.rememberContact(&contact)
	}
	for _, e := range employees {
		t.rememberEmployee(e)
	}
	t.members[c.ID] = memberKey(c.Members)
	return &c, nil
}

func memberKey(m []bridge.EmployeeID) string {
	parts := make([]string, len(m))
	for i, id := range m {
		parts[i] = string(id)
	}
	return strings.Join(parts, "\x00")
}

func (t *tx) CreateChat(ctx context.Context, c *bridge.Chat) error {
	var id int64
	err := t.queryRow(ctx, `INSERT INTO chats (tenant, contact, status, last_inbound_us, connected_us, sent_since_inbound,
			employee_streak, on_hold_prompted, notified_24h, reinstate_sent, members_changed, created_us, updated_us)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		ON CONFLICT (contact) DO NOTHING RETURNING id`,
		c.Tenant, c.Contact, c.Status, us(c.LastInboundAt), us(c.ConnectedAt), c.SentSinceInbound, c.EmployeeStreak,
		c.OnHoldPrompted, c.Notified24h, c.ReinstateSent, c.MembersChanged, us(c.CreatedAt), us(c.CreatedAt)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("chat of %s: %w", c.Contact, bridge.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create chat of %s: %w", c.Contact, t.s.wrap(err))
	}
	c.ID = bridge.ChatID(id)
	t.members[c.ID] = ""
	return t.saveMembers(ctx, c)
}

func (t *tx) SaveChat(ctx context.Context, c *bridge.Chat) error {
	err := t.later(ctx, "chats", `UPDATE chats SET status = $2, last_inbound_us = $3, connected_us = $4, sent_since_inbound = $5,
			employee_streak = $6, on_hold_prompted = $7, notified_24h = $8, reinstate_sent = $9, members_changed = $10,
			updated_us = $11
		WHERE id = $1`,
		int64(c.ID), c.Status, us(c.LastInboundAt), us(c.ConnectedAt), c.SentSinceInbound, c.EmployeeStreak,
		c.OnHoldPrompted, c.Notified24h, c.ReinstateSent, c.MembersChanged, us(c.UpdatedAt))
	if err != nil {
		return fmt.Errorf("save chat %d: %w", c.ID, err)
	}
	return t.saveMembers(ctx, c)
}

func (t *tx) saveMembers(ctx context.Context, c *bridge.Chat) error {
	key := memberKey(c.Members)
	if old, ok := t.members[c.ID]; ok && old == key {
		return nil
	}
	if _, err := t.exec(ctx, `DELETE FROM chat_members WHERE chat_id = $1`, int64(c.ID)); err != nil {
		return fmt.Errorf("members of chat %d: %w", c.ID, err)
	}
	for i, m := range c.Members {
		if _, err := t.exec(ctx, `INSERT INTO chat_members (chat_id, employee_id, position) VALUES ($1, $2, $3)`, int64(c.ID), m, i); err != nil {
			return fmt.Errorf("members of chat %d: %w", c.ID, err)
		}
	}
	t.members[c.ID] = key
	return nil
}

// ChatsOf lists the chats an employee is in, outside any transaction.
func (s *Store) ChatsOf(ctx context.Context, emp bridge.EmployeeID) ([]bridge.ChatSummary, error) {
	return conn{s, s.db}.ChatsOf(ctx, emp)
}

// ChatsOf lists an employee's chats with their members, one row per chat and member, in one
// statement (so one snapshot, outside a transaction too).
func (t conn) ChatsOf(ctx context.Context, emp bridge.EmployeeID) ([]bridge.ChatSummary, error) {
	rows, err := t.query(ctx, `SELECT c.id, c.contact, ct.name, ct.number, c.status, c.last_inbound_us,
			(SELECT COUNT(*) FROM queue q WHERE q.chat_id = c.id), o.employee_id
		FROM chat_members m JOIN chats c ON c.id = m.chat_id JOIN contacts ct ON ct.open_id = c.contact
			JOIN chat_members o ON o.chat_id = c.id
		WHERE m.employee_id = $1 ORDER BY c.last_inbound_us DESC, c.id DESC, o.position`, emp)
	if err != nil {
		return nil, fmt.Errorf("chats of %s: %w", emp, err)
	}
	defer rows.Close()
	var out []bridge.ChatSummary
	for rows.Next() {
		var (
			c      bridge.ChatSummary
			id, in int64
			name   string
			number int64
			member bridge.EmployeeID
		)
		if err := rows.Scan(&id, &c.Contact, &name, &number, &c.Status, &in, &c.QueueLen, &member); err != nil {
			return nil, fmt.Errorf("chats of %s: %w", emp, t.s.wrap(err))
		}
		if n := len(out); n > 0 && out[n-1].Chat == bridge.ChatID(id) {
			out[n-1].Members = append(out[n-1].Members, member)
			continue
		}
		ct := bridge.Contact{OpenID: c.Contact, Name: name, Number: number}
		c.Chat, c.ContactName, c.LastInboundAt, c.Members = bridge.ChatID(id), ct.DisplayName(), fromUS(in), []bridge.EmployeeID{member}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chats of %s: %w", emp, t.s.wrap(err))
	}
	return out, nil
}

func (t *tx) Queue(ctx context.Context, chat bridge.ChatID) ([]*bridge.QueuedMessage, error) {
	rows, err := t.query(ctx, `SELECT id, employee_id, message_id, message, data_key, queued_us FROM queue WHERE chat_id = $1 ORDER BY position`, int64(chat))
	if err != nil {
		return nil, fmt.Errorf("queue of chat %d: %w", chat, err)
	}
	defer rows.Close()
	type sealed struct {
		q    *bridge.QueuedMessage
		body []byte
		key  string
	}
	var read []sealed
	for rows.Next() {
		var (
			r      = sealed{q: &bridge.QueuedMessage{ChatID: chat}}
			queued int64
		)
		if err := rows.Scan(&r.q.ID, &r.q.Employee, &r.q.MessageID, &r.body, &r.key, &queued); err != nil {
			return nil, fmt.Errorf("queue of chat %d: %w", chat, err)
		}
		r.q.QueuedAt = fromUS(queued)
		read = append(read, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("queue of chat %d: %w", chat, t.s.wrap(err))
	}
	// Opened once the rows are read: opening may look up a data key, and a PostgreSQL connection
	// answers one query at a time.
	rows.Close()
	out := make([]*bridge.QueuedMessage, 0, len(read))
	for _, r := range read {
		body, err := t.s.openWith(ctx, t.conn, r.key, r.body, queueAAD(r.q.MessageID))
		if err != nil {
			return nil, fmt.Errorf("queue of chat %d: message %s: %w", chat, r.q.MessageID, err)
		}
		if err := json.Unmarshal(body, &r.q.Message); err != nil {
			return nil, fmt.Errorf("queue of chat %d: message %s: %w", chat, r.q.MessageID, err)
		}
		out = append(out, r.q)
	}
	return out, nil
}

func (t *tx) PushQueue(ctx context.Context, q *bridge.QueuedMessage, front bool) error {
	body, err := json.Marshal(q.Message)
	if err != nil {
		return fmt.Errorf("encode queued message: %w", err)
	}
	body, key, err := t.sealFor(ctx, "", body, queueAAD(q.MessageID))
	if err != nil {
		return fmt.Errorf("queue message in chat %d: %w", q.ChatID, err)
	}
	pos := `COALESCE(MAX(position), 0) + 1`
	if front {
		pos = `COALESCE(MIN(position), 0) - 1`
	}
	err = t.queryRow(ctx, `INSERT INTO queue (chat_id, position, employee_id, message_id, message, data_key, queued_us)
		SELECT $1, `+pos+`, $2, $3, $4, $6, $5 FROM queue WHERE chat_id = $1 RETURNING id`,
		int64(q.ChatID), q.Employee, q.MessageID, body, us(q.QueuedAt), key).Scan(&q.ID)
	if err != nil {
		return fmt.Errorf("queue message in chat %d: %w", q.ChatID, t.s.wrap(err))
	}
	return nil
}

func (t *tx) RemoveQueued(ctx context.Context, ids ...int64) error {
	for _, id := range ids {
		if _, err := t.exec(ctx, `DELETE FROM queue WHERE id = $1`, id); err != nil {
			return fmt.Errorf("remove queued message %d: %w", id, err)
		}
	}
	return nil
}

// outboxPayload is how an outbox item's message is stored.
type outboxPayload struct {
	WeChat *bridge.WeChatMessage `json:"wechat,omitempty"`
	Teams  *bridge.TeamsMessage  `json:"teams,omitempty"`
}

func (t *tx) AddOutbox(ctx context.Context, items ...*bridge.OutboxItem) error {
	const columns = `INSERT INTO outbox (chat_id, tenant, channel, lane, employee_id, contact, message_id, auto, payload,
				data_key, state, attempts, not_before_us, lease_until_us, created_us, template) VALUES `
	var (
		values strings.Builder
		args   []any
	)
	for i, it := range items {
		payload, err := json.Marshal(outboxPayload{WeChat: it.WeChat, Teams: it.Teams})
		if err != nil {
			return fmt.Errorf("encode outbox message: %w", err)
		}
		payload, key, err := t.sealFor(ctx, it.Tenant, payload, outboxAAD(it.MessageID))
		if err != nil {
			return fmt.Errorf("add outbox item: %w", err)
		}
		row := []any{int64(it.ChatID), it.Tenant, it.Channel, it.Lane, it.Employee, it.Contact, it.MessageID, it.Auto, payload,
			key, it.State, it.Attempts, us(it.NotBefore), us(it.LeaseUntil), us(it.CreatedAt), it.Template}
		if t.s.dialect != Postgres {
			if err := t.queryRow(ctx, columns+`($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id`, row...).Scan(&it.ID); err != nil {
				return fmt.Errorf("add outbox item: %w", t.s.wrap(err))
			}
			// The first item of an idle lane becomes its head. On a busy lane the upsert changes
			// nothing but holds the lane row, so the item ahead cannot finish and retire the lane
			// meanwhile.
			_, err = t.exec(ctx, `INSERT INTO outbox_lanes (lane, channel, head_id, due_us) VALUES ($1, $2, $3, $4)
				ON CONFLICT (lane) DO UPDATE SET lane = EXCLUDED.lane`, it.Lane, it.Channel, it.ID, us(it.NotBefore))
			if err != nil {
				return fmt.Errorf("add outbox item to lane %s: %w", it.Lane, err)
			}
			continue
		}
		if i > 0 {
			values.WriteString(", ")
		}
		values.WriteString(placeholderRow(len(args), len(row)))
		args = append(args, row...)
	}
	if t.s.dialect != Postgres || len(items) == 0 {
		return nil
	}
	// PostgreSQL, one round trip: the items (their ids drawn in the order of the rows), their
	// lanes upserted as above in the order of their names (as a batch of outcomes locks them), and
	// the writes waiting to go.
	q, a, err := t.carryingFor(ctx, `WITH item AS (`+columns+values.String()+` RETURNING id, lane, channel, not_before_us, message_id),
			lane AS (INSERT INTO outbox_lanes (lane, channel, head_id, due_us)
				SELECT DISTINCT ON (lane) lane, channel, id, not_before_us FROM item ORDER BY lane, id
				ON CONFLICT (lane) DO UPDATE SET lane = EXCLUDED.lane)
		SELECT id, lane, message_id FROM item ORDER BY id`, args, "outbox", "outbox_lanes")
	if err != nil {
		return fmt.Errorf("add %d outbox items: %w", len(items), err)
	}
	rows, err := t.conn.query(ctx, q, a...)
	if err != nil {
		return fmt.Errorf("add %d outbox items: %w", len(items), err)
	}
	defer rows.Close()
	i := 0
	for ; rows.Next(); i++ {
		var (
			id            int64
			lane, message string
		)
		if err := rows.Scan(&id, &lane, &message); err != nil {
			return fmt.Errorf("add %d outbox items: %w", len(items), t.s.wrap(err))
		}
		if i >= len(items) || lane != compliance.StorableText(items[i].Lane) || message != compliance.StorableText(items[i].MessageID) {
			return fmt.Errorf("add %d outbox items: ids were not drawn in the order of the rows", len(items))
		}
		items[i].ID = id
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("add %d outbox items: %w", len(items), t.s.wrap(err))
	}
	if i != len(items) {
		return fmt.Errorf("add %d outbox items: %d ids returned", len(items), i)
	}
	return nil
}

// placeholderRow is "($n+1, …, $n+k)".
func placeholderRow(n, k int) string {
	var b strings.Builder
	b.WriteString("(")
	for j := 1; j <= k; j++ {
		if j > 1 {
			b.WriteString(", ")
		}
		b.WriteString("$")
		b.WriteString(strconv.Itoa(n + j))
	}
	b.WriteString(")")
	return b.String()
}

const outboxColumns = `id, chat_id, tenant, channel, lane, employee_id, contact, message_id, auto, payload, data_key, state, attempts,
	not_before_us, lease_until_us, created_us, template, cancel_reason`

// scanOutbox reads an outbox row, opening its payload.
func (c conn) scanOutbox(ctx context.Context, row interface{ Scan(...any) error }) (*bridge.OutboxItem, error) {
	r, err := scanSealedOutbox(row)
	if err != nil {
		return nil, err
	}
	return c.openOutbox(ctx, r)
}

// sealedOutbox is an outbox row as read, its payload still sealed.
type sealedOutbox struct {
	it      *bridge.OutboxItem
	payload []byte
	key     string
}

func scanSealedOutbox(row interface{ Scan(...any) error }) (sealedOutbox, error) {
	var (
		r                               = sealedOutbox{it: &bridge.OutboxItem{}}
		it                              = r.it
		chat, notBefore, lease, created int64
	)
	if err := row.Scan(&it.ID, &chat, &it.Tenant, &it.Channel, &it.Lane, &it.Employee, &it.Contact, &it.MessageID, &it.Auto,
		&r.payload, &r.key, &it.State, &it.Attempts, &notBefore, &lease, &created, &it.Template, &it.CancelReason); err != nil {
		return r, err
	}
	it.ChatID = bridge.ChatID(chat)
	it.NotBefore, it.LeaseUntil, it.CreatedAt = fromUS(notBefore), fromUS(lease), fromUS(created)
	return r, nil
}

// openOutbox opens a row's payload. It may look up a data key: not while rows are being read on
// the same connection.
func (c conn) openOutbox(ctx context.Context, r sealedOutbox) (*bridge.OutboxItem, error) {
	payload, err := c.s.openWith(ctx, c, r.key, r.payload, outboxAAD(r.it.MessageID))
	if err != nil {
		return nil, fmt.Errorf("outbox item %d: %w", r.it.ID, err)
	}
	var p outboxPayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil, fmt.Errorf("outbox item %d: %w", r.it.ID, err)
	}
	r.it.WeChat, r.it.Teams = p.WeChat, p.Teams
	return r.it, nil
}

func (t *tx) LockOutbox(ctx context.Context, id int64) (*bridge.OutboxItem, error) {
	it, err := t.scanOutbox(ctx, t.queryRow(ctx, `SELECT `+outboxColumns+` FROM outbox WHERE id = $1 FOR UPDATE`, id))
	return it, t.notFound(err, fmt.Sprintf("outbox item %d", id))
}

func (t *tx) ChatOutbox(ctx context.Context, chat bridge.ChatID, ch bridge.Channel) ([]*bridge.OutboxItem, error) {
	rows, err := t.query(ctx, `SELECT `+outboxColumns+` FROM outbox
		WHERE chat_id = $1 AND channel = $2 AND state IN ('pending', 'sending') ORDER BY id FOR UPDATE`, int64(chat), ch)
	if err != nil {
		return nil, fmt.Errorf("outbox of chat %d: %w", chat, err)
	}
	defer rows.Close()
	var read []sealedOutbox
	for rows.Next() {
		r, err := scanSealedOutbox(rows)
		if err != nil {
			return nil, fmt.Errorf("outbox of chat %d: %w", chat, t.s.wrap(err))
		}
		read = append(read, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("outbox of chat %d: %w", chat, t.s.wrap(err))
	}
	rows.Close()
	out := make([]*bridge.OutboxItem, 0, len(read))
	for _, r := range read {
		it, err := t.openOutbox(ctx, r)
		if err != nil {
			return nil, fmt.Errorf("outbox of chat %d: %w", chat, err)
		}
		out = append(out, it)
	}
	return out, nil
}

// Queries on a step's path that must use a partial index. SQLite uses one only when the query
// repeats its condition (it does not infer state IN (…) from state = 'pending', nor crossed_us > 0
// from crossed_us = $2) and otherwise scans the whole outbox; TestHotQueriesUseTheirIndexes checks.
const (
	// openSendsSQL: outbox_chat_open.
	openSendsSQL = `SELECT id, auto, state, template, employee_id, message_id, cancel_reason FROM outbox
		WHERE chat_id = $1 AND channel = $2 AND state IN ('pending', 'sending') ORDER BY id`
	// settleCrossingSQL: outbox_crossed.
	settleCrossingSQL = `UPDATE outbox SET crossed_us = 0
		WHERE chat_id = $1 AND crossed_us > 0 AND crossed_us = $2 AND state = 'done' AND answered_us > 0 AND answered_us < $2
		RETURNING auto`
)

func (t *tx) OpenSends(ctx context.Context, chat bridge.ChatID, ch bridge.Channel) ([]bridge.OpenSend, error) {
	rows, err := t.query(ctx, openSendsSQL, int64(chat), ch)
	if err != nil {
		return nil, fmt.Errorf("open sends of chat %d: %w", chat, t.s.wrap(err))
	}
	defer rows.Close()
	var open []bridge.OpenSend
	for rows.Next() {
		var (
			o     bridge.OpenSend
			state bridge.OutboxState
		)
		if err := rows.Scan(&o.ID, &o.Auto, &state, &o.Template, &o.Employee, &o.MessageID, &o.CancelReason); err != nil {
			return nil, fmt.Errorf("open sends of chat %d: %w", chat, t.s.wrap(err))
		}
		o.Sending = state == bridge.OutboxSending
		open = append(open, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("open sends of chat %d: %w", chat, t.s.wrap(err))
	}
	return open, nil
}

func (t *tx) MarkCrossing(ctx context.Context, at time.Time, ids ...int64) error {
	for _, id := range ids {
		if _, err := t.exec(ctx, `UPDATE outbox SET crossed_us = $2 WHERE id = $1`, id, us(at)); err != nil {
			return fmt.Errorf("mark outbox item %d: %w", id, t.s.wrap(err))
		}
	}
	return nil
}

func (t *tx) SettleCrossing(ctx context.Context, chat bridge.ChatID, at time.Time) (employee, all int, err error) {
	rows, err := t.query(ctx, settleCrossingSQL, int64(chat), us(at))
	if err != nil {
		return 0, 0, fmt.Errorf("settle crossing sends of chat %d: %w", chat, t.s.wrap(err))
	}
	defer rows.Close()
	for rows.Next() {
		var auto bool
		if err := rows.Scan(&auto); err != nil {
			return 0, 0, fmt.Errorf("settle crossing sends of chat %d: %w", chat, t.s.wrap(err))
		}
		all++
		if !auto {
			employee++
		}
	}
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("settle crossing sends of chat %d: %w", chat, t.s.wrap(err))
	}
	return employee, all, nil
}

func (t *tx) WithdrawOutbox(ctx context.Context, reason string, ids ...int64) ([]int64, error) {
	var cancelled []int64
	for _, id := range ids {
		var lane, state string
		err := t.queryRow(ctx, `UPDATE outbox SET state = CASE WHEN state = 'pending' THEN 'cancelled' ELSE state END, cancel_reason = $2
			WHERE id = $1 AND state IN ('pending', 'sending') RETURNING lane, state`, id, reason).Scan(&lane, &state)
		if errors.Is(err, sql.ErrNoRows) {
			continue // answered meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("withdraw outbox item %d: %w", id, t.s.wrap(err))
		}
		if state != string(bridge.OutboxCancelled) {
			continue // under way
		}
		cancelled = append(cancelled, id)
		if err := t.settleLane(ctx, lane); err != nil {
			return nil, fmt.Errorf("withdraw outbox item %d: %w", id, err)
		}
	}
	return cancelled, nil
}

func (t *tx) UpdateOutbox(ctx context.Context, it *bridge.OutboxItem) error {
	_, err := t.exec(ctx, `UPDATE outbox SET state = $2, attempts = $3, not_before_us = $4, lease_until_us = $5, answered_us = $6 WHERE id = $1`,
		it.ID, it.State, it.Attempts, us(it.NotBefore), us(it.LeaseUntil), us(it.AnsweredAt))
	if err != nil {
		return fmt.Errorf("update outbox item %d: %w", it.ID, err)
	}
	if err := t.settleLane(ctx, it.Lane); err != nil {
		return fmt.Errorf("update outbox item %d: %w", it.ID, err)
	}
	return nil
}

// SetTimer schedules a timer; it is written with the transaction's other timers by flushTimers.
func (t *tx) SetTimer(ctx context.Context, chat bridge.ChatID, kind bridge.TimerKind, due time.Time) error {
	for i, p := range t.timers {
		if p.chat == chat && p.kind == kind {
			t.timers[i].due = due
			return nil
		}
	}
	t.timers = append(t.timers, pendingTimer{chat: chat, kind: kind, due: due})
	return nil
}

// flushTimers writes the timers SetTimer scheduled, in one statement.
func (t *tx) flushTimers(ctx context.Context) error {
	q, args := t.timersWrite()
	if q == "" {
		return nil
	}
	if _, err := t.exec(ctx, q, args...); err != nil {
		return fmt.Errorf("set timers of chat %d: %w", args[0], err)
	}
	return nil
}

// deferTimers makes the timers SetTimer scheduled a write that waits to go (deferred.go).
func (t *tx) deferTimers(ctx context.Context) error {
	q, args := t.timersWrite()
	if q == "" {
		return nil
	}
	return t.later(ctx, "timers", q, args...)
}

// timersWrite is the statement writing the timers SetTimer scheduled ("" for none); they are
// no longer pending.
func (t *tx) timersWrite() (string, []any) {
	if len(t.timers) == 0 {
		return "", nil
	}
	var (
		values strings.Builder
		args   = make([]any, 0, 3*len(t.timers))
	)
	for i, p := range t.timers {
		if i > 0 {
			values.WriteString(", ")
		}
		n := len(args)
		fmt.Fprintf(&values, "($%d, $%d, $%d)", n+1, n+2, n+3)
		args = append(args, int64(p.chat), p.kind, us(p.due))
	}
	t.timers = t.timers[:0]
	return `INSERT INTO timers (chat_id, kind, due_us) VALUES ` + values.String() + `
		ON CONFLICT (chat_id, kind) DO UPDATE SET due_us = EXCLUDED.due_us`, args
}

func (t *tx) ClearTimers(ctx context.Context, chat bridge.ChatID, kinds ...bridge.TimerKind) error {
	if err := t.flushTimers(ctx); err != nil {
		return err
	}
	var err error
	if len(kinds) == 0 {
		_, err = t.exec(ctx, `DELETE FROM timers WHERE chat_id = $1`, int64(chat))
	}
	for _, k := range kinds {
		if _, err = t.exec(ctx, `DELETE FROM timers WHERE chat_id = $1 AND kind = $2`, int64(chat), k); err != nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("clear timers of chat %d: %w", chat, err)
	}
	return nil
}

func (t *tx) ClaimDueTimers(ctx context.Context, now time.Time, limit int) ([]bridge.Timer, error) {
	if err := t.flushTimers(ctx); err != nil {
		return nil, err
	}
	// Lock the chats first (the order every step takes), skipping chats another transaction holds.
	rows, err := t.query(ctx, `SELECT t.chat_id, t.kind, t.due_us FROM timers t JOIN chats c ON c.id = t.chat_id
		WHERE t.due_us <= $1 ORDER BY t.due_us, t.chat_id LIMIT $2 FOR UPDATE OF c SKIP LOCKED`, us(now), limit)
	if err != nil {
		return nil, fmt.Errorf("due timers: %w", err)
	}
	var due []bridge.Timer
	for rows.Next() {
		var (
			tm      bridge.Timer
			chat, d int64
		)
		if err := rows.Scan(&chat, &tm.Kind, &d); err != nil {
			rows.Close()
			return nil, fmt.Errorf("due timers: %w", t.s.wrap(err))
		}
		tm.ChatID, tm.Due = bridge.ChatID(chat), fromUS(d)
		due = append(due, tm)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("due timers: %w", t.s.wrap(err))
	}
	claimed := due[:0]
	for _, tm := range due {
		r, err := t.exec(ctx, `DELETE FROM timers WHERE chat_id = $1 AND kind = $2 AND due_us = $3`, int64(tm.ChatID), tm.Kind, us(tm.Due))
		if err != nil {
			return nil, fmt.Errorf("claim timer: %w", err)
		}
		if n, _ := r.RowsAffected(); n == 1 {
			claimed = append(claimed, tm)
		}
	}
	return claimed, nil
}

func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

func (t *tx) PutMedia(ctx context.Context, m *bridge.Media, data []byte, now time.Time) error {
	data, key, err := t.sealFor(ctx, "", data, mediaAAD(m.SHA256))
	if err != nil {
		return fmt.Errorf("store media %s: %w", m.SHA256, err)
	}
	_, err = t.exec(ctx, `INSERT INTO media (sha256, content_type, size, name, data, data_key, created_us)
		VALUES ($1, $2, $3, $4, $5, $7, $6) ON CONFLICT (sha256) DO NOTHING`,
		m.SHA256, m.ContentType, m.Size, m.Name, data, us(now), key)
	if err != nil {
		return fmt.Errorf("store media %s: %w", m.SHA256, err)
	}
	if m.Source != "" {
		_, err = t.exec(ctx, `INSERT INTO media_sources (source, sha256) VALUES ($1, $2) ON CONFLICT (source) DO NOTHING`, sourceKey(m.Source), m.SHA256)
		if err != nil {
			return fmt.Errorf("store the source of media %s: %w", m.SHA256, err)
		}
	}
	return nil
}

// sourceKey is how a media source is kept: its SHA-256. A source can be a file's download URL,
// whose query carries a credential (SharePoint's tempauth); only looking it up again is needed.
func sourceKey(source string) string {
	sum := sha256.Sum256([]byte(source))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// MediaBySource finds media already fetched from a channel source.
func (c conn) MediaBySource(ctx context.Context, source string) (*bridge.Media, error) {
	m := &bridge.Media{Source: source}
	err := c.queryRow(ctx, `SELECT m.sha256, m.content_type, m.size, m.name FROM media_sources ms
		JOIN media m ON m.sha256 = ms.sha256 WHERE ms.source = $1`, sourceKey(source)).Scan(&m.SHA256, &m.ContentType, &m.Size, &m.Name)
	return m, c.notFound(err, "media from that source")
}

// MediaData returns stored media bytes by SHA-256.
func (c conn) MediaData(ctx context.Context, sha256 string) (*bridge.Media, []byte, error) {
	var (
		m    = &bridge.Media{SHA256: sha256}
		data []byte
		key  string
	)
	err := c.queryRow(ctx, `SELECT content_type, size, name, data, data_key FROM media WHERE sha256 = $1`, sha256).
		Scan(&m.ContentType, &m.Size, &m.Name, &data, &key)
	if err != nil {
		return m, nil, c.notFound(err, "media "+sha256)
	}
	data, err = c.s.openWith(ctx, c, key, data, mediaAAD(sha256))
	return m, data, err
}

// isNetError reports a broken or refused connection.
func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn)
}

// What each sealed value is bound to, so it cannot be moved elsewhere and still open.
// Ids are bound as the database keeps them (compliance.StorableText).
func queueAAD(messageID string) []byte {
	return []byte("wxteams queue\x00" + compliance.StorableText(messageID))
}
func outboxAAD(messageID string) []byte {
	return []byte("wxteams outbox\x00" + compliance.StorableText(messageID))
}
func mediaAAD(sha256 string) []byte { return []byte("wxteams media\x00" + sha256) }
