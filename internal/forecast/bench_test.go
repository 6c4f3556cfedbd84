package forecast

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/fx"
	"github.com/commitflow/commitflow/internal/snapshot"
	"github.com/commitflow/commitflow/internal/store"
)

// BenchmarkForecast loads synthetic derived rows of
// COMMITFLOW_FORECAST_BENCH_OPPS opportunities (default 250000) created over
// three years into a fresh database and times a forecast, its back-test, the
// two queries alone and the Go side alone. COMMITFLOW_FORECAST_BENCH_DSN
// names a database to use instead, loaded on first use and kept, so that
// repeated runs skip the load.
//
//	go test ./internal/forecast -run '^$' -bench Forecast -benchtime 10x
func BenchmarkForecast(b *testing.B) {
	opps := 250000
	if s := os.Getenv("COMMITFLOW_FORECAST_BENCH_OPPS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		opps = n
	}
	start := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
	asOf := time.Date(2024, 1, 15, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	gen := func() []store.DerivedRow {
		rows := synth(synthConfig{Seed: 1, Tenant: "acme", Opps: opps, Start: start, Span: 3 * 365 * 24 * time.Hour, Prefix: "opp"})
		b.Logf("%d opportunities, %d derived rows", opps, len(rows))
		return rows
	}
	var f *Forecaster
	if dsn := os.Getenv("COMMITFLOW_FORECAST_BENCH_DSN"); dsn != "" {
		st, err := store.Open(ctx, dsn, store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		if _, err := st.Migrate(ctx); err != nil {
			b.Fatal(err)
		}
		var n, states uint64
		if err := st.Conn().QueryRow(ctx, "SELECT count() FROM derived_events WHERE tenant = 'acme'").Scan(&n); err != nil {
			b.Fatal(err)
		}
		if err := st.Conn().QueryRow(ctx, "SELECT count() FROM opportunity_state WHERE tenant = 'acme'").Scan(&states); err != nil {
			b.Fatal(err)
		}
		if n > 0 && states == 0 {
			b.Fatal("the database has derived events but no opportunity states: use a fresh one")
		}
		if n == 0 {
			rows := gen()
			for len(rows) > 0 {
				k := min(len(rows), 200000)
				if err := st.InsertDerivedWithStates(ctx, rows[:k], synthSteps); err != nil {
					b.Fatal(err)
				}
				rows = rows[k:]
			}
		}
		f = New(st.Conn())
	} else {
		f = open(b, gen())
	}
	q := Query{Tenant: "acme", AsOf: asOf}
	r, err := f.Forecast(ctx, q) // warm up
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("open deals %d, training samples %d, cells %d", r.Samples.OpenDeals, r.Samples.TrainingSamples, len(r.Model.Cells))
	p, _ := validate(q, nil)

	b.Run("forecast", func(b *testing.B) {
		timed(b, func() error { _, err := f.Forecast(ctx, q); return err })
	})
	b.Run("backtest", func(b *testing.B) {
		bt := asOf.AddDate(0, -9, 0)
		qb := Query{Tenant: "acme", AsOf: asOf, Backtest: &bt}
		timed(b, func() error { _, err := f.Forecast(ctx, qb); return err })
	})
	// The forecast and the back-test with a fresh fit and with a kept
	// model (ModelCache), alternately, so that the machine's load swings
	// fall on both alike.
	b.Run("fresh-vs-kept-model", func(b *testing.B) {
		kept := NewWithOptions(f.conn, Options{Pinner: f.pin, Models: NewModelCache(ModelCacheOptions{})})
		bt := asOf.AddDate(0, -9, 0)
		qb := Query{Tenant: "acme", AsOf: asOf, Backtest: &bt}
		for _, q := range []Query{q, qb} {
			if _, err := kept.Forecast(ctx, q); err != nil { // the fits
				b.Fatal(err)
			}
		}
		runs := map[string][]time.Duration{}
		for i := 0; i < b.N; i++ {
			for _, c := range []struct {
				name string
				f    *Forecaster
				q    Query
			}{{"forecast-fresh", f, q}, {"forecast-kept", kept, q}, {"backtest-fresh", f, qb}, {"backtest-kept", kept, qb}} {
				start := time.Now()
				if _, err := c.f.Forecast(ctx, c.q); err != nil {
					b.Fatal(err)
				}
				runs[c.name] = append(runs[c.name], time.Since(start))
			}
		}
		for name, d := range runs {
			slices.Sort(d)
			b.ReportMetric(float64(d[len(d)/2])/1e6, name+"-p50-ms")
			b.ReportMetric(float64(d[(len(d)*95+99)/100-1])/1e6, name+"-p95-ms")
		}
	})
	b.Run("training-query", func(b *testing.B) {
		timed(b, func() error {
			_, err := readView(ctx, f, "acme", func(ctx context.Context, v *snapshot.View) ([]trainRow, error) {
				rows, _, err := f.training(ctx, v, "acme", p.refs, p.at, p.HorizonDays)
				return rows, err
			})
			return err
		})
	})
	b.Run("deals-query", func(b *testing.B) {
		timed(b, func() error {
			_, err := readView(ctx, f, "acme", func(ctx context.Context, v *snapshot.View) (*chunks[dealRow], error) {
				return f.deals(ctx, v, "acme", p.at, p.bound, false, nil)
			})
			return err
		})
	})
	var stats trainingStats
	train, err := readView(ctx, f, "acme", func(ctx context.Context, v *snapshot.View) ([]trainRow, error) {
		var (
			rows []trainRow
			err  error
		)
		rows, stats, err = f.training(ctx, v, "acme", p.refs, p.at, p.HorizonDays)
		return rows, err
	})
	if err != nil {
		b.Fatal(err)
	}
	deals, err := readView(ctx, f, "acme", func(ctx context.Context, v *snapshot.View) (*chunks[dealRow], error) {
		return f.deals(ctx, v, "acme", p.at, p.bound, false, nil)
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("go-fit-and-simulate", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := assemble(p, fitModel(train, p.HorizonDays, p.PriorStrength), stats, deals); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The Go side with a rate table (the Monte Carlo of the one currency
	// and that of the converted amounts), and with the open deals spread
	// over three currencies (one Monte Carlo each, and the converted one).
	tab, err := fx.Parse(strings.NewReader(testRates), "USD")
	if err != nil {
		b.Fatal(err)
	}
	pc := p
	pc.rates = tab
	mixed := &chunks[dealRow]{}
	for i, d := range deals.rows() {
		r := *d
		r.Currency = []string{"USD", "EUR", ""}[i%3]
		mixed.add(r)
	}
	for _, c := range []struct {
		name  string
		deals *chunks[dealRow]
	}{{"go-fit-and-simulate-converted", deals}, {"go-fit-and-simulate-3-currencies-converted", mixed}} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := assemble(pc, fitModel(train, p.HorizonDays, p.PriorStrength), stats, c.deals); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// timed runs fn b.N times and reports the median and 95th percentile.
func timed(b *testing.B, fn func() error) {
	d := make([]time.Duration, 0, b.N)
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := fn(); err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(start))
	}
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(d[(len(d)*95+99)/100-1])/1e6, "p95-ms")
}
