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
//     Invisible characters and combining marks are dropped on the way (the segment is decomposed,
//     they are removed, and what is left is composed again), and their bytes belong to the character
//     before them, so a redaction covers them:
//     - Unicode's default-ignorable code points (DerivedCoreProperties' Default_Ignorable_Code_Point:
//     format characters such as the zero-width space and joiner, the soft hyphen and the word joiner,
//     U+034F COMBINING GRAPHEME JOINER, variation selectors, Hangul fillers, tag characters) are
//     nothing at all: not a character and not a separator ("in\u200bsider" is "insider");
//     - non-spacing and enclosing combining marks (Mn, Me) are dropped, so accents do not tell
//     words apart ("café", "cafe\u0301" and "cafe" fold alike, and "insider\u0301" is "insider"),
//     except the kana voicing marks (゙ ゚), which compose with their kana (か\u3099 → が) and are
//     dropped elsewhere.
//  2. Case: lower case of the upper case (Σ, σ and ς fold together).
//  3. Traditional → Simplified Chinese, one character at a time, from OpenCC's dictionaries
//     (t2s_table.go is generated from them). Both terms and texts fold to Simplified, so a Simplified
//     term matches Traditional text and the reverse.
//  4. Separators are dropped: spaces, punctuation, symbols and control characters. Each kept
//     character remembers whether separators preceded it (a gap), which is what Latin word
//     boundaries look at; Chinese and Japanese ignore gaps (内 幕 消 息).
//
// Words of scripts that space them (Latin, digits, Cyrillic…) match on word boundaries. A boundary
// is the text's start or end, a separator, a Chinese or Japanese character, or a change between
// letters and digits: only a letter touching a letter, or a digit touching a digit, joins two
// characters into one word. So a term that starts or ends with a letter does not match inside a
// longer word ("insider" matches "INSIDER info", "买入insider" and "insider2024", not "insiders"
// or "outsider": a plural is a term of its own), and a number does not match inside a longer
// number but does next to letters ("600519" matches "SH600519" and "600519.SS", not "1600519").
// Separators between two letters (or two digits) are not ignored ("cash in side" is not "inside",
// "in sider" not "insider"), except where the text spells a word letter by letter ("i n s i d e r",
// "I.N.S.I.D.E.R"), the usual way round a filter, and where the term itself has them: "guaranteed
// returns" matches "guaranteed-returns", "Guaranteed  returns" and "guaranteedreturns". Separators
// between a letter and a digit are ignored like those of Chinese ("sh600519" matches "SH 600519").
// Chinese, Japanese and a Latin word next to them need no boundary ("买 a 股" holds "A股").
//
// Patterns (RE2 terms) run on the folded text with its separators kept, so that \d{3}-\d{4} and \s
// mean what they say; their literal characters fold like text (case, width, 內 → 内), and invisible
// characters and combining marks are gone from both.

// kind is what a folded character is for matching.
type kind uint8

const (
	kindSep    kind = iota // dropped, leaving a gap: spaces, punctuation, symbols, controls
	kindLetter             // a letter of a script that spaces its words (Latin, Cyrillic…)
	kindDigit              // a digit or other number
	kindCJK                // Han, kana, bopomofo: matched without word boundaries
	kindMark               // a spacing combining mark (Mc): belongs to the character before it; alone, a separator
	kindIgnore             // dropped without a gap: default-ignorable code points, Mn and Me marks
)

// Flags of a folded character.
const (
	flagWord   = 1 << iota // kindLetter or kindDigit (or a mark after one)
	flagDigit              // kindDigit (or a mark after one)
	flagGap                // separators lay between the previous kept character and this one
	flagSingle             // a word character standing alone between gaps or other classes (i n s i d e r)
)

// fchar is one folded character and the original bytes [start, end) it came from (a whole
// normalization segment when NFKC combined or split characters).
type fchar struct {
	r          rune
	flags      uint8
	start, end int
}

// joined reports whether b, the character after a, continues a's word: no separator between them
// and both letters or both digits.
func joined(a, b fchar) bool {
	return b.flags&flagGap == 0 && a.flags&b.flags&flagWord != 0 && (a.flags^b.flags)&flagDigit == 0
}

// folded is a text as matching sees it.
type folded struct {
	chars []fchar // kept characters only
	// The regex view, built only when a pattern will run: the folded text with its separators kept
	// (patterns need them: \d{3}-\d{4}), and for each of its characters its byte offset in full and
	// its original span.
	full    []byte
	fullMap []fullChar
	buf     []byte // scratch for normalizing one segment
	buf2    []byte

	gap, withFull bool // while folding: a separator since the last kept character; build full
}

// emit adds one folded character that came from the original bytes [start, end).
func (f *folded) emit(r rune, k kind, start, end int) {
	if k == kindIgnore {
		return
	}
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
		fl = f.chars[len(f.chars)-1].flags & (flagWord | flagDigit)
	case kindLetter:
		fl = flagWord
	case kindDigit:
		fl = flagWord | flagDigit
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

// foldRune folds one character that normalization leaves as it is: case, then Traditional →
// Simplified.
func foldRune(r rune) (rune, kind) {
	if r < utf8.RuneSelf {
		switch {
		case 'a' <= r && r <= 'z':
			return r, kindLetter
		case '0' <= r && r <= '9':
			return r, kindDigit
		case 'A' <= r && r <= 'Z':
			return r + 'a' - 'A', kindLetter
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
	case isIgnorable(r) || unicode.In(r, unicode.Mn, unicode.Me):
		return kindIgnore
	case unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Bopomofo),
		0x3000 <= r && r <= 0x30FF && unicode.IsLetter(r): // 々 〆 ー and the like
		return kindCJK
	case unicode.IsMark(r):
		return kindMark
	case unicode.IsLetter(r):
		return kindLetter
	case unicode.IsNumber(r):
		return kindDigit
	case unicode.Is(unicode.Co, r) || !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z, unicode.C):
		// private use and unassigned: kept, with no word boundaries
		return kindCJK
	}
	return kindSep
}

// isIgnorable reports whether r is a default-ignorable code point, as DerivedCoreProperties.txt
// derives them: Other_Default_Ignorable_Code_Point, format characters (Cf) and variation selectors,
// less white space, the interlinear annotation characters, the Egyptian hieroglyph format controls
// and the prepended concatenation marks (format characters meant to be seen).
func isIgnorable(r rune) bool {
	switch {
	case r < 0xAD:
		return false
	case unicode.In(r, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector):
		return true
	case unicode.Is(unicode.Cf, r):
		return !(0xFFF9 <= r && r <= 0xFFFB || 0x13430 <= r && r <= 0x1343F) &&
			!unicode.In(r, unicode.White_Space, unicode.Prepended_Concatenation_Mark)
	}
	return false
}

// dropped reports whether normalization removes r from a decomposed segment: default-ignorable
// code points and non-spacing and enclosing marks, but for the kana voicing marks (they compose
// with their kana again, and kindOf drops them where they do not).
func dropped(r rune) bool {
	return isIgnorable(r) || unicode.In(r, unicode.Mn, unicode.Me) && r != 0x3099 && r != 0x309A
}

// normalize appends to dst the segment s as matching sees it: NFKD, without what dropped
// removes, then NFC (Hangul jamo and kana with voicing marks compose again). scratch is reused.
func normalize(dst, scratch []byte, s string) (out, scratchOut []byte) {
	scratch = norm.NFKD.AppendString(scratch[:0], s)
	w := 0
	for b := 0; b < len(scratch); {
		r, n := utf8.DecodeRune(scratch[b:])
		if !dropped(r) {
			w += copy(scratch[w:], scratch[b:b+n])
		}
		b += n
	}
	return norm.NFC.Append(dst, scratch[:w]...), scratch
}

// A cache entry for a BMP character: bit 31 set once computed; bits 0–20 the folded character;
// bits 21–23 its kind; bit 24: normalization turns the character alone into other than one
// character (the slow path normalizes its segment); bit 25: the character joins the segment before
// it (NFKC's BoundaryBefore is false, or normalization drops it).
const (
	cacheKnown  = 1 << 31
	cacheMulti  = 1 << 24
	cacheJoins  = 1 << 25
	cacheKindSh = 21
	cacheRune   = 1<<cacheKindSh - 1
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

func entryKind(e uint32) kind { return kind(e >> cacheKindSh & 7) }

func computeEntry(r rune) uint32 {
	var buf [utf8.UTFMax]byte
	s := buf[:utf8.EncodeRune(buf[:], r)]
	e := uint32(cacheKnown)
	n, _ := normalize(nil, nil, string(s))
	// r joins the character before it if it combines with it, or if what it becomes does: a
	// compatibility jamo (ㅕ) becomes a conjoining one (U+1167) that composes with the consonant
	// before it, so Fold of "ㅅㅕ" must be 셔 at once, as folding again would make it.
	if !norm.NFKC.Properties(s).BoundaryBefore() || (len(n) > 0 && !norm.NFKC.Properties(n).BoundaryBefore()) {
		e |= cacheJoins
	}
	r1, size := utf8.DecodeRune(n)
	switch {
	case len(n) == 0:
		return e | cacheJoins | uint32(r) | uint32(kindIgnore)<<cacheKindSh // #nosec G115 -- r is a valid rune
	case size != len(n):
		return e | cacheMulti
	}
	f, k := foldRune(r1)
	if k == kindIgnore {
		e |= cacheJoins
	}
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
		// The segment: r and what follows it that NFKC may combine with it or that normalization
		// drops (so that what is dropped is not a break, and belongs to the character before it).
		j := i + n
		for j < len(s) && s[j] >= utf8.RuneSelf {
			r2, n2 := utf8.DecodeRuneInString(s[j:])
			if entry(r2)&cacheJoins == 0 {
				break
			}
			j += n2
		}
		if j == i+n && e&cacheMulti == 0 {
			f.emit(rune(e&cacheRune), entryKind(e), i, j)
			i = j
			continue
		}
		f.buf, f.buf2 = normalize(f.buf[:0], f.buf2, s[i:j])
		sep := false // a separator came first in the segment
		for b := f.buf; len(b) > 0; {
			r3, n3 := utf8.DecodeRune(b)
			fr, k := foldRune(r3)
			switch {
			case k == kindSep:
				sep = true
			case sep && k != kindIgnore && entry(r3)&cacheJoins != 0:
				// A character that combines with the one before it (a Hangul vowel, an Indic
				// vowel part) but found a separator there: alone, like a mark, it is a separator,
				// or dropping the separator would let it combine when the folded text is folded again.
				k = kindSep
			}
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
		alonePrev := i == 0 || !joined(f.chars[i-1], *c)
		aloneNext := i == len(f.chars)-1 || !joined(*c, f.chars[i+1])
		if alonePrev && aloneNext {
			c.flags |= flagSingle
		}
	}
}

// Fold returns the form of s that matching sees: NFKC, case-folded, Traditional Chinese as
// Simplified, and without spaces, punctuation, symbols, invisible characters or accents. "" means s has nothing to match.
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
