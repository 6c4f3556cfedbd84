package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/ladder"
)

// TestStateRoundTrip writes derived rows with their states, retracts one,
// and reads the state back column by column.
func TestStateRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := openMigrated(t)
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	snap := derive.Snapshot{Amount: 100, CloseDate: time.Date(2026, 6, 30, 0, 0, 0, 0, time.UTC), Stage: "Qualification", Probability: 0.2, Status: "open", OwnerID: "rep1", Team: "east", Segment: "smb",
		Currency: "EUR", Attrs: []derive.Attr{{Key: "deal_type", Value: "new"}, {Key: "region", Value: "EMEA"}}}
	row := func(id string, k derive.Kind, at time.Time, step int, reason string, version uint64) DerivedRow {
		return DerivedRow{Derived: derive.Derived{Tenant: "acme", OpportunityID: "o1", ID: id, Type: k, OccurredAt: at, StepIndex: step, Reason: reason, Snapshot: snap, LadderVersion: "v1"}, Version: version}
	}
	rows := []DerivedRow{
		row("a", derive.DealCreated, t0, 0, "", 1),
		row("b", derive.CommitmentGained, t0.Add(time.Hour), 2, "", 1),
		row("c", derive.CommitmentMissed, t0.Add(2*time.Hour), 3, derive.MissNoNextStep, 1),
		row("d", derive.InteractionHeld, t0.Add(2*time.Hour), 3, derive.InteractionContinuation, 1),
		row("e", derive.CommitmentGained, t0.Add(48*time.Hour), 4, "", 1),
		row("f", derive.DealSingleThreaded, t0.Add(3*time.Hour), 2, "", 1),
	}
	rows[4].Amount = 250
	if err := s.InsertDerivedWithStates(ctx, rows, 5); err != nil {
		t.Fatal(err)
	}
	// Retract the second gain: the state must follow.
	retract := rows[4]
	retract.Version, retract.Retracted = 2, true
	if err := s.InsertDerivedWithStates(ctx, []DerivedRow{retract}, 5); err != nil {
		t.Fatal(err)
	}
	cur, err := s.LoadDerived(ctx, "acme", []string{"o1"})
	if err != nil {
		t.Fatal(err)
	}
	want := derive.Summarize(cur["o1"], 5)

	var (
		reach, factTimes, missTimes []time.Time
		gainSteps, missSteps        []uint8
		amounts                     []float64
		closeDates                  []time.Time
		missReasons, heldOutcomes   []string
		created                     time.Time
		currencies, missCurrencies  []string
		attrKeys, attrValues        [][]string
		singleThreaded              []time.Time
		singleFilled                uint8
	)
	err = s.Conn().QueryRow(ctx, `SELECT reach, gain_steps, fact_times, amounts, close_dates, miss_times, miss_steps, miss_reasons, held_outcomes, created_at,
	currencies, miss_currencies, attr_keys, attr_values, single_threaded_times, single_threaded_filled
FROM opportunity_state FINAL WHERE tenant = ? AND opportunity_id = ?`, "acme", "o1").Scan(
		&reach, &gainSteps, &factTimes, &amounts, &closeDates, &missTimes, &missSteps, &missReasons, &heldOutcomes, &created,
		&currencies, &missCurrencies, &attrKeys, &attrValues, &singleThreaded, &singleFilled)
	if err != nil {
		t.Fatal(err)
	}
	utc := func(ts []time.Time) []time.Time {
		for i := range ts {
			ts[i] = ts[i].UTC()
		}
		return ts
	}
	r2 := t0.Add(time.Hour)
	if got, w := utc(reach), []time.Time{r2, r2, epoch, epoch, epoch}; !reflect.DeepEqual(got, w) {
		t.Errorf("reach = %v, want %v", got, w)
	}
	if !reflect.DeepEqual(gainSteps, []uint8{2}) || !reflect.DeepEqual(missSteps, []uint8{3}) {
		t.Errorf("gain steps %v, miss steps %v", gainSteps, missSteps)
	}
	if !reflect.DeepEqual(missReasons, []string{derive.MissNoNextStep}) || !reflect.DeepEqual(heldOutcomes, []string{derive.InteractionContinuation}) {
		t.Errorf("miss reasons %v, held outcomes %v", missReasons, heldOutcomes)
	}
	if !reflect.DeepEqual(utc(factTimes), want.FactTimes) || len(amounts) != 1 || amounts[0] != 100 {
		t.Errorf("facts: times %v amounts %v, want times %v (one snapshot: the retracted change is gone)", factTimes, amounts, want.FactTimes)
	}
	if y, m, d := closeDates[0].Date(); y != 2026 || m != 6 || d != 30 {
		t.Errorf("close date = %v", closeDates[0])
	}
	if !reflect.DeepEqual(currencies, []string{"EUR"}) || !reflect.DeepEqual(missCurrencies, []string{"EUR"}) {
		t.Errorf("currencies %v, miss currencies %v", currencies, missCurrencies)
	}
	if !reflect.DeepEqual(attrKeys, [][]string{{"deal_type", "region"}}) || !reflect.DeepEqual(attrValues, [][]string{{"new", "EMEA"}}) {
		t.Errorf("attributes %v = %v", attrKeys, attrValues)
	}
	if !created.UTC().Equal(t0) {
		t.Errorf("created_at = %v", created)
	}
	if got, w := utc(singleThreaded), []time.Time{t0.Add(3 * time.Hour)}; !reflect.DeepEqual(got, w) || !reflect.DeepEqual(got, want.SingleThreaded) || singleFilled != 1 {
		t.Errorf("single threaded %v (filled %d), want %v (filled 1)", got, singleFilled, w)
	}
}

// TestStateFromStoredFoldOrder stores the derived events of deals closed by
// a stage change (the stage's deal.updated and the deal.closed share a
// second) and checks that the states computed from the stored rows end
// closed lost, and that the rows read back equal what derivation gives
// (seq included), so a re-derivation writes nothing.
func TestStateFromStoredFoldOrder(t *testing.T) {
	ctx := context.Background()
	s := openMigrated(t)
	l := ladder.Default()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var (
		rows []DerivedRow
		ids  []string
		cur  = map[string][]derive.Derived{}
	)
	for i := range 40 {
		id := fmt.Sprintf("deal-%d", i)
		evs := []event.Event{
			{V: 1, ID: "c" + id, Tenant: "acme", Source: "salesforce", Type: event.OpportunityCreated, OccurredAt: t0,
				OpportunityID: id, Payload: &event.Opportunity{Stage: "Qualification", Amount: 1000}},
			{V: 1, ID: "s" + id, Tenant: "acme", Source: "salesforce", Type: event.StageChanged, OccurredAt: t0.AddDate(0, 0, 3),
				OpportunityID: id, Payload: &event.StageChange{To: "Closed Lost"}},
		}
		cur[id] = derive.Derive("acme", id, evs, l, t0.AddDate(0, 0, 10))
		for _, d := range cur[id] {
			rows = append(rows, DerivedRow{Derived: d, Version: 1})
		}
		ids = append(ids, id)
	}
	if err := s.InsertDerivedWithStates(ctx, rows, l.Len()); err != nil {
		t.Fatal(err)
	}
	var open uint64
	if err := s.Conn().QueryRow(ctx, `SELECT count() FROM opportunity_state FINAL
WHERE tenant = 'acme' AND statuses[length(statuses)] != 'lost'`).Scan(&open); err != nil {
		t.Fatal(err)
	}
	if open != 0 {
		t.Errorf("%d of 40 states do not end lost", open)
	}
	stored, err := s.LoadDerived(ctx, "acme", ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if added, retracted := derive.Diff(stored[id], cur[id]); len(added)+len(retracted) != 0 {
			t.Errorf("%s: stored rows differ from the derived ones: %d to add, %d to retract", id, len(added), len(retracted))
		}
	}
}

// TestMissLookbacks inserts states of random misses and compares the
// lookback columns InsertStates computes (missLookbacks) with the DEFAULT
// expressions of migrations 0103 and 0113 evaluated by ClickHouse on the
// same rows: misses sharing a second, out of time order, at the epoch and
// before it, without an interaction, with the reasons that are about no
// interaction, and one deal of many misses.
func TestMissLookbacks(t *testing.T) {
	ctx := context.Background()
	s := openMigrated(t)
	r := rand.New(rand.NewPCG(23, 5))
	base := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	times := []time.Time{{}, time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC), base, base.Add(500 * time.Millisecond), base.Add(time.Hour), base.Add(-time.Hour), base.Add(48 * time.Hour)}
	reasons := []string{derive.MissNoNextStep, derive.MissCloseDatePushed, derive.MissNoDecision, "action_overdue"}
	pick := func(xs []string) string { return xs[r.IntN(len(xs))] }
	var rows []StateRow
	for d := range 120 {
		n := r.IntN(12)
		if d == 0 {
			n = 400
		}
		st := derive.State{Tenant: "acme", OpportunityID: fmt.Sprintf("o%03d", d)}
		for range n {
			st.Misses = append(st.Misses, derive.Interaction{
				At: times[r.IntN(len(times))], Step: uint8(r.IntN(3)), Reason: pick(reasons),
				InteractionID: pick([]string{"", "i1", "i2", "i3"}), Owner: pick([]string{"", "ann", "bob"}),
			})
		}
		rows = append(rows, StateRow{State: st, Version: 1})
	}
	if err := s.InsertStates(ctx, rows); err != nil {
		t.Fatal(err)
	}

	cols := []string{"miss_prev", "miss_prev_step", "miss_prev_reason", "miss_prev_owner", "miss_deal_prev_step", "miss_deal_prev_reason", "miss_deal_prev_owner"}
	exprs := make([]string, len(cols))
	for i, c := range cols {
		if err := s.Conn().QueryRow(ctx, `SELECT default_expression FROM system.columns
WHERE database = currentDatabase() AND table = 'opportunity_state' AND name = ?`, c).Scan(&exprs[i]); err != nil || exprs[i] == "" {
			t.Fatalf("DEFAULT of %s: %q, %v", c, exprs[i], err)
		}
	}
	q, err := s.Conn().Query(ctx, "SELECT opportunity_id, length(miss_times), "+strings.Join(cols, ", ")+", "+strings.Join(exprs, ", ")+
		" FROM opportunity_state WHERE tenant = 'acme' ORDER BY opportunity_id")
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	seen, bad := 0, 0
	for q.Next() {
		var id string
		var n uint64
		got, want := make([][]uint32, len(cols)), make([][]uint32, len(cols))
		dest := []any{&id, &n}
		for i := range cols {
			dest = append(dest, &got[i])
		}
		for i := range cols {
			dest = append(dest, &want[i])
		}
		if err := q.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		seen++
		for i, c := range cols {
			if len(got[i]) != int(n) || !slices.Equal(got[i], want[i]) {
				if bad++; bad <= 5 {
					t.Errorf("%s: %s = %v, the DEFAULT expression gives %v", id, c, got[i], want[i])
				}
			}
		}
	}
	if err := q.Err(); err != nil {
		t.Fatal(err)
	}
	if seen != len(rows) {
		t.Fatalf("%d states read, want %d", seen, len(rows))
	}
}
