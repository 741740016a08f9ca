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
