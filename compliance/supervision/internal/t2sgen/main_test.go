package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// The checked-in table is what the OpenCC version in go.mod gives; a version bump without
// go generate fails here.
func TestTheTableIsCurrent(t *testing.T) {
	mod, err := os.ReadFile("../../../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mod), source) {
		t.Fatalf("go.mod does not require %s; update source and regenerate", source)
	}
	m, err := Table()
	if err != nil {
		t.Fatal(err)
	}
	for trad, simp := range map[rune]rune{'內': '内', '後': '后', '發': '发', '髮': '发', '臺': '台', '裡': '里', '乾': '干', '證': '证'} {
		if m[trad] != simp {
			t.Errorf("%c → %c, want %c", trad, m[trad], simp)
		}
	}
	want, err := Render(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../t2s_table.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("t2s_table.go is not what t2sgen makes from OpenCC now: run go generate ./compliance/supervision/")
	}
}
