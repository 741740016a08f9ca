package sqlstore_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/compliance"
)

// BenchmarkArchiveWrite is the archive's cost per message, one message per transaction as the
// engine writes them: a plain INSERT of an equivalent row into a table without triggers (the
// floor), the chained append (head row locked and moved, SHA-256 of the record), and the chained
// append with the body sealed (AES-256-GCM). The differences are the hash chain's and the
// encryption's overhead.
//
//	WXTEAMS_TEST_POSTGRES=… go test -run '^$' -bench BenchmarkArchiveWrite -benchtime 5000x ./bridge/sqlstore/
func BenchmarkArchiveWrite(b *testing.B) {
	for _, db := range []struct {
		name string
		url  func(testing.TB) string
	}{{"sqlite", sqlstoretest.SQLiteURL}, {"postgres", sqlstoretest.PostgresURL}} {
		b.Run(db.name+"/plain-insert", func(b *testing.B) {
			s := sqlstoretest.Open(b, db.url(b))
			if _, err := s.DB().Exec(`CREATE TABLE bench_plain (id INTEGER PRIMARY KEY, stream TEXT, seq BIGINT, tenant TEXT, at_us BIGINT, kind TEXT,
				actor TEXT, chat_id BIGINT, meta BYTEA, body BYTEA, body_key TEXT, body_hash BYTEA, prev_hash BYTEA, hash BYTEA)`); err != nil {
				b.Fatal(err)
			}
			meta, body, hash := []byte(`{"contact":"o1","msg_type":"text"}`), []byte(`{"text":"Could we talk about the bond fund tomorrow morning?"}`), bytes.Repeat([]byte{1}, 32)
			q := `INSERT INTO bench_plain VALUES ($1, 'chat:1', $5, '', 0, 'customer.message', 'customer:o1', 1, $2, $3, '', $4, $4, $4)`
			if s.Dialect() == sqlstore.SQLite {
				q = `INSERT INTO bench_plain VALUES (?1, 'chat:1', ?5, '', 0, 'customer.message', 'customer:o1', 1, ?2, ?3, '', ?4, ?4, ?4)`
			}
			i := 0
			for b.Loop() {
				i++
				tx, err := s.DB().Begin()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := tx.Exec(q, i, meta, body, hash, int64(i)); err != nil {
					b.Fatal(err)
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, sealed := range []bool{false, true} {
			name := db.name + "/chained"
			if sealed {
				name += "+sealed"
			}
			b.Run(name, func(b *testing.B) {
				s := sqlstoretest.Open(b, db.url(b))
				if sealed {
					s.UseKeyring(keyring(b, kek(1)))
				}
				ctx := context.Background()
				at := time.Now()
				for b.Loop() {
					err := s.InTx(ctx, func(tx bridge.Tx) error {
						return tx.Append(ctx, compliance.Event{Stream: "chat:1", ChatID: 1, At: at, Kind: compliance.KindCustomerMessage, Actor: "customer:o1",
							Meta: compliance.Meta{Contact: "o1", MsgType: "text"}, Content: compliance.Content{Text: "Could we talk about the bond fund tomorrow morning?"}})
					})
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
