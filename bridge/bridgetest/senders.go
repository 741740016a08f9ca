// Package bridgetest holds test tools for the bridge: in-memory WeChat and Teams senders that record
// what the engine delivered and can be told to fail, and the store conformance suite every
// bridge.Store implementation runs.
//
// The senders stand in for the channels in engine tests only; adapter tests use the faithful fakes
// (bridge/wechat/wechatfake, bot/teamsfake) over real HTTP.
package bridgetest

import (
	"context"
	"strconv"
	"sync"

	"github.com/wxteams/wxteams/bridge"
)

// Sent is one delivery a recording sender accepted.
type Sent struct {
	Contact  bridge.OpenID     // WeChat deliveries
	Employee bridge.EmployeeID // Teams deliveries
	WeChat   *bridge.WeChatMessage
	Teams    *bridge.TeamsMessage
}

// Text is the text of the delivery (a template's id for template messages).
func (s Sent) Text() string {
	switch {
	case s.WeChat != nil && s.WeChat.Template != nil:
		return "template:" + s.WeChat.Template.ID
	case s.WeChat != nil:
		return s.WeChat.Text
	case s.Teams != nil:
		return s.Teams.Message.Text
	}
	return ""
}

// recorder is the shared part of the two senders.
type recorder struct {
	mu    sync.Mutex
	sent  []Sent
	fails map[string][]error
	seq   int
	// Block, when set, is called before each send; a non-nil error fails the send. Tests use it to
	// hold a send in flight.
	Block func(ctx context.Context) error
}

func (r *recorder) next(key string, s Sent) (bridge.Delivery, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if errs := r.fails[key]; len(errs) > 0 {
		r.fails[key] = errs[1:]
		if errs[0] != nil {
			return bridge.Delivery{}, errs[0]
		}
	}
	r.seq++
	r.sent = append(r.sent, s)
	return bridge.Delivery{ID: "sent-" + strconv.Itoa(r.seq)}, nil
}

func (r *recorder) failNext(key string, errs ...error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fails == nil {
		r.fails = map[string][]error{}
	}
	r.fails[key] = append(r.fails[key], errs...)
}

// ClearFailures drops every failure queued and not yet returned.
func (r *recorder) ClearFailures() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fails = nil
}

// All returns every delivery accepted so far, in order.
func (r *recorder) All() []Sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Sent(nil), r.sent...)
}

// WeChat records deliveries to customers.
type WeChat struct{ recorder }

var _ bridge.WeChatSender = (*WeChat)(nil)

// SendWeChat records m, or returns the next error queued for this customer.
func (w *WeChat) SendWeChat(ctx context.Context, to *bridge.Contact, m *bridge.WeChatMessage) (bridge.Delivery, error) {
	if w.Block != nil {
		if err := w.Block(ctx); err != nil {
			return bridge.Delivery{}, err
		}
	}
	return w.next(string(to.OpenID), Sent{Contact: to.OpenID, WeChat: m})
}

// FailNext makes the next sends to a customer return errs, one each (nil lets one through).
func (w *WeChat) FailNext(to bridge.OpenID, errs ...error) { w.failNext(string(to), errs...) }

// Texts returns the texts delivered to a customer, in order.
func (w *WeChat) Texts(to bridge.OpenID) []string {
	var out []string
	for _, s := range w.All() {
		if s.Contact == to {
			out = append(out, s.Text())
		}
	}
	return out
}

// Teams records deliveries to employees.
type Teams struct{ recorder }

var _ bridge.TeamsSender = (*Teams)(nil)

// SendTeams records m, or returns the next error queued for this employee.
func (t *Teams) SendTeams(ctx context.Context, to *bridge.Employee, m *bridge.TeamsMessage) (bridge.Delivery, error) {
	if t.Block != nil {
		if err := t.Block(ctx); err != nil {
			return bridge.Delivery{}, err
		}
	}
	return t.next(string(to.ID), Sent{Employee: to.ID, Teams: m})
}

// FailNext makes the next sends to an employee return errs.
func (t *Teams) FailNext(to bridge.EmployeeID, errs ...error) { t.failNext(string(to), errs...) }

// Messages returns what an employee received, in order.
func (t *Teams) Messages(to bridge.EmployeeID) []*bridge.TeamsMessage {
	var out []*bridge.TeamsMessage
	for _, s := range t.All() {
		if s.Employee == to {
			out = append(out, s.Teams)
		}
	}
	return out
}

// Texts returns the texts an employee received, in order.
func (t *Teams) Texts(to bridge.EmployeeID) []string {
	var out []string
	for _, m := range t.Messages(to) {
		out = append(out, m.Message.Text)
	}
	return out
}
