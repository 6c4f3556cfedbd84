package metrics

import (
	"context"
	"fmt"
	"maps"
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/param"
)

// withRegions adds to every deal opportunity.updated events that set, move
// and clear its free attribute region, some at the instant of another
// event (one CRM edit as several events).
func withRegions(rng *rand.Rand, deals map[string][]event.Event) {
	regions := []string{"EMEA", "APAC", "AMER", ""}
	for _, opp := range slices.Sorted(maps.Keys(deals)) { // in a fixed order: the same data every run
		evs := deals[opp]
		for j := rng.Intn(4); j > 0; j-- {
			base := evs[rng.Intn(len(evs))]
			at := base.OccurredAt
			if rng.Intn(2) == 0 {
				at = at.AddDate(0, 0, rng.Intn(40))
			}
			evs = append(evs, event.Event{V: 1, ID: fmt.Sprintf("attr-%08x", rng.Uint32()), Tenant: base.Tenant,
				Source: "salesforce", Type: event.OpportunityUpdated, OccurredAt: at, ReceivedAt: at, OpportunityID: opp,
				Payload: &event.Opportunity{Attributes: map[string]string{"region": regions[rng.Intn(len(regions))]}}})
		}
		deals[opp] = evs
	}
}

// rawRegion is a deal's region as of asOf from its input events, in the
// fold's order; "" for none.
func rawRegion(evs []event.Event, asOf time.Time) string {
	evs = slices.Clone(evs)
	slices.SortStableFunc(evs, func(a, b event.Event) int {
		if c := a.OccurredAt.Compare(b.OccurredAt); c != 0 {
			return c
		}
		if a.Source != b.Source {
			return map[bool]int{true: -1, false: 1}[a.Source < b.Source]
		}
		return map[bool]int{true: -1, false: 1}[a.ID < b.ID]
	})
	region := ""
	for _, e := range evs {
		if e.OccurredAt.After(asOf) {
			break
		}
		if o, ok := e.Payload.(*event.Opportunity); ok {
			if v, ok := o.Attributes["region"]; ok {
				region = v
			}
		}
	}
	return region
}

// TestBreakdownByAttribute: by=attr.region groups every step of the funnel
// by the deal's region as of as_of; each group's numbers are the raw
// oracle's over the deals of that region.
func TestBreakdownByAttribute(t *testing.T) {
	s := openStore(t)
	rng := rand.New(rand.NewSource(21))
	deals := rawDeals(rng, "acme", 300)
	withRegions(rng, deals)
	l := loadRaw(t, s, rng, deals, date("2025-01-01T00:00:00Z"))
	q := New(s.Conn())
	ctx := context.Background()
	for _, asOf := range []time.Time{date("2025-01-01T00:00:00Z"), date("2024-03-15T00:00:00Z")} {
		fq := FunnelQuery{Tenant: "acme", AsOf: asOf, From: date("2024-01-01T00:00:00Z"), To: date("2025-01-01T00:00:00Z"),
			Ladder: ladderKeys(l), LadderVersion: l.Version, By: "attr.region"}
		got, err := q.Funnel(ctx, fq)
		if err != nil {
			t.Fatal(err)
		}
		byRegion := map[string]map[string][]event.Event{}
		for opp, evs := range deals {
			r := rawRegion(evs, asOf)
			if byRegion[r] == nil {
				byRegion[r] = map[string][]event.Event{}
			}
			byRegion[r][opp] = evs
		}
		fq.By = ""
		groups := 0
		for region, sub := range byRegion {
			want := rawFunnel(sub, fq, nil)
			for i := range want {
				if want[i].Reached == 0 {
					continue
				}
				j := slices.IndexFunc(got.Steps[i].Groups, func(g FunnelGroup) bool { return g.Key == region })
				if j < 0 {
					t.Fatalf("as of %s, step %d: no group %q (groups %+v)", asOf, i+1, region, got.Steps[i].Groups)
				}
				g := got.Steps[i].Groups[j]
				if err := approxEqual(FunnelStep{FunnelCounts: g.FunnelCounts}, FunnelStep{FunnelCounts: want[i].FunnelCounts}); err != nil {
					t.Fatalf("as of %s, step %d, region %q: %v", asOf, i+1, region, err)
				}
				groups++
			}
		}
		if len(byRegion) < 3 || groups == 0 {
			t.Fatalf("regions %d, groups compared %d: the data does not exercise the breakdown", len(byRegion), groups)
		}
	}
	// The other answers with by take it too.
	if _, err := q.CycleTime(ctx, CycleQuery{Tenant: "acme", From: date("2024-01-01T00:00:00Z"), To: date("2025-01-01T00:00:00Z"),
		Ladder: ladderKeys(l), LadderVersion: l.Version, By: "attr.region"}); err != nil {
		t.Fatal(err)
	}
	sh, err := q.StageHistory(ctx, StageHistoryQuery{Tenant: "acme", Ladder: ladderKeys(l), LadderVersion: l.Version, By: "attr.region"})
	if err != nil {
		t.Fatal(err)
	}
	if len(sh.Groups) < 3 {
		t.Errorf("stage history by region: %d groups", len(sh.Groups))
	}
	for _, by := range []string{"attr.", "attr.Region", "attr.a-b", "region"} {
		_, err := q.Funnel(ctx, FunnelQuery{Tenant: "acme", From: date("2024-01-01T00:00:00Z"), To: date("2025-01-01T00:00:00Z"),
			Ladder: ladderKeys(l), LadderVersion: l.Version, By: by})
		ie := param.As(err)
		if ie == nil || ie.Param != "by" || ie.Code != param.Invalid {
			t.Errorf("by=%s: err %v, want an input error naming by", by, err)
		}
	}
}
