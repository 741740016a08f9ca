package supervision

import (
	"slices"
	"strings"
	"unicode"
)

// PLACEHOLDER until the folding matcher lands (the supervision helper replaces this file and fold.go).

// Fold is the form of a text that matching sees.
func Fold(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if unicode.IsLetter(r) || unicode.IsNumber(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Set is a compiled rule set.
type Set struct {
	rules  []Rule
	groups map[string][]string
}

// Compile checks and compiles rules; groups maps a supervision group's name to its employees.
func Compile(rules []Rule, groups map[string][]string) (*Set, error) {
	for i := range rules {
		if err := rules[i].Validate(); err != nil {
			return nil, err
		}
	}
	return &Set{rules: slices.Clone(rules), groups: groups}, nil
}

// Rules returns the compiled rules.
func (s *Set) Rules() []Rule {
	if s == nil {
		return nil
	}
	return s.rules
}

// Check checks a message going dir, written by or to employees.
func (s *Set) Check(text string, dir Direction, employees []string) Result {
	res := Result{Text: text}
	if s == nil {
		return res
	}
	for i := range s.rules {
		r := &s.rules[i]
		if !r.Covers(dir, employees, s.groups) {
			continue
		}
		res.Checked = append(res.Checked, r.Ref())
		for _, t := range r.Terms {
			if at := strings.Index(strings.ToLower(text), strings.ToLower(t.Text)); at >= 0 && !t.Regex {
				res.Matches = append(res.Matches, Match{Rule: r.Ref(), Name: r.Name, Action: r.Action, Term: t.Text, Start: at, End: at + len(t.Text)})
				if r.Action.Stronger(res.Action) {
					res.Action = r.Action
				}
			}
		}
	}
	slices.Sort(res.Checked)
	return res
}
