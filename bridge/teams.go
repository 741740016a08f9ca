package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wxteams/wxteams/compliance"
)

// This file holds the steps the Teams side takes that are not messages to customers: learning
// where an employee is, which chat their next message goes to, edits and deletions, and notices
// the bot sends them.

// TeamsUser is a Teams user as an activity shows them.
type TeamsUser struct {
	ID      EmployeeID // Entra object id (aadObjectId)
	Tenant  string
	Name    string
	Address TeamsAddress
}

// RegisterTeamsUser records where the bot reaches an employee (from conversationUpdate,
// installationUpdate or any of their messages), creating the employee — not enabled — on first
// sight, and marks them reachable again.
func (e *Engine) RegisterTeamsUser(ctx context.Context, u TeamsUser) (*Employee, error) {
	if u.ID == "" {
		return nil, fmt.Errorf("register Teams user: %w: no Entra object id", ErrInvalid)
	}
	// Compared with what is stored, so as the store keeps it.
	u.Name, u.Tenant = compliance.StorableText(u.Name), compliance.StorableText(u.Tenant)
	u.Address.ConversationID, u.Address.ServiceURL = compliance.StorableText(u.Address.ConversationID), compliance.StorableText(u.Address.ServiceURL)
	u.Address.UserID = compliance.StorableText(u.Address.UserID)
	changed := func(emp *Employee) bool {
		return !emp.Reachable || emp.Teams != u.Address || (u.Name != "" && emp.Name != u.Name) || (u.Tenant != "" && emp.Tenant != u.Tenant)
	}
	// Nearly always nothing changed: one read, no transaction.
	if emp, err := e.store.Employee(ctx, u.ID); err == nil && !changed(emp) {
		return emp, nil
	}
	var out *Employee
	err := e.do(ctx, "", func(s *step) error {
		emp, err := s.tx.Employee(s.ctx, u.ID)
		created := errors.Is(err, ErrNotFound)
		if created {
			emp, err = &Employee{ID: u.ID}, nil
		}
		if err != nil {
			return err
		}
		if !created && !changed(emp) {
			out = emp
			return nil
		}
		emp.Tenant = firstNonEmpty(u.Tenant, emp.Tenant)
		emp.Name = firstNonEmpty(u.Name, emp.Name)
		if u.Address.ConversationID != "" {
			emp.Teams = u.Address
		}
		emp.Reachable = true
		emp.UpdatedAt = s.now
		if err := s.tx.PutEmployee(s.ctx, emp); err != nil {
			return err
		}
		reason := "Teams address updated"
		if created {
			reason = "first seen in Teams"
		}
		s.archive(nil, employeeStream(u.ID), compliance.KindEmployeeUpdated, actorSystem, compliance.Meta{Employee: string(u.ID), Reason: reason}, compliance.Content{})
		out = emp
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("register Teams user %s: %w", u.ID, err)
	}
	return out, nil
}

// TeamsUninstalled marks an employee unreachable: the app was removed from their Teams, so nothing
// can reach them until it is installed again.
func (e *Engine) TeamsUninstalled(ctx context.Context, id EmployeeID) error {
	err := e.do(ctx, "", func(s *step) error { return s.unreachable(id, 0) })
	if errors.Is(err, ErrUnknownEmployee) {
		return nil
	}
	return err
}

// ChatSummary is a chat as an employee's contact list shows it.
type ChatSummary struct {
	Chat          ChatID
	Contact       OpenID
	ContactName   string
	Status        Status
	LastInboundAt time.Time
	QueueLen      int
	Members       []EmployeeID // the chat's employees, in the order they joined
}

// Chats lists an employee's chats, most recently active first.
func (e *Engine) Chats(ctx context.Context, emp EmployeeID) ([]ChatSummary, error) {
	out, err := e.store.ChatsOf(ctx, emp) // one statement: no transaction needed
	if err != nil {
		return nil, fmt.Errorf("chats of %s: %w", emp, err)
	}
	return out, nil
}

// SetCurrentChat makes chat the one an employee's plain messages go to.
func (e *Engine) SetCurrentChat(ctx context.Context, emp EmployeeID, chat ChatID) error {
	err := e.do(ctx, "", func(s *step) error {
		c, err := s.lock(chat)
		if errors.Is(err, ErrNotFound) {
			return ErrUnknownChat
		}
		if err != nil {
			return err
		}
		if !c.HasMember(emp) {
			return fmt.Errorf("%w: employee %s is not in chat %d", ErrInvalid, emp, chat)
		}
		employee, err := s.employee(emp)
		if err != nil {
			return err
		}
		if employee.CurrentChat == chat {
			return nil
		}
		employee.CurrentChat, employee.UpdatedAt = chat, s.now
		return s.tx.PutEmployee(s.ctx, employee)
	})
	if err != nil {
		return fmt.Errorf("set current chat of %s: %w", emp, err)
	}
	return nil
}

// EmployeeEdit is an edit or deletion an employee made in Teams to a message they sent.
type EmployeeEdit struct {
	Employee   EmployeeID
	ExternalID string // the Teams activity id of the message
	Text       string // the new text (empty for a deletion)
	Deleted    bool
	Undeleted  bool
	DedupeKey  string
}

// EmployeeEdited archives an edit or deletion. Neither reaches WeChat (a sent WeChat message cannot
// be changed), and the employee is told so: the customer still has the original.
func (e *Engine) EmployeeEdited(ctx context.Context, in EmployeeEdit) error {
	err := e.do(ctx, in.DedupeKey, func(s *step) error {
		if _, err := s.employee(in.Employee); err != nil {
			return err
		}
		kind, template, text := compliance.KindEmployeeEdit, "employee.edit_not_relayed", s.policy.Employee.EditNotRelayed
		switch {
		case in.Deleted:
			kind, template, text = compliance.KindEmployeeDelete, "employee.delete_not_relayed", s.policy.Employee.DeleteNotRelayed
		case in.Undeleted:
			kind, template, text = compliance.KindEmployeeDelete, "", ""
		}
		reason := "edited in Teams"
		if in.Deleted {
			reason = "deleted in Teams"
		} else if in.Undeleted {
			reason = "undeleted in Teams"
		}
		s.archive(nil, employeeStream(in.Employee), kind, actorEmployee(in.Employee),
			compliance.Meta{Employee: string(in.Employee), ExternalID: in.ExternalID, Reason: reason}, compliance.Content{Text: in.Text})
		if template != "" {
			s.notice(nil, []EmployeeID{in.Employee}, template, text)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("edit by %s: %w", in.Employee, err)
	}
	return nil
}

// Notice is something the bot tells one employee: a reply to a command, a welcome, their QR code.
type Notice struct {
	Employee EmployeeID
	Chat     ChatID // 0 when it is about no chat
	Template string // e.g. "employee.contacts"
	Message  Message
	// Request is the employee's own words the notice answers (a command), archived with it.
	Request    string
	ExternalID string // the Teams activity id of the request
	DedupeKey  string
}

// NotifyEmployee sends an employee a notice through the outbox, archived like every auto-message
// (with the command it answers, if any).
func (e *Engine) NotifyEmployee(ctx context.Context, n Notice) error {
	err := e.do(ctx, n.DedupeKey, func(s *step) error {
		if _, err := s.employee(n.Employee); err != nil {
			return err
		}
		var c *Chat
		if n.Chat != 0 {
			var err error
			if c, err = s.lock(n.Chat); err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			if c != nil && !c.HasMember(n.Employee) {
				c = nil
			}
		}
		if n.Request != "" {
			s.archive(nil, employeeStream(n.Employee), compliance.KindEmployeeMessage, actorEmployee(n.Employee),
				compliance.Meta{Employee: string(n.Employee), Direction: "to_bot", ExternalID: n.ExternalID, MsgType: "command"},
				compliance.Content{Text: n.Request})
		}
		s.noticeMessage(c, n.Employee, n.Template, n.Message)
		return nil
	})
	if err != nil {
		return fmt.Errorf("notify %s: %w", n.Employee, err)
	}
	return nil
}

// StoreMedia keeps media bytes by SHA-256 (a QR code, an attachment), so a message can carry them.
func (e *Engine) StoreMedia(ctx context.Context, m *Media, data []byte) error {
	return e.store.InTx(ctx, func(tx Tx) error { return tx.PutMedia(ctx, m, data, e.clock.Now()) })
}
