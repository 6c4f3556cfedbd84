package metrics

import (
	"context"
	"math"
	"math/rand"
	"reflect"
	"testing"
	"time"
)

// TestStallsOpenAgainstRawOracle compares the open deals per highest step
// reached, in count and amount, with the oracle from the input events for
// several as_of dates: a deal reopened by a move back to an open stage is
// open again.
func TestStallsOpenAgainstRawOracle(t *testing.T) {
	s := openStore(t)
	rng := rand.New(rand.NewSource(18))
	deals := rawDeals(rng, "acme", 300)
	l := loadRaw(t, s, rng, deals, date("2025-01-01T00:00:00Z"))
	q := New(s.Conn())
	n := l.Len()
	reopened := 0
	for _, asOf := range []time.Time{date("2025-01-01T00:00:00Z"), date("2024-06-15T00:00:00Z"), date("2024-04-01T12:00:00Z")} {
		open, amount := map[int]int64{}, map[int]float64{}
		for _, evs := range deals {
			rs := rawFold(evs, asOf, n)
			if rs.created.IsZero() || rs.status != "open" {
				continue
			}
			if !rs.closedAt.IsZero() {
				reopened++
			}
			top := 0
			for k := 1; k <= n; k++ {
				if !rs.reach[k].IsZero() {
					top = k
				}
			}
			open[top]++
			amount[top] += rs.amount
		}
		got, err := q.Stalls(context.Background(), StallsQuery{Tenant: "acme", AsOf: asOf, Ladder: ladderKeys(l), LadderVersion: l.Version})
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range got.Steps {
			if st.Open != open[st.StepIndex] || st.OpenAmount == nil || math.Abs(*st.OpenAmount-amount[st.StepIndex]) > 1e-6 {
				t.Errorf("as of %s, step %d: open %d (%v), oracle %d (%g)", asOf, st.StepIndex, st.Open, fmtPtr(reflect.ValueOf(st.OpenAmount)), open[st.StepIndex], amount[st.StepIndex])
			}
			delete(open, st.StepIndex)
		}
		for k, c := range open {
			if c != 0 {
				t.Errorf("as of %s, step %d: no answer, oracle %d open", asOf, k, c)
			}
		}
	}
	if reopened == 0 {
		t.Error("no open deal was reopened: the data does not exercise the rule")
	}
}
