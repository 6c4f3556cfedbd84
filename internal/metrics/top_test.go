package metrics

import (
	"cmp"
	"context"
	"math/rand"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/event"
)

// rawTop ranks by values as a top-N breakdown does, from the oracle's own
// population counts: most deals first, ties by value. It returns the
// values kept (all when top is 0) and how many are merged.
func rawTop(pop map[string]int, top int) (map[string]bool, int) {
	keys := make([]string, 0, len(pop))
	for k := range pop {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if c := cmp.Compare(pop[b], pop[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	kept := map[string]bool{}
	for i, k := range keys {
		if top == 0 || i < top {
			kept[k] = true
		}
	}
	return kept, len(keys) - len(kept)
}

// rawFunnelGroups is the funnel broken down by owner and period, the owners
// outside the top merged, from the input events.
func rawFunnelGroups(deals map[string][]event.Event, fq FunnelQuery) ([]FunnelStep, int) {
	n := len(fq.Ladder)
	o := newOracleCur(nil)
	states := map[string]rawState{}
	pop := map[string]int{}
	for opp, evs := range deals {
		s := rawFold(evs, fq.AsOf, n)
		states[opp] = s
		for k := 1; k < n; k++ {
			if rk := s.reach[k]; !rk.IsZero() && !rk.Before(fq.From) && rk.Before(fq.To) {
				pop[s.owner]++
				break
			}
		}
	}
	kept, other := rawTop(pop, fq.Top)
	type gkey struct {
		k             int
		period, owner string
		other         bool
	}
	accs := map[gkey]*funnelAcc{}
	totals := make([]funnelAcc, n)
	for _, s := range states {
		for k := 1; k < n; k++ {
			rk, rk1 := s.reach[k], s.reach[k+1]
			if rk.IsZero() || rk.Before(fq.From) || !rk.Before(fq.To) {
				continue
			}
			conv := !rk1.IsZero()
			dropped := !conv && s.status != "open"
			skipped := !s.gained[k].Equal(rk)
			secs := int64(rk1.Sub(rk) / time.Second)
			totals[k-1].add(o, s.amount, s.currency, conv, dropped, skipped, secs)
			gk := gkey{k: k, period: periodStart(rk, fq.Interval), owner: s.owner}
			if !kept[s.owner] {
				gk.owner, gk.other = "", true
			}
			if accs[gk] == nil {
				accs[gk] = &funnelAcc{}
			}
			accs[gk].add(o, s.amount, s.currency, conv, dropped, skipped, secs)
		}
	}
	steps := make([]FunnelStep, n-1)
	for k := 1; k < n; k++ {
		steps[k-1] = FunnelStep{FromStep: fq.Ladder[k-1], FromIndex: k, ToStep: fq.Ladder[k], ToIndex: k + 1, FunnelCounts: totals[k-1].counts(o)}
	}
	for gk, a := range accs {
		st := &steps[gk.k-1]
		st.Groups = append(st.Groups, FunnelGroup{Period: gk.period, Key: gk.owner, Other: gk.other, FunnelCounts: a.counts(o)})
	}
	for i := range steps {
		g := steps[i].Groups
		sort.Slice(g, func(a, b int) bool {
			return groupLess(g[a].Period, g[a].Key, g[a].Other, g[b].Period, g[b].Key, g[b].Other)
		})
	}
	return steps, other
}

// TestTopBreakdown checks funnel and cycle-time breakdowns that keep only
// the owners with the most deals against oracles that rank and merge the
// owners from the input events: the kept owners' groups, the other group
// per period (counts, amounts, quantiles over the merged deals) and what
// the definitions say.
func TestTopBreakdown(t *testing.T) {
	s := openStore(t)
	rng := rand.New(rand.NewSource(23))
	deals := rawDeals(rng, "acme", 300)
	// More owners, unevenly: the ranking has something to rank.
	owners := []string{"ann", "bob", "cy", "dee", "eve", "fay"}
	for _, evs := range deals {
		for i := range evs {
			pick := owners[min(rng.Intn(len(owners)), rng.Intn(len(owners)))]
			switch p := evs[i].Payload.(type) {
			case *event.Opportunity:
				p.OwnerID = pick
			case *event.OwnerChange:
				p.To = pick
			}
		}
	}
	l := loadRaw(t, s, rng, deals, date("2025-01-01T00:00:00Z"))
	q := New(s.Conn())
	// The funnel with one sum per number once it keeps more than two
	// values, as for a breakdown of many (funnelSQL's perCode).
	sums := New(s.Conn())
	sums.codedKeys = 2
	ctx := context.Background()
	merged := 0
	for _, asOf := range []time.Time{date("2025-01-01T00:00:00Z"), date("2024-04-15T00:00:00Z")} {
		for _, top := range []int{0, 1, 2, 4, 6, 10} {
			for _, interval := range []string{"", "month"} {
				from, to := date("2024-01-01T00:00:00Z"), date("2025-01-01T00:00:00Z")
				fq := FunnelQuery{Tenant: "acme", AsOf: asOf, From: from, To: to, By: "owner", Interval: interval, Top: top,
					Ladder: ladderKeys(l), LadderVersion: l.Version}
				want, other := rawFunnelGroups(deals, fq)
				for _, q := range []*Querier{q, sums} {
					got, err := q.Funnel(ctx, fq)
					if err != nil {
						t.Fatal(err)
					}
					for i := range want {
						if err := approxEqual(got.Steps[i], want[i]); err != nil {
							t.Fatalf("funnel (coded keys %d) as of %s, top %d, interval %q, step %d: %v", q.codedKeys, asOf, top, interval, i+1, err)
						}
					}
					if wantTop := map[bool]int{true: top}[top > 0]; got.Definitions.Top != wantTop || got.Definitions.OtherKeys != other {
						t.Fatalf("funnel top %d: definitions top %d other_keys %d, want %d %d", top, got.Definitions.Top, got.Definitions.OtherKeys, wantTop, other)
					}
				}
				merged += other

				cq := CycleQuery{Tenant: "acme", AsOf: asOf, From: from, To: to, By: "owner", Interval: interval, Top: top,
					Ladder: ladderKeys(l), LadderVersion: l.Version}
				gotc, err := q.CycleTime(ctx, cq)
				if err != nil {
					t.Fatal(err)
				}
				wantc := rawCycle(deals, cq)
				wantc.Definitions = gotc.Definitions
				if err := approxEqual(gotc, &wantc); err != nil {
					t.Fatalf("cycle time as of %s, top %d, interval %q: %v", asOf, top, interval, err)
				}
			}
		}
	}
	if merged == 0 {
		t.Error("no owner was merged: the data does not exercise the other group")
	}
}
