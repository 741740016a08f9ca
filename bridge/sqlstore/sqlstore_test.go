package sqlstore_test

import (
	"testing"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/bridgetest"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
)

func TestStoreConformance(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		bridgetest.StoreSuite(t, func(t testing.TB) bridge.Store { return open(t) })
	})
}

// The steps' PostgreSQL pool has the size serve is told (WXTEAMS_DB_CONNECTIONS), 16 unless told;
// SQLite keeps its own.
func TestConnectionsAreSet(t *testing.T) {
	pg := sqlstoretest.Postgres(t)
	if got := pg.DB().Stats().MaxOpenConnections; got != sqlstore.DefaultConnections {
		t.Errorf("PostgreSQL opens up to %d connections; want the default %d", got, sqlstore.DefaultConnections)
	}
	pg.SetConnections(5)
	if got := pg.DB().Stats().MaxOpenConnections; got != 5 {
		t.Errorf("after SetConnections(5): up to %d connections", got)
	}
	lite := sqlstoretest.SQLite(t)
	lite.SetConnections(5)
	if got := lite.DB().Stats().MaxOpenConnections; got != 8 {
		t.Errorf("SQLite opens up to %d connections after SetConnections(5); want its own 8", got)
	}
}
