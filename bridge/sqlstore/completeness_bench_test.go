package sqlstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/compliance"
)

// BenchmarkCompletenessReport100k times the report of a day holding 100,000 records in 10,000
// chats (a message, its delivery and eight more records each), on SQLite and PostgreSQL.
func BenchmarkCompletenessReport100k(b *testing.B) {
	for _, db := range []struct {
		name string
		open func(testing.TB) *sqlstore.Store
	}{{"sqlite", sqlstoretest.SQLite}, {"postgres", sqlstoretest.Postgres}} {
		b.Run(db.name, func(b *testing.B) {
			s := db.open(b)
			ctx := context.Background()
			for chunk := range 100 {
				err := s.InTx(ctx, func(tx bridge.Tx) error {
					var evs []compliance.Event
					for c := chunk * 100; c < chunk*100+100; c++ {
						stream := fmt.Sprintf("chat:%d", c+1)
						for i := range 10 {
							kind, meta := compliance.KindCustomerMessage, compliance.Meta{Contact: "o"}
							if i%2 == 1 {
								kind, meta = compliance.KindDelivered, compliance.Meta{Channel: "teams", Employee: "ann"}
							}
							evs = append(evs, compliance.Event{Stream: stream, ChatID: int64(c + 1), At: t0.Add(time.Duration(c*10+i) * time.Millisecond), Kind: kind, Actor: "system", Meta: meta})
						}
					}
					return tx.Append(ctx, evs...)
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for range b.N {
				rep, err := s.CompletenessReport(ctx, reportedDay, madeAt, 15*time.Minute)
				if err != nil || rep.Total.Archived != 100000 || rep.StreamsChecked != 10000 || len(rep.Gaps) != 0 {
					b.Fatalf("report = %+v, %v", rep.Total, err)
				}
			}
		})
	}
}
