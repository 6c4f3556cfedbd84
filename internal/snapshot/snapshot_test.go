package snapshot_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/snapshot"
	"github.com/commitflow/commitflow/internal/store"
)

func TestMain(m *testing.M) { chtest.Main(m) }

func open(t *testing.T) driver.Conn {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, chtest.DSN(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st.Conn()
}

// insert writes one part holding the given (opportunity, version) rows of
// tenant.
func insert(t *testing.T, conn driver.Conn, tenant string, rows ...any) {
	t.Helper()
	b, err := conn.PrepareBatch(context.Background(), "INSERT INTO opportunity_state (tenant, opportunity_id, version)")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(rows); i += 2 {
		if err := b.Append(tenant, rows[i].(string), uint64(rows[i+1].(int))); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
}

// read returns "id@version" of every row of tenant the View keeps, sorted.
func read(ctx context.Context, conn driver.Conn, v *snapshot.View, tenant string) ([]string, error) {
	qctx, err := v.Context(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := conn.Query(qctx, `SELECT opportunity_id, version FROM `+v.From()+`
`+v.Prewhere()+` WHERE tenant = @tenant AND `+v.Where(), append(v.Args(), clickhouse.Named("tenant", tenant))...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var (
			id  string
			ver uint64
		)
		if err := rows.Scan(&id, &ver); err != nil {
			return nil, err
		}
		out = append(out, fmt.Sprintf("%s@%d", id, ver))
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// A second query with the same context sends the external table
	// again: it must see the same rows.
	var n uint64
	err = conn.QueryRow(qctx, `SELECT count() FROM `+v.From()+` `+v.Prewhere()+`
WHERE tenant = @tenant AND `+v.Where(), append(v.Args(), clickhouse.Named("tenant", tenant))...).Scan(&n)
	if err != nil {
		return nil, err
	}
	if n != uint64(len(out)) {
		return nil, fmt.Errorf("second query of the View counted %d rows, the first read %d", n, len(out))
	}
	slices.Sort(out)
	return out, nil
}

// viewOf reads tenant through a fresh View of p and reports whether it read
// with FINAL.
func viewOf(t *testing.T, p *snapshot.Pinner, conn driver.Conn, tenant string) ([]string, bool) {
	t.Helper()
	var (
		got   []string
		final bool
	)
	err := p.Read(context.Background(), tenant, func(ctx context.Context, v *snapshot.View) error {
		var err error
		got, err = read(ctx, conn, v, tenant)
		final = v.Final()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, final
}

func TestViewKeepsNewestVersions(t *testing.T) {
	conn := open(t)
	p := snapshot.New(conn)

	got, final := viewOf(t, p, conn, "acme")
	if len(got) != 0 || !final {
		t.Fatalf("empty table: got %v, final %v; want nothing, read with FINAL", got, final)
	}

	insert(t, conn, "acme", "o1", 1, "o2", 1, "o3", 7)
	insert(t, conn, "acme", "o1", 2)
	insert(t, conn, "acme", "o1", 3, "o2", 1) // o2 again: an older version than...
	insert(t, conn, "acme", "o2", 5)          // ...this one
	insert(t, conn, "other", "o1", 9, "o4", 1)
	insert(t, conn, "other", "o1", 4)

	want := []string{"o1@3", "o2@5", "o3@7"}
	got, final = viewOf(t, p, conn, "acme")
	if final || !slices.Equal(got, want) {
		t.Fatalf("acme: got %v (final %v), want %v without FINAL", got, final, want)
	}
	got, _ = viewOf(t, p, conn, "acme") // from the cache
	if !slices.Equal(got, want) {
		t.Fatalf("acme, cached: got %v, want %v", got, want)
	}
	if got, _ := viewOf(t, p, conn, "other"); !slices.Equal(got, []string{"o1@9", "o4@1"}) {
		t.Fatalf("other: got %v", got)
	}

	// A new part: the cache must not be used.
	insert(t, conn, "acme", "o3", 8, "o5", 1)
	want = []string{"o1@3", "o2@5", "o3@8", "o5@1"}
	if got, final := viewOf(t, p, conn, "acme"); final || !slices.Equal(got, want) {
		t.Fatalf("after insert: got %v (final %v), want %v", got, final, want)
	}

	// The same state written twice (a retried insert): FINAL decides.
	insert(t, conn, "acme", "o5", 2)
	insert(t, conn, "acme", "o5", 2)
	want = []string{"o1@3", "o2@5", "o3@8", "o5@2"}
	if got, final := viewOf(t, p, conn, "acme"); !final || !slices.Equal(got, want) {
		t.Fatalf("same version twice: got %v (final %v), want %v read with FINAL", got, final, want)
	}
}

// TestReadAgainAfterMerge merges the pinned parts away during the first
// read: Read must read again on the merged part.
func TestReadAgainAfterMerge(t *testing.T) {
	conn := open(t)
	p := snapshot.New(conn)
	reg := prometheus.NewRegistry()
	if err := p.Instrument(reg); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	insert(t, conn, "acme", "o1", 1, "o2", 1)
	insert(t, conn, "acme", "o1", 2)

	calls := 0
	var got []string
	err := p.Read(ctx, "acme", func(ctx context.Context, v *snapshot.View) error {
		calls++
		if calls == 1 {
			if err := conn.Exec(ctx, "OPTIMIZE TABLE opportunity_state FINAL"); err != nil {
				return err
			}
		}
		var err error
		got, err = read(ctx, conn, v, "acme")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Errorf("read called %d times, want 2", calls)
	}
	if want := []string{"o1@2", "o2@1"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for name, want := range map[string]float64{
		`commitflow_snapshot_reads_total{mode="view"}`: 1,
		`commitflow_snapshot_retries_total`:            1,
		`commitflow_snapshot_superseded_loads_total`:   2,
	} {
		if got := metricValue(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// metricValue returns the value of the counter name ("family" or
// `family{label="value"}`) gathered from reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			if len(m.GetLabel()) > 0 {
				key += "{"
				for i, l := range m.GetLabel() {
					if i > 0 {
						key += ","
					}
					key += fmt.Sprintf("%s=%q", l.GetName(), l.GetValue())
				}
				key += "}"
			}
			if key == name {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
