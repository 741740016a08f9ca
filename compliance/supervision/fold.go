package supervision

//go:generate go run ./internal/t2sgen -o t2s_table.go

import (
	"strings"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// How text is folded before matching. Terms and messages go through the same function, character
// by character, so that every folded character remembers which bytes of the original it came from
// (a redaction replaces original bytes):
//
//  1. Unicode NFKC, per normalization segment (a starter and the marks that combine with it):
//     full-width ↔ half-width (ｉｎｓｉｄｅｒ → insider), compatibility forms (① → 1, ㎏ → kg).
//  2. Case: lower case of the upper case (Σ, σ and ς fold together).
//  3. Traditional → Simplified Chinese, one character at a time, from OpenCC's dictionaries
//     (t2s_table.go is generated from them). Both terms and texts fold to Simplified, so a Simplified
//     term matches Traditional text and the reverse.
//  4. Separators are dropped: spaces, punctuation, symbols, control and zero-width characters,
//     variation selectors. Each kept character remembers whether separators preceded it (a gap),
//     which is what Latin word boundaries look at; Chinese and Japanese ignore gaps (内 幕 消 息).
//
// Words of scripts that space them (Latin, digits, Cyrillic…) match on word boundaries: a term that
// starts or ends with a letter or digit does not match inside a longer word ("insider" matches
// "INSIDER info" and "买入insider", not "insiders" or "outsider": a plural is a term of its own).
// Separators between two letters are not ignored ("cash in side" is not "inside", "in sider" not
// "insider"), except where the text spells a word letter by letter ("i n s i d e r",
// "I.N.S.I.D.E.R"), the usual way round a filter, and where the term itself has them: "guaranteed
// returns" matches "guaranteed-returns", "Guaranteed  returns" and "guaranteedreturns".
// Chinese, Japanese and a Latin word next to them need no boundary ("买 a 股" holds "A股").
//
// Patterns (RE2 terms) run on the folded text with its separators kept, so that \d{3}-\d{4} and \s
// mean what they say; their literal characters fold like text (case, width, 內 → 内).

// kind is what a folded character is for matching.
type kind uint8

const (
	kindSep  kind = iota // dropped: spaces, punctuation, symbols, controls, zero-width
	kindWord             // a letter, digit or mark of a script that spaces its words (Latin, Cyrillic…)
	kindCJK              // Han, kana, bopomofo: matched without word boundaries
	kindMark             // a combining mark: belongs to the character before it; alone, a separator
)

// Flags of a folded character.
const (
	flagWord   = 1 << iota // kindWord
	flagGap                // separators lay between the previous kept character and this one
	flagSingle             // a word character standing alone between gaps or other scripts (i n s i d e r)
)

// fchar is one folded character and the original bytes [start, end) it came from (a whole
// normalization segment when NFKC combined or split characters).
type fchar struct {
	r          rune
	flags      uint8
	start, end int
}

// folded is a text as matching sees it.
type folded struct {
	chars []fchar // kept characters only
	// The regex view, built only when a pattern will run: the folded text with its separators kept
	// (patterns need them: \d{3}-\d{4}), and for each of its characters its byte offset in full and
	// its original span.
	full    []byte
	fullMap []fullChar
	buf     []byte // scratch for NFKC of one segment

	gap, withFull bool // while folding: a separator since the last kept character; build full
}

// emit adds one folded character that came from the original bytes [start, end).
func (f *folded) emit(r rune, k kind, start, end int) {
	if f.withFull {
		f.fullMap = append(f.fullMap, fullChar{len(f.full), start, end})
		f.full = utf8.AppendRune(f.full, r)
	}
	var fl uint8
	switch k {
	case kindSep:
		f.gap = true
		return
	case kindMark: // with the character before it; alone, a separator
		if f.gap || len(f.chars) == 0 {
			f.gap = true
			return
		}
		fl = f.chars[len(f.chars)-1].flags & flagWord
	case kindWord:
		fl = flagWord
	}
	if f.gap {
		fl |= flagGap
	}
	f.chars = append(f.chars, fchar{r, fl, start, end})
	f.gap = false
}

type fullChar struct{ at, start, end int }

var t2s = func() map[rune]rune {
	m := make(map[rune]rune, utf8.RuneCountInString(t2sPairs)/2)
	for s := t2sPairs; s != ""; {
		from, n := utf8.DecodeRuneInString(s)
		to, k := utf8.DecodeRuneInString(s[n:])
		m[from] = to
		s = s[n+k:]
	}
	return m
}()

// foldRune folds one character that NFKC leaves as it is: case, then Traditional → Simplified.
func foldRune(r rune) (rune, kind) {
	if r < utf8.RuneSelf {
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9':
			return r, kindWord
		case 'A' <= r && r <= 'Z':
			return r + 'a' - 'A', kindWord
		}
		return r, kindSep
	}
	r = unicode.ToLower(unicode.ToUpper(r))
	if s, ok := t2s[r]; ok {
		r = s
	}
	return r, kindOf(r)
}

func kindOf(r rune) kind {
	switch {
	case isVariationSelector(r):
		return kindSep
	case unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Bopomofo),
		0x3000 <= r && r <= 0x30FF && unicode.IsLetter(r): // 々 〆 ー and the like
		return kindCJK
	case unicode.IsMark(r):
		return kindMark
	case unicode.IsLetter(r) || unicode.IsNumber(r):
		return kindWord
	case unicode.Is(unicode.Co, r) || !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z, unicode.C):
		// private use and unassigned: kept, with no word boundaries
		return kindCJK
	}
	return kindSep
}

func isVariationSelector(r rune) bool {
	return 0xFE00 <= r && r <= 0xFE0F || 0xE0100 <= r && r <= 0xE01EF || 0x180B <= r && r <= 0x180F
}

// A cache entry for a BMP character: bit 31 set once computed; bits 0–20 the folded character;
// bits 21–22 its kind; bit 23: NFKC turns the character alone into other than one character (the
// slow path normalizes its segment); bit 24: NFKC's BoundaryBefore (the character starts a segment).
const (
	cacheKnown    = 1 << 31
	cacheMulti    = 1 << 23
	cacheBoundary = 1 << 24
	cacheKindSh   = 21
)

var bmpCache [0x10000]atomic.Uint32

func entry(r rune) uint32 {
	if r < 0x10000 {
		if e := bmpCache[r].Load(); e != 0 {
			return e
		}
		e := computeEntry(r)
		bmpCache[r].Store(e)
		return e
	}
	return computeEntry(r)
}

func computeEntry(r rune) uint32 {
	var buf [utf8.UTFMax]byte
	s := buf[:utf8.EncodeRune(buf[:], r)]
	e := uint32(cacheKnown)
	if norm.NFKC.Properties(s).BoundaryBefore() {
		e |= cacheBoundary
	}
	n := norm.NFKC.Bytes(s)
	r1, size := utf8.DecodeRune(n)
	if size != len(n) || size == 0 {
		return e | cacheMulti
	}
	f, k := foldRune(r1)
	return e | uint32(f) | uint32(k)<<cacheKindSh // #nosec G115 -- f is a valid rune (0–0x10FFFF)
}

// fold folds s into f (reusing its memory); full also builds the regex view.
func (f *folded) fold(s string, full bool) {
	f.chars, f.full, f.fullMap = f.chars[:0], f.full[:0], f.fullMap[:0]
	f.gap, f.withFull = false, full
	for i := 0; i < len(s); {
		var r rune
		n := 1
		if s[i] < utf8.RuneSelf {
			r = rune(s[i])
		} else {
			r, n = utf8.DecodeRuneInString(s[i:])
		}
		e := entry(r)
		// The segment: r and what follows it that NFKC may combine with it.
		j := i + n
		for j < len(s) && s[j] >= utf8.RuneSelf {
			r2, n2 := utf8.DecodeRuneInString(s[j:])
			if entry(r2)&cacheBoundary != 0 {
				break
			}
			j += n2
		}
		if j == i+n && e&cacheMulti == 0 {
			f.emit(rune(e&0x1FFFFF), kind(e>>cacheKindSh&3), i, j)
			i = j
			continue
		}
		f.buf = norm.NFKC.AppendString(f.buf[:0], s[i:j])
		for b := f.buf; len(b) > 0; {
			r3, n3 := utf8.DecodeRune(b)
			fr, k := foldRune(r3)
			f.emit(fr, k, i, j)
			b = b[n3:]
		}
		i = j
	}
	// Mark word characters that stand alone (letter-by-letter spacing).
	for i := range f.chars {
		c := &f.chars[i]
		if c.flags&flagWord == 0 {
			continue
		}
		alonePrev := i == 0 || c.flags&flagGap != 0 || f.chars[i-1].flags&flagWord == 0
		aloneNext := i == len(f.chars)-1 || f.chars[i+1].flags&(flagGap|flagWord) != flagWord
		if alonePrev && aloneNext {
			c.flags |= flagSingle
		}
	}
}

// Fold returns the form of s that matching sees: NFKC, case-folded, Traditional Chinese as
// Simplified, and without spaces, punctuation or symbols. "" means s has nothing to match.
func Fold(s string) string {
	var f folded
	f.fold(s, false)
	var b strings.Builder
	b.Grow(len(f.chars))
	for _, c := range f.chars {
		b.WriteRune(c.r)
	}
	return b.String()
}
