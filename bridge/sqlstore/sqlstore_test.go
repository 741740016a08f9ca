package sqlstore_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

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

// Steps waiting for PostgreSQL connections get them in the order they asked (database/sql alone
// gives a freed connection to a random waiter, which gave the answers to WeChat and Teams a long
// tail under load).
func TestStepsTakeTurnsInOrder(t *testing.T) {
	pg := sqlstoretest.Postgres(t)
	pg.SetConnections(1)
	ctx := context.Background()
	// hold runs a step that keeps the one connection until the returned function is called.
	hold := func() (release func()) {
		holding, released := make(chan struct{}), make(chan struct{})
		go func() {
			_ = pg.InTx(ctx, func(bridge.Tx) error {
				close(holding)
				<-released
				return nil
			})
		}()
		<-holding
		return func() { close(released) }
	}
	release := hold()
	var (
		mu    sync.Mutex
		order []int
		wg    sync.WaitGroup
	)
	const waiters = 8
	for k := range waiters {
		wg.Go(func() {
			err := pg.InTx(ctx, func(bridge.Tx) error {
				mu.Lock()
				defer mu.Unlock()
				order = append(order, k)
				return nil
			})
			if err != nil {
				t.Errorf("step %d: %v", k, err)
			}
		})
		time.Sleep(50 * time.Millisecond) // step k asks before step k+1
	}
	release()
	wg.Wait()
	if !slices.IsSorted(order) || len(order) != waiters {
		t.Errorf("steps ran in the order %v; want the order they asked in, 0 to %d", order, waiters-1)
	}

	// A step that gives up waiting says why, never runs, and leaves the turns as they were.
	release = hold()
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	ran := false
	if err := pg.InTx(short, func(bridge.Tx) error { ran = true; return nil }); !errors.Is(err, sqlstore.ErrUnavailable) || ran {
		t.Errorf("a step that waited past its deadline: %v (ran: %v); want ErrUnavailable, not run", err, ran)
	}
	release()
	// With the one turn lost, this would wait until its deadline.
	soon, cancelSoon := context.WithTimeout(ctx, 10*time.Second)
	defer cancelSoon()
	if err := pg.InTx(soon, func(bridge.Tx) error { return nil }); err != nil {
		t.Errorf("a step after the one that gave up: %v", err)
	}
}
