package metrics

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/metrics/synth"
	"github.com/commitflow/commitflow/internal/param"
	"github.com/commitflow/commitflow/internal/snapshot"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

func TestMain(m *testing.M) { chtest.Main(m) }

// openStore opens a migrated store on a fresh database.
func openStore(t testing.TB) *store.Store {
	t.Helper()
	return storetest.Open(t, store.Options{})
}

// insertShuffled inserts rows in a random order, in several batches, so
// that later versions sometimes land before earlier ones.
func insertShuffled(t testing.TB, s *store.Store, rng *rand.Rand, rows []store.DerivedRow, steps int) {
	t.Helper()
	rows = append([]store.DerivedRow{}, rows...)
	rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	for len(rows) > 0 {
		n := min(len(rows), 1+rng.Intn(len(rows)))
		if err := s.InsertDerivedWithStates(context.Background(), rows[:n], steps); err != nil {
			t.Fatal(err)
		}
		rows = rows[n:]
	}
}

func date(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func intp(i int) *int { return &i }

// TestAgainstOracle checks every query against the plain-Go oracle on
// generated data, for several seeds.
func TestAgainstOracle(t *testing.T) {
	ladder := synth.DefaultLadder()
	const tenant = "acme"
	for _, seed := range []int64{1, 2, 3} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			s := openStore(t)
			gen := synth.Generator{Tenant: tenant, Seed: seed, Ladder: ladder, LadderVersion: "v1",
				Start: date("2024-01-01T00:00:00Z"), Span: 180 * 24 * time.Hour}
			// Seed 2 has amounts in several currencies, and its answers
			// are also checked converted by a rate table.
			var qfx *Querier
			if seed == 2 {
				gen.Currencies = []string{"USD", "EUR", "GBP", ""}
			}
			rows := gen.Rows(400)
			// Another tenant with the same opportunity ids.
			other := synth.Generator{Tenant: "other", Seed: seed + 100, Ladder: ladder, LadderVersion: "v1",
				Start: date("2024-01-01T00:00:00Z"), Span: 180 * 24 * time.Hour}
			rows = append(rows, other.Rows(100)...)
			insertShuffled(t, s, rand.New(rand.NewSource(seed)), rows, len(ladder))
			evs := currentEvents(rows)
			q := New(s.Conn())
			if seed == 1 {
				// Every funnel with one sum per number, as for a
				// breakdown of many values (funnelSQL's perCode).
				q.codedKeys = -1
			}
			if seed == 3 {
				// As before snapshots: FINAL, in 3 ranges of ids.
				q = NewWithOptions(s.Conn(), Options{Branches: 3, Pinner: snapshot.NewFinal(s.Conn())})
			}
			if seed == 2 {
				qfx = fxQuerier(t, q)
			}
			ctx := context.Background()

			asOfs := []time.Time{
				date("2025-06-01T00:00:00Z"),
				date("2024-06-15T12:34:56Z"),
				date("2024-03-01T00:00:00Z"),
			}
			ranges := [][2]time.Time{
				{date("2024-01-01T00:00:00Z"), date("2025-06-01T00:00:00Z")},
				{date("2024-03-10T00:00:00Z"), date("2024-05-20T06:00:00Z")},
			}
			groupings := [][2]string{{"", ""}, {"owner", ""}, {"", "week"}, {"segment", "month"}, {"source", "quarter"}, {"team", ""}, {"product", "month"}}
			n := 0
			for _, asOf := range asOfs {
				for _, r := range ranges {
					for _, w := range []*int{nil, intp(0), intp(30)} {
						// Two groupings per case, rotating through them all.
						for _, g := range [][2]string{groupings[n%len(groupings)], groupings[(n+1)%len(groupings)]} {
							n++
							fq := FunnelQuery{Tenant: tenant, AsOf: asOf, From: r[0], To: r[1], WindowDays: w,
								By: g[0], Interval: g[1], Ladder: ladder, LadderVersion: "v1"}
							got, err := q.Funnel(ctx, fq)
							if err != nil {
								t.Fatal(err)
							}
							if err := approxEqual(got, oracleFunnel(evs, fq, nil)); err != nil {
								t.Fatalf("funnel %+v: %v", fq, err)
							}
							if qfx != nil {
								fq.Currency = "GBP"
								got, err := qfx.Funnel(ctx, fq)
								if err != nil {
									t.Fatal(err)
								}
								if err := approxEqual(got, oracleFunnel(evs, fq, handRates("GBP", asOf))); err != nil {
									t.Fatalf("funnel in GBP %+v: %v", fq, err)
								}
							}
						}
					}
					mq := MissedQuery{Tenant: tenant, AsOf: asOf, From: r[0], To: r[1], Ladder: ladder, LadderVersion: "v1"}
					gotM, err := q.Missed(ctx, mq)
					if err != nil {
						t.Fatal(err)
					}
					if err := approxEqual(gotM, oracleMissed(evs, mq, nil)); err != nil {
						t.Fatalf("missed %+v: %v", mq, err)
					}
					if qfx != nil {
						gotM, err := qfx.Missed(ctx, mq)
						if err != nil {
							t.Fatal(err)
						}
						if err := approxEqual(gotM, oracleMissed(evs, mq, handRates("USD", asOf))); err != nil {
							t.Fatalf("missed in USD %+v: %v", mq, err)
						}
					}
					vq := MovementQuery{Tenant: tenant, AsOf: asOf, From: r[0], To: r[1], Ladder: ladder, LadderVersion: "v1"}
					gotV, err := q.Movement(ctx, vq)
					if err != nil {
						t.Fatal(err)
					}
					if err := approxEqual(gotV, oracleMovement(evs, vq, nil)); err != nil {
						t.Fatalf("movement %+v: %v", vq, err)
					}
					if qfx != nil {
						vq.Currency = "EUR"
						gotV, err := qfx.Movement(ctx, vq)
						if err != nil {
							t.Fatal(err)
						}
						on := vq.To
						if asOf.Before(on) {
							on = asOf
						}
						if err := approxEqual(gotV, oracleMovement(evs, vq, handRates("EUR", on))); err != nil {
							t.Fatalf("movement in EUR %+v: %v", vq, err)
						}
					}
				}
				for _, p := range [][2]int{{0, 0}, {1, 7}, {2, 7}, {3, 1000}, {50, 10}} {
					sq := StallsQuery{Tenant: tenant, AsOf: asOf, Page: p[0], PageSize: p[1], Ladder: ladder, LadderVersion: "v1"}
					got, err := q.Stalls(ctx, sq)
					if err != nil {
						t.Fatal(err)
					}
					if err := approxEqual(got, oracleStalls(evs, sq, nil)); err != nil {
						t.Fatalf("stalls %+v: %v", sq, err)
					}
					if qfx != nil {
						got, err := qfx.Stalls(ctx, sq)
						if err != nil {
							t.Fatal(err)
						}
						if err := approxEqual(got, oracleStalls(evs, sq, handRates("USD", asOf))); err != nil {
							t.Fatalf("stalls in USD %+v: %v", sq, err)
						}
					}
				}
			}
			// A shorter ladder than the data: higher steps are reported by index.
			short := ladder[:4]
			asOf := asOfs[0]
			fq := FunnelQuery{Tenant: tenant, AsOf: asOf, From: ranges[0][0], To: ranges[0][1], Ladder: short, By: "owner"}
			got, err := q.Funnel(ctx, fq)
			if err != nil {
				t.Fatal(err)
			}
			if err := approxEqual(got, oracleFunnel(evs, fq, nil)); err != nil {
				t.Fatalf("funnel short ladder: %v", err)
			}
			sq := StallsQuery{Tenant: tenant, AsOf: asOf, Ladder: short}
			gotS, err := q.Stalls(ctx, sq)
			if err != nil {
				t.Fatal(err)
			}
			if err := approxEqual(gotS, oracleStalls(evs, sq, nil)); err != nil {
				t.Fatalf("stalls short ladder: %v", err)
			}
			vq := MovementQuery{Tenant: tenant, AsOf: asOf, From: ranges[1][0], To: ranges[1][1], Ladder: short}
			gotV, err := q.Movement(ctx, vq)
			if err != nil {
				t.Fatal(err)
			}
			if err := approxEqual(gotV, oracleMovement(evs, vq, nil)); err != nil {
				t.Fatalf("movement short ladder: %v", err)
			}
			// The data must exercise what the queries distinguish: the
			// first date is after every event, so that a View's scan
			// takes the facts from the latest_* columns there only.
			checkCoverage(t, q, tenant, asOfs[0], ranges[0], ladder)
			want := seed != 3 // a View; seed 3 reads with FINAL
			if got0, got1 := latestBy(t, q, tenant, asOfs[0]), latestBy(t, q, tenant, asOfs[1]); got0 != want || got1 {
				t.Errorf("latest_* columns read as of %s: %v, as of %s: %v; want %v, false", asOfs[0], got0, asOfs[1], got1, want)
			}
			if seed == 2 {
				f, err := q.Funnel(ctx, FunnelQuery{Tenant: tenant, AsOf: asOf, From: ranges[0][0], To: ranges[0][1], Ladder: ladder})
				if err != nil {
					t.Fatal(err)
				}
				if f.Steps[0].ReachedAmount != nil || len(f.Steps[0].AmountsByCurrency) != 4 {
					t.Errorf("currency coverage: reached amount %v by currency %v: want null and 4 currencies",
						ptr(f.Steps[0].ReachedAmount), f.Steps[0].AmountsByCurrency)
				}
			}
		})
	}
}

// checkCoverage fails when the generated data lacks the cases the oracle
// comparison is meant to exercise.
func checkCoverage(t *testing.T, q *Querier, tenant string, asOf time.Time, r [2]time.Time, ladder []string) {
	t.Helper()
	ctx := context.Background()
	f, err := q.Funnel(ctx, FunnelQuery{Tenant: tenant, AsOf: asOf, From: r[0], To: r[1], WindowDays: intp(30), Ladder: ladder})
	if err != nil {
		t.Fatal(err)
	}
	var conv, open, dropped, skipped int64
	for _, s := range f.Steps {
		conv += s.Converted
		open += s.StillOpen
		dropped += s.Dropped
		skipped += s.Skipped
	}
	if conv == 0 || dropped == 0 || skipped == 0 {
		t.Errorf("funnel coverage: converted %d dropped %d skipped %d", conv, dropped, skipped)
	}
	st, err := q.Stalls(ctx, StallsQuery{Tenant: tenant, AsOf: date("2024-06-15T00:00:00Z"), Ladder: ladder})
	if err != nil {
		t.Fatal(err)
	}
	if st.Stalled == 0 || st.Open == 0 {
		t.Errorf("stalls coverage: open %d stalled %d", st.Open, st.Stalled)
	}
	v, err := q.Movement(ctx, MovementQuery{Tenant: tenant, AsOf: asOf, From: date("2024-03-01T00:00:00Z"), To: date("2024-06-01T00:00:00Z"), Ladder: ladder})
	if err != nil {
		t.Fatal(err)
	}
	tot := v.Total
	if tot.New == 0 || tot.Advanced == 0 || tot.Regressed == 0 || tot.Stalled == 0 || tot.PulledIn == 0 || tot.PushedOut == 0 || tot.Won == 0 || tot.Lost == 0 {
		t.Errorf("movement coverage: %+v", tot)
	}
}

// TestRetractionAndTies pins the semantics on a hand-made opportunity:
// a retracted gain, a gain moved later by a newer version, and two events
// at the same instant whose facts are told apart by their position in the
// fold (seq), not by id.
func TestRetractionAndTies(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	ladder := []string{"a", "b", "c"}
	t0 := date("2024-01-01T00:00:00Z")
	ev := func(id string, kind derive.Kind, at time.Time, step int, amount float64, owner string) derive.Derived {
		return derive.Derived{Tenant: "t", OpportunityID: "o1", ID: id, Type: kind, OccurredAt: at, StepIndex: step,
			Snapshot: derive.Snapshot{Amount: amount, Status: "open", OwnerID: owner}}
	}
	second := func(d derive.Derived) derive.Derived { d.Seq = 1; return d }
	day := 24 * time.Hour
	rows := []store.DerivedRow{
		{Derived: ev("e1", derive.DealCreated, t0, 0, 100, "x"), Version: 1},
		{Derived: ev("e2", derive.CommitmentGained, t0.Add(day), 1, 100, "x"), Version: 1},
		// e3 gains step 2 on day 2, but a later version moves it to day 10.
		{Derived: ev("e3", derive.CommitmentGained, t0.Add(2*day), 2, 100, "x"), Version: 1},
		{Derived: ev("e3", derive.CommitmentGained, t0.Add(10*day), 2, 100, "x"), Version: 2},
		// e4 gains step 3 on day 3, then is retracted.
		{Derived: ev("e4", derive.CommitmentGained, t0.Add(3*day), 3, 100, "x"), Version: 1},
		{Derived: ev("e4", derive.CommitmentGained, t0.Add(3*day), 3, 100, "x"), Retracted: true, Version: 2},
		// Two updates at the same instant: the later in the fold wins,
		// although its id is the smaller.
		{Derived: ev("u-b", derive.DealUpdated, t0.Add(20*day), 0, 300, "y"), Version: 1},
		{Derived: second(ev("u-a", derive.DealUpdated, t0.Add(20*day), 0, 500, "z")), Version: 1},
	}
	if err := s.InsertDerivedWithStates(ctx, rows[4:], len(ladder)); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertDerivedWithStates(ctx, rows[:4], len(ladder)); err != nil {
		t.Fatal(err)
	}
	q := New(s.Conn())
	f, err := q.Funnel(ctx, FunnelQuery{Tenant: "t", AsOf: t0.Add(30 * day), From: t0, To: t0.Add(30 * day), Ladder: ladder, By: "owner"})
	if err != nil {
		t.Fatal(err)
	}
	s1 := f.Steps[0]
	if s1.Reached != 1 || s1.Converted != 1 || s1.ConvertedAmount == nil || *s1.ConvertedAmount != 500 || *s1.TimeToConvert.Median != 9 {
		t.Errorf("step 1: %+v", s1.FunnelCounts)
	}
	if len(s1.Groups) != 1 || s1.Groups[0].Key != "z" {
		t.Errorf("step 1 groups: %+v", s1.Groups)
	}
	s2 := f.Steps[1]
	if s2.Reached != 1 || s2.Converted != 0 || s2.StillOpen != 1 {
		t.Errorf("step 2: %+v", s2.FunnelCounts)
	}
	// As of day 5 step 2 is not reached yet (moved to day 10).
	f, err = q.Funnel(ctx, FunnelQuery{Tenant: "t", AsOf: t0.Add(5 * day), From: t0, To: t0.Add(30 * day), Ladder: ladder})
	if err != nil {
		t.Fatal(err)
	}
	if f.Steps[0].Converted != 0 || f.Steps[0].StillOpen != 1 || f.Steps[1].Reached != 0 {
		t.Errorf("as of day 5: %+v", f.Steps)
	}
}

// TestInputErrors checks that bad parameters give a *param.Error naming
// the parameter and what is wrong with it.
func TestInputErrors(t *testing.T) {
	q := New(nil) // validation fails before any query
	ctx := context.Background()
	ladder := synth.DefaultLadder()
	from, to := date("2024-01-01T00:00:00Z"), date("2024-02-01T00:00:00Z")
	ok := FunnelQuery{Tenant: "t", From: from, To: to, Ladder: ladder}
	funnel := func(mod func(*FunnelQuery)) error {
		fq := ok
		mod(&fq)
		_, err := q.Funnel(ctx, fq)
		return err
	}
	tests := []struct {
		name  string
		param string
		code  param.Code
		run   func() error
	}{
		{"no tenant", "tenant", param.Required, func() error { return funnel(func(f *FunnelQuery) { f.Tenant = "" }) }},
		{"long tenant", "tenant", param.OutOfRange, func() error {
			return funnel(func(f *FunnelQuery) { f.Tenant = string(make([]byte, 300)) })
		}},
		{"bad by", "by", param.Invalid, func() error { return funnel(func(f *FunnelQuery) { f.By = "owner_id; DROP TABLE x" }) }},
		{"bad interval", "interval", param.Invalid, func() error { return funnel(func(f *FunnelQuery) { f.Interval = "day" }) }},
		{"negative window", "window_days", param.OutOfRange, func() error { return funnel(func(f *FunnelQuery) { f.WindowDays = intp(-1) }) }},
		{"huge window", "window_days", param.OutOfRange, func() error { return funnel(func(f *FunnelQuery) { f.WindowDays = intp(1 << 40) }) }},
		{"from after to", "from", param.Conflict, func() error { return funnel(func(f *FunnelQuery) { f.From, f.To = to, from }) }},
		{"from equals to", "from", param.Conflict, func() error { return funnel(func(f *FunnelQuery) { f.To = f.From }) }},
		{"no from", "from", param.Required, func() error { return funnel(func(f *FunnelQuery) { f.From = time.Time{} }) }},
		{"no to", "to", param.Required, func() error { return funnel(func(f *FunnelQuery) { f.To = time.Time{} }) }},
		{"from before 1970", "from", param.OutOfRange, func() error { return funnel(func(f *FunnelQuery) { f.From = date("1960-01-01T00:00:00Z") }) }},
		{"to after 2106", "to", param.OutOfRange, func() error { return funnel(func(f *FunnelQuery) { f.To = date("2200-01-01T00:00:00Z") }) }},
		{"as_of before 1970", "as_of", param.OutOfRange, func() error { return funnel(func(f *FunnelQuery) { f.AsOf = date("1900-01-01T00:00:00Z") }) }},
		{"one-step ladder", "ladder", param.Invalid, func() error { return funnel(func(f *FunnelQuery) { f.Ladder = ladder[:1] }) }},
		{"stalls page size", "page_size", param.OutOfRange, func() error {
			_, err := q.Stalls(ctx, StallsQuery{Tenant: "t", PageSize: MaxPageSize + 1, Ladder: ladder})
			return err
		}},
		{"stalls negative page size", "page_size", param.OutOfRange, func() error {
			_, err := q.Stalls(ctx, StallsQuery{Tenant: "t", PageSize: -1, Ladder: ladder})
			return err
		}},
		{"stalls page", "page", param.OutOfRange, func() error {
			_, err := q.Stalls(ctx, StallsQuery{Tenant: "t", Page: -3, Ladder: ladder})
			return err
		}},
		{"stalls no ladder", "ladder", param.Invalid, func() error {
			_, err := q.Stalls(ctx, StallsQuery{Tenant: "t"})
			return err
		}},
		{"missed range", "from", param.Conflict, func() error {
			_, err := q.Missed(ctx, MissedQuery{Tenant: "t", From: to, To: from, Ladder: ladder})
			return err
		}},
		{"missed no tenant", "tenant", param.Required, func() error {
			_, err := q.Missed(ctx, MissedQuery{From: from, To: to, Ladder: ladder})
			return err
		}},
		{"movement range", "from", param.Conflict, func() error {
			_, err := q.Movement(ctx, MovementQuery{Tenant: "t", From: to, To: from, Ladder: ladder})
			return err
		}},
		{"movement no to", "to", param.Required, func() error {
			_, err := q.Movement(ctx, MovementQuery{Tenant: "t", From: from, Ladder: ladder})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			ie := param.As(err)
			if ie == nil {
				t.Fatalf("got %v, want a *param.Error", err)
			}
			if ie.Param != tt.param || ie.Code != tt.code {
				t.Errorf("param %q, code %q, want %q, %q (%v)", ie.Param, ie.Code, tt.param, tt.code, err)
			}
		})
	}
}

// TestInjectionAndIsolation checks that hostile tenants are bound as
// values: they match no rows and see nothing of other tenants.
func TestInjectionAndIsolation(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	ladder := synth.DefaultLadder()
	gen := synth.Generator{Tenant: "acme", Seed: 7, Ladder: ladder, Start: date("2024-01-01T00:00:00Z"), Span: 90 * 24 * time.Hour}
	if err := s.InsertDerivedWithStates(ctx, gen.Rows(50), len(ladder)); err != nil {
		t.Fatal(err)
	}
	q := New(s.Conn())
	asOf, from, to := date("2025-01-01T00:00:00Z"), date("2024-01-01T00:00:00Z"), date("2025-01-01T00:00:00Z")
	for _, tenant := range []string{"x' OR 1=1 --", `acme' OR tenant != '`, "acme\\", "ac%", "ACME", "acme ", "other"} {
		f, err := q.Funnel(ctx, FunnelQuery{Tenant: tenant, AsOf: asOf, From: from, To: to, Ladder: ladder, By: "owner", Interval: "week"})
		if err != nil {
			t.Fatalf("funnel %q: %v", tenant, err)
		}
		for _, st := range f.Steps {
			if st.Reached != 0 || len(st.Groups) != 0 {
				t.Errorf("funnel %q leaks: %+v", tenant, st)
			}
		}
		sr, err := q.Stalls(ctx, StallsQuery{Tenant: tenant, AsOf: asOf, Ladder: ladder})
		if err != nil {
			t.Fatalf("stalls %q: %v", tenant, err)
		}
		if sr.Open != 0 || len(sr.Deals) != 0 {
			t.Errorf("stalls %q leaks: open %d", tenant, sr.Open)
		}
		mr, err := q.Missed(ctx, MissedQuery{Tenant: tenant, AsOf: asOf, From: from, To: to, Ladder: ladder})
		if err != nil {
			t.Fatalf("missed %q: %v", tenant, err)
		}
		if mr.Total.Missed != 0 || mr.Total.Interactions != 0 || len(mr.ByOwner) != 0 {
			t.Errorf("missed %q leaks: %+v", tenant, mr.Total)
		}
		vr, err := q.Movement(ctx, MovementQuery{Tenant: tenant, AsOf: asOf, From: from, To: to, Ladder: ladder})
		if err != nil {
			t.Fatalf("movement %q: %v", tenant, err)
		}
		if !vr.Total.isZero() || len(vr.Total.AmountsByCurrency) != 0 {
			t.Errorf("movement %q leaks: %+v", tenant, vr.Total)
		}
	}
	// The real tenant does see its data.
	sr, err := q.Stalls(ctx, StallsQuery{Tenant: "acme", AsOf: date("2024-03-01T00:00:00Z"), Ladder: ladder})
	if err != nil {
		t.Fatal(err)
	}
	if sr.Open == 0 {
		t.Error("acme sees no open deals")
	}
}

// approxEqual compares two values deeply, floats within 1e-9 relative,
// times with Equal, and returns the path of the first difference.
func approxEqual(got, want any) error {
	return diff("", reflect.ValueOf(got), reflect.ValueOf(want))
}

var timeType = reflect.TypeOf(time.Time{})

func diff(path string, a, b reflect.Value) error {
	if a.IsValid() != b.IsValid() {
		return fmt.Errorf("%s: validity differs", path)
	}
	if !a.IsValid() {
		return nil
	}
	if a.Type() == timeType {
		ta, tb := a.Interface().(time.Time), b.Interface().(time.Time)
		if !ta.Equal(tb) {
			return fmt.Errorf("%s: got %v, want %v", path, ta, tb)
		}
		return nil
	}
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				return fmt.Errorf("%s: got %v, want %v", path, fmtPtr(a), fmtPtr(b))
			}
			return nil
		}
		return diff(path, a.Elem(), b.Elem())
	case reflect.Struct:
		for i := 0; i < a.NumField(); i++ {
			if err := diff(path+"."+a.Type().Field(i).Name, a.Field(i), b.Field(i)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Slice:
		if a.Len() != b.Len() {
			return fmt.Errorf("%s: got %d elements, want %d: got %+v want %+v", path, a.Len(), b.Len(), a.Interface(), b.Interface())
		}
		if a.IsNil() != b.IsNil() {
			return fmt.Errorf("%s: nil %v, want nil %v", path, a.IsNil(), b.IsNil())
		}
		for i := 0; i < a.Len(); i++ {
			if err := diff(fmt.Sprintf("%s[%d]", path, i), a.Index(i), b.Index(i)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Map:
		if a.Len() != b.Len() || a.IsNil() != b.IsNil() {
			return fmt.Errorf("%s: got %v, want %v", path, a.Interface(), b.Interface())
		}
		for _, k := range a.MapKeys() {
			bv := b.MapIndex(k)
			if !bv.IsValid() {
				return fmt.Errorf("%s: got key %v, want none: got %v, want %v", path, k, a.Interface(), b.Interface())
			}
			if err := diff(fmt.Sprintf("%s[%v]", path, k), a.MapIndex(k), bv); err != nil {
				return err
			}
		}
		return nil
	case reflect.Float32, reflect.Float64:
		x, y := a.Float(), b.Float()
		if math.Abs(x-y) > 1e-9*math.Max(1, math.Max(math.Abs(x), math.Abs(y))) {
			return fmt.Errorf("%s: got %v, want %v", path, x, y)
		}
		return nil
	default:
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			return fmt.Errorf("%s: got %v, want %v", path, a.Interface(), b.Interface())
		}
		return nil
	}
}

func fmtPtr(v reflect.Value) string {
	if v.IsNil() {
		return "nil"
	}
	return fmt.Sprint(v.Elem().Interface())
}

// TestBucketIndexSQL checks the histogram bucket expression, as ClickHouse
// evaluates it, against the oracle's bucketing on both sides of every edge,
// for negative seconds and for a false condition.
func TestBucketIndexSQL(t *testing.T) {
	s := openStore(t)
	secs := []int64{-86400, -1, 0, 1}
	for _, e := range bucketEdges[1:] {
		secs = append(secs, int64(e)*86400-1, int64(e)*86400, int64(e)*86400+1)
	}
	secs = append(secs, 10*365*86400)
	for _, sec := range secs {
		for _, cond := range []bool{true, false} {
			var idx uint8
			q := "SELECT toUInt8(" + bucketIndexSQL("toInt64(@s)", "@c = 1") + ")"
			c := uint8(0)
			if cond {
				c = 1
			}
			if err := s.Conn().QueryRow(context.Background(), q, clickhouse.Named("s", sec), clickhouse.Named("c", c)).Scan(&idx); err != nil {
				t.Fatalf("secs %d: %v", sec, err)
			}
			want := len(bucketEdges) // counted in no bucket
			if cond {
				for i, b := range oracleHistogram([]int64{sec}) {
					if b.Count == 1 {
						want = i
					}
				}
			}
			if int(idx) != want {
				t.Errorf("secs %d, cond %v: bucket %d, want %d", sec, cond, idx, want)
			}
		}
	}
}
