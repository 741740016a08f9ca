package supervision

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzFold: folding never panics, gives valid UTF-8 without separators, invisible characters or
// combining accents, and folding the folded form changes nothing (a term written in folded form
// matches what the original matched).
func FuzzFold(f *testing.F) {
	for _, s := range []string{"內幕消息", "内 幕-消·息", "ＩＮＳＩＤＥＲ", "cafe\u0301", "Ⅻ㎏ﬁ", "\xff\xfe", "ΣΟΦΌΣ", "e\u0301\u0323\u0307",
		"in\u200bsider", "in\u00adsider", "in\u2060sider", "insi\u034fder", "内\u034f幕消息", "内\u3164幕消息", "\u115f\u1160\uffa0",
		"内\u0301幕消息", "insider\u0301", "カ\u3099ス", "ｶﾞｽ", "か\u200b\u3099", "\u1100\u200b\u1161", "\u309b\u3099"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Fold(s)
		if !utf8.ValidString(got) {
			t.Fatalf("Fold(%q) = %q: not valid UTF-8", s, got)
		}
		for _, r := range got {
			if _, k := foldRune(r); k == kindSep || k == kindIgnore {
				t.Fatalf("Fold(%q) = %q keeps the separator or invisible character %q", s, got, r)
			}
			if isIgnorable(r) || unicode.In(r, unicode.Mn, unicode.Me) {
				t.Fatalf("Fold(%q) = %q keeps %U", s, got, r)
			}
		}
		if again := Fold(got); again != got {
			t.Fatalf("Fold(%q) = %q, but Fold(%q) = %q", s, got, got, again)
		}
	})
}

// invisibles are slipped into texts by FuzzCheck: default-ignorable code points of several kinds
// and combining marks (non-spacing and enclosing).
var invisibles = []rune{0x200B, 0x00AD, 0x2060, 0x034F, 0x3164, 0xFFA0, 0x115F, 0xFE0F, 0xE0041, 0x180E, 0x0301, 0x0323, 0x20DD}

// FuzzCheck: any message and term: no panic, every span inside the text on character boundaries
// and in order, and once a redact rule has redacted a message, checking the result finds the term
// no more. Two properties tie Check to Fold:
//
//   - Wherever the text's folded characters (Fold's output, with for each character whether
//     separators preceded it, and whether it is a letter, a digit or neither) hold those of a term
//     written without separators, with no separator between them, and at each end the text's end,
//     a separator, or a character that does not continue the word (not a letter beside a letter,
//     not a digit beside a digit; Chinese and Japanese continue nothing), Check reports a match of
//     exactly those characters' original bytes.
//   - Slipping invisible characters and combining marks into the text, anywhere, finds the same
//     number of matches.
func FuzzCheck(f *testing.F) {
	f.Add("有內幕消息嗎 and ＩＮＳＩＤＥＲ tips", "内幕消息", uint8(3))
	f.Add("i n s i d e r", "insider", uint8(1))
	f.Add("内内幕幕", "内幕", uint8(0))
	f.Add("no guarantee, we guarantee", "guarantee", uint8(7))
	f.Add("\xff内\u0301幕", "內幕", uint8(2))
	// The bypasses fixed in the matchfix review.
	f.Add("in\u200bsider", "insider", uint8(5))
	f.Add("in\u00adsider in\u2060sider", "insider", uint8(2))
	f.Add("insi\u034fder 内\u034f幕消息", "内幕消息", uint8(4))
	f.Add("内\u3164幕消息 \u115f\u1160\uffa0", "内幕消息", uint8(9))
	f.Add("内\u0301幕消息 insider\u0301", "insider", uint8(1))
	f.Add("SH600519 600519.SS", "600519", uint8(6))
	f.Add("AAPL2024 ガス カ\u3099ス", "ガス", uint8(3))
	f.Fuzz(func(t *testing.T, text, term string, every uint8) {
		// "[0]" rather than letters, so that the replacement cannot complete a term around it (a
		// replacement of only punctuation would join the text on both sides: 内[…]幕 → 内幕).
		r := Rule{ID: "r", Version: 1, Name: "r", Action: ActionRedact, Directions: []Direction{ToCustomer},
			Terms: []Term{{Text: term}}, Replacement: "[0]"}
		if r.Validate() != nil || strings.Contains(Fold(term), "0") {
			return
		}
		s, err := Compile([]Rule{r}, nil)
		if err != nil {
			t.Fatal(err)
		}
		res := s.Check(text, ToCustomer, nil)
		boundary := map[int]bool{len(text): true} // where decoding puts characters (an invalid byte is one)
		for i := range text {
			boundary[i] = true
		}
		last := 0
		for _, m := range res.Matches {
			if m.Start < last || m.End > len(text) || m.Start >= m.End || !boundary[m.Start] || !boundary[m.End] ||
				m.Matched != text[m.Start:m.End] {
				t.Fatalf("text %q term %q: bad span %+v", text, term, m)
			}
			last = m.Start
		}
		if (res.Text == text) != (len(res.Matches) == 0) {
			t.Fatalf("text %q term %q: %d matches but text %q", text, term, len(res.Matches), res.Text)
		}
		if again := s.Check(res.Text, ToCustomer, nil); len(again.Matches) > 0 {
			t.Fatalf("text %q term %q: redacted to %q, which still matches %+v", text, term, res.Text, again.Matches)
		}

		// Every whole-word occurrence of the folded term in the folded text is matched.
		var tf, xf folded
		tf.fold(term, false)
		xf.fold(text, false)
		n := len(tf.chars)
		spaced := false
		for _, c := range tf.chars[1:] {
			spaced = spaced || c.flags&flagGap != 0
		}
		class := func(c fchar) uint8 { return c.flags & (flagWord | flagDigit) } // 0: neither letter nor digit
		continues := func(a, b fchar) bool { return b.flags&flagGap == 0 && class(a) != 0 && class(a) == class(b) }
	occurrences:
		for a := 0; !spaced && a+n <= len(xf.chars); a++ {
			for k := range n {
				if xf.chars[a+k].r != tf.chars[k].r || k > 0 && xf.chars[a+k].flags&flagGap != 0 {
					continue occurrences
				}
			}
			b := a + n - 1
			if a > 0 && continues(xf.chars[a-1], xf.chars[a]) || b+1 < len(xf.chars) && continues(xf.chars[b], xf.chars[b+1]) {
				continue
			}
			start, end := xf.chars[a].start, xf.chars[b].end
			found := false
			for _, m := range res.Matches {
				found = found || m.Start == start && m.End == end
			}
			if !found {
				t.Fatalf("text %q folds to %q, which holds term %q (%q) as a word at bytes %d–%d, but Check found %+v",
					text, Fold(text), term, Fold(term), start, end, res.Matches)
			}
		}

		// Invisible characters and combining marks change nothing.
		if every == 0 {
			return
		}
		var b strings.Builder
		k := 0
		for i := range text {
			if k%int(every) == 0 {
				b.WriteRune(invisibles[(i+k)%len(invisibles)])
			}
			k++
			_, size := utf8.DecodeRuneInString(text[i:]) // an invalid byte is kept as it was
			b.WriteString(text[i : i+size])
		}
		hidden := b.String()
		if got := s.Check(hidden, ToCustomer, nil); len(got.Matches) != len(res.Matches) {
			t.Fatalf("term %q: %d matches in %q but %d in %q, the same with invisible characters",
				term, len(res.Matches), text, len(got.Matches), hidden)
		}
	})
}
