package deals

import (
	"context"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

// TestStalledAfterReopen: a deal that stalled, closed and was reopened is
// not stalled until a threshold after the reopen, as in /v1/stalls, in the
// list and in the deal view.
func TestStalledAfterReopen(t *testing.T) {
	st := storetest.Open(t, store.Options{})
	t0 := date("2024-01-01T00:00:00Z")
	day := func(n int) time.Time { return t0.AddDate(0, 0, n) }
	mk := func(id string, at time.Time, typ event.Type, p event.Payload) event.Event {
		return event.Event{V: 1, ID: id, Tenant: "acme", Source: "salesforce", Type: typ, OccurredAt: at, ReceivedAt: at, OpportunityID: "o1", Payload: p}
	}
	d := testDeal{id: "o1", evs: []event.Event{
		mk("c", day(0), event.OpportunityCreated, &event.Opportunity{Amount: 100, Stage: "Perception Analysis"}), // invest: 30 days
		mk("l", day(40), event.ClosedLost, &event.Lost{Reason: "Price"}),
		mk("s", day(60), event.StageChanged, &event.StageChange{To: "Qualification"}),
	}}
	l := loadDeals(t, st, []testDeal{d})
	r := New(st, nil, 0)
	for _, c := range []struct {
		asOf  time.Time
		since time.Time // zero: not stalled
	}{{day(35), day(30)}, {day(70), time.Time{}}, {day(100), day(90)}} {
		res, err := r.List(context.Background(), ListQuery{Tenant: "acme", AsOf: c.asOf, Ladder: l})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Deals) != 1 {
			t.Fatalf("as of %s: %d deals", c.asOf, len(res.Deals))
		}
		var since time.Time
		for _, w := range res.Deals[0].Warnings {
			if w.Kind == WarnStalled {
				since = w.Since
			}
		}
		if !since.Equal(c.since) {
			t.Errorf("as of day %v: stalled since %v, want %v", c.asOf.Sub(t0).Hours()/24, since, c.since)
		}
		// The deal view applies the same rule.
		deal, err := r.Deal(context.Background(), DealQuery{Tenant: "acme", OpportunityID: "o1", AsOf: c.asOf, Ladder: l})
		if err != nil {
			t.Fatal(err)
		}
		since = time.Time{}
		for _, w := range deal.Warnings {
			if w.Kind == WarnStalled {
				since = w.Since
			}
		}
		if !since.Equal(c.since) {
			t.Errorf("deal view as of day %v: stalled since %v, want %v", c.asOf.Sub(t0).Hours()/24, since, c.since)
		}
	}
}
