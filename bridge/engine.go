package bridge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/supervision"
)

// Engine applies the conversation policy. Each exported method is one step: one transaction that
// locks the chat, decides, and writes archive events, state and outbox rows together. Run delivers
// the outbox and fires timers.
type Engine struct {
	store    Store
	observer Observer
	wechat   WeChatSender
	teams    TeamsSender
	media    map[string]MediaFetcher
	channels []Channel // the channels this engine delivers to: those with a sender
	clock    Clock
	log      *zap.Logger
	policy   atomic.Pointer[versionedPolicy]
	rules    atomic.Pointer[supervision.Set] // the firm's supervision rules (nil: none)
	rulesMu  sync.Mutex                      // orders loads of the rules
	rulesRev int64                           // the revision of the rules in force

	workers      int
	pollInterval time.Duration
	wake         chan struct{}
	inflight     sync.WaitGroup
	delivered    deliveredSends
	outcomes     outcomeBatches
}

// Observer is told what the engine did, after it committed: every archived event, and how long
// each delivered message waited in the outbox. cmd/wxteams turns both into metrics.
type Observer interface {
	Archived(events []compliance.Event)
	Delivered(channel Channel, waited time.Duration)
}

type versionedPolicy struct {
	Policy
	version string
}

// Config assembles an Engine.
type Config struct {
	Store Store
	// WeChat and Teams deliver to the channels. A nil sender means this process does not deliver to
	// that channel: its deliveries wait in the outbox for a process that does.
	WeChat WeChatSender
	Teams  TeamsSender
	// Media fetches media a channel holds before it is handed on, by the source's prefix:
	// "wechat" for a customer's media_id, "teams" for an employee's attachment.
	Media map[string]MediaFetcher
	// Observer sees what each step archived, once it has committed (metrics); nil for none.
	Observer Observer
	Clock    Clock
	Logger   *zap.Logger
	Policy   Policy
	// Workers is how many deliveries run at once [64].
	Workers int
	// PollInterval is how often Run looks for work other processes created [500ms].
	PollInterval time.Duration
}

// NewEngine checks the configuration and returns an engine.
func NewEngine(c Config) (*Engine, error) {
	if c.Store == nil || c.Clock == nil {
		return nil, errors.New("bridge: engine needs a store and a clock")
	}
	if err := c.Policy.Validate(); err != nil {
		return nil, err
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Workers <= 0 {
		c.Workers = 64
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 500 * time.Millisecond
	}
	e := &Engine{
		store:        c.Store,
		observer:     c.Observer,
		wechat:       c.WeChat,
		teams:        c.Teams,
		media:        c.Media,
		clock:        c.Clock,
		log:          c.Logger,
		workers:      c.Workers,
		pollInterval: c.PollInterval,
		wake:         make(chan struct{}, 1),
	}
	if c.WeChat != nil {
		e.channels = append(e.channels, ChannelWeChat)
	}
	if c.Teams != nil {
		e.channels = append(e.channels, ChannelTeams)
	}
	e.SetPolicy(c.Policy)
	return e, nil
}

// SetPolicy replaces the firm's policy for the steps that follow. It panics on an invalid policy;
// validate it first (ParsePolicy does).
func (e *Engine) SetPolicy(p Policy) {
	if err := p.Validate(); err != nil {
		panic(err)
	}
	e.policy.Store(&versionedPolicy{Policy: p, version: p.Version()})
}

// Policy returns the policy in force.
func (e *Engine) Policy() Policy { return e.policy.Load().Policy }

// Step errors the engine's callers branch on.
var (
	// ErrDuplicate: the input's idempotency key was seen before; it was already handled.
	ErrDuplicate = errors.New("duplicate input")
	// ErrUnknownEmployee: no employee with that id is known.
	ErrUnknownEmployee = errors.New("unknown employee")
	// ErrUnknownChat: no chat with that id exists.
	ErrUnknownChat = errors.New("unknown chat")
	// ErrInvalid: the request is malformed (details in the wrapped message).
	ErrInvalid = errors.New("invalid request")
)

// Outcome is what became of an employee's message.
type Outcome string

// Outcomes.
const (
	OutcomeSent    Outcome = "sent"    // handed to WeChat delivery
	OutcomeQueued  Outcome = "queued"  // held until the customer writes
	OutcomeRefused Outcome = "refused" // not accepted; the employee was told why
)

// Result reports a step's outcome to the adapter that called it.
type Result struct {
	Chat      ChatID
	MessageID string
	Outcome   Outcome
	Reason    string // for queued and refused: a short machine-readable reason
	Window    WindowState
}

// step is one engine transaction in progress: the rules read and change state through it, and it
// writes what they produced when they are done.
type step struct {
	e      *Engine
	ctx    context.Context
	tx     Tx
	now    time.Time
	policy *versionedPolicy
	chats  []*Chat
	events []compliance.Event
	outbox []*OutboxItem
	// contacts and employees loaded in this step, by id.
	contacts  map[OpenID]*Contact
	employees map[EmployeeID]*Employee
}

// do runs fn as one step. A non-empty dedupeKey makes the step idempotent: a key seen before
// returns ErrDuplicate and changes nothing. The store may tell a duplicate only with the step's
// first read (sqlstore on PostgreSQL sends the key with it), so fn must not act outside the store
// before its first read, and a step begins with the read its input names (its employee, its
// customer's chat) so that two runs of one input take the same lock first.
func (e *Engine) do(ctx context.Context, dedupeKey string, fn func(*step) error) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		// A conflict means a concurrent step created the same row first (a customer's chat);
		// running the step again finds it.
		if err = e.doOnce(ctx, dedupeKey, fn); !errors.Is(err, ErrConflict) {
			break
		}
	}
	return err
}

func (e *Engine) doOnce(ctx context.Context, dedupeKey string, fn func(*step) error) error {
	s := &step{}
	err := e.store.InTx(ctx, func(tx Tx) error {
		*s = step{
			e: e, ctx: ctx, tx: tx, now: e.clock.Now(), policy: e.policy.Load(),
			contacts: map[OpenID]*Contact{}, employees: map[EmployeeID]*Employee{},
		}
		if dedupeKey != "" {
			first, err := tx.FirstSeen(ctx, dedupeKey, s.now)
			if err != nil {
				return err
			}
			if !first {
				return ErrDuplicate
			}
		}
		if err := fn(s); err != nil {
			return err
		}
		return s.commit()
	})
	if err == nil && len(s.outbox) > 0 {
		e.poke()
	}
	if err == nil && e.observer != nil && len(s.events) > 0 {
		e.observer.Archived(s.events)
	}
	return err
}

// commit writes what the step produced: chat state, outbox rows, archive events. Teams messages
// show each chat's window as the step leaves it.
func (s *step) commit() error {
	for _, c := range s.chats {
		c.UpdatedAt = s.now
		if err := s.tx.SaveChat(s.ctx, c); err != nil {
			return fmt.Errorf("save chat %d: %w", c.ID, err)
		}
		for _, it := range s.outbox {
			if it.Teams != nil && it.ChatID == c.ID {
				it.Teams.Window = s.window(c)
			}
		}
	}
	if len(s.outbox) > 0 {
		if err := s.tx.AddOutbox(s.ctx, s.outbox...); err != nil {
			return fmt.Errorf("add outbox: %w", err)
		}
	}
	if len(s.events) > 0 {
		if err := s.tx.Append(s.ctx, s.events...); err != nil {
			return fmt.Errorf("archive: %w", err)
		}
	}
	return nil
}

// poke wakes the local dispatcher.
func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// lock locks and loads a chat, and remembers it so the step saves it.
func (s *step) lock(id ChatID) (*Chat, error) {
	for _, c := range s.chats {
		if c.ID == id {
			return c, nil
		}
	}
	c, err := s.tx.LockChat(s.ctx, id)
	if err != nil {
		return nil, err
	}
	s.chats = append(s.chats, c)
	return c, nil
}

// lockByContact is lock for a customer's chat; it returns ErrNotFound if they have none.
func (s *step) lockByContact(id OpenID) (*Chat, error) {
	for _, c := range s.chats {
		if c.Contact == id {
			return c, nil
		}
	}
	c, err := s.tx.LockChatByContact(s.ctx, id)
	if err != nil {
		return nil, err
	}
	s.chats = append(s.chats, c)
	return c, nil
}

// contact loads a customer, creating the record on first sight.
func (s *step) contact(id OpenID) (*Contact, error) {
	if c, ok := s.contacts[id]; ok {
		return c, nil
	}
	c, err := s.tx.Contact(s.ctx, id)
	if errors.Is(err, ErrNotFound) {
		c = &Contact{OpenID: id, Following: true, UpdatedAt: s.now}
		err = s.tx.PutContact(s.ctx, c)
	}
	if err != nil {
		return nil, fmt.Errorf("contact %s: %w", id, err)
	}
	s.contacts[id] = c
	return c, nil
}

// employee loads an employee.
func (s *step) employee(id EmployeeID) (*Employee, error) {
	if e, ok := s.employees[id]; ok {
		return e, nil
	}
	e, err := s.tx.Employee(s.ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("employee %s: %w", id, ErrUnknownEmployee)
	}
	if err != nil {
		return nil, fmt.Errorf("employee %s: %w", id, err)
	}
	s.employees[id] = e
	return e, nil
}

// archive records an event in the chat's chain (or, without a chat, in stream).
func (s *step) archive(c *Chat, stream string, kind compliance.Kind, actor string, meta compliance.Meta, content compliance.Content) {
	ev := compliance.Event{Stream: stream, At: s.now, Kind: kind, Actor: actor, Meta: meta, Content: content}
	if c != nil {
		ev.Stream = compliance.ChatStream(int64(c.ID))
		ev.ChatID = int64(c.ID)
		ev.Tenant = c.Tenant
	}
	s.events = append(s.events, ev)
}

// archiveChat records an event in a chat's chain.
func (s *step) archiveChat(c *Chat, kind compliance.Kind, actor string, meta compliance.Meta, content compliance.Content) {
	s.archive(c, "", kind, actor, meta, content)
}

// setStatus moves a chat to a new status and archives the change.
func (s *step) setStatus(c *Chat, to Status, reason string) {
	if c.Status == to {
		return
	}
	s.archiveChat(c, compliance.KindStatus, actorSystem, compliance.Meta{From: string(c.Status), To: string(to), Reason: reason}, compliance.Content{})
	c.Status = to
}

// windowOpen reports whether WeChat's window after the customer's last message is still open.
func (s *step) windowOpen(c *Chat) bool {
	return !c.LastInboundAt.IsZero() && s.now.Before(c.LastInboundAt.Add(s.policy.Window.D()))
}

// quotaAllows reports whether one more message to the customer fits WeChat's window and quota.
func (s *step) quotaAllows(c *Chat) bool {
	return s.windowOpen(c) && c.SentSinceInbound < s.policy.Quota
}

// window is what employees are shown about a chat.
func (s *step) window(c *Chat) WindowState {
	w := WindowState{Status: c.Status, Cap: s.policy.Cap, Queued: c.QueueLen}
	if c.Status == StatusActive || c.Status == StatusCapped {
		w.RepliesLeft = max(0, min(s.policy.Cap-c.EmployeeStreak, s.policy.Quota-c.SentSinceInbound))
		w.ClosesAt = c.LastInboundAt.Add(s.policy.Window.D())
	}
	return w
}

// customerTexts picks the texts in the customer's language.
func (s *step) customerTexts(ct *Contact) (CustomerTexts, string) {
	lang := s.policy.CustomerLanguage(ct.Language)
	return s.policy.Customer[lang], lang
}

// Actors in the archive.
const actorSystem = "system"

func actorCustomer(id OpenID) string      { return "customer:" + string(id) }
func actorEmployee(id EmployeeID) string  { return "employee:" + string(id) }
func employeeStream(id EmployeeID) string { return "employee:" + string(id) }

// sendCustomer archives an auto-message to the customer and puts it in the outbox. c may be nil
// for a customer who is in no chat. It counts against the window's quota.
func (s *step) autoCustomer(c *Chat, ct *Contact, template, text string) {
	_, lang := s.customerTexts(ct)
	id := newMessageID()
	stream := compliance.ContactStream(string(ct.OpenID))
	s.archive(c, stream, compliance.KindAutoMessage, actorSystem, compliance.Meta{
		MessageID: id, Channel: string(ChannelWeChat), Direction: "to_customer", Contact: string(ct.OpenID),
		Template: template, Version: s.policy.version, Language: lang, MsgType: "text",
	}, compliance.Content{Text: text})
	s.queueWeChat(c, ct.OpenID, "", id, template, &WeChatMessage{Message: TextMessage(text)}, true)
}

// queueWeChat puts a delivery to the customer in the outbox and counts it against the quota.
func (s *step) queueWeChat(c *Chat, to OpenID, author EmployeeID, messageID, template string, m *WeChatMessage, auto bool) {
	it := &OutboxItem{
		Channel: ChannelWeChat, Lane: wechatLane(to), Contact: to, Employee: author, MessageID: messageID,
		Auto: auto, Template: template, WeChat: m, State: OutboxPending, NotBefore: s.now, CreatedAt: s.now,
	}
	if c != nil {
		it.ChatID, it.Tenant = c.ID, c.Tenant
		c.SentSinceInbound++
	}
	s.outbox = append(s.outbox, it)
}

// notice archives a notice to employees and puts it in the outbox, one per employee.
func (s *step) notice(c *Chat, to []EmployeeID, template, text string) {
	for _, emp := range to {
		s.noticeMessage(c, emp, template, TextMessage(text))
	}
}

// noticeMembers archives a notice to the chat's members who may use WeChat and puts it in the
// outbox.
func (s *step) noticeMembers(c *Chat, template, text string, about ...string) error {
	to, err := s.enabledMembers(c)
	if err != nil {
		return err
	}
	for _, emp := range to {
		s.noticeAbout(c, emp, template, text, about)
	}
	return nil
}

// noticeAbout archives a notice to an employee about the fate of some of the chat's employee
// messages, and puts it in the outbox.
func (s *step) noticeAbout(c *Chat, emp EmployeeID, template, text string, about []string) {
	s.teamsNotice(c, emp, template, TextMessage(text), about)
}

// noticeMessage archives one notice (text, or an image such as a QR code) to an employee and puts
// it in the outbox.
func (s *step) noticeMessage(c *Chat, emp EmployeeID, template string, m Message) {
	s.teamsNotice(c, emp, template, m, nil)
}

func (s *step) teamsNotice(c *Chat, emp EmployeeID, template string, m Message, about []string) {
	id := newMessageID()
	meta := compliance.Meta{
		MessageID: id, Channel: string(ChannelTeams), Direction: "to_employee", Employee: string(emp),
		Template: template, Version: s.policy.version, Language: LangEnglish, MsgType: m.Type, About: about,
	}
	mediaMeta(&meta, m.Media)
	tm := &TeamsMessage{Kind: TeamsNotice, Notice: template, Message: m, SentAt: s.now, About: about}
	it := &OutboxItem{
		Channel: ChannelTeams, Lane: teamsLane(emp), Employee: emp, MessageID: id, Auto: true,
		Teams: tm, State: OutboxPending, NotBefore: s.now, CreatedAt: s.now,
	}
	if c != nil {
		meta.Contact = string(c.Contact)
		tm.ChatID, tm.Contact = c.ID, c.Contact
		if ct, err := s.contact(c.Contact); err == nil {
			tm.ContactName = ct.DisplayName()
		}
		it.ChatID, it.Tenant, it.Contact = c.ID, c.Tenant, c.Contact
	}
	s.archive(c, employeeStream(emp), compliance.KindAutoMessage, actorSystem, meta, compliance.Content{Text: m.Text})
	s.outbox = append(s.outbox, it)
}

// newMessageID returns a fresh random message id.
func newMessageID() string {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return "m" + hex.EncodeToString(b[:])
}
