package supervision

import (
	"strconv"
	"time"
)

// Why a review item was opened.
const (
	ReasonFlag   = "flag"   // a flag rule matched a message
	ReasonSample = "sample" // the conversation was drawn in the daily random sample
)

// Review states: an item is open until a reviewer takes it (assigned), and stays in the backlog
// until it is closed; an escalated item waits for a senior reviewer's decision.
const (
	StateOpen      = "open"
	StateAssigned  = "assigned"
	StateEscalated = "escalated"
	StateClosed    = "closed"
)

// Decisions a reviewer makes.
const (
	DecisionNoIssue  = "no_issue"
	DecisionEscalate = "escalate"
	DecisionClose    = "close"
)

// ReviewItem is one entry of the review queue: a flagged message, or a conversation sampled for
// review on a day.
type ReviewItem struct {
	ID        int64     `json:"id"`
	Tenant    string    `json:"tenant,omitempty"`
	ChatID    int64     `json:"chat_id"`
	MessageID string    `json:"message_id,omitempty"` // the flagged message ("" for a sample)
	Employee  string    `json:"employee,omitempty"`   // the author, or whose conversation was sampled
	Contact   string    `json:"contact,omitempty"`
	Reason    string    `json:"reason"`          // ReasonFlag or ReasonSample
	Rules     []string  `json:"rules,omitempty"` // refs of the rule versions that flagged it
	Day       string    `json:"day,omitempty"`   // a sample's day, YYYY-MM-DD (UTC)
	State     string    `json:"state"`
	Assignee  string    `json:"assignee,omitempty"`
	Decision  string    `json:"decision,omitempty"`
	DecidedBy string    `json:"decided_by,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	DecidedAt time.Time `json:"decided_at,omitzero"`
}

// ReviewSubject is how the record names a review item (Meta.Subject): "review:<id>".
func ReviewSubject(id int64) string { return "review:" + strconv.FormatInt(id, 10) }
