package export_test

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/export"
)

// BenchmarkExportAndVerify archives WXTEAMS_BENCH_EVENTS events [1,000,000] in PostgreSQL
// (encrypted, 100 per chat), then measures, each once and side by side in one run: psql \copy of
// the same rows (the floor: reading them out of the database at all), our exports (JSONL; JSONL
// with EML), VerifyArchive, and verify-export of the JSONL export. It reports events/s and each
// one's ratio to \copy.
//
//	WXTEAMS_TEST_POSTGRES=… go test -run '^$' -bench BenchmarkExportAndVerify -benchtime 1x -timeout 60m ./compliance/export/
func BenchmarkExportAndVerify(b *testing.B) {
	total := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("WXTEAMS_BENCH_EVENTS")); err == nil && v > 0 {
		total = v
	}
	dbURL := sqlstoretest.PostgresURL(b)
	s := sqlstoretest.Open(b, dbURL)
	ring, _ := compliance.NewKeyring(bytes.Repeat([]byte{1}, 32))
	s.UseKeyring(ring)
	ctx := context.Background()
	start := time.Now()
	const perChat = 100
	for chat := 1; chat*perChat <= total; chat++ {
		err := s.InTx(ctx, func(tx bridge.Tx) error {
			evs := make([]compliance.Event, perChat)
			for i := range evs {
				evs[i] = compliance.Event{Stream: compliance.ChatStream(int64(chat)), ChatID: int64(chat), At: day1.Add(time.Duration(chat*perChat+i) * time.Second),
					Kind: compliance.KindCustomerMessage, Actor: "customer:o" + strconv.Itoa(chat), Meta: compliance.Meta{Contact: "o" + strconv.Itoa(chat), MsgType: "text"},
					Content: compliance.Content{Text: fmt.Sprintf("Could we talk about the bond fund's fees tomorrow morning? (%d)", i)}}
			}
			return tx.Append(ctx, evs...)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.MakeCheckpoint(ctx, signKey, "bench", day2); err != nil {
		b.Fatal(err)
	}
	if _, err := s.DB().Exec(`ANALYZE archive`); err != nil {
		b.Fatal(err)
	}
	b.Logf("archived %d events in %s", total, time.Since(start).Round(time.Second))
	events := float64(total + 1) // and the checkpoint's record

	copyRate := func(b *testing.B) float64 { return psqlCopy(b, dbURL, events) }
	var floor float64
	b.Run("psql-copy", func(b *testing.B) {
		for b.Loop() {
			floor = copyRate(b)
		}
		b.ReportMetric(floor, "events/s")
	})
	measure := func(name string, op func(b *testing.B)) {
		b.Run(name, func(b *testing.B) {
			var d time.Duration
			for b.Loop() {
				t0 := time.Now()
				op(b)
				d = time.Since(t0)
			}
			rate := events / d.Seconds()
			b.ReportMetric(rate, "events/s")
			if floor > 0 {
				b.ReportMetric(rate/floor, "x-copy")
			}
		})
	}
	measure("scan-and-open", func(b *testing.B) {
		if err := s.ExportSource().Scan(ctx, export.Scope{}, func(*compliance.Record) error { return nil }); err != nil {
			b.Fatal(err)
		}
	})
	keep := b.TempDir() // outlives the sub-benchmarks
	jsonlDir := filepath.Join(keep, "jsonl")
	measure("export-jsonl", func(b *testing.B) {
		_ = os.RemoveAll(jsonlDir)
		if _, err := export.Write(ctx, jsonlDir, s.ExportSource(), export.Scope{}, export.Options{Key: signKey, Tool: "bench"}); err != nil {
			b.Fatal(err)
		}
	})
	measure("export-jsonl+eml", func(b *testing.B) {
		if _, err := export.Write(ctx, filepath.Join(b.TempDir(), "x"), s.ExportSource(), export.Scope{Formats: []string{export.EML}}, export.Options{Key: signKey, Tool: "bench"}); err != nil {
			b.Fatal(err)
		}
	})
	measure("verify", func(b *testing.B) {
		if _, err := s.VerifyArchive(ctx); err != nil {
			b.Fatal(err)
		}
	})
	measure("verify-export", func(b *testing.B) {
		if _, err := export.Verify(jsonlDir, pub); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("psql-copy-again", func(b *testing.B) {
		var rate float64
		for b.Loop() {
			rate = copyRate(b)
		}
		b.ReportMetric(rate, "events/s")
	})
}

// psqlCopy runs psql's \copy of the archive rows, in stream order, to a file; it returns rows/s.
func psqlCopy(b *testing.B, dbURL string, rows float64) float64 {
	b.Helper()
	if _, err := exec.LookPath("psql"); err != nil {
		b.Skip("psql not installed")
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(b.TempDir(), "archive.csv")
	pass, _ := u.User.Password()
	cmd := exec.Command("psql", "-X", "-q", "-h", u.Hostname(), "-p", u.Port(), "-U", u.User.Username(), "-d", u.Path[1:], "-c",
		`\copy (SELECT id, stream, seq, tenant, at_us, kind, actor, chat_id, meta, body, body_key, body_hash, prev_hash, hash FROM archive ORDER BY stream, seq) TO '`+out+`' WITH (FORMAT csv)`)
	cmd.Env = append(os.Environ(), "PGOPTIONS=-c search_path="+u.Query().Get("search_path"), "PGPASSWORD="+pass)
	t0 := time.Now()
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("psql \\copy: %v\n%s", err, msg)
	}
	return rows / time.Since(t0).Seconds()
}
