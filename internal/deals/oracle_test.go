package deals

import (
	"context"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

func TestMain(m *testing.M) { chtest.Main(m) }

func date(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// now is when the test data is derived.
var now = date("2025-01-01T00:00:00Z")

// Forward CRM stages of the default ladder and the step each maps to.
var (
	stageNames = []string{"Qualification", "Needs Analysis", "Value Proposition", "Perception Analysis", "Proposal/Price Quote"}
	stageSteps = map[string]int{"Qualification": 2, "Needs Analysis": 3, "Value Proposition": 4, "Perception Analysis": 6, "Proposal/Price Quote": 7}
)

// Step indexes of the default ladder the oracle needs.
const (
	stepTime      = 1
	stepConsensus = 5
	stepInvest    = 6
	stepDecide    = 9
	needed        = 3 // stakeholders for consensus
)

// testDeal is one generated deal: its input events and what the oracle
// needs to know about them.
type testDeal struct {
	id   string
	name string
	// owner and team are those at creation; oracleDeal follows the
	// reassignments.
	owner  string
	team   string
	amount float64
	cur    string
	evs    []event.Event
}

// genDeals builds n deals of tenant from a small vocabulary of input
// events whose derived consequences the oracle (oracleDeal) knows: forward
// stage changes, buyer contacts with a consensus role, calls (advanced with
// a buyer action item due five days later, no next step, seller-only
// actions, no buyer present), close dates pushed, reassignments (to
// another owner, sometimes another team), and closes. Events of one deal
// never share a second.
func genDeals(rng *rand.Rand, tenant string, n int) []testDeal {
	t0 := date("2024-01-01T00:00:00Z")
	owners := []string{"ann", "bob", "cy"}
	teams := []string{"east", "west"}
	curs := []string{"USD", "EUR"}
	var out []testDeal
	for i := 0; i < n; i++ {
		d := testDeal{id: fmt.Sprintf("opp-%03d", i), owner: owners[rng.Intn(3)], team: teams[rng.Intn(2)],
			amount: float64(1000 * (1 + rng.Intn(60))), cur: curs[rng.Intn(2)]}
		if rng.Intn(4) > 0 {
			d.name = fmt.Sprintf("Deal %d", i)
		}
		seq := 0
		add := func(at time.Time, typ event.Type, p event.Payload) {
			seq++
			d.evs = append(d.evs, event.Event{V: 1, ID: fmt.Sprintf("%s-e%02d", d.id, seq), Tenant: tenant, Source: "crm",
				Type: typ, OccurredAt: at, ReceivedAt: at, OpportunityID: d.id, Payload: p})
		}
		at := t0.Add(time.Duration(rng.Intn(200*86400)) * time.Second)
		closeDate := at.AddDate(0, 2, rng.Intn(60)).Truncate(24 * time.Hour)
		add(at, event.OpportunityCreated, &event.Opportunity{Name: d.name, Stage: "Prospecting", Amount: d.amount, Currency: d.cur,
			CloseDate: event.Date(closeDate.Format(time.DateOnly)), OwnerID: d.owner, Team: d.team})
		stage, contacts := -1, 0
		// Reassignments draw from a source of their own, so that the
		// other events stay as they were.
		orng := rand.New(rand.NewSource(int64(i)))
		for m := rng.Intn(9); m > 0; m-- {
			at = at.Add(time.Duration(3600+rng.Intn(25*86400)) * time.Second)
			if orng.Intn(4) == 0 { // reassigned an hour before, sometimes to another team
				ch := &event.OwnerChange{To: owners[orng.Intn(3)]}
				if orng.Intn(2) == 0 {
					ch.Team = teams[orng.Intn(2)]
				}
				add(at.Add(-time.Hour+time.Second), event.OwnerChanged, ch)
			}
			switch r := rng.Intn(12); {
			case r < 3 && stage < len(stageNames)-1:
				stage += 1 + rng.Intn(min(2, len(stageNames)-1-stage))
				add(at, event.StageChanged, &event.StageChange{To: stageNames[stage]})
			case r < 5:
				contacts++
				add(at, event.ContactAdded, &event.Contact{ContactID: fmt.Sprintf("c%d", contacts),
					Email: fmt.Sprintf("p%d@buyer.example", contacts), Role: "Champion"})
			case r < 9:
				call := &event.Call{CallID: fmt.Sprintf("call%d", m), StartedAt: at, DurationSeconds: 1800,
					Participants: []event.Participant{{Email: "rep@seller.example", Side: event.Seller}}}
				buyer := event.Participant{Email: "p1@buyer.example", Side: event.Buyer}
				switch rng.Intn(4) {
				case 0: // advanced, with a buyer action item
					due := at.Add(5 * 24 * time.Hour)
					call.Participants = append(call.Participants, buyer)
					call.ActionItems = []event.ActionItem{{Text: "call me back", OwnerSide: event.Buyer, DueAt: &due}}
				case 1: // no next step
					call.Participants = append(call.Participants, buyer)
				case 2: // seller-only actions
					call.Participants = append(call.Participants, buyer)
					call.ActionItems = []event.ActionItem{{Text: "send the deck", OwnerSide: event.Seller}}
				case 3: // no buyer present
				}
				add(at, event.CallCompleted, call)
			case r < 11:
				from := closeDate
				closeDate = closeDate.AddDate(0, 0, 7+rng.Intn(30))
				add(at, event.CloseDateChanged, &event.CloseDateChange{From: event.Date(from.Format(time.DateOnly)), To: event.Date(closeDate.Format(time.DateOnly))})
			default:
				if rng.Intn(2) == 0 {
					add(at, event.ClosedWon, &event.Won{})
				} else {
					add(at, event.ClosedLost, &event.Lost{Reason: "competitor"})
				}
				m = 1 // nothing after a close
			}
		}
		out = append(out, d)
	}
	return out
}

// oracleRow is what the oracle knows of a deal as of a date.
type oracleRow struct {
	exists      bool
	owner, team string
	status      string
	hiStep      int
	closeDate   time.Time
	days        int64
	warnings    []Warning
}

// oracleDeal folds a deal's input events up to asOf by the default
// ladder's rules for the generated vocabulary, independently of derive.
func oracleDeal(d testDeal, l *ladder.Ladder, asOf time.Time) oracleRow {
	var o oracleRow
	gained := map[int]time.Time{}
	var lastGain, lastBuyer, created time.Time
	hi := 0
	status := "open"
	people := map[string]bool{}
	var single time.Time
	singleDone := false
	var overdue []time.Time // overdue misses
	type pending struct{ promised, fire time.Time }
	var items []pending
	var pushed []time.Time
	var lastCall time.Time
	lastCallAdvanced := false
	gain := func(k int, at time.Time) {
		if _, ok := gained[k]; ok {
			return
		}
		gained[k] = at
		hi = max(hi, k)
		lastGain, lastBuyer = at, at
		if hi >= stepInvest && !singleDone && status == "open" {
			if len(people) < needed {
				single, singleDone = at, true
			}
		}
	}
	engage := func(key string, at time.Time) {
		if people[key] {
			return
		}
		people[key] = true
		if len(people) == needed {
			gain(stepConsensus, at)
		}
	}
	// fire fires the buyer action items due before t.
	fire := func(t time.Time) {
		keep := items[:0]
		for _, it := range items {
			if !it.fire.Before(t) {
				keep = append(keep, it)
				continue
			}
			if status == "open" && !lastBuyer.After(it.promised) && hi < l.Len() {
				overdue = append(overdue, it.fire)
			}
		}
		items = keep
	}
	for _, e := range d.evs {
		if e.OccurredAt.After(asOf) {
			break
		}
		fire(e.OccurredAt)
		o.exists = true
		switch p := e.Payload.(type) {
		case *event.Opportunity:
			created = e.OccurredAt
			o.closeDate = p.CloseDate.Time()
			o.owner, o.team = p.OwnerID, p.Team
		case *event.OwnerChange:
			o.owner = p.To
			if p.Team != "" {
				o.team = p.Team
			}
		case *event.StageChange:
			gain(stageSteps[p.To], e.OccurredAt)
		case *event.Contact:
			engage(strings.ToLower(p.Email), e.OccurredAt)
		case *event.Call:
			present, buyerItem := false, false
			for _, pp := range p.Participants {
				if pp.Side == event.Buyer {
					present = true
					engage(pp.Key(), e.OccurredAt)
				}
			}
			for _, it := range p.ActionItems {
				if it.OwnerSide == event.Buyer {
					buyerItem = true
					if status == "open" {
						items = append(items, pending{promised: e.OccurredAt, fire: it.DueAt.Add(l.OverdueGrace())})
					}
				}
			}
			if present {
				lastBuyer = e.OccurredAt
				gain(stepTime, e.OccurredAt)
				lastCall, lastCallAdvanced = e.OccurredAt, buyerItem
			}
		case *event.CloseDateChange:
			if status == "open" && hi < l.Len() {
				pushed = append(pushed, e.OccurredAt)
			}
			o.closeDate = p.To.Time()
		case *event.Won:
			status = "won"
			gain(stepDecide, e.OccurredAt)
		case *event.Lost:
			status = "lost"
		}
	}
	fire(asOf.Add(time.Second))
	if !o.exists {
		return o
	}
	o.status, o.hiStep = status, hi
	ref := created
	if !lastGain.IsZero() {
		ref = lastGain
	}
	o.days = (asOf.Unix() - ref.Unix()) / 86400
	o.warnings = []Warning{}
	if status != "open" {
		return o
	}
	if th := l.StallAfter(max(hi, 1)); th > 0 && !ref.Add(th).After(asOf) {
		o.warnings = append(o.warnings, Warning{Kind: WarnStalled, Since: ref.Add(th)})
	}
	if !single.IsZero() {
		c, ok := gained[stepConsensus]
		if !ok || !c.After(single) {
			o.warnings = append(o.warnings, Warning{Kind: WarnSingleThreaded, Since: single})
		}
	}
	engaged := lastGain
	if lastCall.After(engaged) {
		engaged = lastCall
	}
	for _, f := range overdue {
		if f.After(engaged) {
			o.warnings = append(o.warnings, Warning{Kind: WarnBuyerActionOverdue, Since: f})
			break
		}
	}
	var push time.Time
	for _, t := range pushed {
		if t.After(asOf.Add(-PushedWindow)) {
			push = t
		}
	}
	if !push.IsZero() {
		o.warnings = append(o.warnings, Warning{Kind: WarnCloseDatePushed, Since: push})
	}
	if !lastCall.IsZero() && !lastCallAdvanced && !lastGain.After(lastCall) {
		o.warnings = append(o.warnings, Warning{Kind: WarnNoNextStep, Since: lastCall})
	}
	return o
}

// loadDeals derives the deals with the default ladder at now and stores
// their input events, derived events and states.
func loadDeals(t *testing.T, st *store.Store, ds []testDeal) *ladder.Ladder {
	t.Helper()
	l := ladder.Default()
	var rows []store.DerivedRow
	var raw []store.RawEvent
	for _, d := range ds {
		for _, x := range derive.Derive(d.evs[0].Tenant, d.id, d.evs, l, now) {
			rows = append(rows, store.DerivedRow{Derived: x, Version: 1})
		}
		for i, e := range d.evs {
			b, err := event.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			raw = append(raw, store.RawEvent{Tenant: e.Tenant, OpportunityID: d.id, Source: e.Source, EventID: e.ID,
				Type: string(e.Type), OccurredAt: e.OccurredAt, ReceivedAt: e.ReceivedAt, StreamSeq: uint64(i + 1), Payload: b})
		}
	}
	ctx := context.Background()
	if err := st.InsertEvents(ctx, raw); err != nil {
		t.Fatal(err)
	}
	if err := st.InsertDerivedWithStates(ctx, rows, l.Len()); err != nil {
		t.Fatal(err)
	}
	return l
}

func hasKind(ws []Warning, kind string) bool {
	return slices.ContainsFunc(ws, func(w Warning) bool { return w.Kind == kind })
}

func sameWarnings(a, b []Warning) bool {
	return slices.EqualFunc(a, b, func(x, y Warning) bool { return x.Kind == y.Kind && x.Since.Equal(y.Since) })
}

// TestListAndWarningsAgainstOracle compares every filter of the deal list,
// the warnings summary and each deal's page with an oracle folded from the
// input events, at two as_of dates.
func TestListAndWarningsAgainstOracle(t *testing.T) {
	st := storetest.Open(t, store.Options{})
	rng := rand.New(rand.NewSource(22))
	ds := genDeals(rng, "acme", 300)
	l := loadDeals(t, st, ds)
	loadDeals(t, st, genDeals(rand.New(rand.NewSource(23)), "other", 50)) // same ids, another tenant
	r := New(st, nil, 0)
	ctx := context.Background()
	yes, no := true, false
	cf, ct := date("2024-05-01T00:00:00Z"), date("2024-08-01T00:00:00Z")
	filters := []Filter{
		{}, {Step: "explore"}, {Step: "invest"}, {OwnerID: "ann"}, {Team: "west"}, {Status: "open"}, {Status: "won"}, {Status: "lost"},
		{Stalled: &yes}, {Stalled: &no}, {SingleThreaded: &yes}, {SingleThreaded: &no, Status: "open"},
		{Warning: "any"}, {Warning: WarnBuyerActionOverdue}, {Warning: WarnCloseDatePushed}, {Warning: WarnNoNextStep},
		{Warning: WarnStalled, OwnerID: "bob", Team: "east"},
		{CloseFrom: &cf}, {CloseTo: &ct}, {CloseFrom: &cf, CloseTo: &ct, Status: "open"},
	}
	seen := map[string]int{}
	for _, asOf := range []time.Time{date("2024-06-15T12:00:00Z"), date("2024-10-01T00:00:00Z")} {
		oracle := map[string]oracleRow{}
		for _, d := range ds {
			oracle[d.id] = oracleDeal(d, l, asOf)
		}
		byID := map[string]testDeal{}
		for _, d := range ds {
			byID[d.id] = d
		}
		for _, f := range filters {
			var want []testDeal
			for _, d := range ds {
				o := oracle[d.id]
				if !o.exists || !matches(o, d, f, l) {
					continue
				}
				want = append(want, d)
			}
			slices.SortFunc(want, func(a, b testDeal) int {
				if a.amount != b.amount {
					if a.amount > b.amount {
						return -1
					}
					return 1
				}
				return strings.Compare(a.id, b.id)
			})
			got, err := r.List(ctx, ListQuery{Tenant: "acme", AsOf: asOf, Ladder: l, Filter: f, PageSize: 1000})
			if err != nil {
				t.Fatalf("list %+v: %v", f, err)
			}
			if got.Total != int64(len(want)) || len(got.Deals) != len(want) {
				t.Fatalf("as of %s, filter %+v: %d deals (total %d), oracle %d", asOf, f, len(got.Deals), got.Total, len(want))
			}
			for i, row := range got.Deals {
				d := want[i]
				o := oracle[d.id]
				if row.OpportunityID != d.id || row.Name != d.name || row.OwnerID != o.owner || row.Team != o.team ||
					row.Amount != d.amount || row.Currency != d.cur || row.Status != o.status || row.StepIndex != o.hiStep ||
					row.DaysSinceCommitment != o.days || row.CloseDate == nil || *row.CloseDate != o.closeDate.Format(time.DateOnly) {
					t.Fatalf("as of %s, filter %+v, row %d: %+v, oracle %s %+v", asOf, f, i, row, d.id, o)
				}
				if !sameWarnings(row.Warnings, o.warnings) {
					t.Fatalf("as of %s, deal %s: warnings %+v, oracle %+v", asOf, d.id, row.Warnings, o.warnings)
				}
			}
			if len(want) > 0 {
				seen[fmt.Sprintf("%+v", f)]++
			}
		}

		// Paging cuts the same order.
		all, err := r.List(ctx, ListQuery{Tenant: "acme", AsOf: asOf, Ladder: l, PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, page := range []int{1, 3, 7} {
			got, err := r.List(ctx, ListQuery{Tenant: "acme", AsOf: asOf, Ladder: l, Page: page, PageSize: 40})
			if err != nil {
				t.Fatal(err)
			}
			lo, hi := min((page-1)*40, len(all.Deals)), min(page*40, len(all.Deals))
			if got.Total != all.Total || !slices.EqualFunc(got.Deals, all.Deals[lo:hi], func(a, b Row) bool { return a.OpportunityID == b.OpportunityID }) {
				t.Fatalf("as of %s, page %d of 40: %d deals, want rows %d..%d", asOf, page, len(got.Deals), lo, hi)
			}
		}

		// The warnings summary.
		wr, err := r.Warnings(ctx, WarningsQuery{Tenant: "acme", AsOf: asOf, Ladder: l, PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		total := newCounts("")
		kinds := map[string]int64{}
		owners := map[string]int64{}
		for _, d := range ds {
			o := oracle[d.id]
			if len(o.warnings) == 0 {
				continue
			}
			total.Deals++
			total.AmountsByCurrency[d.cur] += d.amount
			owners[o.owner]++
			for _, w := range o.warnings {
				kinds[w.Kind]++
			}
		}
		if wr.Total.Deals != total.Deals || len(wr.Deals) != int(total.Deals) {
			t.Fatalf("as of %s: %d deals with warnings (%d listed), oracle %d", asOf, wr.Total.Deals, len(wr.Deals), total.Deals)
		}
		for cur, a := range total.AmountsByCurrency {
			if wr.Total.AmountsByCurrency[cur] != a {
				t.Errorf("as of %s: warned amount in %s %g, oracle %g", asOf, cur, wr.Total.AmountsByCurrency[cur], a)
			}
		}
		for _, k := range wr.ByKind {
			if k.Deals != kinds[k.Key] || wr.Total.Kinds[k.Key] != kinds[k.Key] {
				t.Errorf("as of %s: %s %d deals (total says %d), oracle %d", asOf, k.Key, k.Deals, wr.Total.Kinds[k.Key], kinds[k.Key])
			}
		}
		for _, ow := range wr.ByOwner {
			if ow.Deals != owners[ow.Key] {
				t.Errorf("as of %s: owner %s %d deals, oracle %d", asOf, ow.Key, ow.Deals, owners[ow.Key])
			}
		}
		for _, kind := range WarningKinds {
			if kinds[kind] == 0 {
				t.Errorf("as of %s: no deal has %s: the data does not exercise it", asOf, kind)
			}
		}

		// Each deal's page has the same warnings, facts and step.
		for _, d := range ds {
			o := oracle[d.id]
			got, err := r.Deal(ctx, DealQuery{Tenant: "acme", OpportunityID: d.id, AsOf: asOf, Ladder: l})
			if !o.exists {
				if _, ok := err.(*NotFoundError); !ok {
					t.Fatalf("deal %s before its first event: %v, want not found", d.id, err)
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if !sameWarnings(got.Warnings, o.warnings) || got.HighestStepIndex != o.hiStep || got.Facts.Status != o.status ||
				got.DaysSinceCommitment != o.days || got.Name != d.name || got.Facts.Amount != d.amount || got.Facts.OwnerID != o.owner || got.Facts.Team != o.team {
				t.Fatalf("as of %s, deal %s: %+v %+v %s, oracle %+v", asOf, d.id, got.Warnings, got.Facts, got.HighestStep, o)
			}
		}
	}
	for _, f := range filters {
		if seen[fmt.Sprintf("%+v", f)] == 0 {
			t.Errorf("filter %+v selects no deal at either date: the data does not exercise it", f)
		}
	}
}

// matches applies a filter to the oracle's view of a deal.
func matches(o oracleRow, d testDeal, f Filter, l *ladder.Ladder) bool {
	has := func(kind string) bool { return hasKind(o.warnings, kind) }
	switch {
	case f.Step != "" && l.Index(f.Step) != o.hiStep,
		f.OwnerID != "" && f.OwnerID != o.owner,
		f.Team != "" && f.Team != o.team,
		f.Status != "" && f.Status != o.status,
		f.Stalled != nil && *f.Stalled != has(WarnStalled),
		f.SingleThreaded != nil && *f.SingleThreaded != has(WarnSingleThreaded),
		f.Warning == "any" && len(o.warnings) == 0,
		f.Warning != "" && f.Warning != "any" && !has(f.Warning),
		f.CloseFrom != nil && o.closeDate.Before(*f.CloseFrom),
		f.CloseTo != nil && !o.closeDate.Before(*f.CloseTo):
		return false
	}
	return true
}
