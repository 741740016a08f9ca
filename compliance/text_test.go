package compliance

import (
	"testing"
	"unicode/utf8"
)

func TestStorableText(t *testing.T) {
	for in, want := range map[string]string{
		"":                    "",
		"plain 中文 ＃LEAVE":     "plain 中文 ＃LEAVE",
		"a\x00b":              "a\uFFFDb",
		"bad \xff\xfe end":    "bad \uFFFD end",
		"\x00\xc3":            "\uFFFD\uFFFD",
		"U+FFFD stays \uFFFD": "U+FFFD stays \uFFFD",
	} {
		got := StorableText(in)
		if got != want {
			t.Errorf("StorableText(%q) = %q; want %q", in, got, want)
		}
		if !utf8.ValidString(got) || StorableText(got) != got {
			t.Errorf("StorableText(%q) = %q is not storable or not idempotent", in, got)
		}
	}
}
