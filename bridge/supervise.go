package bridge

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/supervision"
)

// This file is supervision as the conversation sees it: every message with text is checked against
// the firm's rules before it goes anywhere. A block keeps it from its recipient, a redact replaces
// the matched spans in what is delivered (the original stays in the record), a flag opens a review
// item. The message's record names the rule versions it was checked against and those it matched.

// RuleSource is where the engine reads the firm's rules (sqlstore.Store).
type RuleSource interface {
	// SupervisionRules returns the rules in force and the supervision groups by name.
	SupervisionRules(ctx context.Context) ([]supervision.Rule, map[string][]string, error)
	// RulesRevision changes whenever a rule or a group does.
	RulesRevision(ctx context.Context) (int64, error)
}

// LoadRules compiles the rules src holds now; messages are checked against them from the next
// step on. On an error the rules in force stay.
func (e *Engine) LoadRules(ctx context.Context, src RuleSource) error {
	rev, err := src.RulesRevision(ctx)
	if err != nil {
		return fmt.Errorf("load rules: %w", err)
	}
	rules, groups, err := src.SupervisionRules(ctx)
	if err != nil {
		return fmt.Errorf("load rules: %w", err)
	}
	set, err := supervision.Compile(rules, groups)
	if err != nil {
		return fmt.Errorf("load rules: %w", err)
	}
	e.rulesMu.Lock()
	defer e.rulesMu.Unlock()
	if rev >= e.rulesRev {
		e.rules.Store(set)
		e.rulesRev = rev
	}
	return nil
}

// WatchRules loads the rules again whenever another process (or this one) changed them, looking
// every interval, until ctx ends. A failed load is logged and tried again at the next look.
func (e *Engine) WatchRules(ctx context.Context, src RuleSource, every time.Duration) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.clock.After(every):
		}
		rev, err := src.RulesRevision(ctx)
		if err != nil {
			e.log.Warn("supervision rules not checked", zap.Error(err))
			continue
		}
		e.rulesMu.Lock()
		stale := rev != e.rulesRev
		e.rulesMu.Unlock()
		if !stale {
			continue
		}
		if err := e.LoadRules(ctx, src); err != nil {
			e.log.Error("supervision rules not loaded; the previous ones stay in force", zap.Error(err))
			continue
		}
		e.log.Info("supervision rules loaded", zap.Int64("revision", rev), zap.Int("rules", len(e.Rules().Rules())))
	}
}

// SetRules makes set the rules messages are checked against from the next step on (nil: none),
// for tests and benchmarks: serve uses LoadRules and WatchRules, which follow the store's revision.
func (e *Engine) SetRules(set *supervision.Set) { e.rules.Store(set) }

// Rules returns the rules messages are checked against now (nil: none).
func (e *Engine) Rules() *supervision.Set { return e.rules.Load() }

// screen checks a message's text going dir, written by or to employees, and notes what it found in
// the message's archive meta.
func (s *step) screen(meta *compliance.Meta, text string, dir supervision.Direction, employees []EmployeeID) supervision.Result {
	set := s.e.rules.Load()
	if set == nil || text == "" {
		return supervision.Result{Text: text}
	}
	res := set.Check(text, dir, ids(employees))
	meta.Rules, meta.Matched, meta.Action = res.Checked, res.Rules(), string(res.Action)
	return res
}

// ruleWords names the rules of one action that matched, for a notice: “Name” (reason), …
func (s *step) ruleWords(res supervision.Result, a supervision.Action) string {
	reasons := map[string]string{} // by ref: two rules may share a name
	for _, r := range s.e.rules.Load().Rules() {
		reasons[r.Ref()] = strings.TrimSpace(r.Reason)
	}
	var parts, seen []string
	for _, m := range res.Matches {
		if m.Action != a || slices.Contains(seen, m.Rule) {
			continue
		}
		seen = append(seen, m.Rule)
		w := "“" + m.Name + "”"
		if why := reasons[m.Rule]; why != "" {
			w += " (" + why + ")"
		}
		parts = append(parts, w)
	}
	return strings.Join(parts, ", ")
}

// blockEmployeeMessage archives an employee message a rule kept from the customer and tells its
// author which rule, in words.
func (s *step) blockEmployeeMessage(c *Chat, emp EmployeeID, messageID string, res supervision.Result) Result {
	s.archiveBlocked(c, messageID, emp, "to_customer", res)
	s.noticeAbout(c, emp, "employee.blocked", s.employeeText(c, s.policy.Employee.Blocked, "{rules}", s.ruleWords(res, supervision.ActionBlock)), []string{messageID})
	return Result{Chat: c.ID, MessageID: messageID, Outcome: OutcomeRefused, Reason: "blocked", Window: s.window(c)}
}

// withholdCustomerMessage archives a customer's message a rule kept from the employees and tells
// them which rule; the customer is not told (the chat goes on as if it had been read).
func (s *step) withholdCustomerMessage(c *Chat, messageID string, recipients []EmployeeID, res supervision.Result) {
	s.archiveBlocked(c, messageID, "", "to_employee", res)
	text := s.employeeText(c, s.policy.Employee.Withheld, "{rules}", s.ruleWords(res, supervision.ActionBlock))
	for _, emp := range recipients {
		s.noticeAbout(c, emp, "employee.withheld", text, []string{messageID})
	}
}

// archiveBlocked records that a rule kept a message from its recipient, and which rule.
func (s *step) archiveBlocked(c *Chat, messageID string, emp EmployeeID, direction string, res supervision.Result) {
	s.archiveChat(c, compliance.KindBlocked, actorSystem, compliance.Meta{
		MessageID: messageID, Employee: string(emp), Contact: string(c.Contact), Direction: direction,
		Reason: "rule", Matched: res.RulesOf(supervision.ActionBlock), Action: string(supervision.ActionBlock),
	}, compliance.Content{})
}

// redacted archives the text a redact rule left of a message — what its recipient gets — and
// returns the message to deliver.
func (s *step) redacted(c *Chat, messageID string, emp EmployeeID, direction string, m Message, res supervision.Result) Message {
	refs := res.RulesOf(supervision.ActionRedact)
	meta := compliance.Meta{
		MessageID: messageID, Employee: string(emp), Contact: string(c.Contact), Direction: direction,
		Matched: refs, Action: string(supervision.ActionRedact), Count: res.Spans(supervision.ActionRedact),
	}
	if m.Media != nil {
		// The text was taken from the media (WeChat's transcript of a voice message): the media
		// would say what the redaction took out, so only the redacted text goes.
		meta.Reason = "media withheld"
		mediaMeta(&meta, m.Media)
		m.Media, m.Type = nil, "text"
	}
	s.archiveChat(c, compliance.KindRedacted, actorSystem, meta, compliance.Content{Text: res.Text})
	m.Text = res.Text
	return m
}

// flag opens a review item for a message a flag rule matched, in the same transaction as its record.
func (s *step) flag(c *Chat, messageID string, emp EmployeeID, res supervision.Result) error {
	refs := res.RulesOf(supervision.ActionFlag)
	if len(refs) == 0 {
		return nil
	}
	item := &supervision.ReviewItem{
		Tenant: c.Tenant, ChatID: int64(c.ID), MessageID: messageID, Employee: string(emp), Contact: string(c.Contact),
		Reason: supervision.ReasonFlag, Rules: refs, State: supervision.StateOpen, CreatedAt: s.now,
	}
	if err := s.tx.AddReview(s.ctx, item); err != nil {
		return err
	}
	s.events = append(s.events, compliance.Event{
		Stream: compliance.SupervisionStream, ChatID: int64(c.ID), Tenant: c.Tenant, At: s.now,
		Kind: compliance.KindReviewOpened, Actor: actorSystem, Meta: compliance.Meta{
			Subject: supervision.ReviewSubject(item.ID), MessageID: messageID, Employee: string(emp),
			Contact: string(c.Contact), Reason: supervision.ReasonFlag, Matched: refs,
		},
	})
	return nil
}
