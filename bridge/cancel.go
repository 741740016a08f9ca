package bridge

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/wxteams/wxteams/compliance"
)

// This file takes back messages a chat no longer wants delivered (DESIGN §2): the customer left
// or unfollowed, the author was removed, disabled or re-bound away, or a prompt to the customer
// lost its point because they wrote.

// Why messages are cancelled, in the words the author is told (and the archive keeps).
const (
	reasonLeft          = "the customer left the chat (#LEAVE)"
	reasonRebound       = "the customer scanned another employee's QR code and now chats with them"
	reasonRemoved       = "you were removed from the chat"
	reasonDisabled      = "WeChat was disabled for your account"
	reasonCustomerWrote = "the customer wrote before it went out"
)

// cancelled lists the employee messages a cancellation took back, by author.
type cancelled map[EmployeeID][]string

func (w cancelled) count() int {
	n := 0
	for _, ids := range w {
		n += len(ids)
	}
	return n
}

// all lists every message id, authors in order.
func (w cancelled) all() []string {
	var out []string
	for _, emp := range slices.Sorted(maps.Keys(w)) {
		out = append(out, w[emp]...)
	}
	return out
}

// cancel takes back the chat's messages to the customer that match: queued employee messages
// and sends still waiting are cancelled now and archived as such; a send under way is marked, so
// that it is cancelled if WeChat does not accept it (it may already have arrived). It returns the
// employee messages cancelled now.
func (s *step) cancel(c *Chat, reason string, match func(OpenSend) bool) (cancelled, error) {
	out := cancelled{}
	if c.QueueLen > 0 {
		queue, err := s.tx.Queue(s.ctx, c.ID)
		if err != nil {
			return nil, err
		}
		var gone []int64
		for _, q := range queue {
			if !match(OpenSend{Employee: q.Employee, MessageID: q.MessageID}) {
				continue
			}
			s.archiveChat(c, compliance.KindCancelled, actorSystem, compliance.Meta{MessageID: q.MessageID, Employee: string(q.Employee), Reason: reason}, compliance.Content{})
			out[q.Employee] = append(out[q.Employee], q.MessageID)
			gone = append(gone, q.ID)
		}
		if len(gone) > 0 {
			if err := s.tx.RemoveQueued(s.ctx, gone...); err != nil {
				return nil, err
			}
			c.QueueLen -= len(gone)
		}
	}
	open, err := s.tx.OpenSends(s.ctx, c.ID, ChannelWeChat)
	if err != nil {
		return nil, err
	}
	var take []OpenSend
	for _, o := range open {
		if o.CancelReason == "" && match(o) {
			take = append(take, o)
		}
	}
	return out, s.withdraw(c, take, reason, out)
}

// withdraw takes back sends (see cancel) and adds the employee messages cancelled now to out.
func (s *step) withdraw(c *Chat, sends []OpenSend, reason string, out cancelled) error {
	if len(sends) == 0 {
		return nil
	}
	ids := make([]int64, len(sends))
	for i, o := range sends {
		ids[i] = o.ID
	}
	now, err := s.tx.WithdrawOutbox(s.ctx, reason, ids...)
	if err != nil {
		return err
	}
	for _, o := range sends {
		if !slices.Contains(now, o.ID) {
			continue // under way: WeChat's answer decides
		}
		s.archiveChat(c, compliance.KindCancelled, actorSystem, compliance.Meta{MessageID: o.MessageID, Employee: string(o.Employee), Template: o.Template, Reason: reason}, compliance.Content{})
		// Every send still waiting was counted toward the customer's streak and quota.
		c.SentSinceInbound = max(c.SentSinceInbound-1, 0)
		if !o.Auto {
			out[o.Employee] = append(out[o.Employee], o.MessageID)
			c.EmployeeStreak = max(c.EmployeeStreak-1, 0)
		}
	}
	return nil
}

// cancelOf cancels the messages of some authors (removed, disabled, re-bound away) and tells each
// of them.
func (s *step) cancelOf(c *Chat, authors []EmployeeID, reason string) error {
	if len(authors) == 0 {
		return nil
	}
	w, err := s.cancel(c, reason, func(o OpenSend) bool { return !o.Auto && slices.Contains(authors, o.Employee) })
	if err != nil {
		return err
	}
	s.tellCancelled(c, w, reason)
	return s.reopen(c, "messages counted toward the limit were cancelled")
}

// tellCancelled tells each author which of their messages were cancelled, and why.
func (s *step) tellCancelled(c *Chat, w cancelled, reason string) {
	for _, emp := range slices.Sorted(maps.Keys(w)) {
		list := w[emp]
		s.noticeAbout(c, emp, "employee.cancelled", s.employeeText(c, s.policy.Employee.Cancelled,
			"{n}", strconv.Itoa(len(list)), "{reason}", reason), list)
	}
}

// isPrompt reports whether an auto-message template is a prompt to the customer that loses its
// point once they write: the on-hold and members-changed prompts and the reinstate template.
func isPrompt(template string) bool {
	switch template {
	case "customer.on_hold", "customer.members_changed":
		return true
	}
	return strings.HasPrefix(template, "customer.reinstate:")
}

// toCustomerOutsideChat reports whether an auto-message template addresses a customer who is in
// no live chat (the confirmation of their #LEAVE, the answer to a message or scan that reached
// nobody): it goes out whatever the chat's state.
func toCustomerOutsideChat(template string) bool {
	switch template {
	case "customer.leave_confirm", "customer.not_connected", "customer.unavailable":
		return true
	}
	return false
}
