package metrics

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/metrics/synth"
	"github.com/commitflow/commitflow/internal/store"
)

// BenchmarkQueries measures every query over synthetic derived events of
// COMMITFLOW_BENCH_OPPS opportunities (default 25000, about 1M raw events;
// 250000 is about 10M). Set COMMITFLOW_BENCH_DSN to a database to keep the
// loaded data between runs (it is loaded when the tenant has no rows).
// Each query runs COMMITFLOW_BENCH_ITERS times (default 20) per benchmark
// iteration; p50 and p95 are reported in ms. COMMITFLOW_BENCH_BRANCHES and
// COMMITFLOW_BENCH_MAX_THREADS set the Querier's Options.
// COMMITFLOW_BENCH_CURRENCIES, a comma-separated list of codes ("" allowed,
// e.g. "USD,EUR,GBP,"), loads the amounts in those currencies (see
// synth.Generator.Currencies); without it they have none.
func BenchmarkQueries(b *testing.B) {
	ctx := context.Background()
	n := envInt("COMMITFLOW_BENCH_OPPS", 25000)
	iters := envInt("COMMITFLOW_BENCH_ITERS", 20)
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
	ladder := synth.DefaultLadder()
	tenant := "bench" + strconv.Itoa(n)
	var have uint64
	if err := s.Conn().QueryRow(ctx, "SELECT count() FROM opportunity_state WHERE tenant = ?", tenant).Scan(&have); err != nil {
		b.Fatal(err)
	}
	if have == 0 {
		gen := synth.Generator{Tenant: tenant, Seed: 1, Ladder: ladder, LadderVersion: "v1",
			Start: date("2024-01-01T00:00:00Z"), Span: 365 * 24 * time.Hour}
		if c, ok := os.LookupEnv("COMMITFLOW_BENCH_CURRENCIES"); ok {
			gen.Currencies = strings.Split(c, ",")
		}
		start := time.Now()
		rows, err := gen.Load(ctx, s, n)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("loaded %d derived rows for %d opportunities in %v", rows, n, time.Since(start).Round(time.Millisecond))
		have = uint64(n)
	}
	b.Logf("%d opportunity states for tenant %s", have, tenant)

	q := NewWithOptions(s.Conn(), Options{
		Branches:   envInt("COMMITFLOW_BENCH_BRANCHES", 0),
		MaxThreads: envInt("COMMITFLOW_BENCH_MAX_THREADS", 0),
	})
	asOf := date("2025-03-01T00:00:00Z")
	from, to := date("2024-01-01T00:00:00Z"), date("2025-01-01T00:00:00Z")
	cases := []struct {
		name string
		run  func() error
	}{
		{"funnel", func() error {
			_, err := q.Funnel(ctx, FunnelQuery{Tenant: tenant, AsOf: asOf, From: from, To: to, Ladder: ladder})
			return err
		}},
		{"funnel_window_by_owner_month", func() error {
			_, err := q.Funnel(ctx, FunnelQuery{Tenant: tenant, AsOf: asOf, From: from, To: to, WindowDays: intp(30),
				By: "owner", Interval: "month", Ladder: ladder})
			return err
		}},
		{"stalls", func() error {
			_, err := q.Stalls(ctx, StallsQuery{Tenant: tenant, AsOf: asOf, Ladder: ladder})
			return err
		}},
		{"missed", func() error {
			_, err := q.Missed(ctx, MissedQuery{Tenant: tenant, AsOf: asOf, From: from, To: to, Ladder: ladder})
			return err
		}},
		{"movement", func() error {
			_, err := q.Movement(ctx, MovementQuery{Tenant: tenant, AsOf: asOf, From: date("2024-06-01T00:00:00Z"), To: date("2024-09-01T00:00:00Z"), Ladder: ladder})
			return err
		}},
	}
	for _, c := range cases {
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

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
