package forecast

import (
	"context"
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/param"
	"github.com/commitflow/commitflow/internal/snapshot"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

func TestMain(m *testing.M) { chtest.Main(m) }

// open returns a Forecaster on a fresh, migrated database holding rows.
func open(t testing.TB, rows []store.DerivedRow) *Forecaster {
	t.Helper()
	ctx := context.Background()
	st := storetest.Open(t, store.Options{})
	for len(rows) > 0 {
		n := min(len(rows), 200000)
		if err := st.InsertDerivedWithStates(ctx, rows[:n], synthSteps); err != nil {
			t.Fatal(err)
		}
		rows = rows[n:]
	}
	return New(st.Conn())
}

var (
	synthStart = time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	synthAsOf  = time.Date(2024, 3, 17, 12, 30, 0, 0, time.UTC)
)

func synthRows(seed uint64, opps int) []store.DerivedRow {
	rows := synth(synthConfig{Seed: seed, Tenant: "acme", Opps: opps, Start: synthStart, Span: 450 * 24 * time.Hour, Prefix: "opp"})
	// Another tenant's rows, which must never be read.
	rows = append(rows, synth(synthConfig{Seed: seed + 1000, Tenant: "other", Opps: opps / 2, Start: synthStart, Span: 450 * 24 * time.Hour, Prefix: "opp"})...)
	return rows
}

func TestStatesMatchOracle(t *testing.T) {
	ctx := context.Background()
	for _, seed := range []uint64{1, 2, 3} {
		rows := synthRows(seed, 400)
		f := open(t, rows)
		cur := current(rows, "acme")
		// The second of the tenant's last derived event: as of it, every
		// event counts (latestDealsSQL answers, events of that very
		// second included); a second before, not every one does.
		var last time.Time
		for _, d := range cur {
			if d.OccurredAt.After(last) {
				last = d.OccurredAt
			}
		}
		last = last.Truncate(time.Second)
		for _, tc := range []struct {
			asOf    time.Time
			months  int
			horizon int
			latest  bool // at or after every event: latestDealsSQL answers
		}{{synthAsOf, 12, 180, false}, {synthAsOf.AddDate(0, -5, 3), 6, 30, false}, {synthStart.AddDate(0, 2, 0), 12, 90, false},
			{synthStart.AddDate(3, 0, 0), 12, 180, true}, {last, 12, 180, true}, {last.Add(-time.Second), 12, 180, false}} {
			refs := referenceDates(tc.asOf, tc.months)
			got, err := readView(ctx, f, "acme", func(ctx context.Context, v *snapshot.View) ([]stateRow, error) {
				return f.states(ctx, v, "acme", refs, tc.asOf, tc.horizon)
			})
			if err != nil {
				t.Fatal(err)
			}
			want := oracleStates(cur, refs, tc.asOf, tc.horizon)
			if len(want) == 0 && tc.asOf.After(synthStart.AddDate(0, 3, 0)) {
				t.Fatalf("seed %d: oracle has no samples", seed)
			}
			compareRows(t, "states", got, want)

			var gotStats trainingStats
			gotTrain, err := readView(ctx, f, "acme", func(ctx context.Context, v *snapshot.View) ([]trainRow, error) {
				var (
					rows []trainRow
					err  error
				)
				rows, gotStats, err = f.training(ctx, v, "acme", refs, tc.asOf, tc.horizon)
				return rows, err
			})
			if err != nil {
				t.Fatal(err)
			}
			wantTrain, wantStats := oracleTraining(want)
			compareRows(t, "training", gotTrain, wantTrain)
			if gotStats != wantStats {
				t.Errorf("training stats %+v; want %+v", gotStats, wantStats)
			}

			bound := tc.asOf.AddDate(0, 0, tc.horizon)
			gotDeals, err := readView(ctx, f, "acme", func(ctx context.Context, v *snapshot.View) (*chunks[dealRow], error) {
				if latest, err := f.latestBy(ctx, v, "acme", tc.asOf); err != nil || latest != tc.latest {
					t.Errorf("seed %d, as of %s: latestBy = %v, %v; want %v", seed, tc.asOf, latest, err, tc.latest)
				}
				return f.deals(ctx, v, "acme", tc.asOf, bound, false, nil)
			})
			if err != nil {
				t.Fatal(err)
			}
			compareRows(t, "deals", gotDeals.all(), oracleDeals(cur, tc.asOf, bound))
		}
	}
}

// chunked collects rows as the queries do.
func chunked[T any](rows []T) *chunks[T] {
	c := &chunks[T]{}
	for _, r := range rows {
		c.add(r)
	}
	return c
}

func compareRows[T any](t *testing.T, what string, got, want []T) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d rows; oracle %d", what, len(got), len(want))
	}
	for i := 0; i < min(len(got), len(want)); i++ {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("%s row %d:\n got  %+v\n want %+v", what, i, got[i], want[i])
			return
		}
	}
}

func TestForecastMatchesOracle(t *testing.T) {
	ctx := context.Background()
	rows := synthRows(11, 1500)
	f := open(t, rows)
	cur := current(rows, "acme")
	backtestAt := synthAsOf.AddDate(0, -4, 0)
	for _, q := range []Query{
		{Tenant: "acme", AsOf: synthAsOf, LadderVersion: "v1"},
		{Tenant: "acme", AsOf: synthAsOf, ClosePeriod: PeriodQuarter, HorizonDays: 90, PriorStrength: 5, By: []string{ByTeam}},
		{Tenant: "acme", AsOf: synthAsOf, Backtest: &backtestAt},
	} {
		got, err := f.Forecast(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		p, err := validate(q, nil)
		if err != nil {
			t.Fatal(err)
		}
		train, stats := oracleTraining(oracleStates(cur, p.refs, p.at, p.HorizonDays))
		model := fitModel(train, p.HorizonDays, p.PriorStrength)
		if got.Model.FittedAt.IsZero() {
			t.Error("no fitted_at")
		}
		model.FittedAt, model.HistoryTo = got.Model.FittedAt, p.at
		want, err := assemble(p, model, stats, chunked(oracleDeals(cur, p.at, p.bound)))
		if err != nil {
			t.Fatal(err)
		}
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		if string(gj) != string(wj) {
			t.Errorf("query %+v: result differs from the oracle's\n got  %.600s\n want %.600s", q, gj, wj)
		}
		checkSanity(t, got)
	}
}

// checkSanity checks what must hold of any result.
func checkSanity(t *testing.T, r *Result) {
	t.Helper()
	pl := r.Pipeline.Total
	if r.Samples.OpenDeals != pl.Deals || pl.Deals == 0 {
		t.Errorf("open deals %d, total deals %d", r.Samples.OpenDeals, pl.Deals)
	}
	if pl.Amount == nil || pl.Expected == nil || pl.CRMWeighted == nil {
		t.Fatalf("one currency, null scalars: %+v", pl)
	}
	amount, expected, crm := *pl.Amount, *pl.Expected, *pl.CRMWeighted
	if expected < 0 || expected > amount || crm < 0 || crm > amount {
		t.Errorf("expected %v / crm %v outside [0, %v]", expected, crm, amount)
	}
	if *pl.P10 > expected*1.05 || *pl.P90 < expected*0.95 {
		t.Errorf("expected %v outside [P10 %v, P90 %v]", expected, *pl.P10, *pl.P90)
	}
	sum := 0.0
	for _, g := range r.Pipeline.ByClosePeriod {
		sum += *g.Expected
	}
	if len(r.Pipeline.ByClosePeriod) > 0 && math.Abs(sum-expected) > 1e-6*amount {
		t.Errorf("close periods sum to %v; total %v", sum, expected)
	}
	if r.Samples.TrainingSamples != r.Samples.Won+r.Samples.Lost+r.Samples.Censored {
		t.Errorf("samples %+v don't add up", r.Samples)
	}
	for _, e := range r.Model.Cells {
		if e.P < 0 || e.P > 1 {
			t.Errorf("cell P %v", e.P)
		}
	}
}

func TestForecastDeterministic(t *testing.T) {
	ctx := context.Background()
	f := open(t, synthRows(5, 600))
	q := Query{Tenant: "acme", AsOf: synthAsOf}
	a, err := f.Forecast(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.Forecast(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	a.Model.FittedAt, b.Model.FittedAt = time.Time{}, time.Time{} // when it ran
	aj, _ := json.Marshal(a)
	bj, _ := json.Marshal(b)
	if string(aj) != string(bj) {
		t.Error("same query twice, different answers")
	}
}

func TestForecastUnknownTenant(t *testing.T) {
	f := open(t, synthRows(6, 100))
	r, err := f.Forecast(context.Background(), Query{Tenant: "nobody' OR 1=1 --", AsOf: synthAsOf})
	if err != nil {
		t.Fatal(err)
	}
	if r.Samples.OpenDeals != 0 || r.Samples.TrainingSamples != 0 || *r.Pipeline.Total.Amount != 0 {
		t.Errorf("unknown tenant saw data: %+v", r.Samples)
	}
}

// TestBacktestKnownOutcome builds a history whose outcome is known: in
// each of the 12 months before the back-test date, 10 deals at step 5 are
// open on the 1st; by 60 days later 6 are won and 4 lost. At the back-test
// date 10 more such deals are open, and 6 of them are won within the
// horizon. The model must say P ≈ 0.6 and the back-test must count 6 wins.
func TestBacktestKnownOutcome(t *testing.T) {
	btAt := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	var rows []store.DerivedRow
	add := func(opp string, kind derive.Kind, at time.Time, step int, status string, prob float64) {
		rows = append(rows, store.DerivedRow{Version: 1, Derived: derive.Derived{
			Tenant: "bt", OpportunityID: opp, ID: opp + "-" + string(kind) + at.Format("20060102"), Type: kind,
			OccurredAt: at, StepIndex: step,
			Snapshot: derive.Snapshot{Amount: 1000, Status: status, Probability: prob, Segment: "smb", OwnerID: "o1", Team: "t1",
				CloseDate: time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)},
		}})
	}
	cohort := func(name string, start time.Time) {
		for i := 0; i < 10; i++ {
			opp := name + string(rune('a'+i))
			created := start.AddDate(0, 0, -20)
			add(opp, derive.DealCreated, created, 0, "open", 0.3)
			add(opp, derive.CommitmentGained, created.Add(time.Hour), 5, "open", 0.3)
			status := "lost"
			if i < 6 {
				status = "won"
			}
			add(opp, derive.DealClosed, start.AddDate(0, 0, 10+i), 0, status, 0.3)
		}
	}
	for m := 1; m <= 12; m++ {
		cohort("c"+string(rune('a'+m)), time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, -m, 0))
	}
	cohort("open", btAt.Add(-12*time.Hour))
	f := open(t, rows)
	asOf := btAt.AddDate(1, 0, 0)
	r, err := f.Forecast(context.Background(), Query{Tenant: "bt", AsOf: asOf, Backtest: &btAt})
	if err != nil {
		t.Fatal(err)
	}
	if r.Samples.TrainingSamples != 120 || r.Samples.Won != 72 || r.Samples.Lost != 48 {
		t.Errorf("samples %+v; want 120 = 72 won + 48 lost", r.Samples)
	}
	if math.Abs(*r.Model.Pooled.Raw-0.6) > 1e-12 {
		t.Errorf("pooled raw %v; want 0.6", *r.Model.Pooled.Raw)
	}
	bt := r.Backtest
	if bt == nil || bt.Deals != 10 || bt.WonDeals != 6 || *bt.WonAmount != 6000 || !bt.Complete {
		t.Fatalf("backtest %+v; want 10 deals, 6 won for 6000", bt)
	}
	if math.Abs(*bt.Commitment.Forecast-6000) > 1 {
		t.Errorf("commitment forecast %v; want 6000", *bt.Commitment.Forecast)
	}
	if math.Abs(*bt.CRM.Forecast-3000) > 1e-9 || math.Abs(*bt.CRM.PctError+50) > 1e-9 {
		t.Errorf("crm forecast %v (%v%%); want 3000 (-50%%)", *bt.CRM.Forecast, *bt.CRM.PctError)
	}
	if math.Abs(bt.Commitment.Brier-0.24) > 1e-3 || math.Abs(bt.CRM.Brier-(6*0.49+4*0.09)/10) > 1e-9 {
		t.Errorf("brier commitment %v crm %v", bt.Commitment.Brier, bt.CRM.Brier)
	}
	if b := bt.Commitment.Calibration[5]; b.Deals != 10 || *b.ActualWinRate != 0.6 {
		t.Errorf("calibration band 0.5-0.6: %+v", b)
	}
}

func TestInputErrors(t *testing.T) {
	f := New(nil) // validation fails before any query
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	later := now.AddDate(0, 0, 1)
	before1970 := time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		q     Query
		param string
		code  param.Code
	}{
		{Query{AsOf: now}, "tenant", param.Required},
		{Query{Tenant: "a", AsOf: before1970}, "as_of", param.OutOfRange},
		{Query{Tenant: "a", AsOf: now, HorizonDays: -1}, "horizon_days", param.OutOfRange},
		{Query{Tenant: "a", AsOf: now, HorizonDays: 10000}, "horizon_days", param.OutOfRange},
		{Query{Tenant: "a", AsOf: now, Backtest: &later}, "backtest", param.Conflict},
		{Query{Tenant: "a", AsOf: now, Backtest: &now}, "backtest", param.Conflict},
		{Query{Tenant: "a", AsOf: now, By: []string{"owner; DROP TABLE x"}}, "by", param.Invalid},
		{Query{Tenant: "a", AsOf: now, ClosePeriod: "week"}, "close_period", param.Invalid},
		{Query{Tenant: "a", AsOf: now, PriorStrength: -1}, "prior_strength", param.OutOfRange},
		{Query{Tenant: "a", AsOf: now, PriorStrength: math.NaN()}, "prior_strength", param.OutOfRange},
		{Query{Tenant: "a", AsOf: now, Draws: -5}, "draws", param.OutOfRange},
		{Query{Tenant: "a", AsOf: now, ReferenceMonths: 100}, "reference_months", param.OutOfRange},
		{Query{Tenant: "a", AsOf: now, Currency: "EURO"}, "currency", param.Invalid},
		{Query{Tenant: "a", AsOf: now, Currency: "EUR"}, "currency", param.Unsupported},
	} {
		_, err := f.Forecast(context.Background(), tc.q)
		if ie := param.As(err); ie == nil || ie.Param != tc.param || ie.Code != tc.code {
			t.Errorf("%+v: error %v; want a *param.Error %s on %s", tc.q, err, tc.code, tc.param)
		}
	}
}

// TestAsOfNow checks that a zero AsOf means now, as in the metrics
// queries: it once was an error here and now there.
func TestAsOfNow(t *testing.T) {
	before := time.Now().UTC().Truncate(time.Second)
	p, err := validate(Query{Tenant: "a"}, nil)
	after := time.Now().UTC()
	if err != nil {
		t.Fatalf("no as_of: %v, want now", err)
	}
	if p.AsOf.Before(before) || p.AsOf.After(after) {
		t.Errorf("no as_of: as of %s, want now (%s..%s)", p.AsOf, before, after)
	}
}

// TestStateEdgeCases checks the opportunity_state reads on cases the
// synthetic rows rarely or never produce: a call before a deal.created that
// lies after the bound (created = the call), an opportunity whose rows are
// all retracted (an empty state: never open), and a close after the bound
// (still open, censored).
func TestStateEdgeCases(t *testing.T) {
	ctx := context.Background()
	asOf := time.Date(2024, 3, 17, 0, 0, 0, 0, time.UTC)
	horizon := 30
	bound := asOf.AddDate(0, 0, horizon)
	var rows []store.DerivedRow
	add := func(opp, id string, kind derive.Kind, at time.Time, step int, version uint64, retracted bool) {
		rows = append(rows, store.DerivedRow{Version: version, Retracted: retracted, Derived: derive.Derived{
			Tenant: "edge", OpportunityID: opp, ID: opp + "-" + id, Type: kind, OccurredAt: at, StepIndex: step,
			Snapshot: derive.Snapshot{Amount: 500, Status: "open", Probability: 0.2, Segment: "smb", OwnerID: "o1", Team: "t1"},
		}})
	}
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 9, 0, 0, 0, time.UTC) }
	// Call before creation; created after the bound of the states and of the deals.
	add("late", "call", derive.InteractionHeld, day(2024, 1, 20), 0, 1, false)
	add("late", "gain", derive.CommitmentGained, day(2024, 2, 10), 2, 1, false)
	add("late", "created", derive.DealCreated, day(2024, 5, 1), 0, 1, false)
	// Everything retracted.
	add("gone", "created", derive.DealCreated, day(2023, 6, 1), 0, 1, false)
	add("gone", "created", derive.DealCreated, day(2023, 6, 1), 0, 2, true)
	add("gone", "gain", derive.CommitmentGained, day(2023, 7, 1), 3, 1, false)
	add("gone", "gain", derive.CommitmentGained, day(2023, 7, 1), 3, 2, true)
	// Closed after the bound.
	add("slow", "created", derive.DealCreated, day(2023, 5, 1), 0, 1, false)
	add("slow", "gain", derive.CommitmentGained, day(2023, 8, 1), 4, 1, false)
	add("slow", "closed", derive.DealClosed, bound.AddDate(0, 0, 1), 0, 1, false)
	f := open(t, rows)
	cur := current(rows, "edge")

	refs := referenceDates(asOf, 12)
	got, err := readView(ctx, f, "edge", func(ctx context.Context, v *snapshot.View) ([]stateRow, error) {
		return f.states(ctx, v, "edge", refs, asOf, horizon)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := oracleStates(cur, refs, asOf, horizon)
	compareRows(t, "states", got, want)
	deals, err := readView(ctx, f, "edge", func(ctx context.Context, v *snapshot.View) (*chunks[dealRow], error) {
		return f.deals(ctx, v, "edge", asOf, bound, false, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	wantDeals := oracleDeals(cur, asOf, bound)
	compareRows(t, "deals", deals.all(), wantDeals)
	if len(wantDeals) != 2 || wantDeals[0].Opportunity != "late" || wantDeals[1].Opportunity != "slow" || wantDeals[1].Closed {
		t.Errorf("oracle deals %+v; want late and slow, open", wantDeals)
	}
}

// readView runs fn on a View of tenant's rows.
func readView[T any](ctx context.Context, f *Forecaster, tenant string, fn func(context.Context, *snapshot.View) (T, error)) (T, error) {
	return snapshot.Read(ctx, f.pin, tenant, fn)
}
