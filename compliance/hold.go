package compliance

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Hold scopes: what a legal hold covers.
const (
	HoldChat     = "chat"     // one chat, by number
	HoldEmployee = "employee" // every chat the employee is or was in, and their own stream
	HoldContact  = "contact"  // the customer's chat and their own stream
)

// Hold is a legal hold: while it is in place, retention disposes of nothing it covers.
type Hold struct {
	ID       int64     `json:"id"`
	Scope    string    `json:"scope"`   // chat, employee or contact
	Subject  string    `json:"subject"` // chat number, employee id or openid
	Reason   string    `json:"reason"`
	PlacedBy string    `json:"placed_by"`
	PlacedAt time.Time `json:"placed_at"`
	LiftedBy string    `json:"lifted_by,omitempty"`
	LiftedAt time.Time `json:"lifted_at,omitzero"`
}

// ErrBadHold refuses a hold without a known scope, a subject or a reason.
var ErrBadHold = errors.New("a hold needs a scope (chat, employee or contact), a subject and a reason")

// ErrNoHold means there is no such hold in place.
var ErrNoHold = errors.New("no such hold in place")

// Validate checks a hold before it is placed.
func (h Hold) Validate() error {
	if (h.Scope != HoldChat && h.Scope != HoldEmployee && h.Scope != HoldContact) || strings.TrimSpace(h.Subject) == "" || strings.TrimSpace(h.Reason) == "" {
		return ErrBadHold
	}
	if h.Scope == HoldChat {
		if _, err := strconv.ParseInt(h.Subject, 10, 64); err != nil {
			return fmt.Errorf("%w: a chat is named by its number, not %q", ErrBadHold, h.Subject)
		}
	}
	return nil
}
