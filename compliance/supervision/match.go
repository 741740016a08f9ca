package supervision

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"sync"
)

// Set is a compiled rule set: every literal term and exception of every rule in one automaton,
// and the few patterns beside it.
type Set struct {
	rules    []Rule
	refs     []string // Rule.Ref of each rule
	groups   map[string][]string
	ac       *automaton  // nil when no rule has a literal term
	patterns [][]literal // automaton pattern → the terms and exceptions that fold to it
	regexes  []pattern
	pool     sync.Pool // *folded
}

// maxLiteralRunes bounds the folded characters of all terms and exceptions of a Set (about 8 MB of
// automaton per million), so that its int32 state numbers cannot overflow.
const maxLiteralRunes = 1 << 24

// literal is one term or exception as the automaton knows it.
type literal struct {
	rule      int
	term      int // index in the rule's Terms, or in its Exceptions when exception
	exception bool
	gaps      []int // folded positions p where the term itself has separators before character p
}

// pattern is one RE2 term, compiled to run on the folded text with its separators kept.
type pattern struct {
	rule, term int
	re         *regexp.Regexp
}

// Compile checks each rule (Rule.Validate) and compiles them all together; groups maps a
// supervision group's name to its employees' ids.
func Compile(rules []Rule, groups map[string][]string) (*Set, error) {
	s := &Set{rules: slices.Clone(rules), groups: groups}
	s.pool.New = func() any { return new(folded) }
	var pats [][]rune
	index := map[string]int32{}
	var f folded
	total := 0 // folded characters of all literals: bounds the automaton's states
	add := func(rule, term int, text string, exception bool) {
		f.fold(text, false)
		if len(f.chars) == 0 {
			return // Validate refuses such terms; an exception that folds to nothing matches nothing
		}
		total += len(f.chars)
		runes := make([]rune, len(f.chars))
		l := literal{rule: rule, term: term, exception: exception}
		for i, c := range f.chars {
			runes[i] = c.r
			if i > 0 && c.flags&flagGap != 0 {
				l.gaps = append(l.gaps, i)
			}
		}
		key := string(runes)
		p, ok := index[key]
		if !ok {
			p = int32(len(pats)) // #nosec G115 -- at most maxLiteralRunes patterns
			index[key] = p
			pats = append(pats, runes)
			s.patterns = append(s.patterns, nil)
		}
		s.patterns[p] = append(s.patterns[p], l)
	}
	for i := range s.rules {
		r := &s.rules[i]
		if err := r.Validate(); err != nil {
			return nil, err
		}
		s.refs = append(s.refs, r.Ref())
		for j, t := range r.Terms {
			if !t.Regex {
				add(i, j, t.Text, false)
				continue
			}
			re, err := compilePattern(t.Text)
			if err != nil {
				return nil, fmt.Errorf("rule %s: term %d: %w", r.ID, j+1, err)
			}
			s.regexes = append(s.regexes, pattern{i, j, re})
		}
		for j, x := range r.Exceptions {
			add(i, j, x, true)
		}
	}
	if total > maxLiteralRunes {
		return nil, fmt.Errorf("the rules hold %d characters of terms and exceptions; at most %d", total, maxLiteralRunes)
	}
	if len(pats) > 0 {
		s.ac = buildAutomaton(pats)
	}
	return s, nil
}

// compilePattern compiles an RE2 term to run on folded text: case-insensitive, with its literal
// characters folded as text is (ｉ → i, 內 → 内) where a character folds to one other, and without
// the invisible characters and combining marks folding drops. It refuses a pattern that can match
// empty text: its empty matches would mark nothing, so it would never find anything.
func compilePattern(src string) (*regexp.Regexp, error) {
	re, err := syntax.Parse(src, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %w", src, err)
	}
	var walk func(*syntax.Regexp)
	walk = func(re *syntax.Regexp) {
		if re.Op == syntax.OpLiteral {
			rs := re.Rune[:0]
			for _, r := range re.Rune {
				switch e := entry(r); {
				case e&cacheMulti != 0:
					rs = append(rs, r)
				case entryKind(e) != kindIgnore:
					rs = append(rs, rune(e&cacheRune))
				}
			}
			re.Rune = rs
			re.Flags |= syntax.FoldCase
			if len(rs) == 0 {
				re.Op, re.Rune = syntax.OpEmptyMatch, nil
			}
		}
		for _, sub := range re.Sub {
			walk(sub)
		}
	}
	walk(re)
	if matchesEmpty(re) {
		return nil, fmt.Errorf("pattern %q matches empty text, so it would match everywhere and mark nothing; make it need at least one character", src)
	}
	out, err := regexp.Compile("(?i)" + re.String())
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %w", src, err)
	}
	return out, nil
}

// matchesEmpty reports whether re can match empty text somewhere, taking every assertion (^ $ \b
// \B) as one that may hold.
func matchesEmpty(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary, syntax.OpStar, syntax.OpQuest:
		return true
	case syntax.OpLiteral:
		return len(re.Rune) == 0
	case syntax.OpCapture, syntax.OpPlus:
		return matchesEmpty(re.Sub[0])
	case syntax.OpRepeat:
		return re.Min == 0 || matchesEmpty(re.Sub[0])
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			if !matchesEmpty(sub) {
				return false
			}
		}
		return true
	case syntax.OpAlternate:
		return slices.ContainsFunc(re.Sub, matchesEmpty)
	}
	return false // OpNoMatch, character classes, any character
}

// Rules returns the compiled rules (nil for a nil Set).
func (s *Set) Rules() []Rule {
	if s == nil {
		return nil
	}
	return s.rules
}

// hit is one occurrence found, before exceptions are applied.
type hit struct {
	rule, term int
	start, end int // original bytes
}

// Check checks a message going dir, written by or to employees. Only rules that cover the message
// (Rule.Covers) apply. A nil Set finds nothing.
func (s *Set) Check(text string, dir Direction, employees []string) Result {
	res := Result{Text: text}
	if s == nil {
		return res
	}
	covered := make([]bool, len(s.rules))
	anyRule, anyRegex := false, false
	for i := range s.rules {
		r := &s.rules[i]
		if r.Covers(dir, employees, s.groups) {
			covered[i], anyRule = true, true
			res.Checked = append(res.Checked, s.refs[i])
		}
	}
	slices.Sort(res.Checked)
	if !anyRule {
		return res
	}
	for _, p := range s.regexes {
		if covered[p.rule] {
			anyRegex = true
			break
		}
	}

	f := s.pool.Get().(*folded)
	defer s.pool.Put(f)
	f.fold(text, anyRegex)

	var hits, excepts []hit
	if s.ac != nil {
		chars := f.chars
		s.ac.scan(chars, func(p int32, first, last int) {
			for i := range s.patterns[p] {
				l := &s.patterns[p][i]
				if !covered[l.rule] || !l.fits(chars, first, last) {
					continue
				}
				h := hit{l.rule, l.term, chars[first].start, chars[last].end}
				if l.exception {
					excepts = append(excepts, h)
				} else {
					hits = append(hits, h)
				}
			}
		})
	}
	for _, p := range s.regexes {
		if !covered[p.rule] {
			continue
		}
		for _, m := range p.re.FindAllIndex(f.full, -1) {
			if m[0] == m[1] {
				continue // an empty match marks nothing
			}
			first, _ := slices.BinarySearchFunc(f.fullMap, m[0], func(c fullChar, at int) int { return c.at - at })
			last, _ := slices.BinarySearchFunc(f.fullMap, m[1], func(c fullChar, at int) int { return c.at - at })
			hits = append(hits, hit{p.rule, p.term, f.fullMap[first].start, f.fullMap[last-1].end})
		}
	}

	// Exceptions, then one match per rule and span, in text order.
	hits = slices.DeleteFunc(hits, func(h hit) bool {
		return slices.ContainsFunc(excepts, func(x hit) bool {
			return x.rule == h.rule && x.start <= h.start && h.end <= x.end
		})
	})
	slices.SortFunc(hits, func(a, b hit) int {
		if a.start != b.start {
			return a.start - b.start
		}
		if a.end != b.end {
			return a.end - b.end
		}
		if a.rule != b.rule {
			return a.rule - b.rule
		}
		return a.term - b.term
	})
	hits = slices.CompactFunc(hits, func(a, b hit) bool {
		return a.rule == b.rule && a.start == b.start && a.end == b.end
	})
	for _, h := range hits {
		r := &s.rules[h.rule]
		res.Matches = append(res.Matches, Match{
			Rule: s.refs[h.rule], Name: r.Name, Action: r.Action, Term: r.Terms[h.term].Text,
			Start: h.start, End: h.end, Matched: text[h.start:h.end],
		})
		if r.Action.Stronger(res.Action) {
			res.Action = r.Action
		}
	}
	res.Text = s.redact(text, hits)
	return res
}

// fits reports whether the literal's occurrence at chars[first..last] counts: a word boundary at
// each end (the character outside does not continue the word: see joined), and no gap splitting a
// word (letters from letters, digits from digits) where the literal has none, unless the text
// spells it letter by letter (i n s i d e r).
func (l *literal) fits(chars []fchar, first, last int) bool {
	if first > 0 && joined(chars[first-1], chars[first]) || last < len(chars)-1 && joined(chars[last], chars[last+1]) {
		return false
	}
	for k := first + 1; k <= last; k++ {
		c, p := chars[k], chars[k-1]
		if c.flags&flagGap == 0 || !joined(p, fchar{flags: c.flags &^ flagGap}) {
			continue
		}
		if c.flags&p.flags&flagSingle != 0 || slices.Contains(l.gaps, k-first) {
			continue
		}
		return false
	}
	return true
}

// redact replaces the spans of redact rules' hits (sorted by start), overlapping ones merged into
// one replacement: that of the rule whose hit starts first.
func (s *Set) redact(text string, hits []hit) string {
	var b strings.Builder
	at := 0 // text[:at] is written
	end := -1
	for _, h := range hits {
		r := &s.rules[h.rule]
		if r.Action != ActionRedact {
			continue
		}
		if h.start < end { // overlaps the span being replaced
			end = max(end, h.end)
			continue
		}
		if end >= 0 {
			at = end
		}
		if b.Len() == 0 {
			b.Grow(len(text))
		}
		b.WriteString(text[at:h.start])
		repl := r.Replacement
		if repl == "" {
			repl = DefaultReplacement
		}
		b.WriteString(repl)
		at, end = h.start, h.end
	}
	if end < 0 {
		return text
	}
	b.WriteString(text[end:])
	return b.String()
}
