package forecast

import (
	"math"
	"math/rand/v2"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestCumulativeIncidence(t *testing.T) {
	type obs struct {
		o   Outcome
		day int
		n   float64
	}
	const H = 180
	tests := []struct {
		name     string
		obs      []obs
		want     float64
		wantNEff float64
	}{
		{
			// Day 10: 3 at risk (the one censored on day 5 has left), 1 won:
			// CIF = 1/3, S = 2/3. Day 20: 2 at risk, 1 lost: S = 1/3.
			// won/(won+lost) would say 1/2.
			name:     "won lost censored",
			obs:      []obs{{Won, 10, 1}, {Lost, 20, 1}, {Censored, 5, 1}, {Censored, H, 1}},
			want:     1.0 / 3,
			wantNEff: 3 + 5.0/H,
		},
		{
			name:     "no censoring is the plain share",
			obs:      []obs{{Won, 1, 2}, {Won, 90, 1}, {Lost, 30, 1}},
			want:     0.75,
			wantNEff: 4,
		},
		{
			// Day 0: 4 at risk, 1 lost: S = 3/4. Day 2: 1 censored leaves.
			// Day 3: 2 at risk, 2 won: CIF = 3/4 · 2/2 = 3/4.
			// won/(won+lost) would say 2/3, won/all 1/2.
			name:     "censoring before the wins",
			obs:      []obs{{Lost, 0, 1}, {Censored, 2, 1}, {Won, 3, 2}},
			want:     0.75,
			wantNEff: 3 + 2.0/H,
		},
		{
			// Events on the same day as a censoring count first.
			name:     "tie event before censoring",
			obs:      []obs{{Won, 5, 1}, {Censored, 5, 1}},
			want:     0.5,
			wantNEff: 1 + 5.0/H,
		},
		{
			// A win on or after the horizon is censored at the horizon.
			name:     "win after horizon",
			obs:      []obs{{Won, H, 1}, {Won, H + 30, 1}, {Won, 10, 2}},
			want:     0.5,
			wantNEff: 4,
		},
		{
			name:     "all censored early",
			obs:      []obs{{Censored, 30, 3}},
			want:     0,
			wantNEff: 0.5,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lt := newLifeTable(H)
			for _, o := range tt.obs {
				lt.add(o.o, o.day, o.n)
			}
			got, ok := lt.cumulativeIncidence()
			if !ok || !near(got, tt.want, 1e-12) {
				t.Errorf("cumulative incidence = %v, %v; want %v", got, ok, tt.want)
			}
			if _, _, _, nEff := lt.counts(); !near(nEff, tt.wantNEff, 1e-12) {
				t.Errorf("effective n = %v; want %v", nEff, tt.wantNEff)
			}
		})
	}
	if _, ok := newLifeTable(H).cumulativeIncidence(); ok {
		t.Error("empty life table: ok = true")
	}
}

func TestDaysBucket(t *testing.T) {
	for _, tt := range []struct{ days, want int }{{0, 0}, {14, 0}, {15, 1}, {30, 1}, {31, 2}, {60, 2}, {61, 3}, {1000, 3}} {
		if got := DaysBucket(tt.days); got != tt.want {
			t.Errorf("DaysBucket(%d) = %d; want %d", tt.days, got, tt.want)
		}
	}
}

// rowsOf repeats one outcome n times in cell c.
func rowsOf(c Cell, o Outcome, day int, n float64) trainRow {
	return trainRow{Cell: c, Outcome: o, Day: day, Count: n}
}

func TestShrinkageNoDataIsPooled(t *testing.T) {
	a := Cell{Step: 3, Bucket: 0, Segment: "smb"}
	rows := []trainRow{rowsOf(a, Won, 10, 300), rowsOf(a, Lost, 10, 700)}
	m := fitModel(rows, 180, 20)
	// A cell of an unseen step, and an unseen segment of a seen (step, days).
	for _, c := range []Cell{{Step: 7, Bucket: 2, Segment: "ent"}} {
		p, _, _ := m.posterior(c)
		if !near(p, m.Pooled.P, 1e-12) {
			t.Errorf("unseen %v: P = %v; want pooled %v", c, p, m.Pooled.P)
		}
	}
	p, _, _ := m.posterior(Cell{Step: 3, Bucket: 0, Segment: "ent"})
	if want := m.stepDays[[2]int{3, 0}].P; !near(p, want, 1e-12) {
		t.Errorf("unseen segment: P = %v; want (step, days) %v", p, want)
	}
	// Without any data the pooled rate is the uniform prior's 0.5.
	empty := fitModel(nil, 180, 20)
	if p, _, _ := empty.posterior(a); !near(p, 0.5, 1e-12) {
		t.Errorf("no data at all: P = %v; want 0.5", p)
	}
}

func TestShrinkageLotsOfDataIsRaw(t *testing.T) {
	a := Cell{Step: 2, Bucket: 1, Segment: "smb"}
	b := Cell{Step: 5, Bucket: 3, Segment: "ent"}
	rows := []trainRow{
		rowsOf(a, Won, 20, 2e6), rowsOf(a, Lost, 40, 8e6),
		rowsOf(b, Won, 20, 9e6), rowsOf(b, Censored, 180, 1e6),
	}
	m := fitModel(rows, 180, 20)
	for c, want := range map[Cell]float64{a: 0.2, b: 0.9} {
		e := m.cell[c]
		if !near(*e.Raw, want, 1e-12) || !near(e.P, want, 1e-5) {
			t.Errorf("%v: raw %v, P %v; want %v", c, *e.Raw, e.P, want)
		}
		if e.Hi-e.Lo > 0.001 {
			t.Errorf("%v: interval [%v, %v] too wide for 10M samples", c, e.Lo, e.Hi)
		}
	}
}

func TestShrinkageHalfway(t *testing.T) {
	// Two steps, each with effective n = k = 20 in one cell: the step level
	// is halfway between its raw rate and the pooled rate, and the cell
	// (whose parent chain is the same data) lies between.
	a := Cell{Step: 1, Bucket: 0, Segment: "x"}
	b := Cell{Step: 2, Bucket: 0, Segment: "x"}
	rows := []trainRow{rowsOf(a, Won, 1, 20), rowsOf(b, Lost, 1, 20)}
	m := fitModel(rows, 180, 20)
	// Pooled: 20 wins of 40 with a Beta(1,1) prior: 21/42 = 0.5.
	if !near(m.Pooled.P, 0.5, 1e-12) {
		t.Fatalf("pooled = %v", m.Pooled.P)
	}
	if got := m.step[1].P; !near(got, 0.75, 1e-12) {
		t.Errorf("step 1 = %v; want (20·1 + 20·0.5)/40 = 0.75", got)
	}
	if got := m.step[2].P; !near(got, 0.25, 1e-12) {
		t.Errorf("step 2 = %v; want 0.25", got)
	}
	// (step 1, days 0) toward 0.75: (20 + 15)/40 = 0.875; the cell toward
	// that: (20 + 17.5)/40 = 0.9375.
	if got := m.stepDays[[2]int{1, 0}].P; !near(got, 0.875, 1e-12) {
		t.Errorf("step_days = %v; want 0.875", got)
	}
	if got := m.cell[a].P; !near(got, 0.9375, 1e-12) {
		t.Errorf("cell = %v; want 0.9375", got)
	}
}

func TestModelProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for iter := 0; iter < 200; iter++ {
		var rows []trainRow
		for i := r.IntN(40); i > 0; i-- {
			c := Cell{Step: r.IntN(4), Bucket: r.IntN(4), Segment: []string{"a", "b", ""}[r.IntN(3)]}
			rows = append(rows, rowsOf(c, Outcome(r.IntN(3)), r.IntN(200), float64(1+r.IntN(5))))
		}
		k := []float64{0.001, 1, 20, 500}[r.IntN(4)]
		m := fitModel(rows, 1+r.IntN(180), k)
		all := append(append(append([]Estimate{m.Pooled}, m.Steps...), m.StepDays...), m.Cells...)
		for _, e := range all {
			// The mean lies inside the 80% interval unless the Beta is
			// extremely skewed (a parameter below 1).
			inside := e.alpha < 1 || e.beta < 1 || (e.Lo <= e.P+1e-9 && e.P <= e.Hi+1e-9)
			if !(e.Lo >= 0 && e.Lo <= e.Hi && e.Hi <= 1 && e.P >= 0 && e.P <= 1 && inside) {
				t.Fatalf("iteration %d: %s estimate out of order: lo %v p %v hi %v", iter, e.Level, e.Lo, e.P, e.Hi)
			}
			if e.Raw != nil && (*e.Raw < 0 || *e.Raw > 1) {
				t.Fatalf("raw %v out of [0, 1]", *e.Raw)
			}
		}
	}
}

func TestBetaQuantile(t *testing.T) {
	for _, q := range []float64{0.01, 0.1, 0.5, 0.9, 0.99} {
		if got := betaQuantile(q, 1, 1); !near(got, q, 1e-9) {
			t.Errorf("Beta(1,1) q%v = %v", q, got)
		}
		if got := betaQuantile(q, 2, 1); !near(got, math.Sqrt(q), 1e-9) {
			t.Errorf("Beta(2,1) q%v = %v; want %v", q, got, math.Sqrt(q))
		}
		if got := betaQuantile(q, 1, 2); !near(got, 1-math.Sqrt(1-q), 1e-9) {
			t.Errorf("Beta(1,2) q%v = %v", q, got)
		}
	}
	// Symmetric: the median of Beta(a, a) is 1/2.
	for _, a := range []float64{0.3, 5, 400} {
		if got := betaQuantile(0.5, a, a); !near(got, 0.5, 1e-9) {
			t.Errorf("median Beta(%v,%v) = %v", a, a, got)
		}
	}
}

func TestDrawBetaMean(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, ab := range [][2]float64{{0.5, 0.5}, {2, 8}, {30, 10}, {1e-6, 20}} {
		sum := 0.0
		const n = 20000
		for i := 0; i < n; i++ {
			x := drawBeta(r, ab[0], ab[1])
			if x < 0 || x > 1 || math.IsNaN(x) {
				t.Fatalf("Beta%v draw %v", ab, x)
			}
			sum += x
		}
		if mean, want := sum/n, ab[0]/(ab[0]+ab[1]); !near(mean, want, 0.01) {
			t.Errorf("Beta%v mean %v; want %v", ab, mean, want)
		}
	}
}
