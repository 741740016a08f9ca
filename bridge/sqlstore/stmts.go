package sqlstore

import (
	"context"
	"database/sql"
	"sync"
	"time"
)

// stmtCache keeps the store's statements prepared, by their text: the database then parses and
// plans each once per connection instead of at every execution, which on PostgreSQL is most of
// what a short statement costs it (pgbench runs the engine's SQL 1.5–1.7× faster prepared than
// unprepared on the machine BENCHMARKS.md describes). database/sql prepares a statement again on
// each connection it meets, once.
type stmtCache struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// maxStatements bounds the cache: statements with a list of values (batches) have a text per
// length, and past this many texts a statement simply runs unprepared.
const maxStatements = 2000

// get returns q prepared, or nil when it cannot be (the cache is full, no connection is free to
// prepare it on right now, or preparing failed): it then runs unprepared, as before.
func (c *stmtCache) get(ctx context.Context, db *sql.DB, q string) *sql.Stmt {
	c.mu.Lock()
	st, known := c.m[q]
	full := len(c.m) >= maxStatements
	c.mu.Unlock()
	if known || full {
		return st
	}
	// Preparing takes a connection from the pool. A transaction asking for it holds one already:
	// never wait for another, or transactions waiting on each other's connections could stall.
	if stats := db.Stats(); stats.Idle == 0 && stats.MaxOpenConnections > 0 && stats.OpenConnections >= stats.MaxOpenConnections {
		return nil
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	st, err := db.PrepareContext(pctx, q)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[q]; ok && old != nil {
		_ = st.Close() // another caller prepared it meanwhile
		return old
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[q] = st
	return st
}

// close closes the prepared statements.
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		if st != nil {
			_ = st.Close()
		}
	}
	c.m = nil
}
