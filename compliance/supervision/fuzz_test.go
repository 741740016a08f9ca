package supervision

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzFold: folding never panics, gives valid UTF-8 without separators, and folding the folded form
// changes nothing (a term written in folded form matches what the original matched).
func FuzzFold(f *testing.F) {
	for _, s := range []string{"內幕消息", "内 幕-消·息", "ＩＮＳＩＤＥＲ", "cafe\u0301", "Ⅻ㎏ﬁ", "\xff\xfe", "ΣΟΦΌΣ", "e\u0301\u0323\u0307"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Fold(s)
		if !utf8.ValidString(got) {
			t.Fatalf("Fold(%q) = %q: not valid UTF-8", s, got)
		}
		for _, r := range got {
			if _, k := foldRune(r); k == kindSep {
				t.Fatalf("Fold(%q) = %q keeps the separator %q", s, got, r)
			}
		}
		if again := Fold(got); again != got {
			t.Fatalf("Fold(%q) = %q, but Fold(%q) = %q", s, got, got, again)
		}
	})
}

// FuzzCheck: any message and term: no panic, every span inside the text on character boundaries
// and in order, and once a redact rule has redacted a message, checking the result finds the term
// no more.
func FuzzCheck(f *testing.F) {
	f.Add("有內幕消息嗎 and ＩＮＳＩＤＥＲ tips", "内幕消息")
	f.Add("i n s i d e r", "insider")
	f.Add("内内幕幕", "内幕")
	f.Add("no guarantee, we guarantee", "guarantee")
	f.Add("\xff内\u0301幕", "內幕")
	f.Fuzz(func(t *testing.T, text, term string) {
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
	})
}
