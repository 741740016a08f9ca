package bridge

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/wxteams/wxteams/compliance"
)

// This file holds the steps administrators and adapters take on employees and contacts. Each is
// archived with who did it.

// EmployeeProfile is who an administrator enables.
type EmployeeProfile struct {
	ID     EmployeeID
	Tenant string
	Name   string
	Email  string
}

// SceneFor is the QR scene of an employee: "emp:<id>", or a hash of the id when that would exceed
// WeChat's 64 characters.
func SceneFor(id EmployeeID) string {
	s := "emp:" + string(id)
	if len(s) <= 64 {
		return s
	}
	sum := sha256.Sum256([]byte(id))
	return "emp:" + hex.EncodeToString(sum[:20])
}

// EnableEmployee lets an employee use WeChat and gives them a QR scene. actor is who did it
// ("admin:<upn>"); it is archived.
func (e *Engine) EnableEmployee(ctx context.Context, p EmployeeProfile, actor string) (*Employee, error) {
	if p.ID == "" || actor == "" {
		return nil, fmt.Errorf("enable employee: %w: an employee id and an actor are required", ErrInvalid)
	}
	var out *Employee
	err := e.do(ctx, "", func(s *step) error {
		emp, err := s.tx.Employee(s.ctx, p.ID)
		if errors.Is(err, ErrNotFound) {
			emp, err = &Employee{ID: p.ID, Reachable: true}, nil
		}
		if err != nil {
			return err
		}
		emp.Tenant = firstNonEmpty(p.Tenant, emp.Tenant)
		emp.Name = firstNonEmpty(p.Name, emp.Name)
		emp.Email = firstNonEmpty(p.Email, emp.Email)
		emp.Enabled = true
		if emp.Scene == "" {
			emp.Scene = SceneFor(emp.ID)
		}
		emp.UpdatedAt = s.now
		if err := s.tx.PutEmployee(s.ctx, emp); err != nil {
			return err
		}
		s.archive(nil, compliance.AdminStream, compliance.KindEmployeeEnabled, actor,
			compliance.Meta{Employee: string(emp.ID), Scene: emp.Scene}, compliance.Content{})
		out = emp
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("enable employee %s: %w", p.ID, err)
	}
	return out, nil
}

// DisableEmployee stops an employee from using WeChat: their messages are refused, customer
// messages and chat notices no longer reach them, and what they had queued or waiting to be sent
// is cancelled (archived; they are told). Their chats and the archive stay.
func (e *Engine) DisableEmployee(ctx context.Context, id EmployeeID, actor string) error {
	if actor == "" {
		return fmt.Errorf("disable employee: %w: an actor is required", ErrInvalid)
	}
	err := e.do(ctx, "", func(s *step) error {
		emp, err := s.employee(id)
		if err != nil {
			return err
		}
		emp.Enabled = false
		emp.UpdatedAt = s.now
		if err := s.tx.PutEmployee(s.ctx, emp); err != nil {
			return err
		}
		s.archive(nil, compliance.AdminStream, compliance.KindEmployeeDisabled, actor, compliance.Meta{Employee: string(id)}, compliance.Content{})
		chats, err := s.tx.ChatsOf(s.ctx, id)
		if err != nil {
			return err
		}
		// Lock in id order: a step that locks several chats must not meet another in reverse.
		slices.SortFunc(chats, func(a, b ChatSummary) int { return cmp.Compare(a.Chat, b.Chat) })
		for _, sum := range chats {
			c, err := s.lock(sum.Chat)
			if err != nil {
				return err
			}
			if err := s.cancelOf(c, []EmployeeID{id}, reasonDisabled); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("disable employee %s: %w", id, err)
	}
	return nil
}

// UpdateEmployee changes an employee's record with fn (Teams address, current chat, reachability)
// and archives why. It returns the updated employee.
func (e *Engine) UpdateEmployee(ctx context.Context, id EmployeeID, actor, reason string, fn func(*Employee) error) (*Employee, error) {
	var out *Employee
	err := e.do(ctx, "", func(s *step) error {
		emp, err := s.employee(id)
		if err != nil {
			return err
		}
		if err := fn(emp); err != nil {
			return err
		}
		emp.ID = id
		emp.UpdatedAt = s.now
		if err := s.tx.PutEmployee(s.ctx, emp); err != nil {
			return err
		}
		s.archive(nil, employeeStream(id), compliance.KindEmployeeUpdated, actor, compliance.Meta{Employee: string(id), Reason: reason}, compliance.Content{})
		out = emp
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("update employee %s: %w", id, err)
	}
	return out, nil
}

// Employee returns an employee's record.
func (e *Engine) Employee(ctx context.Context, id EmployeeID) (*Employee, error) {
	var out *Employee
	err := e.store.InTx(ctx, func(tx Tx) (err error) {
		out, err = tx.Employee(ctx, id)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("employee %s: %w", id, ErrUnknownEmployee)
	}
	return out, err
}

// Employees lists every employee known (enabled or not), by name.
func (e *Engine) Employees(ctx context.Context) ([]*Employee, error) {
	out, err := e.store.Employees(ctx)
	if err != nil {
		return nil, fmt.Errorf("list employees: %w", err)
	}
	return out, nil
}

// RenameContact lets an employee of a chat give its customer a name (WeChat gives none).
func (e *Engine) RenameContact(ctx context.Context, emp EmployeeID, chat ChatID, name string) error {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 64 {
		return fmt.Errorf("rename contact: %w: a name of 1 to 64 bytes is required", ErrInvalid)
	}
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
		ct, err := s.contact(c.Contact)
		if err != nil {
			return err
		}
		old := ct.Name
		ct.Name, ct.UpdatedAt = name, s.now
		if err := s.tx.PutContact(s.ctx, ct); err != nil {
			return err
		}
		s.archiveChat(c, compliance.KindEmployeeUpdated, actorEmployee(emp),
			compliance.Meta{Contact: string(c.Contact), Reason: "contact renamed", From: old, To: name}, compliance.Content{})
		return nil
	})
	if err != nil {
		return fmt.Errorf("rename contact of chat %d: %w", chat, err)
	}
	return nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
