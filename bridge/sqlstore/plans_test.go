package sqlstore

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestHotQueriesUseTheirIndexes asks SQLite how it runs the queries every step makes on the
// outbox: a full scan there made each message cost more as the outbox grew (end to end p50 from
// 2 ms to 679 ms in the load tool), and only a load run showed it.
func TestHotQueriesUseTheirIndexes(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "plans.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for name, q := range map[string]struct {
		sql   string
		index string
		args  []any
	}{
		"OpenSends":      {openSendsSQL, "outbox_chat_open", []any{1, "wechat"}},
		"SettleCrossing": {settleCrossingSQL, "outbox_crossed", []any{1, 1}},
	} {
		rows, err := s.db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+s.rebind(q.sql), q.args...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if joined := strings.Join(plan, "; "); !strings.Contains(joined, "USING INDEX "+q.index) {
			t.Errorf("%s: SQLite plans %q; want it to use %s", name, joined, q.index)
		}
	}
}
