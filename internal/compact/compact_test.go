package compact_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/compact"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

func TestMain(m *testing.M) { chtest.Main(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// insert writes one part holding version v of each opportunity of tenant.
func insert(t *testing.T, conn driver.Conn, tenant string, v uint64, ids ...string) {
	t.Helper()
	b, err := conn.PrepareBatch(context.Background(), "INSERT INTO opportunity_state (tenant, opportunity_id, version)")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if err := b.Append(tenant, id, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
}

// versions returns each (tenant/id) of the table with its versions.
func versions(t *testing.T, conn driver.Conn) map[string][]uint64 {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT concat(tenant, '/', opportunity_id), groupArray(version) FROM opportunity_state GROUP BY tenant, opportunity_id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]uint64{}
	for rows.Next() {
		var (
			k  string
			vs []uint64
		)
		if err := rows.Scan(&k, &vs); err != nil {
			t.Fatal(err)
		}
		out[k] = vs
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestOnceKeepsNewestVersions(t *testing.T) {
	ctx := context.Background()
	conn := storetest.Open(t, store.Options{}).Conn()
	// Two tenants with the same opportunity id, versions in three parts.
	insert(t, conn, "a", 1, "o1", "o2", "o3", "o4")
	insert(t, conn, "b", 1, "o1", "o2")
	insert(t, conn, "a", 2, "o1", "o2")
	insert(t, conn, "a", 3, "o1")

	// 3 of 9 rows superseded: a threshold above a third leaves them.
	c, err := compact.New(conn, compact.Config{Every: time.Hour, Above: 0.4}, prometheus.NewRegistry(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	if did, err := c.Once(ctx); err != nil || did {
		t.Fatalf("Once above 0.4 = %v, %v; want no compaction", did, err)
	}
	if got := versions(t, conn)["a/o1"]; len(got) != 3 {
		t.Fatalf("a/o1 before compaction: %v", got)
	}

	c, err = compact.New(conn, compact.Config{Every: time.Hour, Above: 0.3}, prometheus.NewRegistry(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	if did, err := c.Once(ctx); err != nil || !did {
		t.Fatalf("Once above 0.3 = %v, %v; want a compaction", did, err)
	}
	want := map[string]uint64{"a/o1": 3, "a/o2": 2, "a/o3": 1, "a/o4": 1, "b/o1": 1, "b/o2": 1}
	got := versions(t, conn)
	if len(got) != len(want) {
		t.Fatalf("after compaction: %v; want %v", got, want)
	}
	for k, v := range want {
		if vs := got[k]; len(vs) != 1 || vs[0] != v {
			t.Errorf("%s after compaction: versions %v; want [%d]", k, vs, v)
		}
	}
	if did, err := c.Once(ctx); err != nil || did {
		t.Fatalf("Once on a compacted table = %v, %v; want no compaction", did, err)
	}
}

func TestRunOffAndBadConfig(t *testing.T) {
	conn := storetest.Open(t, store.Options{}).Conn()
	c, err := compact.New(conn, compact.Config{}, prometheus.NewRegistry(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run with Every 0 did not return")
	}
	for _, cfg := range []compact.Config{{Every: -time.Second}, {Every: time.Minute, Above: 1.5}, {Every: time.Minute, Above: -0.1}} {
		if _, err := compact.New(conn, cfg, prometheus.NewRegistry(), quiet); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func TestRunCompactsOnTick(t *testing.T) {
	conn := storetest.Open(t, store.Options{}).Conn()
	c, err := compact.New(conn, compact.Config{Every: 50 * time.Millisecond}, prometheus.NewRegistry(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	// Superseded rows written after Run's first check go at a later tick.
	time.Sleep(200 * time.Millisecond)
	insert(t, conn, "a", 1, "o1", "o2")
	insert(t, conn, "a", 2, "o1", "o2")
	deadline := time.Now().Add(20 * time.Second)
	for {
		vs := versions(t, conn)
		if len(vs["a/o1"]) == 1 && len(vs["a/o2"]) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not compacted: %v", vs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
