package bridge

import (
	"context"
	"errors"
	"time"

	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/supervision"
)

// Reader looks up employees, customers and media.
type Reader interface {
	Employee(ctx context.Context, id EmployeeID) (*Employee, error)
	EmployeeByScene(ctx context.Context, scene string) (*Employee, error)
	// Employees lists every employee known, by name.
	Employees(ctx context.Context) ([]*Employee, error)
	Contact(ctx context.Context, id OpenID) (*Contact, error)
	// MediaBySource finds media already fetched from a channel source.
	MediaBySource(ctx context.Context, source string) (*Media, error)
	// MediaData returns stored media bytes by SHA-256.
	MediaData(ctx context.Context, sha256 string) (*Media, []byte, error)
	// ChatsOf lists the chats an employee is in, most recently active first.
	ChatsOf(ctx context.Context, emp EmployeeID) ([]ChatSummary, error)
}

// Store is the durable state of the bridge (bridge/sqlstore implements it for SQLite and
// PostgreSQL). All chat state changes happen inside InTx, so that archive events, state and outbox
// rows of one engine step commit together or not at all. Its Reader methods read outside any
// transaction (what they return may change at once).
type Store interface {
	Reader

	// InTx runs fn in one transaction and commits if fn returns nil. Several processes may share one
	// store: LockChat serializes steps on the same chat.
	InTx(ctx context.Context, fn func(Tx) error) error

	// ClaimOutbox hands out up to limit deliveries on the given channels that are due: the oldest
	// pending item of each lane (so each lane is delivered in order, one at a time), and items whose
	// previous claim's lease ran out (Expired set). Claimed items are marked sending until
	// leaseUntil; no other claimer gets them meanwhile.
	ClaimOutbox(ctx context.Context, now, leaseUntil time.Time, limit int, channels ...Channel) ([]*OutboxItem, error)

	// NextDue returns when the next delivery (of any lane) and the next timer fall due; the zero
	// time where nothing is waiting.
	NextDue(ctx context.Context) (delivery, timer time.Time, err error)

	// Ping checks that the store can be reached.
	Ping(ctx context.Context) error

	// Prune forgets idempotency keys recorded before seenBefore and deletes finished outbox items
	// (delivered, failed, cancelled …) created before outboxBefore; their outcomes are archived.
	Prune(ctx context.Context, seenBefore, outboxBefore time.Time) (int64, error)
}

// Tx is one transaction of the store.
type Tx interface {
	// FirstSeen records an idempotency key and reports whether it is new. A key already recorded
	// means the input is a retry or a duplicate. A store may instead say true and fail the
	// transaction with ErrDuplicate by a later statement or its commit (sqlstore on PostgreSQL,
	// which sends the key with the step's first read): either way nothing of it is committed.
	FirstSeen(ctx context.Context, key string, now time.Time) (bool, error)

	Reader
	PutEmployee(ctx context.Context, e *Employee) error
	PutContact(ctx context.Context, c *Contact) error

	// LockChat loads a chat (with Members and QueueLen) and locks it until the transaction ends.
	LockChat(ctx context.Context, id ChatID) (*Chat, error)
	// LockChatByContact is LockChat for a customer's chat.
	LockChatByContact(ctx context.Context, contact OpenID) (*Chat, error)
	// CreateChat stores a new chat and its members and sets c.ID. A customer has at most one chat:
	// if another transaction created it first, CreateChat returns ErrConflict.
	CreateChat(ctx context.Context, c *Chat) error
	// SaveChat stores a locked chat's state and members.
	SaveChat(ctx context.Context, c *Chat) error

	// Queue returns a chat's queued messages, oldest first.
	Queue(ctx context.Context, chat ChatID) ([]*QueuedMessage, error)
	// PushQueue adds a message at the back of the queue, or at the front.
	PushQueue(ctx context.Context, q *QueuedMessage, front bool) error
	// RemoveQueued deletes queued messages by id.
	RemoveQueued(ctx context.Context, ids ...int64) error

	// AddOutbox stores deliveries to be made after commit; it sets each item's ID.
	AddOutbox(ctx context.Context, items ...*OutboxItem) error
	// LockOutbox loads an outbox item for update.
	LockOutbox(ctx context.Context, id int64) (*OutboxItem, error)
	// ChatOutbox returns a chat's undelivered items on one channel (pending or sending), oldest first.
	ChatOutbox(ctx context.Context, chat ChatID, ch Channel) ([]*OutboxItem, error)
	// OpenSends lists a chat's items on one channel that the channel has not yet answered, oldest
	// first: pending (behind another in the lane, or waiting to be retried) and sending.
	OpenSends(ctx context.Context, chat ChatID, ch Channel) ([]OpenSend, error)
	// WithdrawOutbox takes back items the chat no longer wants delivered: a pending item is
	// cancelled; a sending one keeps going but carries reason, so that if the channel does not
	// accept it, it is cancelled rather than retried or requeued. Items already answered are left.
	// It returns the items it cancelled.
	WithdrawOutbox(ctx context.Context, reason string, ids ...int64) (cancelled []int64, err error)
	// MarkCrossing marks sending items as counted toward the streak of the customer message
	// stamped at (they were under way when it arrived).
	MarkCrossing(ctx context.Context, at time.Time, ids ...int64) error
	// SettleCrossing unmarks the chat's items marked at that the channel had in fact answered as
	// delivered before at, and counts them: those that carry an employee's message, and all.
	SettleCrossing(ctx context.Context, chat ChatID, at time.Time) (employee, all int, err error)
	// LockSending locks outbox items and returns, by id, the attempt count of those still being
	// sent (an item whose claim ran out and was claimed again counts more attempts).
	LockSending(ctx context.Context, ids ...int64) (map[int64]int, error)
	// MarkDone records items as delivered (state done, AnsweredAt) and makes way for the next
	// item of each one's lane. It returns the lanes whose next item is due at now.
	MarkDone(ctx context.Context, now time.Time, items ...*OutboxItem) (due map[string]bool, err error)
	// UpdateOutbox stores an item's State, Attempts, NotBefore, LeaseUntil and AnsweredAt. An item that leaves
	// pending or sending makes way for the next item of its lane.
	UpdateOutbox(ctx context.Context, it *OutboxItem) error

	// SetTimer schedules (or reschedules) a chat's timer of a kind.
	SetTimer(ctx context.Context, chat ChatID, kind TimerKind, due time.Time) error
	// ClearTimers removes a chat's timers of the given kinds (all kinds when none are given).
	ClearTimers(ctx context.Context, chat ChatID, kinds ...TimerKind) error
	// ClaimDueTimers locks the chats of up to limit timers due at now — skipping chats another
	// transaction holds — and removes and returns those timers.
	ClaimDueTimers(ctx context.Context, now time.Time, limit int) ([]Timer, error)

	// Append archives events, chaining each onto the head of its stream.
	Append(ctx context.Context, events ...compliance.Event) error

	// AddReview opens a review item (a flagged message) and sets its ID. A message already flagged
	// is not flagged twice: the existing item's ID is set.
	AddReview(ctx context.Context, item *supervision.ReviewItem) error

	// PutMedia stores media bytes by SHA-256 (idempotent), and remembers m.Source if set.
	PutMedia(ctx context.Context, m *Media, data []byte, now time.Time) error
}

type outboxWorkKey struct{}

// OutboxWork marks ctx as the engine's delivery bookkeeping (claiming deliveries, recording their
// outcomes): a store may run such transactions apart from the steps that take in messages, so
// that a flood of incoming messages cannot starve the deliveries.
func OutboxWork(ctx context.Context) context.Context {
	return context.WithValue(ctx, outboxWorkKey{}, true)
}

// IsOutboxWork reports whether ctx was marked by OutboxWork.
func IsOutboxWork(ctx context.Context) bool {
	v, _ := ctx.Value(outboxWorkKey{}).(bool)
	return v
}

// Store errors.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

// Channel is a side of the bridge.
type Channel string

// Channels.
const (
	ChannelWeChat Channel = "wechat"
	ChannelTeams  Channel = "teams"
)

// OutboxState is where a delivery stands.
type OutboxState string

// Outbox states.
const (
	OutboxPending   OutboxState = "pending"
	OutboxSending   OutboxState = "sending"
	OutboxDone      OutboxState = "done"
	OutboxFailed    OutboxState = "failed"
	OutboxUnknown   OutboxState = "unknown"
	OutboxCancelled OutboxState = "cancelled"
	OutboxRequeued  OutboxState = "requeued"
)

// OutboxItem is one delivery to make: to a customer on WeChat or to an employee on Teams.
type OutboxItem struct {
	ID        int64
	ChatID    ChatID
	Tenant    string
	Channel   Channel
	Lane      string     // deliveries in one lane go out one at a time, in order
	Employee  EmployeeID // Teams: the recipient. WeChat: the author of an employee message
	Contact   OpenID
	MessageID string
	Auto      bool   // an auto-message (not an employee's own message)
	Template  string // an auto-message's template, e.g. customer.on_hold
	WeChat    *WeChatMessage
	Teams     *TeamsMessage
	State     OutboxState
	Attempts  int
	NotBefore time.Time
	// LeaseUntil is when a claim of this item runs out; a claim that outlives it no longer owns it.
	LeaseUntil time.Time
	CreatedAt  time.Time
	// Expired is set by ClaimOutbox when the item was found still sending after its lease ran out.
	Expired bool
	// AnsweredAt is when the channel answered the send that delivered the item (stored, not loaded).
	AnsweredAt time.Time
	// CancelReason is set when the chat withdrew the item while it was being sent (WithdrawOutbox).
	CancelReason string
	// To and ToEmployee are the recipient as ClaimOutbox found it: the customer of a WeChat item,
	// the employee of a Teams item (nil: not loaded, or gone).
	To         *Contact
	ToEmployee *Employee
}

// OpenSend is an outbox item the channel has not answered yet, as OpenSends lists it.
type OpenSend struct {
	ID           int64
	Auto         bool
	Sending      bool // claimed and with the channel (or about to be); else pending
	Template     string
	Employee     EmployeeID // the author of an employee message (WeChat), the recipient (Teams)
	MessageID    string
	CancelReason string // withdrawn while being sent
}

// Lanes: one per customer on WeChat, one per employee on Teams.
func wechatLane(c OpenID) string    { return "wechat:" + string(c) }
func teamsLane(e EmployeeID) string { return "teams:" + string(e) }

// TimerKind names a chat deadline.
type TimerKind string

// Timer kinds.
const (
	TimerNotice   TimerKind = "notice24"   // the 24 h notice to employees
	TimerInactive TimerKind = "inactive48" // the chat goes inactive
)

// Timer is a due chat deadline.
type Timer struct {
	ChatID ChatID
	Kind   TimerKind
	Due    time.Time
}
