package forecast

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/event"
)

// TestBreakdownByAttribute gives export-shaped deals a region (set at
// creation, changed or cleared later by opportunity.updated, some never
// set) and a product line, and compares the forecast's by_attribute groups
// with an oracle folded from the input events: per value as of the
// forecast date, the open deals, their amount, the CRM and the commitment
// weightings; the groups add up to the total.
func TestBreakdownByAttribute(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 77))
	deals := rawDeals(77, "acme", 300)
	regions := []string{"emea", "amer", "apac"}
	for id, evs := range deals {
		var created event.Event
		for _, e := range evs {
			if e.Type == event.OpportunityCreated {
				created = e
			}
		}
		p := created.Payload.(*event.Opportunity)
		if rng.IntN(5) > 0 {
			p.Attributes = map[string]string{"region": regions[rng.IntN(3)], "line": fmt.Sprint("l", rng.IntN(2))}
		}
		if rng.IntN(3) == 0 { // a later edit moves or clears the region
			at := created.OccurredAt.AddDate(0, 0, 1+rng.IntN(200))
			v := map[string]string{"region": []string{"", "emea", "apac"}[rng.IntN(3)]}
			deals[id] = append(evs, event.Event{V: 1, ID: fmt.Sprintf("u%08x", rng.Uint32()), Tenant: "acme", Source: "salesforce",
				Type: event.OpportunityUpdated, OccurredAt: at, ReceivedAt: at, OpportunityID: id,
				Payload: &event.Opportunity{Attributes: v}})
		}
	}
	f := loadRaw(t, deals, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	// The last date is after every event: the open deals come from their
	// latest_* columns (latestDealsSQL).
	for _, asOf := range []time.Time{time.Date(2023, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(2023, 11, 15, 0, 0, 0, 0, time.UTC), time.Date(2024, 12, 31, 0, 0, 0, 0, time.UTC)} {
		r, err := f.Forecast(ctx, Query{Tenant: "acme", AsOf: asOf, Draws: 100, By: []string{"attr.region", "owner", "attr.line", "attr.region"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Pipeline.ByClosePeriod) != 0 || len(r.Pipeline.ByTeam) != 0 || len(r.Pipeline.ByOwner) == 0 {
			t.Errorf("as of %s: breakdowns not as asked: %d periods, %d teams, %d owners", asOf, len(r.Pipeline.ByClosePeriod), len(r.Pipeline.ByTeam), len(r.Pipeline.ByOwner))
		}
		if len(r.Pipeline.ByAttribute) != 2 {
			t.Fatalf("as of %s: by_attribute has %d keys, want region and line", asOf, len(r.Pipeline.ByAttribute))
		}
		for _, key := range []string{"region", "line"} {
			groups := r.Pipeline.ByAttribute[key]
			byValue := map[string]map[string][]event.Event{}
			for id, evs := range deals {
				if s, open := rawOpp(evs).openAt(asOf); open {
					v := s.attrs[key]
					if byValue[v] == nil {
						byValue[v] = map[string][]event.Event{}
					}
					byValue[v][id] = evs
				}
			}
			if len(groups) != len(byValue) {
				t.Errorf("as of %s, %s: %d groups, oracle %d values", asOf, key, len(groups), len(byValue))
			}
			var deals, expected float64
			for i, g := range groups {
				if i > 0 && *groups[i-1].Expected < *g.Expected {
					t.Errorf("as of %s, %s: groups not largest first", asOf, key)
				}
				want := rawPipeline(byValue[g.Key], r.Model, asOf, asOf)[""]
				if want == nil || g.Deals != want.deals || !nearRel(*g.Amount, want.amount) || !nearRel(*g.CRMWeighted, want.crm) || !nearRel(*g.Expected, want.expected) {
					t.Errorf("as of %s, %s=%q: %d deals, amount %v, CRM %v, expected %v; oracle %+v",
						asOf, key, g.Key, g.Deals, val(g.Amount), val(g.CRMWeighted), val(g.Expected), want)
				}
				deals += float64(g.Deals)
				expected += *g.Expected
			}
			if tot := r.Pipeline.Total; deals != float64(tot.Deals) || !nearRel(expected, *tot.Expected) {
				t.Errorf("as of %s, %s: groups add up to %v deals, expected %v; total %d, %v", asOf, key, deals, expected, tot.Deals, *tot.Expected)
			}
			if _, ok := byValue[""]; !ok {
				t.Errorf("as of %s, %s: no open deal without the attribute; the data must have some", asOf, key)
			}
		}
	}
	if _, err := f.Forecast(ctx, Query{Tenant: "acme", AsOf: time.Date(2023, 6, 1, 0, 0, 0, 0, time.UTC), By: []string{"attr.Region"}}); err == nil {
		t.Error("by attr.Region (upper case): no error")
	}
}

// TestBreakdownByForecastCategory gives deals a CRM forecast category (at
// creation, changed later by forecast_category_changed, some never set)
// and compares the forecast's by_forecast_category groups, now and in a
// back-test, with an oracle folded from the input events: per category as
// of the forecast date, the open deals, their amount, the CRM and the
// commitment weightings; the groups add up to the total.
func TestBreakdownByForecastCategory(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(9, 99))
	deals := rawDeals(99, "acme", 300)
	cats := []string{"Pipeline", "Best Case", "Commit"}
	for id, evs := range deals {
		var created event.Event
		for _, e := range evs {
			if e.Type == event.OpportunityCreated {
				created = e
			}
		}
		if rng.IntN(4) > 0 {
			created.Payload.(*event.Opportunity).ForecastCategory = cats[rng.IntN(3)]
		}
		for n := rng.IntN(3); n > 0; n-- { // later moves between categories
			at := created.OccurredAt.AddDate(0, 0, 1+rng.IntN(300))
			deals[id] = append(deals[id], event.Event{V: 1, ID: fmt.Sprintf("f%08x", rng.Uint32()), Tenant: "acme", Source: "salesforce",
				Type: event.ForecastCategoryChanged, OccurredAt: at, ReceivedAt: at, OpportunityID: id,
				Payload: &event.ForecastCategoryChange{To: cats[rng.IntN(3)]}})
		}
	}
	f := loadRaw(t, deals, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	backtest := time.Date(2023, 8, 1, 0, 0, 0, 0, time.UTC)
	for _, q := range []Query{
		{Tenant: "acme", AsOf: time.Date(2023, 6, 1, 0, 0, 0, 0, time.UTC), Draws: 100, By: []string{ByForecastCategory}},
		{Tenant: "acme", AsOf: time.Date(2023, 11, 15, 0, 0, 0, 0, time.UTC), Draws: 100, By: []string{ByForecastCategory, ByOwner}},
		{Tenant: "acme", AsOf: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), Backtest: &backtest, Draws: 100, By: []string{ByForecastCategory}},
		// After every event: the open deals come from their latest_*
		// columns (latestDealsSQL).
		{Tenant: "acme", AsOf: time.Date(2024, 12, 31, 0, 0, 0, 0, time.UTC), Draws: 100, By: []string{ByForecastCategory, ByOwner}},
	} {
		at := q.AsOf
		if q.Backtest != nil {
			at = *q.Backtest
		}
		r, err := f.Forecast(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Pipeline.ByClosePeriod) != 0 || len(r.Pipeline.ByTeam) != 0 {
			t.Errorf("at %s: breakdowns not as asked: %d periods, %d teams", at, len(r.Pipeline.ByClosePeriod), len(r.Pipeline.ByTeam))
		}
		groups := r.Pipeline.ByForecastCategory
		byCat := map[string]map[string][]event.Event{}
		for id, evs := range deals {
			if s, open := rawOpp(evs).openAt(at); open {
				if byCat[s.category] == nil {
					byCat[s.category] = map[string][]event.Event{}
				}
				byCat[s.category][id] = evs
			}
		}
		if len(byCat) != len(cats)+1 {
			t.Errorf("at %s: the oracle has %d categories among the open deals; the data must have all three and none", at, len(byCat))
		}
		if len(groups) != len(byCat) {
			t.Errorf("at %s: %d groups, oracle %d categories", at, len(groups), len(byCat))
		}
		var n int
		var expected float64
		for i, g := range groups {
			if i > 0 && *groups[i-1].Expected < *g.Expected {
				t.Errorf("at %s: groups not largest first", at)
			}
			want := rawPipeline(byCat[g.Key], r.Model, at, at)[""]
			if want == nil || g.Deals != want.deals || !nearRel(*g.Amount, want.amount) || !nearRel(*g.CRMWeighted, want.crm) || !nearRel(*g.Expected, want.expected) {
				t.Errorf("at %s, category %q: %d deals, amount %v, CRM %v, expected %v; oracle %+v",
					at, g.Key, g.Deals, val(g.Amount), val(g.CRMWeighted), val(g.Expected), want)
			}
			n += g.Deals
			expected += *g.Expected
		}
		if tot := r.Pipeline.Total; n != tot.Deals || !nearRel(expected, *tot.Expected) {
			t.Errorf("at %s: groups add up to %d deals, expected %v; total %d, %v", at, n, expected, tot.Deals, *tot.Expected)
		}
	}
}
