package compliance

import (
	"strings"
	"unicode/utf8"
)

// StorableText returns s with what a PostgreSQL text column cannot hold — NUL bytes and invalid
// UTF-8 — replaced by U+FFFD. Both stores keep every string this way, so SQLite and PostgreSQL hold
// the same text, and a record's hash covers exactly what is stored. Text that is already storable
// is returned as is, without copying.
func StorableText(s string) string {
	if strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
