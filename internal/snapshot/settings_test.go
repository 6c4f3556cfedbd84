package snapshot_test

import (
	"context"
	"maps"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/commitflow/commitflow/internal/snapshot"
)

// TestQueryContext reads the settings back from the server in a query
// run with View.Context(QueryContext(...)) of a View with superseded rows
// (View.Context adds their external table): the settings must reach it.
func TestQueryContext(t *testing.T) {
	conn := open(t)
	insert(t, conn, "acme", "o1", 1)
	insert(t, conn, "acme", "o1", 2)
	for _, tc := range []struct {
		name       string
		maxThreads int
		want       map[string]string
	}{
		{"max threads", 3, map[string]string{"optimize_move_to_prewhere": "0", "max_block_size": "8192", "use_uncompressed_cache": "1", "max_threads": "3"}},
		{"default threads", 0, map[string]string{"optimize_move_to_prewhere": "0", "max_block_size": "8192", "use_uncompressed_cache": "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := snapshot.Read(context.Background(), snapshot.New(conn), "acme", func(ctx context.Context, v *snapshot.View) (map[string]string, error) {
				if v.Prewhere() == "" {
					t.Error("the View has no superseded rows: its context adds no external table")
				}
				qctx, err := v.Context(snapshot.QueryContext(ctx, tc.maxThreads))
				if err != nil {
					return nil, err
				}
				return settings(qctx, conn)
			})
			if err != nil {
				t.Fatal(err)
			}
			if tc.maxThreads == 0 {
				delete(got, "max_threads") // the server's own default
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// settings returns the values of the settings QueryContext sets, as a
// query run with ctx sees them.
func settings(ctx context.Context, conn driver.Conn) (map[string]string, error) {
	rows, err := conn.Query(ctx, `SELECT name, value FROM system.settings
WHERE name IN ('optimize_move_to_prewhere', 'max_block_size', 'use_uncompressed_cache', 'max_threads')`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			return nil, err
		}
		out[name] = value
	}
	return out, rows.Err()
}
