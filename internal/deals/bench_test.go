package deals

import (
	"context"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/metrics/synth"
	"github.com/commitflow/commitflow/internal/store"
)

// BenchmarkList measures the deal list and the warnings over synthetic
// deals (internal/metrics/synth) of COMMITFLOW_BENCH_DEALS opportunities
// (default 100000; 1000000 for the 1M figure). Set COMMITFLOW_BENCH_DSN to
// a database to keep the loaded data between runs (it is loaded when the
// tenant has no rows), e.g. to compare two builds on the same data. Each
// query runs COMMITFLOW_BENCH_ITERS times (default 10) per benchmark
// iteration; p50 and p95 are reported in ms.
func BenchmarkList(b *testing.B) {
	ctx := context.Background()
	n := benchEnv("COMMITFLOW_BENCH_DEALS", 100_000)
	iters := benchEnv("COMMITFLOW_BENCH_ITERS", 10)
	dsn := os.Getenv("COMMITFLOW_BENCH_DSN")
	if dsn == "" {
		dsn = chtest.DSN(b)
	}
	s, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	l := ladder.Default()
	tenant := "deals" + strconv.Itoa(n)
	var have uint64
	if err := s.Conn().QueryRow(ctx, "SELECT count() FROM opportunity_state WHERE tenant = ?", tenant).Scan(&have); err != nil {
		b.Fatal(err)
	}
	if have == 0 {
		start := time.Now()
		if err := loadSynthetic(ctx, s, l, tenant, n); err != nil {
			b.Fatal(err)
		}
		b.Logf("loaded %d deals in %v", n, time.Since(start).Round(time.Millisecond))
	}
	r := New(s, nil, 0)
	asOf := date("2025-03-01T00:00:00Z")
	list := func(f Filter) func() error {
		return func() error {
			_, err := r.List(ctx, ListQuery{Tenant: tenant, AsOf: asOf, Ladder: l, Filter: f, Page: 2})
			return err
		}
	}
	cases := []struct {
		name string
		run  func() error
	}{
		{"list", list(Filter{})},
		{"list_owner", list(Filter{OwnerID: "u03"})},
		{"list_warning_any", list(Filter{Warning: "any"})},
		{"warnings", func() error {
			_, err := r.Warnings(ctx, WarningsQuery{Tenant: tenant, AsOf: asOf, Ladder: l})
			return err
		}},
	}
	for _, c := range cases {
		// Untimed: the first read of a tenant lists its superseded states.
		if err := c.run(); err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			var d []time.Duration
			for i := 0; i < b.N; i++ {
				for j := 0; j < iters; j++ {
					start := time.Now()
					if err := c.run(); err != nil {
						b.Fatal(err)
					}
					d = append(d, time.Since(start))
				}
			}
			slices.Sort(d)
			ms := func(q float64) float64 {
				return float64(d[min(len(d)-1, int(q*float64(len(d))))]) / float64(time.Millisecond)
			}
			b.ReportMetric(ms(0.5), "p50_ms")
			b.ReportMetric(ms(0.95), "p95_ms")
		})
	}
}

// loadSynthetic stores n synthetic deals of tenant: every derived row
// (versions and retractions included) and each deal's state summarized
// from its current derived events, as derivation writes them.
func loadSynthetic(ctx context.Context, s *store.Store, l *ladder.Ladder, tenant string, n int) error {
	keys := make([]string, l.Len())
	for i := range keys {
		keys[i] = l.Key(i + 1)
	}
	gen := synth.Generator{Tenant: tenant, Seed: 1, Ladder: keys, LadderVersion: l.Version,
		Start: date("2024-01-01T00:00:00Z"), Span: 365 * 24 * time.Hour, Currencies: []string{"USD", "EUR"}}
	const batch = 20_000
	var (
		rows   []store.DerivedRow
		states []store.StateRow
	)
	for i := 0; i < n; i++ {
		opp := gen.Opportunity(i)
		rows = append(rows, opp...)
		if cur := current(opp); len(cur) > 0 {
			states = append(states, store.StateRow{State: derive.Summarize(cur, l.Len()), Version: 1})
		}
		if len(rows) >= 20*batch || i == n-1 {
			if err := s.InsertDerived(ctx, rows); err != nil {
				return err
			}
			if err := s.InsertStates(ctx, states); err != nil {
				return err
			}
			rows, states = rows[:0], states[:0]
		}
	}
	return nil
}

// current is the latest version of each derived event of rows, the
// retracted ones left out.
func current(rows []store.DerivedRow) []derive.Derived {
	latest := map[string]store.DerivedRow{}
	for _, r := range rows {
		if have, ok := latest[r.ID]; !ok || r.Version > have.Version {
			latest[r.ID] = r
		}
	}
	var out []derive.Derived
	for _, r := range latest {
		if !r.Retracted {
			out = append(out, r.Derived)
		}
	}
	return out
}

func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
