package forecast

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

func randomMC(r *rand.Rand) ([]mcCell, []mcDeal, int) {
	cells := make([]mcCell, 1+r.IntN(6))
	for i := range cells {
		cells[i] = mcCell{alpha: 0.01 + 50*r.Float64(), beta: 0.01 + 50*r.Float64()}
	}
	groups := 1 + r.IntN(4)
	deals := make([]mcDeal, r.IntN(300))
	for i := range deals {
		deals[i] = mcDeal{cell: r.IntN(len(cells)), group: r.IntN(groups), amount: 1000 * r.Float64()}
	}
	return cells, deals, groups
}

func TestSimulateDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 20; i++ {
		cells, deals, groups := randomMC(r)
		a := simulate(cells, deals, groups, 500, 42)
		b := simulate(cells, deals, groups, 500, 42)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("same inputs and seed, different spreads: %+v vs %+v", a, b)
		}
	}
}

// TestSimulateLinear: the spread of amounts multiplied by k is the
// spread times k (what a one-currency answer's conversion relies on),
// for groups drawn deal by deal and by the normal approximation.
func TestSimulateLinear(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for i := 0; i < 30; i++ {
		cells, deals, groups := randomMC(r)
		if i%3 == 0 { // one group above exactLimit
			for j := 0; j < 3*exactLimit; j++ {
				deals = append(deals, mcDeal{cell: r.IntN(len(cells)), amount: 1000 * r.Float64()})
			}
		}
		k := 0.5 + 2*r.Float64()
		conv := make([]mcDeal, len(deals))
		for j, d := range deals {
			conv[j] = mcDeal{cell: d.cell, group: d.group, amount: d.amount * k}
		}
		res := simulate(cells, deals, groups, 500, 9)
		got := res.scaled(k)
		want := simulate(cells, conv, groups, 500, 9)
		ok := nearRel(got.totalP10, want.totalP10) && nearRel(got.totalP90, want.totalP90)
		for g := 0; g < groups; g++ {
			ok = ok && nearRel(got.groupP10[g], want.groupP10[g]) && nearRel(got.groupP90[g], want.groupP90[g])
		}
		if !ok {
			t.Fatalf("scaled by %v: %+v; simulated %+v", k, got, want)
		}
	}
}

func TestSimulateBracketsExpected(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 50; i++ {
		cells, deals, groups := randomMC(r)
		res := simulate(cells, deals, groups, 2000, 1)
		expected, total, largest := 0.0, 0.0, 0.0
		for _, d := range deals {
			largest = math.Max(largest, d.amount)
			c := cells[d.cell]
			expected += d.amount * c.alpha / (c.alpha + c.beta)
			total += d.amount
		}
		if res.totalP10 < 0 || res.totalP90 > total+1e-9 || res.totalP10 > res.totalP90 {
			t.Fatalf("P10 %v, P90 %v outside [0, %v] or out of order", res.totalP10, res.totalP90, total)
		}
		// Loosely: the mean lies between P10 and P90, give or take the
		// largest deal (the sum is discrete) and 5% of the total.
		slack := largest + 0.05*total + 1e-9
		if expected < res.totalP10-slack || expected > res.totalP90+slack {
			t.Errorf("expected %v outside [%v, %v]", expected, res.totalP10, res.totalP90)
		}
		for g := 0; g < groups; g++ {
			if res.groupP10[g] > res.groupP90[g] {
				t.Errorf("group %d: P10 %v > P90 %v", g, res.groupP10[g], res.groupP90[g])
			}
		}
	}
}

func TestSimulateCertainOutcomes(t *testing.T) {
	// A cell almost surely won and one almost surely lost, with groups
	// above and below exactLimit.
	cells := []mcCell{{alpha: 1e9, beta: 1e-6}, {alpha: 1e-6, beta: 1e9}}
	var deals []mcDeal
	for i := 0; i < 2*exactLimit+2; i++ {
		deals = append(deals, mcDeal{cell: i % 2, group: 0, amount: 10})
	}
	for i := 0; i < 5; i++ {
		deals = append(deals, mcDeal{cell: 0, group: 1, amount: 1})
	}
	res := simulate(cells, deals, 2, 200, 9)
	want := float64(10*(exactLimit+1) + 5)
	if math.Abs(res.totalP10-want) > 1e-3 || math.Abs(res.totalP90-want) > 1e-3 {
		t.Errorf("total P10/P90 = %v/%v; want %v", res.totalP10, res.totalP90, want)
	}
	if res.groupP10[1] != 5 || res.groupP90[1] != 5 {
		t.Errorf("group 1 = %v/%v; want 5", res.groupP10[1], res.groupP90[1])
	}
}

func TestAccuracy(t *testing.T) {
	ps := []prediction{
		{p: 0.05, won: false},
		{p: 0.95, won: true},
		{p: 1.0, won: true},
		{p: 0.5, won: false},
	}
	a := accuracy(ps)
	wantForecast := 100*0.05 + 200*0.95 + 50 + 50
	x := accuracyAmounts(wantForecast, 300)
	if x.Forecast != wantForecast || x.Actual != 300 || !near(x.Error, wantForecast-300, 1e-9) || x.AbsError != math.Abs(x.Error) ||
		!near(*x.PctError, 100*(wantForecast-300)/300, 1e-9) {
		t.Errorf("amounts %+v; want forecast %v, actual 300", x, wantForecast)
	}
	if x := accuracyAmounts(10, 0); x.PctError != nil || x.Error != 10 {
		t.Errorf("nothing won: %+v; want error 10, no percentage", x)
	}
	wantBrier := (0.05*0.05 + 0.05*0.05 + 0 + 0.25) / 4
	if !near(a.Brier, wantBrier, 1e-12) {
		t.Errorf("brier %v; want %v", a.Brier, wantBrier)
	}
	if b := a.Calibration[9]; b.Deals != 2 || b.Won != 2 || !near(*b.MeanPredicted, 0.975, 1e-12) || *b.ActualWinRate != 1 {
		t.Errorf("band 0.9-1.0 = %+v", b)
	}
	if b := a.Calibration[5]; b.Deals != 1 || *b.ActualWinRate != 0 {
		t.Errorf("band 0.5-0.6 = %+v", b)
	}
	if b := a.Calibration[3]; b.Deals != 0 || b.MeanPredicted != nil || b.ActualWinRate != nil {
		t.Errorf("empty band = %+v", b)
	}
}
