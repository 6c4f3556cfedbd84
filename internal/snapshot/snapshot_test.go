package snapshot_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/snapshot"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

func TestMain(m *testing.M) { chtest.Main(m) }

func open(t *testing.T) driver.Conn {
	t.Helper()
	return storetest.Open(t, store.Options{}).Conn()
}

// instrumented returns a Pinner on conn with its metrics on a registry of
// its own.
func instrumented(t *testing.T, conn driver.Conn) (*snapshot.Pinner, *prometheus.Registry) {
	t.Helper()
	p, reg := snapshot.New(conn), prometheus.NewRegistry()
	if err := p.Instrument(reg); err != nil {
		t.Fatal(err)
	}
	return p, reg
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
	slices.Sort(out)
	return out, nil
}

// viewOf reads tenant through a fresh View of p and reports whether it read
// with FINAL.
func viewOf(t *testing.T, p *snapshot.Pinner, conn driver.Conn, tenant string) ([]string, bool) {
	t.Helper()
	type answer struct {
		rows  []string
		final bool
	}
	a, err := snapshot.Read(context.Background(), p, tenant, func(ctx context.Context, v *snapshot.View) (answer, error) {
		rows, err := read(ctx, conn, v, tenant)
		return answer{rows, v.Final()}, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return a.rows, a.final
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

// TestContextSentTwice runs two queries with one View's context, with
// merges stopped: both must leave the superseded rows out (the external
// table goes with each).
func TestContextSentTwice(t *testing.T) {
	conn := open(t)
	ctx := context.Background()
	if err := conn.Exec(ctx, "SYSTEM STOP MERGES opportunity_state"); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, "SYSTEM START MERGES opportunity_state")
	insert(t, conn, "acme", "o1", 1, "o2", 1, "o3", 1)
	insert(t, conn, "acme", "o1", 2, "o2", 2)
	_, err := snapshot.Read(ctx, snapshot.New(conn), "acme", func(ctx context.Context, v *snapshot.View) (struct{}, error) {
		for i := range 2 {
			got, err := read(ctx, conn, v, "acme")
			if err != nil {
				return struct{}{}, err
			}
			if want := []string{"o1@2", "o2@2", "o3@1"}; !slices.Equal(got, want) {
				t.Errorf("query %d: got %v, want %v", i+1, got, want)
			}
		}
		return struct{}{}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestReadAgainAfterMerge merges the pinned parts away during the first
// read: Read must read again on the merged part.
func TestReadAgainAfterMerge(t *testing.T) {
	conn := open(t)
	p, reg := instrumented(t, conn)
	ctx := context.Background()
	insert(t, conn, "acme", "o1", 1, "o2", 1)
	insert(t, conn, "acme", "o1", 2)

	calls := 0
	got, err := snapshot.Read(ctx, p, "acme", func(ctx context.Context, v *snapshot.View) ([]string, error) {
		calls++
		if calls == 1 {
			if err := conn.Exec(ctx, "OPTIMIZE TABLE opportunity_state FINAL"); err != nil {
				return nil, err
			}
		}
		return read(ctx, conn, v, "acme")
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
		`commitflow_snapshot_reads_total{mode="view"}`:                   1,
		`commitflow_snapshot_retries_total`:                              1,
		`commitflow_snapshot_superseded_loads_total{kind="full"}`:        1,
		`commitflow_snapshot_superseded_loads_total{kind="incremental"}`: 1,
	} {
		if got := metricValue(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// TestReadReturnsLastCallOnly merges the pinned parts away while read
// runs, once and then on every View until Read falls back to FINAL. Each
// call answers with its own number and the rows it read (none or some
// when its View's parts were merged away): the answer must be the last
// call's alone, nothing of the calls read again.
func TestReadReturnsLastCallOnly(t *testing.T) {
	for _, tc := range []struct {
		name      string
		merges    int // the first merges calls merge the table while they run
		wantCalls int
		wantMode  string
	}{
		{"merged once", 1, 2, "view"},
		{"merged every time", 3, 4, "final"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := open(t)
			p, reg := instrumented(t, conn)
			ctx := context.Background()
			insert(t, conn, "acme", "o1", 1, "o2", 1)
			insert(t, conn, "acme", "o1", 2)

			calls := 0
			got, err := snapshot.Read(ctx, p, "acme", func(ctx context.Context, v *snapshot.View) ([]string, error) {
				calls++
				out := []string{fmt.Sprintf("call %d", calls)}
				if calls <= tc.merges {
					insert(t, conn, "acme", "o1", 2+calls)
					if err := conn.Exec(ctx, "OPTIMIZE TABLE opportunity_state FINAL"); err != nil {
						return nil, err
					}
				}
				rows, err := read(ctx, conn, v, "acme")
				return append(out, rows...), err
			})
			if err != nil {
				t.Fatal(err)
			}
			if calls != tc.wantCalls {
				t.Errorf("read called %d times, want %d", calls, tc.wantCalls)
			}
			rows, err := read(ctx, conn, finalView(t, conn), "acme")
			if err != nil {
				t.Fatal(err)
			}
			want := append([]string{fmt.Sprintf("call %d", tc.wantCalls)}, rows...)
			if !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
			if n := metricValue(t, reg, `commitflow_snapshot_reads_total{mode="`+tc.wantMode+`"}`); n != 1 {
				t.Errorf("reads with mode %s = %v, want 1", tc.wantMode, n)
			}
			if n := metricValue(t, reg, `commitflow_snapshot_retries_total`); n != float64(tc.merges) {
				t.Errorf("retries = %v, want %d", n, tc.merges)
			}
		})
	}
}

// TestMergeDropsSupersededFromViews compacts the table between two reads:
// the second View must list no superseded rows (and so check for none),
// not keep the ones the merge dropped.
func TestMergeDropsSupersededFromViews(t *testing.T) {
	conn := open(t)
	p, reg := instrumented(t, conn)
	ctx := context.Background()
	insert(t, conn, "acme", "o1", 1, "o2", 1, "o3", 1)
	insert(t, conn, "acme", "o1", 2, "o2", 2)

	views := func() (prewhere string, got []string) {
		t.Helper()
		type answer struct {
			prewhere string
			rows     []string
		}
		a, err := snapshot.Read(ctx, p, "acme", func(ctx context.Context, v *snapshot.View) (answer, error) {
			rows, err := read(ctx, conn, v, "acme")
			return answer{v.Prewhere(), rows}, err
		})
		if err != nil {
			t.Fatal(err)
		}
		return a.prewhere, a.rows
	}
	want := []string{"o1@2", "o2@2", "o3@1"}
	if pw, got := views(); pw == "" || !slices.Equal(got, want) {
		t.Fatalf("before the merge: prewhere %q, rows %v; want a PREWHERE and %v", pw, got, want)
	}
	if err := conn.Exec(ctx, "OPTIMIZE TABLE opportunity_state FINAL"); err != nil {
		t.Fatal(err)
	}
	if pw, got := views(); pw != "" || !slices.Equal(got, want) {
		t.Fatalf("after the merge: prewhere %q, rows %v; want none and %v", pw, got, want)
	}
	// A later insert supersedes again; the listing finds it.
	insert(t, conn, "acme", "o3", 3)
	if pw, got := views(); pw == "" || !slices.Equal(got, []string{"o1@2", "o2@2", "o3@3"}) {
		t.Fatalf("after another insert: prewhere %q, rows %v", pw, got)
	}
	if n := metricValue(t, reg, `commitflow_snapshot_superseded_loads_total{kind="incremental"}`); n != 2 {
		t.Errorf("incremental loads = %v, want 2", n)
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

// TestViewMatchesFinal inserts random versions of random opportunities of
// two tenants, one part at a time, with merges in between, and after each
// step reads through one long-lived Pinner (so that it updates its listing
// incrementally) and with FINAL: the rows must be the same.
func TestViewMatchesFinal(t *testing.T) {
	conn := open(t)
	p, reg := instrumented(t, conn)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	version := 0
	for step := range 40 {
		for _, tenant := range []string{"acme", "other"} {
			var rows []any
			seen := map[string]bool{}
			for range 1 + rng.IntN(8) {
				id := fmt.Sprintf("o%d", rng.IntN(30))
				if seen[id] { // one state per opportunity and write, as derivation does
					continue
				}
				seen[id] = true
				version++
				rows = append(rows, id, version)
			}
			insert(t, conn, tenant, rows...)
		}
		if step%7 == 6 {
			if err := conn.Exec(ctx, "OPTIMIZE TABLE opportunity_state"); err != nil {
				t.Fatal(err)
			}
		}
		for _, tenant := range []string{"acme", "other"} {
			got, final := viewOf(t, p, conn, tenant)
			if final {
				t.Fatalf("step %d, %s: read with FINAL", step, tenant)
			}
			want, err := read(ctx, conn, finalView(t, conn), tenant)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("step %d, %s: View read %v, FINAL %v", step, tenant, got, want)
			}
		}
	}
	if n := metricValue(t, reg, `commitflow_snapshot_superseded_loads_total{kind="incremental"}`); n < 40 {
		t.Errorf("%v incremental listings, want most of 80", n)
	}
}

// finalView returns a View that reads with FINAL.
func finalView(t *testing.T, conn driver.Conn) *snapshot.View {
	t.Helper()
	v, err := snapshot.Read(context.Background(), snapshot.NewFinal(conn), "", func(_ context.Context, v *snapshot.View) (*snapshot.View, error) {
		return v, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestViewParts checks that Views of the same parts name the same ones,
// that an insert adds one and that a View read with FINAL names none.
func TestViewParts(t *testing.T) {
	conn := open(t)
	ctx := context.Background()
	if err := conn.Exec(ctx, "SYSTEM STOP MERGES opportunity_state"); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, "SYSTEM START MERGES opportunity_state")
	p := snapshot.New(conn)
	parts := func() []string {
		t.Helper()
		ps, err := snapshot.Read(ctx, p, "acme", func(ctx context.Context, v *snapshot.View) ([]string, error) {
			return v.Parts(), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return ps
	}
	if ps := parts(); ps != nil {
		t.Fatalf("empty table (read with FINAL): parts %v, want none", ps)
	}
	insert(t, conn, "acme", "o1", 1)
	p1 := parts()
	if len(p1) != 1 {
		t.Fatalf("one insert: parts %v, want one", p1)
	}
	if ps := parts(); !slices.Equal(ps, p1) {
		t.Fatalf("same parts: %v, then %v", p1, ps)
	}
	insert(t, conn, "other", "o1", 1)
	if ps := parts(); len(ps) != 2 || !slices.Contains(ps, p1[0]) {
		t.Fatalf("after an insert: parts %v, want %v and one more", ps, p1)
	}
}

// TestSummaries checks the Summary of a tenant's parts: the latest
// latest_at (the last fact time here), the currencies of its non-zero
// amounts and its ladder versions (none for a state without derived
// events), read again when a new part comes, never another tenant's; and
// none for a View read with FINAL.
func TestSummaries(t *testing.T) {
	st := storetest.Open(t, store.Options{})
	conn := st.Conn()
	ctx := context.Background()
	if err := conn.Exec(ctx, "SYSTEM STOP MERGES opportunity_state"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Exec(context.Background(), "SYSTEM START MERGES opportunity_state") })
	day := func(d int) time.Time { return time.Date(2024, 1, d, 0, 0, 0, 0, time.UTC) }
	// write stores one state in a part of its own, a fact at each day.
	write := func(tenant, id, ladder string, days []int, amounts []float64, currencies []string) {
		t.Helper()
		s := derive.State{Tenant: tenant, OpportunityID: id, FirstAt: day(days[0]), LadderVersion: ladder}
		for i, d := range days {
			s.FactTimes = append(s.FactTimes, day(d))
			s.Facts = append(s.Facts, derive.Snapshot{Amount: amounts[i], Currency: currencies[i], Status: derive.StatusOpen})
		}
		if err := st.InsertStates(ctx, []store.StateRow{{State: s, Version: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	write("acme", "o1", "v1", []int{1, 5}, []float64{10, 0}, []string{"USD", "EUR"})
	write("other", "o9", "v9", []int{20}, []float64{5}, []string{"GBP"})
	p := snapshot.New(conn)
	var sums snapshot.Summaries
	of := func() snapshot.Summary {
		t.Helper()
		sum, err := snapshot.Read(ctx, p, "acme", func(ctx context.Context, v *snapshot.View) (snapshot.Summary, error) {
			sum, ok, err := sums.Of(ctx, conn, "acme", v)
			if err == nil && !ok {
				t.Error("a View of parts: no Summary")
			}
			return sum, err
		})
		if err != nil {
			t.Fatal(err)
		}
		return sum
	}
	code := func(c string) uint32 { return binary.LittleEndian.Uint32([]byte(c + "\x00")) }
	if got := of(); got.Latest != uint32(day(5).Unix()) || !slices.Equal(got.Currencies, []uint32{code("USD")}) ||
		!slices.Equal(got.LadderVersions, []string{"v1"}) {
		t.Errorf("one part: latest %d, currencies %v, ladders %q; want %d (day 5), [USD], [v1]", got.Latest, got.Currencies, got.LadderVersions, day(5).Unix())
	}
	write("acme", "o2", "v2", []int{9}, []float64{7}, []string{"EUR"})
	write("acme", "o3", "", []int{2}, []float64{1}, []string{"USD"}) // no derived events: no ladder
	want := []uint32{code("USD"), code("EUR")}
	slices.Sort(want)
	if got := of(); got.Latest != uint32(day(9).Unix()) || !slices.Equal(got.Currencies, want) || !slices.Equal(got.LadderVersions, []string{"v1", "v2"}) {
		t.Errorf("after new parts: latest %d, currencies %v, ladders %q; want %d (day 9), %v, [v1 v2]", got.Latest, got.Currencies, got.LadderVersions, day(9).Unix(), want)
	}
	if _, ok, err := sums.Of(ctx, conn, "acme", finalView(t, conn)); ok || err != nil {
		t.Errorf("FINAL: a Summary (%v, %v); want none", ok, err)
	}
}
