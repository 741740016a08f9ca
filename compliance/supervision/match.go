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
	wordStart bool  // its first folded character is a word character: needs a word boundary before
	wordEnd   bool  // likewise after
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
		l := literal{rule: rule, term: term, exception: exception,
			wordStart: f.chars[0].flags&flagWord != 0, wordEnd: f.chars[len(f.chars)-1].flags&flagWord != 0}
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

// compilePattern compiles an RE2 term to run on folded text: case-insensitive, and with its literal
// characters folded as text is (ｉ → i, 內 → 内) where a character folds to one other.
func compilePattern(src string) (*regexp.Regexp, error) {
	re, err := syntax.Parse(src, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %w", src, err)
	}
	var walk func(*syntax.Regexp)
	walk = func(re *syntax.Regexp) {
		if re.Op == syntax.OpLiteral {
			for i, r := range re.Rune {
				if e := entry(r); e&cacheMulti == 0 {
					re.Rune[i] = rune(e & 0x1FFFFF)
				}
			}
			re.Flags |= syntax.FoldCase
		}
		for _, sub := range re.Sub {
			walk(sub)
		}
	}
	walk(re)
	out, err := regexp.Compile("(?i)" + re.String())
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %w", src, err)
	}
	return out, nil
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

// fits reports whether the literal's occurrence at chars[first..last] counts: word boundaries at
// its ends when they are word characters, and no gap splitting a word where the literal has none,
// unless the text spells it letter by letter (i n s i d e r).
func (l *literal) fits(chars []fchar, first, last int) bool {
	if l.wordStart && first > 0 && chars[first].flags&flagGap == 0 && chars[first-1].flags&flagWord != 0 {
		return false
	}
	if l.wordEnd && last < len(chars)-1 && chars[last+1].flags&(flagGap|flagWord) == flagWord {
		return false
	}
	for k := first + 1; k <= last; k++ {
		c, p := chars[k].flags, chars[k-1].flags
		if c&flagGap == 0 || c&flagWord == 0 || p&flagWord == 0 {
			continue
		}
		if c&flagSingle != 0 && p&flagSingle != 0 || slices.Contains(l.gaps, k-first) {
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
