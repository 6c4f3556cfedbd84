package readmodel_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/readmodel"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

func TestMain(m *testing.M) { chtest.Main(m) }

var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func day(n int) time.Time { return t0.AddDate(0, 0, n) }

// state is a hand-made opportunity_state row: created at day 0, open,
// with the given gains (step by time), closes and stalls.
func state(id string, gains map[time.Time]uint8, closes, stalls []time.Time) store.StateRow {
	st := derive.State{Tenant: "acme", OpportunityID: id, CreatedAt: day(0), CreatedSeen: day(0), FirstAt: day(0),
		Reach: make([]time.Time, 2), Gained: make([]time.Time, 2),
		FactTimes: []time.Time{day(0)}, Facts: []derive.Snapshot{{Amount: 100, Status: derive.StatusOpen}}}
	for _, at := range slices.SortedFunc(maps.Keys(gains), time.Time.Compare) {
		step := gains[at]
		st.GainTimes, st.GainSteps = append(st.GainTimes, at), append(st.GainSteps, step)
		for j := range int(step) {
			if st.Reach[j].IsZero() || at.Before(st.Reach[j]) {
				st.Reach[j] = at
			}
		}
	}
	for _, at := range closes {
		st.Closes = append(st.Closes, derive.Close{At: at, Status: "lost"})
	}
	for _, at := range stalls {
		st.Stalls = append(st.Stalls, derive.Mark{At: at})
	}
	return store.StateRow{State: st, Version: 1}
}

// TestStallRule pins the stall rule of StallColumns (and HighestStep, the
// reference time and days) on hand-made deals in ClickHouse, and of
// StallStart in Go on the same deals: which deal.stalled counts as of a
// date, around gains, closes and reopens, to the second.
func TestStallRule(t *testing.T) {
	st := storetest.Open(t, store.Options{})
	ctx := context.Background()
	sec := time.Second
	rows := []store.StateRow{
		state("plain", nil, nil, []time.Time{day(30)}),
		// A commitment gained after the stall clears it.
		state("gained", map[time.Time]uint8{day(40): 1}, nil, []time.Time{day(30)}),
		// Stalled, closed at day 40, reopened, stalled again at day 90.
		state("reopened", nil, []time.Time{day(40)}, []time.Time{day(30), day(90)}),
		// A stall in the second of the close does not count after it; one
		// a second later does.
		state("close-second", nil, []time.Time{day(40)}, []time.Time{day(40), day(40).Add(sec)}),
		// A stall in the second of the reference time counts.
		state("ref-second", map[time.Time]uint8{day(10): 2}, nil, []time.Time{day(10)}),
		// A close before the reference time does not move the clock.
		state("closed-before-ref", map[time.Time]uint8{day(10): 1}, []time.Time{day(5)}, []time.Time{day(20)}),
		// The highest step is kept after a lower gain; the last gain and
		// the last close as of the date are the reference and the restart.
		state("two-gains", map[time.Time]uint8{day(10): 2, day(20): 1}, []time.Time{day(30), day(35)}, []time.Time{day(25), day(50)}),
		// Calls from day 0; the CRM shows the deal at day 20, created
		// (it says) at day -30: until day 20 the clock runs from the first
		// call (stalled at day 14), then from the creation, counting only
		// the stall derived when the deal was shown.
		seenLate(state("seen-late", nil, nil, []time.Time{day(14), day(20)}), day(-30), day(20)),
		// Calls from day 0, created at day 5, shown at day 10: the stall
		// of the creation's clock is derived at day 19.
		seenLate(state("seen-late-2", nil, nil, []time.Time{day(19)}), day(5), day(10)),
	}
	if err := st.InsertStates(ctx, rows); err != nil {
		t.Fatal(err)
	}
	byID := map[string]derive.State{}
	for _, r := range rows {
		byID[r.OpportunityID] = r.State
	}
	for _, c := range []struct {
		opp     string
		asOf    time.Time
		stalled time.Time // ss; zero: not stalled
		ref     time.Time
		days    int64
		step    uint8
	}{
		{"plain", day(30).Add(-sec), time.Time{}, day(0), 29, 0},
		{"plain", day(30), day(30), day(0), 30, 0},
		{"plain", day(100), day(30), day(0), 100, 0},
		{"gained", day(35), day(30), day(0), 35, 0},
		{"gained", day(40).Add(-sec), day(30), day(0), 39, 0},
		{"gained", day(40), time.Time{}, day(40), 0, 1},
		{"reopened", day(35), day(30), day(0), 35, 0},
		{"reopened", day(40).Add(-sec), day(30), day(0), 39, 0},
		{"reopened", day(40), time.Time{}, day(0), 40, 0},
		{"reopened", day(70), time.Time{}, day(0), 70, 0},
		{"reopened", day(90).Add(-sec), time.Time{}, day(0), 89, 0},
		{"reopened", day(90), day(90), day(0), 90, 0},
		{"reopened", day(100), day(90), day(0), 100, 0},
		{"close-second", day(40), time.Time{}, day(0), 40, 0},
		{"close-second", day(40).Add(sec), day(40).Add(sec), day(0), 40, 0},
		{"ref-second", day(10).Add(-sec), time.Time{}, day(0), 9, 0},
		{"ref-second", day(10), day(10), day(10), 0, 2},
		{"closed-before-ref", day(20), day(20), day(10), 10, 1},
		{"two-gains", day(15), time.Time{}, day(10), 5, 2},
		{"two-gains", day(25), day(25), day(20), 5, 2},
		{"two-gains", day(29), day(25), day(20), 9, 2},
		{"two-gains", day(32), time.Time{}, day(20), 12, 2},
		{"two-gains", day(60), day(50), day(20), 40, 2},
		{"seen-late", day(10), time.Time{}, day(0), 10, 0},
		{"seen-late", day(15), day(14), day(0), 15, 0},
		{"seen-late", day(20).Add(-sec), day(14), day(0), 19, 0},
		{"seen-late", day(20), day(20), day(-30), 50, 0},
		{"seen-late-2", day(9), time.Time{}, day(0), 9, 0},
		{"seen-late-2", day(15), time.Time{}, day(5), 10, 0},
		{"seen-late-2", day(19), day(19), day(5), 14, 0},
	} {
		var (
			step     uint8
			ref, ss  uint32
			days     int64
			asOfUnix = uint32(c.asOf.Unix())
		)
		err := st.Conn().QueryRow(ctx, `SELECT hi_step, ref, days, ss FROM (
	SELECT `+readmodel.HighestStep("@asof")+` AS hi_step, `+readmodel.StallColumns+`
	FROM opportunity_state FINAL
	WHERE tenant = 'acme' AND opportunity_id = @opp AND `+readmodel.FactIndex("@asof")+` > 0)`,
			clickhouse.Named("asof", asOfUnix), clickhouse.Named("opp", c.opp)).Scan(&step, &ref, &days, &ss)
		if err != nil {
			t.Fatalf("%s as of %s: %v", c.opp, c.asOf, err)
		}
		want := uint32(0)
		if !c.stalled.IsZero() {
			want = uint32(c.stalled.Unix())
		}
		if ss != want || ref != uint32(c.ref.Unix()) || days != c.days || step != c.step {
			t.Errorf("%s as of %s: stalled %d ref %d days %d step %d; want %d, %d, %d, %d",
				c.opp, c.asOf, ss, ref, days, step, want, c.ref.Unix(), c.days, c.step)
		}
		if got := goStalled(byID[c.opp], c.ref, c.asOf); !got.Equal(c.stalled) {
			t.Errorf("%s as of %s: StallStart says stalled since %v, want %v", c.opp, c.asOf, got, c.stalled)
		}
	}
}

// seenLate gives r the creation time created the CRM reports, shown at
// seen, after its first event.
func seenLate(r store.StateRow, created, seen time.Time) store.StateRow {
	r.CreatedAt, r.CreatedSeen = created, seen
	return r
}

// goStalled applies StallStart to a state as Go code does: the earliest
// stall at or after it and at or before asOf (zero: none).
func goStalled(st derive.State, ref, asOf time.Time) time.Time {
	var lastClose time.Time
	for _, c := range st.Closes {
		if !c.At.After(asOf) && c.At.After(lastClose) {
			lastClose = c.At
		}
	}
	var seen time.Time
	hasGain := false
	for _, g := range st.GainTimes {
		hasGain = hasGain || !g.After(asOf)
	}
	if !hasGain && !st.CreatedSeen.After(asOf) {
		seen = st.CreatedSeen
	}
	start := readmodel.StallStart(ref, lastClose, seen)
	for _, s := range st.Stalls {
		if !s.At.Before(start) && !s.At.After(asOf) {
			return s.At
		}
	}
	return time.Time{}
}

// TestFactsAsOf pins, on hand-made deals in ClickHouse, FactIndex and
// Created at a bound date, and FactIndexOf as the forecast uses it (in a
// lambda over dates, on a subquery's name for fact_times) to FactIndex at
// each of the dates.
func TestFactsAsOf(t *testing.T) {
	st := storetest.Open(t, store.Options{})
	ctx := context.Background()
	row := func(id string, created, seen time.Time) store.StateRow {
		r := state(id, nil, nil, nil)
		r.CreatedAt, r.CreatedSeen = created, seen
		r.FactTimes = []time.Time{day(0), day(10), day(20)}
		r.Facts = []derive.Snapshot{{Amount: 100, Status: derive.StatusOpen}, {Amount: 200, Status: derive.StatusOpen}, {Amount: 300, Status: derive.StatusOpen}}
		return r
	}
	// "late" has a deal.created dated after its first event (day 0); "none"
	// has none; "shown-late" is created at day -3 by the CRM's word, which
	// it says at day 5 (its deal.created).
	if err := st.InsertStates(ctx, []store.StateRow{row("late", day(5), day(5)), row("none", time.Time{}, time.Time{}),
		row("shown-late", day(-3), day(5))}); err != nil {
		t.Fatal(err)
	}
	dates := []time.Time{day(-1), day(0), day(9), day(10), day(25)}
	wantIndex := []uint32{0, 1, 1, 2, 3}
	wantCreated := map[string][]time.Time{
		"late":       {day(0), day(0), day(5), day(5), day(5)},
		"none":       {day(0), day(0), day(0), day(0), day(0)},
		"shown-late": {day(0), day(0), day(-3), day(-3), day(-3)},
	}
	unix := make([]uint32, len(dates))
	for i, d := range dates {
		unix[i] = uint32(d.Unix())
	}
	for opp, created := range wantCreated {
		for i, d := range dates {
			var (
				fi, c uint32
			)
			err := st.Conn().QueryRow(ctx, `SELECT `+readmodel.FactIndex("@asof")+`, toUInt32(`+readmodel.Created("@asof")+`)
	FROM opportunity_state FINAL WHERE tenant = 'acme' AND opportunity_id = @opp`,
				clickhouse.Named("asof", uint32(d.Unix())), clickhouse.Named("opp", opp)).Scan(&fi, &c)
			if err != nil {
				t.Fatalf("%s as of %s: %v", opp, d, err)
			}
			if fi != wantIndex[i] || c != uint32(created[i].Unix()) {
				t.Errorf("%s as of %s: FactIndex %d, Created %d; want %d, %d", opp, d, fi, c, wantIndex[i], created[i].Unix())
			}
		}
		var (
			n  uint64
			at []uint32
		)
		err := st.Conn().QueryRow(ctx, `SELECT length(ft), arrayMap(t -> `+readmodel.FactIndexOf("ft", "t")+`, arrayMap(x -> toDateTime(x), @dates))
	FROM (SELECT fact_times AS ft FROM opportunity_state FINAL WHERE tenant = 'acme' AND opportunity_id = @opp)`,
			clickhouse.Named("dates", unix), clickhouse.Named("opp", opp)).Scan(&n, &at)
		if err != nil {
			t.Fatalf("%s at the dates: %v", opp, err)
		}
		if !slices.Equal(at, wantIndex) {
			t.Errorf("%s: FactIndexOf at the dates %v, want %v", opp, at, wantIndex)
		}
	}
}

// TestFactRun checks FactRun against the facts themselves on random deals
// in ClickHouse: as of every fact time, a second before and a second
// after, each deal's owner, team and segment from their runs are those of
// its last fact at or before the date ("" before its first). Fact times
// repeat within a deal (facts in one second) and values come back after a
// change, so runs restart and ties fall on run edges.
func TestFactRun(t *testing.T) {
	st := storetest.Open(t, store.Options{})
	ctx := context.Background()
	rnd := rand.New(rand.NewPCG(7, 16))
	values := []string{"", "a", "b", "ü-b", "c"}
	// Fact times are drawn from few instants, so that facts share seconds.
	instants := make([]time.Time, 12)
	for i := range instants {
		instants[i] = day(i * 3).Add(time.Duration(rnd.IntN(3)) * time.Second)
	}
	slices.SortFunc(instants, time.Time.Compare)
	var rows []store.StateRow
	for i := range 400 {
		r := state(fmt.Sprintf("o%03d", i), nil, nil, nil)
		n := rnd.IntN(9)
		r.FactTimes, r.Facts = nil, nil
		at := 0
		for range n {
			at = min(at+rnd.IntN(3), len(instants)-1)
			f := derive.Snapshot{Amount: 1, Status: derive.StatusOpen}
			f.OwnerID, f.Team, f.Segment = values[rnd.IntN(len(values))], values[rnd.IntN(len(values))], values[rnd.IntN(len(values))]
			if len(r.Facts) > 0 && rnd.IntN(2) == 0 { // often unchanged
				f = r.Facts[len(r.Facts)-1]
			}
			r.FactTimes, r.Facts = append(r.FactTimes, instants[at]), append(r.Facts, f)
		}
		rows = append(rows, r)
	}
	if err := st.InsertStates(ctx, rows); err != nil {
		t.Fatal(err)
	}
	// want is the fact of r as of at, by the facts.
	want := func(r store.StateRow, at time.Time) (f derive.Snapshot) {
		for i, ft := range r.FactTimes {
			if !ft.After(at) {
				f = r.Facts[i]
			}
		}
		return f
	}
	var probes []time.Time
	for _, in := range instants {
		probes = append(probes, in.Add(-time.Second), in, in.Add(time.Second))
	}
	for _, at := range probes {
		got := map[string][3]string{}
		q, err := st.Conn().Query(ctx, `SELECT opportunity_id, `+readmodel.FactRun("owner", "@at")+`, `+
			readmodel.FactRun("team", "@at")+`, `+readmodel.FactRun("segment", "@at")+`
	FROM opportunity_state FINAL WHERE tenant = 'acme'`, clickhouse.Named("at", uint32(at.Unix())))
		if err != nil {
			t.Fatal(err)
		}
		for q.Next() {
			var id string
			var v [3]string
			if err := q.Scan(&id, &v[0], &v[1], &v[2]); err != nil {
				t.Fatal(err)
			}
			got[id] = v
		}
		if err := q.Err(); err != nil {
			t.Fatal(err)
		}
		q.Close()
		if len(got) != len(rows) {
			t.Fatalf("as of %s: %d deals read, want %d", at, len(got), len(rows))
		}
		for _, r := range rows {
			f := want(r, at)
			if w := [3]string{f.OwnerID, f.Team, f.Segment}; got[r.OpportunityID] != w {
				t.Errorf("%s as of %s: owner, team, segment %q from the runs, want %q (facts at %v)",
					r.OpportunityID, at, got[r.OpportunityID], w, r.FactTimes)
			}
		}
	}
}
