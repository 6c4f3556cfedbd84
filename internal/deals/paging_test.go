package deals

import (
	"context"
	"math/rand"
	"slices"
	"testing"

	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

// TestWarnedPages: the pages of a list filtered on warnings, and of the
// warnings (both cut in one pass from each group's first deals), are the
// slices of the whole ordered list, with the same total.
func TestWarnedPages(t *testing.T) {
	st := storetest.Open(t, store.Options{})
	l := loadDeals(t, st, genDeals(rand.New(rand.NewSource(22)), "acme", 300))
	r := New(st, nil, 0)
	ctx := context.Background()
	asOf := date("2024-10-01T00:00:00Z")
	no := false
	ids := func(rows []Row) []string {
		out := make([]string, len(rows))
		for i, d := range rows {
			out[i] = d.OpportunityID
		}
		return out
	}
	const size = 7
	for _, f := range []Filter{{Warning: "any"}, {Stalled: &no}, {Warning: WarnNoNextStep, Team: "west"}} {
		all, err := r.List(ctx, ListQuery{Tenant: "acme", AsOf: asOf, Ladder: l, Filter: f, PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if all.Total < 3*size {
			t.Fatalf("filter %+v: %d deals, too few to page", f, all.Total)
		}
		for _, page := range []int{1, 2, 3, int(all.Total)/size + 1, int(all.Total)/size + 2} {
			got, err := r.List(ctx, ListQuery{Tenant: "acme", AsOf: asOf, Ladder: l, Filter: f, Page: page, PageSize: size})
			if err != nil {
				t.Fatal(err)
			}
			lo, hi := min((page-1)*size, len(all.Deals)), min(page*size, len(all.Deals))
			if got.Total != all.Total || !slices.Equal(ids(got.Deals), ids(all.Deals[lo:hi])) {
				t.Errorf("filter %+v page %d: total %d %v, want %d %v", f, page, got.Total, ids(got.Deals), all.Total, ids(all.Deals[lo:hi]))
			}
		}
	}
	all, err := r.Warnings(ctx, WarningsQuery{Tenant: "acme", AsOf: asOf, Ladder: l, PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	list, err := r.List(ctx, ListQuery{Tenant: "acme", AsOf: asOf, Ladder: l, Filter: Filter{Warning: "any"}, PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(all.Deals), ids(list.Deals)) {
		t.Fatalf("warnings list %v, the deal list with warning=any %v", ids(all.Deals), ids(list.Deals))
	}
	for _, page := range []int{1, 4, int(all.Total.Deals)/size + 1, int(all.Total.Deals)/size + 2} {
		got, err := r.Warnings(ctx, WarningsQuery{Tenant: "acme", AsOf: asOf, Ladder: l, Page: page, PageSize: size})
		if err != nil {
			t.Fatal(err)
		}
		lo, hi := min((page-1)*size, len(all.Deals)), min(page*size, len(all.Deals))
		if got.Total.Deals != all.Total.Deals || !slices.Equal(ids(got.Deals), ids(all.Deals[lo:hi])) {
			t.Errorf("warnings page %d: total %d %v, want %d %v", page, got.Total.Deals, ids(got.Deals), all.Total.Deals, ids(all.Deals[lo:hi]))
		}
	}
}
