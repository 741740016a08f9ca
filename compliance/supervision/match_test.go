package supervision

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// rule is a covering-everyone rule for tests: to customers, one action, these terms.
func rule(id string, a Action, terms ...string) Rule {
	r := Rule{ID: id, Version: 1, Name: "rule " + id, Action: a, Directions: []Direction{ToCustomer, ToEmployee}}
	for _, t := range terms {
		r.Terms = append(r.Terms, Term{Text: t})
	}
	return r
}

func compile(t *testing.T, rules ...Rule) *Set {
	t.Helper()
	s, err := Compile(rules, map[string][]string{"desk-a": {"e1", "e2"}, "desk-b": {"e3"}})
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return s
}

// matched lists the original spans a check found.
func matched(r Result) []string {
	var out []string
	for _, m := range r.Matches {
		out = append(out, m.Matched)
	}
	return out
}

func TestFoldingTheWayAnOfficerExpects(t *testing.T) {
	same := []struct{ a, b, why string }{
		{"内幕消息", "內幕消息", "Simplified ↔ Traditional"},
		{"保證收益", "保证收益", "Traditional ↔ Simplified"},
		{"臺灣", "台湾", "臺 → 台"},
		{"內幕消息", "内 幕 消 息", "spaces between characters"},
		{"内幕消息", "内-幕消息", "a hyphen"},
		{"内幕消息", "内·幕・消_息", "middle dots and an underscore"},
		{"内幕消息", "内，幕、消。息", "Chinese punctuation"},
		{"内幕消息", "内　幕\u200b消\u200d息", "ideographic space, zero-width space and joiner"},
		{"内幕消息", "内\ufe0f幕消息", "a variation selector"},
		{"insider", "ｉｎｓｉｄｅｒ", "full width"},
		{"INSIDER", "insider", "case"},
		{"ｉｎｓｉｄｅｒ", "InSiDeR", "full width and case"},
		{"8888", "８８８８", "full-width digits"},
		{"café", "cafe\u0301", "a combining accent (NFKC composes it)"},
		{"σοφός", "ΣΟΦΌΣ", "Greek final sigma"},
		{"kg", "㎏", "a compatibility unit"},
		{"guaranteedreturns", "Guaranteed   returns!", "spaces and punctuation between words"},
		{"insider", "in\u200bsi\u00adde\u2060r", "invisible characters are nothing, not separators"},
		{"insider", "insi\u034fder\u0301", "a combining grapheme joiner and an accent"},
		{"内幕消息", "内\u3164幕\u0301消\ufe0e息", "a Hangul filler, an accent and a variation selector"},
		{"résumé", "resume", "accents"},
		{"가", "\u1100\u1161", "Hangul jamo compose"},
		{"셔", "ㅅㅕ", "compatibility jamo compose too (once folded, as folding again would)"},
	}
	for _, c := range same {
		if fa, fb := Fold(c.a), Fold(c.b); fa != fb {
			t.Errorf("%s: Fold(%q) = %q, Fold(%q) = %q; want the same", c.why, c.a, fa, c.b, fb)
		}
	}
	differ := [][2]string{{"内幕消息", "内部消息"}, {"insider", "inside"}, {"保本", "保险"}, {"ガス", "カス"}}
	for _, c := range differ {
		if Fold(c[0]) == Fold(c[1]) {
			t.Errorf("Fold(%q) = Fold(%q); want them told apart", c[0], c[1])
		}
	}
	for _, s := range []string{"", " ", "—·、。!?", "\u200b\ufeff", "$%^&*", "\u3164\u034f\u0301", "\U000E0001\U000E0041"} {
		if f := Fold(s); f != "" {
			t.Errorf("Fold(%q) = %q; want nothing to match", s, f)
		}
	}
}

func TestTermsMatchAcrossScriptsWidthsAndSpacing(t *testing.T) {
	cases := []struct {
		term, text string
		want       []string // the original spans found; nil: no match
	}{
		// Chinese, both ways between Simplified and Traditional, without word boundaries.
		{"内幕消息", "有內幕消息嗎？", []string{"內幕消息"}},
		{"內幕消息", "有内幕消息吗？", []string{"内幕消息"}},
		{"内幕消息", "听说有内 幕 消 息", []string{"内 幕 消 息"}},
		{"内幕消息", "内-幕消息", []string{"内-幕消息"}},
		{"内幕消息", "內，幕。消、息", []string{"內，幕。消、息"}},
		{"内幕消息", "这是内部消息", nil},
		{"保證收益", "我们保证收益百分之八", []string{"保证收益"}},
		{"内幕", "内幕内幕", []string{"内幕", "内幕"}},
		// Latin words: full width, case, word boundaries.
		{"insider", "ｉｎｓｉｄｅｒ tips", []string{"ｉｎｓｉｄｅｒ"}},
		{"Insider", "INSIDER info", []string{"INSIDER"}},
		{"insider", "we have insiders", nil},
		{"insider", "an outsider", nil},
		{"insider", "insider123", []string{"insider"}}, // letters then digits: two words (see the ticker test)
		{"insider", "insiders123", nil},
		{"insider", "(insider)", []string{"insider"}},
		{"insider", "买入insider消息", []string{"insider"}}, // Chinese next to a Latin word is a boundary
		// Spaces between Latin letters are not ignored for words ("cash in side" is not "inside"),
		// but a word spelt letter by letter is still the word.
		{"inside", "cash in side", nil},
		{"insider", "in sider", nil},
		{"insider", "in-sider", nil},
		{"insider", "i n s i d e r", []string{"i n s i d e r"}},
		{"insider", "I.N.S.I.D.E.R!", []string{"I.N.S.I.D.E.R"}},
		{"insider", "ｉ ｎ ｓ ｉ ｄ ｅ ｒ", []string{"ｉ ｎ ｓ ｉ ｄ ｅ ｒ"}},
		// A phrase matches with any spacing or punctuation where it has a space, or none.
		{"guaranteed returns", "Guaranteed  returns!", []string{"Guaranteed  returns"}},
		{"guaranteed returns", "#guaranteed-returns", []string{"guaranteed-returns"}},
		{"guaranteed returns", "guaranteedreturns", []string{"guaranteedreturns"}},
		{"guaranteed returns", "guaranteed bonus returns", nil},
		// Digits are words too; mixed scripts.
		{"8888", "tel ８８８８", []string{"８８８８"}},
		{"8888", "18888", nil},
		{"A股", "买 a 股", []string{"a 股"}},
	}
	for _, c := range cases {
		s := compile(t, rule("r", ActionFlag, c.term))
		got := matched(s.Check(c.text, ToCustomer, nil))
		if !slices.Equal(got, c.want) {
			t.Errorf("term %q in %q: matched %q, want %q", c.term, c.text, got, c.want)
		}
	}
}

// An invisible character or a combining accent slipped into a term must not hide it: it is
// neither a character nor a separator, and a redaction takes it with the term.
func TestInvisibleCharactersAndAccentsDoNotHideATerm(t *testing.T) {
	cases := []struct {
		term, text, why string
		want            []string // the original spans found; nil: no match
	}{
		{"insider", "in\u200bsider tips", "a zero-width space", []string{"in\u200bsider"}},
		{"insider", "in\u00adsider", "a soft hyphen", []string{"in\u00adsider"}},
		{"insider", "in\u2060sider", "a word joiner", []string{"in\u2060sider"}},
		{"insider", "in\u200c\u200dsi\ufeffder", "zero-width non-joiner, joiner and no-break space", []string{"in\u200c\u200dsi\ufeffder"}},
		{"insider", "insi\u034fder", "a combining grapheme joiner", []string{"insi\u034fder"}},
		{"insider", "in\U000E0041sider", "a tag character", []string{"in\U000E0041sider"}},
		{"insider", "i\ufe0fnsider", "a variation selector", []string{"i\ufe0fnsider"}},
		{"insider", "insider\u0301 tips", "an accent after the last letter", []string{"insider\u0301"}},
		{"insider", "i\u0301nsi\u0300de\u0308r", "accents on every other letter", []string{"i\u0301nsi\u0300de\u0308r"}},
		{"insider", "ínsidér", "precomposed accented letters", []string{"ínsidér"}},
		{"insider", "in\u200b sider", "an invisible character beside a real space is still a space", nil},
		{"insider", "in\u200bsiders", "no boundary after, invisible or not", nil},
		{"内幕消息", "内\u034f幕消息", "a combining grapheme joiner between Chinese characters", []string{"内\u034f幕消息"}},
		{"内幕消息", "内\u3164幕消息", "a Hangul filler", []string{"内\u3164幕消息"}},
		{"内幕消息", "内\u115f幕\u1160消\uffa0息", "the other Hangul fillers", []string{"内\u115f幕\u1160消\uffa0息"}},
		{"内幕消息", "内\u0301幕消息", "a combining accent on a Chinese character", []string{"内\u0301幕消息"}},
		{"内幕消息", "內\u20dd幕消息", "an enclosing mark", []string{"內\u20dd幕消息"}},
		{"内幕消息", "内\u200b幕\u2060消\u00ad息", "invisible characters between all four", []string{"内\u200b幕\u2060消\u00ad息"}},
		{"café", "cafe\u0301 and cafe", "accents do not tell words apart", []string{"cafe\u0301", "cafe"}},
		// Accents are dropped, not the kana voicing marks: ガス is not カス.
		{"ガス", "カス", "voiced and unvoiced kana", nil},
		{"ガス", "カ\u3099ス", "a kana with a combining voicing mark", []string{"カ\u3099ス"}},
		{"ガス", "ｶﾞｽ", "half-width kana", []string{"ｶﾞｽ"}},
	}
	for _, c := range cases {
		s := compile(t, rule("r", ActionRedact, c.term))
		res := s.Check(c.text, ToCustomer, nil)
		if got := matched(res); !slices.Equal(got, c.want) {
			t.Errorf("%s: term %q in %q: matched %q, want %q", c.why, c.term, c.text, got, c.want)
			continue
		}
		if c.want == nil {
			continue
		}
		// What a reviewer sees Fold make of the span is the term, and the redaction leaves nothing of it.
		if f := Fold(c.want[0]); f != Fold(c.term) {
			t.Errorf("%s: Fold(%q) = %q, but the term folds to %q", c.why, c.want[0], f, Fold(c.term))
		}
		if strings.Contains(res.Text, c.want[0]) || !strings.Contains(res.Text, DefaultReplacement) {
			t.Errorf("%s: %q redacted to %q", c.why, c.text, res.Text)
		}
	}
}

// A stock code is a number: it matches next to letters (exchange prefixes and suffixes), not inside
// a longer number. Only a letter touching a letter or a digit touching a digit joins a word.
func TestTickersMatchNextToLetters(t *testing.T) {
	cases := []struct {
		term, text string
		want       []string
	}{
		{"600519", "买SH600519", []string{"600519"}},
		{"600519", "600519.SS", []string{"600519"}},
		{"600519", "sz600519sh", []string{"600519"}},
		{"600519", "ｓｈ６００５１９", []string{"６００５１９"}},
		{"600519", "6005191", nil},
		{"600519", "1600519", nil},
		{"600519", "600519.5", []string{"600519"}}, // a point is a separator
		{"600519", "6 0 0 5 1 9", []string{"6 0 0 5 1 9"}},
		{"600519", "SH6 0 0 5 1 9", []string{"6 0 0 5 1 9"}},
		{"600519", "600 519", nil}, // two numbers
		{"sh600519", "SH600519", []string{"SH600519"}},
		{"sh600519", "SH 600519", []string{"SH 600519"}}, // a separator between letters and digits is ignored
		{"sh600519", "ASH600519", nil},
		{"sh600519", "SH6005191", nil},
		{"aapl", "AAPL2024", []string{"AAPL"}},
		{"aapl", "2024aapl", []string{"aapl"}},
		{"aapl", "AAPLX", nil},
		{"a股", "600519A股", []string{"A股"}},
	}
	for _, c := range cases {
		s := compile(t, rule("r", ActionFlag, c.term))
		if got := matched(s.Check(c.text, ToCustomer, nil)); !slices.Equal(got, c.want) {
			t.Errorf("term %q in %q: matched %q, want %q", c.term, c.text, got, c.want)
		}
	}
}

func TestValidateRefusesPatternsThatCannotMarkAnything(t *testing.T) {
	cases := []struct{ pattern, want string }{
		{"", "the pattern is empty"},
		{"a*", "matches empty text"},
		{"(insider)?", "matches empty text"},
		{"^$", "matches empty text"},
		{`\b`, "matches empty text"},
		{"insider|", "matches empty text"},
		{`x{0,3}`, "matches empty text"},
		{"\u200b", "matches empty text"}, // an invisible character: folding drops it from every text
		{"(unclosed", "missing closing )"},
	}
	for _, c := range cases {
		r := Rule{ID: "p", Name: "p", Action: ActionFlag, Directions: []Direction{ToCustomer},
			Terms: []Term{{Text: c.pattern, Regex: true}}}
		if err := r.Validate(); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "term 1") {
			t.Errorf("pattern %q: Validate = %v; want an error naming term 1 and saying %q", c.pattern, err, c.want)
		}
	}
	for _, ok := range []string{"a+", `\d{3}-\d{4}`, `^insider\b`, "(a|b)c?", "x{1,3}"} {
		r := Rule{ID: "p", Name: "p", Action: ActionFlag, Directions: []Direction{ToCustomer},
			Terms: []Term{{Text: ok, Regex: true}}}
		if err := r.Validate(); err != nil {
			t.Errorf("pattern %q: %v", ok, err)
		}
	}
}

func TestPatternsSeeNeitherInvisibleCharactersNorAccents(t *testing.T) {
	phone := Rule{ID: "phone", Version: 1, Name: "phone numbers", Action: ActionRedact, Directions: []Direction{ToCustomer},
		Terms: []Term{{Text: `1[3-9]\d{9}`, Regex: true}, {Text: `in\x{200B}sider`, Regex: true}}}
	s := compile(t, phone)
	cases := []struct{ text, want string }{
		{"call 138\u200b1234\u20605678 now", "call [redacted] now"},
		{"call 1\u03013812345678 now", "call [redacted] now"},
		{"in\u00adsider", "[redacted]"}, // the pattern's own invisible character is dropped too
		{"insider", "[redacted]"},
	}
	for _, c := range cases {
		if got := s.Check(c.text, ToCustomer, nil).Text; got != c.want {
			t.Errorf("%q → %q, want %q", c.text, got, c.want)
		}
	}
}

func TestExceptions(t *testing.T) {
	r := rule("promise", ActionBlock, "guarantee", "保本")
	r.Exceptions = []string{"no guarantee", "不保本"}
	s := compile(t, r)
	cases := []struct {
		text string
		want []string
	}{
		{"There is no guarantee of returns.", nil},
		{"There is NO-GUARANTEE of returns.", nil},
		{"We guarantee it.", []string{"guarantee"}},
		{"No guarantee, but we guarantee 5%.", []string{"guarantee"}},
		{"本产品不保本", nil},
		{"本產品不保本", nil},
		{"保本保息", []string{"保本"}},
		{"不保本，但是保本", []string{"保本"}},
	}
	for _, c := range cases {
		res := s.Check(c.text, ToCustomer, nil)
		if got := matched(res); !slices.Equal(got, c.want) {
			t.Errorf("%q: matched %q, want %q", c.text, got, c.want)
		}
		if want := ActionNone; c.want != nil {
			want = ActionBlock
			if res.Action != want {
				t.Errorf("%q: action %q, want %q", c.text, res.Action, want)
			}
		}
	}
	// An exception of one rule does not excuse another rule's hit.
	other := rule("other", ActionFlag, "guarantee")
	s = compile(t, r, other)
	res := s.Check("There is no guarantee.", ToCustomer, nil)
	if got := res.Rules(); !slices.Equal(got, []string{"other@1"}) {
		t.Errorf("rules matched %q, want only other@1", got)
	}
}

func TestRedactionReplacesTheOriginalSpans(t *testing.T) {
	secrets := rule("secrets", ActionRedact, "内幕消息", "insider")
	custom := rule("phone", ActionRedact, "幕消息电话")
	custom.Replacement = "[电话]"
	cases := []struct {
		name  string
		rules []Rule
		text  string
		want  string
	}{
		{"Traditional and full width in one message", []Rule{secrets},
			"請看內幕消息和ＩＮＳＩＤＥＲ tips，謝謝", "請看[redacted]和[redacted] tips，謝謝"},
		{"spaced out", []Rule{secrets}, "内 幕 消 息 and i-n-s-i-d-e-r", "[redacted] and [redacted]"},
		{"adjacent spans stay two", []Rule{secrets}, "內幕消息內幕消息", "[redacted][redacted]"},
		{"overlapping spans of two rules become one, the first rule's replacement", []Rule{secrets, custom},
			"有内幕消息电话吗", "有[redacted]吗"},
		{"overlapping, the other rule first", []Rule{custom, rule("s2", ActionRedact, "消息电话号码")},
			"内幕消息电话号码", "内[电话]"},
		{"a block or flag rule changes nothing", []Rule{rule("b", ActionBlock, "内幕"), rule("f", ActionFlag, "insider")},
			"内幕 insider", "内幕 insider"},
		{"nothing found", []Rule{secrets}, "普通消息", "普通消息"},
	}
	for _, c := range cases {
		res := compile(t, c.rules...).Check(c.text, ToCustomer, nil)
		if res.Text != c.want {
			t.Errorf("%s: %q → %q, want %q", c.name, c.text, res.Text, c.want)
		}
	}
}

func TestTheStrongestActionWins(t *testing.T) {
	s := compile(t, rule("f", ActionFlag, "returns"), rule("r", ActionRedact, "8888"), rule("b", ActionBlock, "内幕"))
	cases := []struct {
		text  string
		want  Action
		rules []string
	}{
		{"nothing here", ActionNone, nil},
		{"returns", ActionFlag, []string{"f@1"}},
		{"returns at 8888", ActionRedact, []string{"f@1", "r@1"}},
		{"內幕 returns 8888", ActionBlock, []string{"b@1", "f@1", "r@1"}},
	}
	for _, c := range cases {
		res := s.Check(c.text, ToCustomer, nil)
		if res.Action != c.want || !slices.Equal(res.Rules(), c.rules) {
			t.Errorf("%q: action %q rules %q, want %q %q", c.text, res.Action, res.Rules(), c.want, c.rules)
		}
	}
	res := s.Check("內幕 returns 8888", ToCustomer, nil)
	if got := res.Names(ActionBlock); !slices.Equal(got, []string{"rule b"}) {
		t.Errorf("blocking names %q", got)
	}
	if res.Text != "內幕 returns [redacted]" {
		t.Errorf("text %q: a blocked message is still redacted where a redact rule matched", res.Text)
	}
}

func TestCoverage(t *testing.T) {
	everyone := rule("everyone", ActionFlag, "内幕")
	outbound := rule("outbound", ActionFlag, "内幕")
	outbound.Directions = []Direction{ToCustomer}
	deskA := rule("desk-a", ActionFlag, "内幕")
	deskA.Groups = []string{"desk-a"}
	named := rule("named", ActionFlag, "内幕")
	named.Employees = []string{"e3"}
	off := rule("off", ActionBlock, "内幕")
	off.Disabled = true
	gone := rule("gone", ActionBlock, "内幕")
	gone.Deleted = true
	s := compile(t, everyone, outbound, deskA, named, off, gone)
	cases := []struct {
		dir       Direction
		employees []string
		want      []string
	}{
		{ToCustomer, []string{"e1"}, []string{"desk-a@1", "everyone@1", "outbound@1"}},
		{ToEmployee, []string{"e1"}, []string{"desk-a@1", "everyone@1"}},
		{ToCustomer, []string{"e3"}, []string{"everyone@1", "named@1", "outbound@1"}},
		{ToEmployee, []string{"e9", "e2"}, []string{"desk-a@1", "everyone@1"}},
		{ToEmployee, nil, []string{"everyone@1"}},
	}
	for _, c := range cases {
		res := s.Check("有内幕", c.dir, c.employees)
		if !slices.Equal(res.Checked, c.want) {
			t.Errorf("%s %v: checked %q, want %q", c.dir, c.employees, res.Checked, c.want)
		}
		if !slices.Equal(res.Rules(), c.want) {
			t.Errorf("%s %v: matched %q, want %q", c.dir, c.employees, res.Rules(), c.want)
		}
		if res.Action != ActionFlag {
			t.Errorf("%s %v: action %q; a disabled or deleted block rule must not apply", c.dir, c.employees, res.Action)
		}
	}
}

func TestPatternTerms(t *testing.T) {
	phone := Rule{ID: "phone", Version: 2, Name: "phone numbers", Action: ActionRedact, Directions: []Direction{ToCustomer},
		Terms: []Term{{Text: `1[3-9]\d{9}`, Regex: true}, {Text: `\d{3}-\d{4}`, Regex: true}}}
	promise := Rule{ID: "promise", Version: 1, Name: "promises", Action: ActionFlag, Directions: []Direction{ToCustomer},
		Terms: []Term{{Text: `保證\d+%`, Regex: true}, {Text: `Guaranteed\s+\d+`, Regex: true}}, Exceptions: []string{"not guaranteed 12 pct"}}
	s := compile(t, phone, promise)
	cases := []struct {
		text, want string
		matched    []string
	}{
		{"call 13812345678 now", "call [redacted] now", []string{"13812345678"}},
		{"call １３８１２３４５６７８ now", "call [redacted] now", []string{"１３８１２３４５６７８"}},
		{"call 555-1234", "call [redacted]", []string{"555-1234"}},
		{"call ５５５－１２３４", "call [redacted]", []string{"５５５－１２３４"}},
		{"保证8%", "保证8%", []string{"保证8%"}},
		{"保證８％", "保證８％", []string{"保證８％"}},
		{"it is not guaranteed 12 pct", "it is not guaranteed 12 pct", nil}, // inside an exception
		{"GUARANTEED 12 pct", "GUARANTEED 12 pct", []string{"GUARANTEED 12"}},
	}
	for _, c := range cases {
		res := s.Check(c.text, ToCustomer, nil)
		if res.Text != c.want || !slices.Equal(matched(res), c.matched) {
			t.Errorf("%q: text %q matched %q, want %q %q", c.text, res.Text, matched(res), c.want, c.matched)
		}
	}
	if _, err := Compile([]Rule{{ID: "bad", Name: "bad", Action: ActionFlag, Directions: []Direction{ToCustomer},
		Terms: []Term{{Text: `(unclosed`, Regex: true}}}}, nil); err == nil || !strings.Contains(err.Error(), "rule bad") {
		t.Errorf("a bad pattern compiled: %v", err)
	}
}

func TestCompileRefusesABadRule(t *testing.T) {
	bad := rule("ok", ActionFlag, "x")
	bad.Terms = append(bad.Terms, Term{Text: " — "})
	if _, err := Compile([]Rule{rule("fine", ActionFlag, "y"), bad}, nil); err == nil || !strings.Contains(err.Error(), "nothing to match") {
		t.Errorf("Compile: %v; want the term with nothing to match named", err)
	}
}

func TestMatchesAreInTextOrderOnRuneBoundaries(t *testing.T) {
	s := compile(t, rule("a", ActionFlag, "内幕", "insider"), rule("b", ActionRedact, "幕消", "ｉｎｓｉｄｅｒ tip"))
	text := "ＩＮＳＩＤＥＲ tip：內 幕消息, insider."
	res := s.Check(text, ToCustomer, nil)
	if len(res.Matches) != 5 {
		t.Fatalf("matches %+v; want 5", res.Matches)
	}
	for i, m := range res.Matches {
		if m.Start < 0 || m.End > len(text) || m.Start >= m.End || !utf8.RuneStart(text[m.Start]) ||
			(m.End < len(text) && !utf8.RuneStart(text[m.End])) || m.Matched != text[m.Start:m.End] {
			t.Errorf("match %+v is not a span of whole characters of the text", m)
		}
		if i > 0 && m.Start < res.Matches[i-1].Start {
			t.Errorf("match %d starts before the one before it", i)
		}
	}
}

func TestANilSetFindsNothing(t *testing.T) {
	var s *Set
	if res := s.Check("内幕", ToCustomer, nil); res.Text != "内幕" || res.Action != ActionNone || res.Matches != nil {
		t.Errorf("nil set: %+v", res)
	}
	if s.Rules() != nil {
		t.Error("nil set has rules")
	}
}
