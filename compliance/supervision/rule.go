// Package supervision is the firm's own lexicon: rules its compliance team writes (terms, patterns,
// exceptions, who and which direction they cover, and whether a hit blocks, redacts or flags a
// message), compiled into one matcher that folds text the way Chinese needs (NFKC, case, width,
// Traditional ↔ Simplified, separators between characters, invisible characters and accents) and
// finds every term in one pass.
//
// It is a leaf under compliance: it does no I/O and imports nothing from wxteams but compliance.
// The engine (bridge) checks messages with a compiled Set; the store keeps rule versions; the
// compliance API edits them.
package supervision

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Action is what a rule does to a message it matches.
type Action string

// Actions, weakest first. A message several rules match gets the strongest.
const (
	ActionNone   Action = ""
	ActionFlag   Action = "flag"   // delivered; a review item is opened
	ActionRedact Action = "redact" // the matched spans are replaced before delivery
	ActionBlock  Action = "block"  // not delivered; the author (employee) is told which rule stopped it
)

// strength orders actions: block > redact > flag > none.
func (a Action) strength() int {
	switch a {
	case ActionFlag:
		return 1
	case ActionRedact:
		return 2
	case ActionBlock:
		return 3
	}
	return 0
}

// Stronger reports whether a is stronger than b.
func (a Action) Stronger(b Action) bool { return a.strength() > b.strength() }

// Direction is which way a message goes.
type Direction string

// Directions.
const (
	ToCustomer Direction = "to_customer" // employee → customer
	ToEmployee Direction = "to_employee" // customer → employee
)

// Limits on what a rule may hold, so that one rule cannot make matching slow or the record large.
const (
	MaxTermBytes    = 200  // a literal term or exception
	MaxPatternBytes = 200  // an RE2 pattern's source
	MaxTerms        = 5000 // terms plus exceptions in one rule
	MaxRuleIDBytes  = 64
	MaxNameBytes    = 200
	MaxReasonBytes  = 500
)

// Term is one thing a rule looks for: a literal word or phrase, or an RE2 pattern.
type Term struct {
	Text  string `json:"text"`
	Regex bool   `json:"regex,omitempty"`
}

// Rule is one version of a firm's rule, as the compliance team wrote it.
type Rule struct {
	ID      string `json:"id"`      // stable, chosen by the firm: lower-case letters, digits, '-', '_'
	Version int    `json:"version"` // 1, 2, 3 … set by the store on every change
	Name    string `json:"name"`    // shown to employees when the rule stops or changes their message
	// Reason says in words why the rule exists; an employee whose message it blocks is told.
	Reason     string      `json:"reason,omitempty"`
	Action     Action      `json:"action"`
	Terms      []Term      `json:"terms"`
	Exceptions []string    `json:"exceptions,omitempty"` // phrases inside which a term's hit does not count
	Directions []Direction `json:"directions"`           // at least one
	// Employees and Groups narrow the rule to some employees (ids) or supervision groups (names);
	// both empty: everyone. A customer's message is covered when any employee of the chat is.
	Employees []string `json:"employees,omitempty"`
	Groups    []string `json:"groups,omitempty"`
	// Replacement replaces each redacted span ["[redacted]"].
	Replacement string `json:"replacement,omitempty"`
	Disabled    bool   `json:"disabled,omitempty"`

	// Set by the store, not by the author.
	Deleted   bool      `json:"deleted,omitempty"`
	ChangedBy string    `json:"changed_by,omitempty"`
	ChangedAt time.Time `json:"changed_at,omitzero"`
}

// Errors the store returns for rules.
var (
	ErrInvalid = errors.New("invalid rule")
	ErrStale   = errors.New("rule changed meanwhile")
	ErrNoRule  = errors.New("no such rule")
)

// DefaultReplacement replaces a redacted span when the rule names none.
const DefaultReplacement = "[redacted]"

// Ref names a rule version as the record keeps it: "id@version".
func (r *Rule) Ref() string { return r.ID + "@" + strconv.Itoa(r.Version) }

var ruleID = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// Validate reports the first thing wrong with the rule as the firm wrote it, in words an officer
// can act on. It compiles every pattern.
func (r *Rule) Validate() error {
	switch {
	case len(r.ID) > MaxRuleIDBytes || !ruleID.MatchString(r.ID):
		return fmt.Errorf("rule id %q: use 1–%d lower-case letters, digits, '-' or '_', starting with a letter or digit", r.ID, MaxRuleIDBytes)
	case strings.TrimSpace(r.Name) == "" || len(r.Name) > MaxNameBytes:
		return fmt.Errorf("rule %s: a name of 1–%d bytes is required (employees see it)", r.ID, MaxNameBytes)
	case len(r.Reason) > MaxReasonBytes:
		return fmt.Errorf("rule %s: the reason is longer than %d bytes", r.ID, MaxReasonBytes)
	case r.Action != ActionBlock && r.Action != ActionRedact && r.Action != ActionFlag:
		return fmt.Errorf("rule %s: action %q: use block, redact or flag", r.ID, r.Action)
	case len(r.Terms) == 0:
		return fmt.Errorf("rule %s: at least one term is required", r.ID)
	case len(r.Terms)+len(r.Exceptions) > MaxTerms:
		return fmt.Errorf("rule %s: %d terms and exceptions; at most %d", r.ID, len(r.Terms)+len(r.Exceptions), MaxTerms)
	case len(r.Directions) == 0:
		return fmt.Errorf("rule %s: at least one direction is required (to_customer, to_employee)", r.ID)
	case len(r.Replacement) > MaxTermBytes:
		return fmt.Errorf("rule %s: the replacement is longer than %d bytes", r.ID, MaxTermBytes)
	}
	for _, d := range r.Directions {
		if d != ToCustomer && d != ToEmployee {
			return fmt.Errorf("rule %s: direction %q: use to_customer or to_employee", r.ID, d)
		}
	}
	for i, t := range r.Terms {
		if err := t.validate(); err != nil {
			return fmt.Errorf("rule %s: term %d: %w", r.ID, i+1, err)
		}
	}
	for i, x := range r.Exceptions {
		if err := (Term{Text: x}).validate(); err != nil {
			return fmt.Errorf("rule %s: exception %d: %w", r.ID, i+1, err)
		}
	}
	for _, g := range r.Groups {
		if strings.TrimSpace(g) == "" {
			return fmt.Errorf("rule %s: an empty group name", r.ID)
		}
	}
	return nil
}

func (t Term) validate() error {
	switch {
	case !utf8.ValidString(t.Text):
		return errors.New("not valid UTF-8")
	case t.Regex && len(t.Text) > MaxPatternBytes:
		return fmt.Errorf("pattern longer than %d bytes", MaxPatternBytes)
	case !t.Regex && len(t.Text) > MaxTermBytes:
		return fmt.Errorf("term longer than %d bytes", MaxTermBytes)
	case t.Regex && t.Text == "":
		return errors.New("the pattern is empty; write what it must match")
	case t.Regex:
		if _, err := compilePattern(t.Text); err != nil {
			return err
		}
	case Fold(t.Text) == "":
		return fmt.Errorf("term %q has nothing to match once spaces and punctuation are ignored", t.Text)
	}
	return nil
}

// Covers reports whether the rule applies to a message going dir, written to or by employees
// (any of them), given which employees each group holds.
func (r *Rule) Covers(dir Direction, employees []string, groups map[string][]string) bool {
	if r.Disabled || r.Deleted || !slices.Contains(r.Directions, dir) {
		return false
	}
	if len(r.Employees) == 0 && len(r.Groups) == 0 {
		return true
	}
	for _, e := range employees {
		if slices.Contains(r.Employees, e) {
			return true
		}
		for _, g := range r.Groups {
			if slices.Contains(groups[g], e) {
				return true
			}
		}
	}
	return false
}

// Match is one hit of a rule in a message.
type Match struct {
	Rule    string `json:"rule"` // Ref of the rule version: "id@version"
	Name    string `json:"name"`
	Action  Action `json:"action"`
	Term    string `json:"term"`  // the term or pattern as the rule wrote it
	Start   int    `json:"start"` // byte offsets of the matched span in the original text
	End     int    `json:"end"`
	Matched string `json:"-"` // the original text of the span (never logged or archived in Meta)
}

// Result is what checking a message found.
type Result struct {
	// Action is the strongest action of the rules that matched (ActionNone: nothing matched).
	Action Action
	// Matches lists every hit, in text order.
	Matches []Match
	// Checked lists the refs of every rule version the message was checked against (those that
	// cover its direction and people), sorted.
	Checked []string
	// Text is what may be delivered: the original, or with every span of a redact rule replaced.
	// (With ActionBlock nothing is delivered.)
	Text string
}

// Rules lists the distinct refs of the rules that matched, sorted.
func (r Result) Rules() []string { return r.RulesOf(ActionNone) }

// RulesOf lists the distinct refs of the rules of action a that matched (ActionNone: of any
// action), sorted.
func (r Result) RulesOf(a Action) []string {
	var out []string
	for _, m := range r.Matches {
		if (a == ActionNone || m.Action == a) && !slices.Contains(out, m.Rule) {
			out = append(out, m.Rule)
		}
	}
	slices.Sort(out)
	return out
}

// Spans counts the matched spans of rules of action a.
func (r Result) Spans(a Action) int {
	n := 0
	for _, m := range r.Matches {
		if m.Action == a {
			n++
		}
	}
	return n
}

// Names lists the distinct names of the rules that matched with the given action, in the order they
// first matched.
func (r Result) Names(a Action) []string {
	var out []string
	for _, m := range r.Matches {
		if m.Action == a && !slices.Contains(out, m.Name) {
			out = append(out, m.Name)
		}
	}
	return out
}
