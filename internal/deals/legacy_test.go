package deals

import (
	"context"
	"math/rand"
	"reflect"
	"testing"

	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

// preSingleThreaded are the columns of opportunity_state written before
// migration 0110 (single_threaded_times, single_threaded_filled).
const preSingleThreaded = `tenant, opportunity_id, created_at, first_at, reach, gained, gain_times, gain_steps,
fact_times, amounts, currencies, close_dates, stages, probabilities, statuses, owners, teams, segments, lead_sources, products,
attr_keys, attr_values,
stall_times, stall_steps, regress_times, close_times, close_statuses, close_reasons,
miss_times, miss_steps, miss_reasons, miss_interactions, miss_owners, miss_amounts, miss_currencies,
held_times, held_steps, held_outcomes, held_interactions, held_owners, stage_entry_times, stage_entries,
ladder_version`

// TestStatesBeforeSingleThreadedColumn: states written before migration
// 0110 hold no single-threaded times; until a replay rewrites them, the
// list and the warnings take those deals' single-threaded warning from
// derived_events and answer as with rewritten states, for some such rows
// and for all.
func TestStatesBeforeSingleThreadedColumn(t *testing.T) {
	st := storetest.Open(t, store.Options{})
	l := loadDeals(t, st, genDeals(rand.New(rand.NewSource(22)), "acme", 300))
	r := New(st, nil, 0)
	ctx := context.Background()
	yes, no := true, false
	asOf := date("2024-10-01T00:00:00Z")
	type answer struct {
		lists    []*ListResult
		warnings []*WarningsResult
	}
	ask := func() answer {
		t.Helper()
		var a answer
		for _, f := range []Filter{{}, {SingleThreaded: &yes}, {SingleThreaded: &no}, {Warning: "any"}, {Warning: WarnSingleThreaded, OwnerID: "ann"}} {
			res, err := r.List(ctx, ListQuery{Tenant: "acme", AsOf: asOf, Ladder: l, Filter: f, PageSize: 1000})
			if err != nil {
				t.Fatal(err)
			}
			a.lists = append(a.lists, res)
		}
		for _, kind := range []string{"", WarnSingleThreaded} {
			res, err := r.Warnings(ctx, WarningsQuery{Tenant: "acme", AsOf: asOf, Ladder: l, Kind: kind, PageSize: 1000})
			if err != nil {
				t.Fatal(err)
			}
			a.warnings = append(a.warnings, res)
		}
		return a
	}
	want := ask()
	if want.lists[1].Total == 0 || want.lists[2].Total == 0 {
		t.Fatalf("%d single-threaded deals of %d: the data does not exercise the warning", want.lists[1].Total, want.lists[0].Total)
	}
	for _, c := range []struct {
		name, which string
	}{{"half the states old", "cityHash64(opportunity_id) % 2 = 0"}, {"every state old", "1"}} {
		// An old writer's state: a newer version without the new columns.
		err := st.Conn().Exec(ctx, `INSERT INTO opportunity_state (`+preSingleThreaded+`, version)
SELECT `+preSingleThreaded+`, version + 1 FROM opportunity_state FINAL WHERE tenant = 'acme' AND single_threaded_filled = 1 AND `+c.which)
		if err != nil {
			t.Fatal(err)
		}
		var old uint64
		if err := st.Conn().QueryRow(ctx, `SELECT countIf(single_threaded_filled = 0) FROM opportunity_state FINAL WHERE tenant = 'acme'`).Scan(&old); err != nil {
			t.Fatal(err)
		}
		if old == 0 {
			t.Fatalf("%s: no state without single-threaded times", c.name)
		}
		got := ask()
		for i := range want.lists {
			if !reflect.DeepEqual(got.lists[i], want.lists[i]) {
				t.Errorf("%s (%d): list %+v: %d deals, want %d (or rows differ)", c.name, old, want.lists[i].Filter, got.lists[i].Total, want.lists[i].Total)
			}
		}
		for i := range want.warnings {
			if !reflect.DeepEqual(got.warnings[i], want.warnings[i]) {
				t.Errorf("%s (%d): warnings %q: %+v, want %+v", c.name, old, want.warnings[i].Filter.Warning, got.warnings[i].Total, want.warnings[i].Total)
			}
		}
	}
}
