package metrics

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/fx"
)

// The assemble functions turn a query's rows into its answer; these tests
// give them rows by hand, without ClickHouse.

// curNum is the number curSQL makes of a currency code.
func curNum(code string) uint32 {
	var n uint32
	for i := len(code) - 1; i >= 0; i-- {
		n = n<<8 | uint32(code[i])
	}
	return n
}

func TestCurNum(t *testing.T) {
	for _, c := range []string{"", "USD", "EUR", "GBP"} {
		if got := curCode(curNum(c)); got != c {
			t.Errorf("curCode(curNum(%q)) = %q", c, got)
		}
	}
}

// testCommon is the validated common parameters of the assemble tests: a
// three-step ladder as of 2024-06-15.
func testCommon(t *testing.T) common {
	t.Helper()
	c, err := validateCommon("acme", date("2024-06-15T00:00:00Z"), []string{"a", "b", "c"}, "v1", 1)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testRates asks for amounts in GBP with the tests' rate table (fxTable).
func testRates(t *testing.T) moneyAsk {
	t.Helper()
	tab, err := fx.Parse(strings.NewReader(fxTable), "USD")
	if err != nil {
		t.Fatal(err)
	}
	return moneyAsk{rates: tab, want: "GBP"}
}

// f64 returns a pointer to x.
func f64(x float64) *float64 { return &x }

// sameFloat reports whether two scalar amounts agree: both nil, or both
// set and within 1e-9.
func sameFloat(a, b *float64) bool {
	if a == nil || b == nil {
		return a == b
	}
	d := *a - *b
	return d < 1e-9 && d > -1e-9
}

// stallDeals returns the parallel deal arrays of a stallsRow for ids with
// the given amounts, in USD, 10 days since commitment, stalled since
// 2024-06-01.
func stallDeals(r stallsRow, amounts []float64, ids ...string) stallsRow {
	for i, id := range ids {
		r.amounts = append(r.amounts, amounts[i])
		r.opps = append(r.opps, id)
		r.owners = append(r.owners, "own-"+id)
		r.teams = append(r.teams, "team")
		r.currencies = append(r.currencies, curNum("USD"))
		r.days = append(r.days, 10)
		r.since = append(r.since, ts(date("2024-06-01T00:00:00Z")))
	}
	return r
}

func TestAssembleStalls(t *testing.T) {
	usd, eur := curNum("USD"), curNum("EUR")
	// three stalled deals at step 1, two at step 2; amounts tie at 100.
	tied := []stallsRow{
		stallDeals(stallsRow{step: 1, open: 4, stalled: 3, curs: []uint32{usd}, sums: [][]float64{{400}, {300}}, hist: [len(bucketEdges)]uint64{1, 3}},
			[]float64{100, 100, 50}, "o3", "o1", "o9"),
		stallDeals(stallsRow{step: 2, open: 2, stalled: 2, curs: []uint32{usd}, sums: [][]float64{{300}, {300}}},
			[]float64{200, 100}, "o5", "o2"),
	}
	ids := func(ds []StalledDeal) []string {
		out := []string{}
		for _, d := range ds {
			out = append(out, d.OpportunityID)
		}
		return out
	}
	steps := func(r *StallsResult) []int {
		var out []int
		for _, s := range r.Steps {
			out = append(out, s.StepIndex)
		}
		return out
	}
	for _, tc := range []struct {
		name       string
		rows       []stallsRow
		page, size int
		ask        moneyAsk
		check      func(t *testing.T, r *StallsResult)
	}{
		{"no rows", nil, 1, 50, moneyAsk{}, func(t *testing.T, r *StallsResult) {
			if !slices.Equal(steps(r), []int{0, 1, 2, 3}) || r.Open != 0 || r.Stalled != 0 {
				t.Errorf("steps %v open %d stalled %d, want steps 0-3 and nothing", steps(r), r.Open, r.Stalled)
			}
			if r.Deals == nil || len(r.Deals) != 0 || r.AmountsByCurrency != nil {
				t.Errorf("deals %v amounts %v, want [] and none", r.Deals, r.AmountsByCurrency)
			}
			if !sameFloat(r.OpenAmount, f64(0)) || *r.Definitions.Currency != "" {
				t.Errorf("open amount %v currency %q, want 0 in no currency", r.OpenAmount, *r.Definitions.Currency)
			}
			for _, s := range r.Steps {
				if len(s.DaysSinceCommitment) != len(bucketEdges) {
					t.Errorf("step %d: %d buckets", s.StepIndex, len(s.DaysSinceCommitment))
				}
			}
		}},
		{"step above the ladder", []stallsRow{{step: 5, open: 1, curs: []uint32{usd}, sums: [][]float64{{10}, {0}}}}, 1, 50, moneyAsk{}, func(t *testing.T, r *StallsResult) {
			if !slices.Equal(steps(r), []int{0, 1, 2, 3, 5}) || r.Steps[4].Step != "" || r.Steps[3].Step != "c" || r.Open != 1 {
				t.Errorf("steps %+v, want 0-3 and 5 (unnamed), open 1", r.Steps)
			}
		}},
		{"ties by opportunity id across steps", tied, 1, 3, moneyAsk{}, func(t *testing.T, r *StallsResult) {
			if got := ids(r.Deals); !slices.Equal(got, []string{"o5", "o1", "o2"}) {
				t.Errorf("page 1 of 3: %v, want o5 o1 o2", got)
			}
			if r.Open != 6 || r.Stalled != 5 || !sameFloat(r.OpenAmount, f64(700)) || !sameFloat(r.StalledAmount, f64(600)) {
				t.Errorf("open %d %v stalled %d %v, want 6 700 and 5 600", r.Open, ptr(r.OpenAmount), r.Stalled, ptr(r.StalledAmount))
			}
			if d := r.Deals[1]; d.Step != "a" || d.StepIndex != 1 || d.OwnerID != "own-o1" || d.Currency != "USD" ||
				d.DaysSinceCommitment != 10 || !d.StalledSince.Equal(date("2024-06-01T00:00:00Z")) || d.StalledSince.Location() != time.UTC {
				t.Errorf("deal o1: %+v", d)
			}
			if h := r.Steps[1].DaysSinceCommitment; h[0].Count != 1 || h[1].Count != 3 || r.Steps[1].Step != "a" {
				t.Errorf("step 1: %+v", r.Steps[1])
			}
		}},
		{"second page", tied, 2, 3, moneyAsk{}, func(t *testing.T, r *StallsResult) {
			if got := ids(r.Deals); !slices.Equal(got, []string{"o3", "o9"}) || r.Page != 2 || r.PageSize != 3 {
				t.Errorf("page 2 of 3: %v (page %d size %d), want o3 o9", got, r.Page, r.PageSize)
			}
		}},
		{"page beyond the end", tied, 3, 3, moneyAsk{}, func(t *testing.T, r *StallsResult) {
			if r.Deals == nil || len(r.Deals) != 0 {
				t.Errorf("page 3 of 3: %v, want []", r.Deals)
			}
		}},
		{"several currencies", []stallsRow{
			{step: 1, open: 2, stalled: 1, curs: []uint32{usd, eur}, sums: [][]float64{{10, 20}, {10, 0}}},
			{step: 2, open: 1, curs: []uint32{eur}, sums: [][]float64{{5}, {0}}},
		}, 1, 50, moneyAsk{}, func(t *testing.T, r *StallsResult) {
			want := map[string]StallAmounts{"USD": {10, 10}, "EUR": {25, 0}}
			if err := approxEqual(r.AmountsByCurrency, want); err != nil {
				t.Error(err)
			}
			if r.OpenAmount != nil || r.StalledAmount != nil || r.Steps[1].OpenAmount != nil || *r.Definitions.Currency != "" {
				t.Errorf("scalars %v %v, want null in several currencies", ptr(r.OpenAmount), ptr(r.StalledAmount))
			}
			if !sameFloat(r.Steps[2].OpenAmount, nil) {
				t.Errorf("step 2 open amount %v, want null: the answer is mixed", ptr(r.Steps[2].OpenAmount))
			}
		}},
		{"a currency whose sums are all zero", []stallsRow{
			{step: 1, open: 2, curs: []uint32{usd, eur}, sums: [][]float64{{10, 0}, {0, 0}}},
		}, 1, 50, moneyAsk{}, func(t *testing.T, r *StallsResult) {
			if _, ok := r.AmountsByCurrency["EUR"]; ok || len(r.AmountsByCurrency) != 1 {
				t.Errorf("amounts %v, want USD alone", r.AmountsByCurrency)
			}
			if !sameFloat(r.OpenAmount, f64(10)) || *r.Definitions.Currency != "USD" {
				t.Errorf("open amount %v in %q, want 10 USD", ptr(r.OpenAmount), *r.Definitions.Currency)
			}
		}},
		{"converted", []stallsRow{
			{step: 1, open: 2, curs: []uint32{usd, eur}, sums: [][]float64{{130, 120}, {0, 0}}},
		}, 1, 50, testRates(t), func(t *testing.T, r *StallsResult) {
			// On 2024-06-15 a EUR is 1.20 USD and a GBP 1.30 USD.
			if !sameFloat(r.OpenAmount, f64(100+120*1.20/1.30)) || *r.Definitions.Currency != "GBP" || r.Definitions.Converted == nil {
				t.Errorf("open amount %v in %q, want 100 + 120 EUR in GBP", ptr(r.OpenAmount), *r.Definitions.Currency)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := assembleStalls(testCommon(t), tc.rows, tc.page, tc.size, tc.ask)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(r.Definitions.Rules[:len(stallsRules)], stallsRules) {
				t.Errorf("rules %v", r.Definitions.Rules)
			}
			tc.check(t, r)
		})
	}
}

func TestAssembleMovement(t *testing.T) {
	usd, eur := curNum("USD"), curNum("EUR")
	from, to := date("2024-03-01T00:00:00Z"), date("2024-05-01T00:00:00Z")
	steps := func(r *MovementResult) []int {
		var out []int
		for _, s := range r.ByStep {
			out = append(out, s.StepIndex)
		}
		return out
	}
	row := func(top uint8, n [8]uint64, curs []uint32, sums ...[]float64) movementRow {
		r := movementRow{top: top, n: n, curs: curs, sums: make([][]float64, 8)}
		for i := range r.sums {
			r.sums[i] = make([]float64, len(curs))
			if i < len(sums) && sums[i] != nil {
				r.sums[i] = sums[i]
			}
		}
		return r
	}
	for _, tc := range []struct {
		name  string
		rows  []movementRow
		ask   moneyAsk
		check func(t *testing.T, r *MovementResult)
	}{
		{"no rows", nil, moneyAsk{}, func(t *testing.T, r *MovementResult) {
			if !slices.Equal(steps(r), []int{0, 1, 2, 3}) || !r.Total.isZero() || r.Total.AmountsByCurrency != nil {
				t.Errorf("steps %v total %+v, want steps 0-3 and nothing", steps(r), r.Total)
			}
			if !sameFloat(r.Total.NewAmount, f64(0)) || !sameFloat(r.ByStep[2].WonAmount, f64(0)) {
				t.Errorf("amounts %v %v, want 0", ptr(r.Total.NewAmount), ptr(r.ByStep[2].WonAmount))
			}
			if !r.Definitions.From.Equal(from) || !r.Definitions.To.Equal(to) {
				t.Errorf("definitions from %v to %v", r.Definitions.From, r.Definitions.To)
			}
		}},
		{"steps above the ladder, one without movement", []movementRow{
			row(2, [8]uint64{1, 1}, []uint32{usd}, []float64{10}, []float64{10}),
			row(6, [8]uint64{0, 0, 0, 0, 0, 0, 2}, []uint32{usd}, nil, nil, nil, nil, nil, nil, []float64{30}),
			row(7, [8]uint64{}, []uint32{usd}),
		}, moneyAsk{}, func(t *testing.T, r *MovementResult) {
			if !slices.Equal(steps(r), []int{0, 1, 2, 3, 6}) || r.ByStep[4].Step != "" || r.ByStep[2].Step != "b" {
				t.Errorf("steps %+v, want 0-3 and 6 (unnamed)", r.ByStep)
			}
			if r.Total.New != 1 || r.Total.Advanced != 1 || r.Total.Won != 2 || !sameFloat(r.Total.WonAmount, f64(30)) || !sameFloat(r.Total.NewAmount, f64(10)) {
				t.Errorf("total %+v", r.Total)
			}
		}},
		{"several currencies, one all zero", []movementRow{
			row(1, [8]uint64{2}, []uint32{usd, eur, curNum("GBP")}, []float64{10, 5, 0}),
			row(2, [8]uint64{1}, []uint32{eur}, []float64{7}),
		}, moneyAsk{}, func(t *testing.T, r *MovementResult) {
			want := map[string]MovementAmounts{"USD": {NewAmount: 10}, "EUR": {NewAmount: 12}}
			if err := approxEqual(r.Total.AmountsByCurrency, want); err != nil {
				t.Error(err)
			}
			if r.Total.NewAmount != nil || r.ByStep[2].NewAmount != nil {
				t.Errorf("scalars %v %v, want null in several currencies", ptr(r.Total.NewAmount), ptr(r.ByStep[2].NewAmount))
			}
		}},
		{"converted at the rates of to", []movementRow{
			row(1, [8]uint64{1}, []uint32{eur}, []float64{125}),
		}, testRates(t), func(t *testing.T, r *MovementResult) {
			// to is before as_of: the rates of 2024-05-01, a EUR 1.10
			// USD and a GBP 1.25 USD.
			if !sameFloat(r.Total.NewAmount, f64(110)) || r.Definitions.Converted.RatesOn != "2024-05-01" {
				t.Errorf("new amount %v at the rates of %s, want 110 GBP on 2024-05-01", ptr(r.Total.NewAmount), r.Definitions.Converted.RatesOn)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := assembleMovement(testCommon(t), from, to, tc.rows, tc.ask)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, r)
		})
	}
}

func TestAssembleMissed(t *testing.T) {
	usd, eur := curNum("USD"), curNum("EUR")
	from, to := date("2024-03-01T00:00:00Z"), date("2024-05-01T00:00:00Z")
	keys := func(rs []MissedRow) []string {
		out := []string{}
		for _, r := range rs {
			out = append(out, r.Key)
		}
		return out
	}
	// In the query's order: by dim, then k as a string ("10" before "2").
	rows := []missedRow{
		{dim: "owner", k: "zed", missed: 1, curs: []uint32{usd}, sums: [][]float64{{5}, {0}}, deals: 1, missedInts: 1, held: 4},
		{dim: "owner", k: "ann", held: 2, sums: [][]float64{nil, nil}},
		{dim: "reason", k: "no_decision", missed: 2, curs: []uint32{eur}, sums: [][]float64{{7}, {0}}, deals: 1},
		{dim: "reason", k: "late", missed: 1, curs: []uint32{usd}, sums: [][]float64{{5}, {0}}, deals: 1, missedInts: 1},
		{dim: "step", k: "10", missed: 1, curs: []uint32{usd}, sums: [][]float64{{5}, {0}}, deals: 1, deals0: 0, missedInts: 1, firstInts: 0},
		{dim: "step", k: "2", missed: 2, curs: []uint32{usd, eur}, sums: [][]float64{{5, 7}, {5, 7}}, deals: 2, deals0: 2, missedInts: 1, firstInts: 1, held: 4},
	}
	for _, tc := range []struct {
		name  string
		rows  []missedRow
		ask   moneyAsk
		check func(t *testing.T, r *MissedResult)
	}{
		{"no rows", nil, moneyAsk{}, func(t *testing.T, r *MissedResult) {
			if r.ByStep == nil || r.ByReason == nil || r.ByOwner == nil || len(r.ByStep)+len(r.ByReason)+len(r.ByOwner) != 0 {
				t.Errorf("rows %v %v %v, want three []", r.ByStep, r.ByReason, r.ByOwner)
			}
			if r.Total.Missed != 0 || r.Total.MissRate != nil || !sameFloat(r.Total.ValueAtStake, f64(0)) {
				t.Errorf("total %+v, want nothing, no miss rate, 0 at stake", r.Total)
			}
		}},
		{"steps, reasons and owners", rows, moneyAsk{}, func(t *testing.T, r *MissedResult) {
			if got := keys(r.ByStep); !slices.Equal(got, []string{"b", ""}) || r.ByStep[0].StepIndex != 2 || r.ByStep[1].StepIndex != 10 {
				t.Errorf("by step %+v, want step 2 (b), then 10 (above the ladder, unnamed)", r.ByStep)
			}
			if got := keys(r.ByReason); !slices.Equal(got, []string{"late", "no_decision"}) || r.ByReason[0].MissRate != nil {
				t.Errorf("by reason %+v, want late, no_decision, without miss rates", r.ByReason)
			}
			if got := keys(r.ByOwner); !slices.Equal(got, []string{"ann", "zed"}) || !sameFloat(r.ByOwner[1].MissRate, f64(0.25)) || !sameFloat(r.ByOwner[0].MissRate, f64(0)) {
				t.Errorf("by owner %+v, want ann (rate 0), zed (rate 0.25)", r.ByOwner)
			}
			// The total is the steps' first misses: 3 misses, 2 deals, 1
			// interaction of 4 held.
			tot := r.Total
			if tot.Missed != 3 || tot.Deals != 2 || tot.MissedInteractions != 1 || tot.Interactions != 4 || !sameFloat(tot.MissRate, f64(0.25)) {
				t.Errorf("total %+v", tot)
			}
			if err := approxEqual(tot.AmountsByCurrency, map[string]MissedAmounts{"USD": {5}, "EUR": {7}}); err != nil {
				t.Error(err)
			}
			// USD and EUR: no scalar.
			if tot.ValueAtStake != nil || r.ByStep[1].ValueAtStake != nil || *r.Definitions.Currency != "" {
				t.Errorf("value at stake %v, want null in several currencies", ptr(tot.ValueAtStake))
			}
		}},
		{"a currency whose sums are all zero", []missedRow{
			{dim: "step", k: "1", missed: 1, curs: []uint32{usd, eur}, sums: [][]float64{{5, 0}, {5, 0}}, deals: 1, deals0: 1},
		}, moneyAsk{}, func(t *testing.T, r *MissedResult) {
			if len(r.Total.AmountsByCurrency) != 1 || !sameFloat(r.Total.ValueAtStake, f64(5)) || *r.Definitions.Currency != "USD" {
				t.Errorf("total %v %v in %q, want 5 USD alone", r.Total.AmountsByCurrency, ptr(r.Total.ValueAtStake), *r.Definitions.Currency)
			}
		}},
		{"converted", rows, testRates(t), func(t *testing.T, r *MissedResult) {
			if want := (5 + 7*1.20) / 1.30; !sameFloat(r.Total.ValueAtStake, &want) || !sameFloat(r.ByReason[1].ValueAtStake, f64(7*1.20/1.30)) {
				t.Errorf("value at stake %v, reason no_decision %v, want %v and %v GBP", ptr(r.Total.ValueAtStake), ptr(r.ByReason[1].ValueAtStake), want, 7*1.20/1.30)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := assembleMissed(testCommon(t), from, to, tc.rows, tc.ask)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, r)
		})
	}
	if _, err := assembleMissed(testCommon(t), from, to, []missedRow{{dim: "step", k: "x", sums: [][]float64{nil, nil}}}, moneyAsk{}); err == nil {
		t.Error("a step index that is not a number: no error")
	}
}

func TestAssembleFunnel(t *testing.T) {
	usd, eur := curNum("USD"), curNum("EUR")
	sums := func(curs int, s ...[]float64) [][]float64 {
		out := make([][]float64, 5)
		for i := range out {
			out[i] = make([]float64, curs)
			if i < len(s) {
				out[i] = s[i]
			}
		}
		return out
	}
	byOwner := func(t *testing.T) common {
		c := testCommon(t)
		c.defs.By, c.defs.Interval = "owner", "month"
		return c
	}
	// ann and bob keep groups of their own, two values are merged.
	keys := topKeys([]keyRow{{"ann", 11, 5}, {"bob", 22, 4}, {"cy", 33, 1}, {"dee", 44, 1}}, 2)
	for _, tc := range []struct {
		name  string
		c     func(t *testing.T) common
		top   int
		rows  []funnelRow
		ask   moneyAsk
		check func(t *testing.T, r *FunnelResult)
	}{
		{"no rows", testCommon, 0, nil, moneyAsk{}, func(t *testing.T, r *FunnelResult) {
			if len(r.Steps) != 2 || r.Steps[0].FromStep != "a" || r.Steps[0].ToStep != "b" || r.Steps[1].FromIndex != 2 || r.Steps[1].ToIndex != 3 {
				t.Fatalf("steps %+v, want a→b and b→c", r.Steps)
			}
			for _, st := range r.Steps {
				if st.Reached != 0 || st.Groups != nil || st.ConversionRateDecided != nil || len(st.TimeToConvert.Histogram) != len(bucketEdges) ||
					!sameFloat(st.ReachedAmount, f64(0)) || st.AmountConversionRateReached != nil {
					t.Errorf("step %d: %+v, want an empty cohort", st.FromIndex, st)
				}
			}
			if r.Definitions.Top != 0 || r.Definitions.OtherKeys != 0 {
				t.Errorf("top %d other %d", r.Definitions.Top, r.Definitions.OtherKeys)
			}
		}},
		{"steps outside the ladder's conversions", testCommon, 0, []funnelRow{
			{k: 0, n: [6]uint64{9}, curs: []uint32{usd}, sums: sums(1)},
			{k: 3, n: [6]uint64{9}, curs: []uint32{usd}, sums: sums(1)},
			{k: 2, n: [6]uint64{4, 2, 1, 1, 1, 1}, curs: []uint32{usd}, sums: sums(1, []float64{40}, []float64{20}, []float64{10}, []float64{10}, []float64{5}),
				qs: []uint32{86400, 2 * 86400, 3 * 86400}, hist: [len(bucketEdges)]uint64{1}},
		}, moneyAsk{}, func(t *testing.T, r *FunnelResult) {
			if r.Steps[0].Reached != 0 {
				t.Errorf("step 1 reached %d, want 0: rows of step 0 and 3 are left out", r.Steps[0].Reached)
			}
			st := r.Steps[1]
			if st.Reached != 4 || st.Converted != 2 || st.Dropped != 1 || st.StillOpen != 1 || st.Skipped != 1 ||
				!sameFloat(st.ConversionRateDecided, f64(2.0/3)) || !sameFloat(st.ConversionRateReached, f64(0.5)) {
				t.Errorf("step 2 counts %+v", st.FunnelCounts)
			}
			if !sameFloat(st.ConvertedAmount, f64(20)) || !sameFloat(st.DroppedAmount, f64(10)) || !sameFloat(st.SkippedAmount, f64(5)) ||
				!sameFloat(st.AmountConversionRateDecided, f64(20.0/30)) || !sameFloat(st.AmountConversionRateReached, f64(0.5)) {
				t.Errorf("step 2 amounts %+v", st.FunnelCounts)
			}
			tc := st.TimeToConvert
			if tc.N != 1 || tc.Skipped != 1 || !sameFloat(tc.Median, f64(1)) || !sameFloat(tc.P90, f64(3)) || tc.Histogram[0].Count != 1 {
				t.Errorf("step 2 time to convert %+v", tc)
			}
		}},
		{"groups sorted, top merged", byOwner, 2, []funnelRow{
			{k: 1, n: [6]uint64{6}, curs: []uint32{usd}, sums: sums(1)},
			{k: 1, g: 1, period: "2024-02-01", kh: otherKey, n: [6]uint64{1}, sums: sums(0)},
			{k: 1, g: 1, period: "2024-02-01", kh: 22, n: [6]uint64{2}, sums: sums(0)},
			{k: 1, g: 1, period: "2024-02-01", kh: 11, n: [6]uint64{1}, sums: sums(0)},
			{k: 1, g: 1, period: "2024-01-01", kh: 22, n: [6]uint64{2, 2}, sums: sums(0)},
		}, moneyAsk{}, func(t *testing.T, r *FunnelResult) {
			var got []string
			for _, g := range r.Steps[0].Groups {
				got = append(got, g.Period+"/"+g.Key+map[bool]string{true: "(other)"}[g.Other])
			}
			if want := []string{"2024-01-01/bob", "2024-02-01/ann", "2024-02-01/bob", "2024-02-01/(other)"}; !slices.Equal(got, want) {
				t.Errorf("groups %v, want %v", got, want)
			}
			if r.Steps[0].Groups[0].Converted != 2 || !sameFloat(r.Steps[0].Groups[0].ConversionRateReached, f64(1)) {
				t.Errorf("group 2024-01-01/bob %+v", r.Steps[0].Groups[0])
			}
			if r.Definitions.Top != 2 || r.Definitions.OtherKeys != 2 || r.Definitions.By != "owner" {
				t.Errorf("definitions top %d other_keys %d by %q, want 2, 2, owner", r.Definitions.Top, r.Definitions.OtherKeys, r.Definitions.By)
			}
			if r.Steps[1].Groups != nil {
				t.Errorf("step 2 groups %v, want none", r.Steps[1].Groups)
			}
		}},
		{"several currencies, one all zero", byOwner, 0, []funnelRow{
			{k: 1, n: [6]uint64{3}, curs: []uint32{usd, eur, curNum("GBP")}, sums: sums(3, []float64{10, 20, 0})},
			{k: 1, g: 1, kh: 11, n: [6]uint64{1}, curs: []uint32{usd}, sums: sums(1, []float64{10})},
		}, moneyAsk{}, func(t *testing.T, r *FunnelResult) {
			st := r.Steps[0]
			if len(st.AmountsByCurrency) != 2 || st.AmountsByCurrency["EUR"].ReachedAmount != 20 {
				t.Errorf("amounts %v, want USD and EUR", st.AmountsByCurrency)
			}
			if st.ReachedAmount != nil || st.Groups[0].ReachedAmount != nil || *r.Definitions.Currency != "" {
				t.Errorf("scalars %v and group %v, want null: the answer is in several currencies", ptr(st.ReachedAmount), ptr(st.Groups[0].ReachedAmount))
			}
		}},
		{"converted", testCommon, 0, []funnelRow{
			{k: 1, n: [6]uint64{2, 1, 1}, curs: []uint32{usd, eur}, sums: sums(2, []float64{13, 13}, []float64{13, 0}, []float64{0, 13})},
		}, testRates(t), func(t *testing.T, r *FunnelResult) {
			st := r.Steps[0]
			if !sameFloat(st.ConvertedAmount, f64(10)) || !sameFloat(st.DroppedAmount, f64(12)) || !sameFloat(st.AmountConversionRateDecided, f64(10.0/22)) {
				t.Errorf("converted %v dropped %v rate %v, want 10 and 12 GBP, 10/22", ptr(st.ConvertedAmount), ptr(st.DroppedAmount), ptr(st.AmountConversionRateDecided))
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := keyset{}
			if tc.top > 0 {
				k = keys
			}
			r, err := assembleFunnel(tc.c(t), tc.top, k, tc.rows, tc.ask)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, r)
		})
	}
}

func TestTopKeys(t *testing.T) {
	rows := []keyRow{{"ann", 11, 5}, {"bob", 22, 4}, {"cy", 33, 1}}
	for _, tc := range []struct {
		top   int
		kept  []uint64
		other int
	}{{0, []uint64{11, 22, 33}, 0}, {2, []uint64{11, 22}, 1}, {5, []uint64{11, 22, 33}, 0}} {
		k := topKeys(rows, tc.top)
		if !slices.Equal(k.top, tc.kept) || k.other != tc.other {
			t.Errorf("top %d: kept %v other %d, want %v %d", tc.top, k.top, k.other, tc.kept, tc.other)
		}
		if key, other := k.group(22); key != "bob" || other {
			t.Errorf("top %d: group 22 is %q %v", tc.top, key, other)
		}
		if _, other := k.group(otherKey); other != (tc.other > 0) {
			t.Errorf("top %d: the other group is other: %v", tc.top, other)
		}
	}
	if k := topKeys(nil, 3); k.names == nil || len(k.top) != 0 {
		t.Errorf("no rows: %+v", k)
	}
}

func TestAssembleCycle(t *testing.T) {
	keys := topKeys([]keyRow{{"ann", 11, 5}, {"bob", 22, 4}, {"cy", 33, 1}}, 1)
	t.Run("no rows", func(t *testing.T) {
		r := assembleCycle(testCommon(t), "", 0, 0, keyset{}, nil)
		if r.Groups != nil || r.Closed.N != 0 || r.Won.Median != nil || r.FromStep != "" || r.FromIndex != 0 {
			t.Errorf("%+v, want nothing from the creation", r)
		}
		if !slices.Equal(r.Definitions.Rules, cycleRules) {
			t.Errorf("rules %v", r.Definitions.Rules)
		}
	})
	t.Run("outcomes and groups", func(t *testing.T) {
		c := testCommon(t)
		c.defs.By, c.defs.Interval = "owner", "month"
		day := uint32(86400)
		r := assembleCycle(c, "b", 2, 1, keys, []cycleRow{
			{o: 0, n: 5, nok: 4, qs: []uint32{day, 2 * day, 4 * day}},
			{o: 1, n: 3, nok: 3, qs: []uint32{day, day, 2 * day}},
			{o: 2, n: 2, nok: 1, qs: []uint32{3 * day, 3 * day, 3 * day}},
			{g: 1, o: 2, period: "2024-02-01", kh: otherKey, n: 1, nok: 0, qs: []uint32{0, 0, 0}},
			{g: 1, o: 0, period: "2024-02-01", kh: otherKey, n: 1, nok: 0},
			{g: 1, o: 1, period: "2024-02-01", kh: 11, n: 3, nok: 3, qs: []uint32{day, day, 2 * day}},
			{g: 1, o: 0, period: "2024-01-01", kh: 11, n: 1, nok: 1, qs: []uint32{day, day, day}},
		})
		if r.FromStep != "b" || r.FromIndex != 2 || r.Definitions.Top != 1 || r.Definitions.OtherKeys != 2 {
			t.Errorf("from %q %d, top %d other %d", r.FromStep, r.FromIndex, r.Definitions.Top, r.Definitions.OtherKeys)
		}
		if r.Closed.N != 4 || r.Closed.NotReached != 1 || !sameFloat(r.Closed.P90, f64(4)) || r.Won.N != 3 || !sameFloat(r.Lost.Median, f64(3)) || r.Lost.NotReached != 1 {
			t.Errorf("outcomes %+v", r.CycleOutcomes)
		}
		var got []string
		for _, g := range r.Groups {
			got = append(got, g.Period+"/"+g.Key+map[bool]string{true: "(other)"}[g.Other])
		}
		if want := []string{"2024-01-01/ann", "2024-02-01/ann", "2024-02-01/(other)"}; !slices.Equal(got, want) {
			t.Fatalf("groups %v, want %v", got, want)
		}
		if o := r.Groups[2]; o.Lost.NotReached != 1 || o.Lost.Median != nil || o.Closed.NotReached != 1 || o.Won.N != 0 {
			t.Errorf("other group %+v: no quantiles without a deal that reached the step", o.CycleOutcomes)
		}
		if g := r.Groups[1]; g.Won.N != 3 || g.Closed.N != 0 || !sameFloat(g.Won.P90, f64(2)) {
			t.Errorf("2024-02-01/ann %+v", g.CycleOutcomes)
		}
	})
}

func TestAssembleStageHistory(t *testing.T) {
	steps := map[string]int{"Prospect": 1, "Demo": 2, "Trial": 2, "Contract": 5}
	stageStep := func(s string) int { return steps[s] }
	day := uint32(86400)
	total, ann := stageGroup{}, stageGroup{g: 1, key: "ann"}
	other := stageGroup{g: 1, other: 1}
	stages := []stageRow{
		{stageGroup: total, stage: "Prospect", entries: 4, re: 1, current: 1, exited: 3, qs: []uint32{day, 2 * day, 3 * day}},
		{stageGroup: total, stage: "Demo", entries: 2, exited: 1, qs: []uint32{day, day, day}},
		{stageGroup: total, stage: "Trial", entries: 1, current: 1},
		{stageGroup: total, stage: "Contract", entries: 1},
		{stageGroup: total, stage: "Lost?", entries: 1},
		{stageGroup: other, stage: "Prospect", entries: 1},
		{stageGroup: ann, stage: "Prospect", entries: 3, re: 1, exited: 3},
	}
	moves := []moveRow{
		{stageGroup: total, from: "", to: "Prospect", n: 3},
		{stageGroup: total, from: "Prospect", to: "Demo", n: 2},
		{stageGroup: total, from: "Demo", to: "Trial", n: 1},
		{stageGroup: total, from: "Demo", to: "Prospect", n: 1},
		{stageGroup: total, from: "Trial", to: "Contract", n: 1},
		{stageGroup: total, from: "Contract", to: "Lost?", n: 1},
		{stageGroup: total, from: "Prospect", to: "Nowhere", n: 1}, // no stage row: left out
		{stageGroup: other, from: "", to: "Prospect", n: 1},
		{stageGroup: ann, from: "", to: "Prospect", n: 2},
	}
	t.Run("no rows", func(t *testing.T) {
		r := assembleStageHistory(testCommon(t), 0, keyset{}, stageStep, nil, nil)
		if r.Stages == nil || r.Transitions == nil || len(r.Stages)+len(r.Transitions) != 0 || r.Total != (StageTotals{}) || r.Groups != nil {
			t.Errorf("%+v, want empty stages and transitions", r)
		}
	})
	t.Run("stages, moves and groups", func(t *testing.T) {
		c := testCommon(t)
		c.defs.By = "owner"
		keys := topKeys([]keyRow{{"ann", 11, 3}, {"bob", 22, 1}}, 1)
		r := assembleStageHistory(c, 1, keys, stageStep, stages, moves)
		var order []string
		for _, s := range r.Stages {
			order = append(order, s.Stage)
		}
		if want := []string{"Lost?", "Prospect", "Demo", "Trial", "Contract"}; !slices.Equal(order, want) {
			t.Errorf("stages %v, want %v (no step first, then by step, then name)", order, want)
		}
		p := r.Stages[1]
		if p.Step != "a" || p.Deals != 3 || p.ReEntries != 1 || p.Initial != 3 || p.Backward != 1 || !sameFloat(p.TimeInStage.P75, f64(2)) {
			t.Errorf("Prospect %+v", p)
		}
		if c := r.Stages[4]; c.StepIndex != 5 || c.Step != "" {
			t.Errorf("Contract: step %d %q, want 5 above the ladder, unnamed", c.StepIndex, c.Step)
		}
		if r.Stages[0].TimeInStage.Median != nil {
			t.Errorf("Lost? median %v, want none without exits", ptr(r.Stages[0].TimeInStage.Median))
		}
		want := StageTotals{Deals: 3, Entries: 9, ReEntries: 1, Moves: 6, Forward: 3, Backward: 1, Lateral: 1, Unordered: 1}
		if r.Total != want {
			t.Errorf("total %+v, want %+v", r.Total, want)
		}
		var tr []string
		for _, m := range r.Transitions {
			tr = append(tr, m.From+">"+m.To+":"+m.Direction)
		}
		if want := []string{"Prospect>Demo:forward", "Demo>Prospect:backward", "Demo>Trial:lateral", "Trial>Contract:forward", "Contract>Lost?:unordered"}; !slices.Equal(tr, want) {
			t.Errorf("transitions %v, want %v", tr, want)
		}
		if len(r.Groups) != 2 || r.Groups[0].Key != "ann" || r.Groups[0].Other || !r.Groups[1].Other || r.Groups[1].Key != "" {
			t.Fatalf("groups %+v, want ann, then the other group", r.Groups)
		}
		if g := r.Groups[0]; g.Total.Deals != 2 || g.Total.Entries != 3 || g.Transitions == nil {
			t.Errorf("ann %+v", g.StageHistory)
		}
		if r.Definitions.Top != 1 || r.Definitions.OtherKeys != 1 || r.Definitions.By != "owner" {
			t.Errorf("definitions top %d other %d by %q", r.Definitions.Top, r.Definitions.OtherKeys, r.Definitions.By)
		}
	})
	t.Run("no stage order", func(t *testing.T) {
		r := assembleStageHistory(testCommon(t), 0, keyset{}, nil, stages, moves)
		if r.Total.Unordered != r.Total.Moves || r.Stages[0].Stage != "Contract" || r.Stages[0].Step != "" {
			t.Errorf("without a stage order: total %+v, first stage %+v; want every move unordered, stages by name", r.Total, r.Stages[0])
		}
	})
}

// TestMovesOf checks that the stage rows' stages-before become one move
// per set of deals, stage before and stage, summed across rows.
func TestMovesOf(t *testing.T) {
	total, owner := stageGroup{}, stageGroup{g: 1, key: "u1"}
	got := movesOf([]stageRow{
		{stageGroup: total, stage: "B", froms: []string{"", "A", "A"}, ns: []uint64{1, 2, 3}},
		{stageGroup: owner, stage: "B", froms: []string{"A"}, ns: []uint64{4}},
		{stageGroup: total, stage: "A", froms: []string{"B"}, ns: []uint64{5}},
		{stageGroup: total, stage: "C"},
	})
	want := []moveRow{
		{stageGroup: total, from: "", to: "B", n: 1},
		{stageGroup: total, from: "A", to: "B", n: 5},
		{stageGroup: owner, from: "A", to: "B", n: 4},
		{stageGroup: total, from: "B", to: "A", n: 5},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("movesOf = %+v, want %+v", got, want)
	}
}
