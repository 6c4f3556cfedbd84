package metrics

import (
	"cmp"
	"context"
	"fmt"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/store"
)

// The tests of this file load export-shaped CRM input events through the
// real derivation and compare the answers with an oracle computed here
// from the input events alone: the stage mapping of the shipped ladder
// read by hand, not the derived events nor derive.Summarize.

// Steps of the shipped ladder the oracle needs, and its Salesforce stage
// mapping ("none" stages map to 0).
const rawWonStep = 9 // decide: closing won is evidence of it

var rawStages = map[string]int{
	"Prospecting": 0, "Qualification": 2, "Needs Analysis": 3, "Value Proposition": 4,
	"Id. Decision Makers": 5, "Perception Analysis": 6, "Proposal/Price Quote": 7,
	"Negotiation/Review": 8, "Closed Won": 9, "Closed Lost": 0,
}

var rawOpenStages = []string{"Prospecting", "Qualification", "Needs Analysis", "Value Proposition",
	"Id. Decision Makers", "Perception Analysis", "Proposal/Price Quote", "Negotiation/Review"}

// rawDeals generates n opportunities of tenant as a CRM export would carry
// them: date-only timestamps for most, one CRM edit as several typed events
// at one instant, forward jumps that skip steps, backward moves and
// re-entries, deals closed by stage change and by closed_won/closed_lost,
// lost deals later won, deals reopened by a move back to an open stage
// after the close. Ids are random, so events
// of one instant fold in a random order.
func rawDeals(rng *rand.Rand, tenant string, n int) map[string][]event.Event {
	t0 := date("2024-01-01T00:00:00Z")
	owners := []string{"ann", "bob", "cy"}
	out := map[string][]event.Event{}
	for i := 0; i < n; i++ {
		opp := fmt.Sprintf("opp-%03d", i)
		var evs []event.Event
		add := func(at time.Time, typ event.Type, p event.Payload) {
			evs = append(evs, event.Event{V: 1, ID: fmt.Sprintf("e%08x", rng.Uint32()), Tenant: tenant, Source: "salesforce",
				Type: typ, OccurredAt: at, ReceivedAt: at, OpportunityID: opp, Payload: p})
		}
		dateOnly := rng.Intn(4) > 0
		at := t0.AddDate(0, 0, rng.Intn(150))
		if !dateOnly {
			at = at.Add(time.Duration(rng.Intn(86400)) * time.Second)
		}
		next := func() {
			switch r := rng.Intn(10); {
			case r < 3: // the same instant: one CRM edit as several events
			case dateOnly:
				at = at.AddDate(0, 0, 1+rng.Intn(20))
			default:
				at = at.Add(time.Duration(1+rng.Intn(20*86400)) * time.Second)
			}
		}
		stage := rng.Intn(3)
		add(at, event.OpportunityCreated, &event.Opportunity{Stage: rawOpenStages[stage], Amount: float64(1000 * (1 + rng.Intn(50))),
			OwnerID: owners[rng.Intn(len(owners))], Team: "t1"})
		for m := rng.Intn(7); m > 0; m-- {
			next()
			switch r := rng.Intn(10); {
			case r < 6: // forward, sometimes skipping steps
				stage = min(stage+1+rng.Intn(3), len(rawOpenStages)-1)
				add(at, event.StageChanged, &event.StageChange{To: rawOpenStages[stage]})
			case r < 8: // backward, a re-entry later
				stage = rng.Intn(stage + 1)
				add(at, event.StageChanged, &event.StageChange{To: rawOpenStages[stage]})
			case r < 9:
				add(at, event.AmountChanged, &event.AmountChange{To: float64(1000 * (1 + rng.Intn(50)))})
			default:
				add(at, event.OwnerChanged, &event.OwnerChange{To: owners[rng.Intn(len(owners))]})
			}
		}
		closes := 0
		switch r := rng.Intn(10); {
		case r < 3:
		case r < 8:
			closes = 1
		default:
			closes = 2 // lost, then won, or the other way round
		}
		won := rng.Intn(2) == 0
		for ; closes > 0; closes-- {
			next()
			switch {
			case won && rng.Intn(2) == 0:
				add(at, event.StageChanged, &event.StageChange{To: "Closed Won"})
			case won:
				add(at, event.ClosedWon, &event.Won{})
			case rng.Intn(2) == 0:
				add(at, event.StageChanged, &event.StageChange{To: "Closed Lost"})
			default:
				add(at, event.ClosedLost, &event.Lost{Reason: "price"})
			}
			won = !won
		}
		if rng.Intn(4) == 0 { // a stage edit after the close
			next()
			add(at, event.StageChanged, &event.StageChange{To: rawOpenStages[rng.Intn(len(rawOpenStages))]})
		}
		rng.Shuffle(len(evs), func(a, b int) { evs[a], evs[b] = evs[b], evs[a] })
		out[opp] = evs
	}
	return out
}

// rawState is an opportunity as of a time, folded by the oracle from its
// input events: the facts, reach_time(K) and gained(K) per step (index K,
// zero = none), and when it was created and last closed.
type rawState struct {
	created, closedAt time.Time
	status, owner     string
	amount            float64
	currency          string
	// closes are the changes of status to won or lost, in order.
	closes        []rawClose
	reach, gained []time.Time
}

// rawClose is a close of an opportunity: when, and to which status.
type rawClose struct {
	at     time.Time
	status string
}

// rawFold folds the input events of one opportunity up to asOf in the
// fold's order (occurred_at, source, id) by the brief's rules: a move to a
// stage mapped to step s gains s unless a higher stage step was seen
// before (that is a regression); closing won gains the won step; a close
// to another status than the current one changes it; a move to a stage
// that closes nothing reopens a closed deal.
func rawFold(evs []event.Event, asOf time.Time, steps int) rawState {
	evs = slices.Clone(evs)
	slices.SortFunc(evs, func(a, b event.Event) int {
		if c := a.OccurredAt.Compare(b.OccurredAt); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Source, b.Source); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	s := rawState{status: "open", reach: make([]time.Time, steps+1), gained: make([]time.Time, steps+1)}
	stage, maxStage := "", 0
	gain := func(k int, at time.Time) {
		if k < 1 || k > steps || !s.gained[k].IsZero() {
			return
		}
		s.gained[k] = at
		for j := 1; j <= k; j++ {
			if s.reach[j].IsZero() {
				s.reach[j] = at
			}
		}
	}
	closeAs := func(status string, at time.Time) {
		if s.status == status {
			return
		}
		s.status, s.closedAt = status, at
		s.closes = append(s.closes, rawClose{at, status})
		if status == "won" {
			gain(rawWonStep, at)
		}
	}
	toStage := func(st string, at time.Time) {
		if st == "" || st == stage {
			return
		}
		stage = st
		if k := rawStages[st]; k > 0 {
			if k >= maxStage {
				maxStage = k
				gain(k, at)
			}
		}
		switch st {
		case "Closed Won":
			closeAs("won", at)
		case "Closed Lost":
			closeAs("lost", at)
		default: // a stage that closes nothing: a closed deal is open again
			s.status = "open"
		}
	}
	// An amount comes with its currency; none given keeps the last.
	setAmount := func(v float64, cur string) {
		s.amount = v
		if cur != "" {
			s.currency = strings.ToUpper(cur)
		}
	}
	for _, e := range evs {
		if e.OccurredAt.After(asOf) {
			break
		}
		if s.created.IsZero() {
			s.created = e.OccurredAt
		}
		switch p := e.Payload.(type) {
		case *event.Opportunity:
			setAmount(cmp.Or(p.Amount, s.amount), p.Currency)
			if p.OwnerID != "" {
				s.owner = p.OwnerID
			}
			toStage(p.Stage, e.OccurredAt)
		case *event.StageChange:
			toStage(p.To, e.OccurredAt)
		case *event.AmountChange:
			setAmount(p.To, p.Currency)
		case *event.OwnerChange:
			s.owner = p.To
		case *event.Won:
			setAmount(cmp.Or(p.Amount, s.amount), p.Currency)
			closeAs("won", e.OccurredAt)
		case *event.Lost:
			setAmount(cmp.Or(p.Amount, s.amount), p.Currency)
			closeAs("lost", e.OccurredAt)
		}
	}
	return s
}

// loadRaw derives every opportunity with the shipped ladder and stores
// the derived events and states in a random order.
func loadRaw(t *testing.T, s *store.Store, rng *rand.Rand, deals map[string][]event.Event, now time.Time) *ladder.Ladder {
	t.Helper()
	l := ladder.Default()
	var rows []store.DerivedRow
	for opp, evs := range deals {
		for _, d := range derive.Derive(evs[0].Tenant, opp, evs, l, now) {
			rows = append(rows, store.DerivedRow{Derived: d, Version: 1})
		}
	}
	insertShuffled(t, s, rng, rows, l.Len())
	return l
}

func ladderKeys(l *ladder.Ladder) []string {
	keys := make([]string, l.Len())
	for i := range keys {
		keys[i] = l.Key(i + 1)
	}
	return keys
}

// rawFunnel is the funnel without window nor breakdown, from the input
// events.
func rawFunnel(deals map[string][]event.Event, fq FunnelQuery, r *oracleRates) []FunnelStep {
	n := len(fq.Ladder)
	o := newOracleCur(r)
	accs := make([]funnelAcc, n)
	for _, evs := range deals {
		s := rawFold(evs, fq.AsOf, n)
		for k := 1; k < n; k++ {
			rk, rk1 := s.reach[k], s.reach[k+1]
			if rk.IsZero() || rk.Before(fq.From) || !rk.Before(fq.To) {
				continue
			}
			conv := !rk1.IsZero()
			dropped := !conv && s.status != "open"
			skipped := !s.gained[k].Equal(rk)
			accs[k-1].add(o, s.amount, s.currency, conv, dropped, skipped, int64(rk1.Sub(rk)/time.Second))
		}
	}
	steps := make([]FunnelStep, n-1)
	for k := 1; k < n; k++ {
		steps[k-1] = FunnelStep{FromStep: fq.Ladder[k-1], FromIndex: k, ToStep: fq.Ladder[k], ToIndex: k + 1, FunnelCounts: accs[k-1].counts(o)}
	}
	return steps
}

// TestFunnelSkippedNotZeroDays checks that a deal that reached K by
// gaining a later step is not counted as converting K→K+1 in 0 days: it is
// left out of the time figures and counted in time_to_convert.skipped.
func TestFunnelSkippedNotZeroDays(t *testing.T) {
	s := openStore(t)
	rng := rand.New(rand.NewSource(7))
	deals := rawDeals(rng, "acme", 300)
	l := loadRaw(t, s, rng, deals, date("2025-01-01T00:00:00Z"))
	q := New(s.Conn())
	ctx := context.Background()
	left := int64(0)
	for _, asOf := range []time.Time{date("2025-01-01T00:00:00Z"), date("2024-04-15T00:00:00Z"), date("2024-03-01T12:00:00Z")} {
		for _, r := range [][2]time.Time{
			{date("2024-01-01T00:00:00Z"), date("2025-01-01T00:00:00Z")},
			{date("2024-02-01T00:00:00Z"), date("2024-04-01T00:00:00Z")},
		} {
			fq := FunnelQuery{Tenant: "acme", AsOf: asOf, From: r[0], To: r[1], Ladder: ladderKeys(l), LadderVersion: l.Version}
			got, err := q.Funnel(ctx, fq)
			if err != nil {
				t.Fatal(err)
			}
			want := rawFunnel(deals, fq, nil)
			for i := range want {
				if err := approxEqual(got.Steps[i], want[i]); err != nil {
					t.Fatalf("as of %s, [%s, %s), step %d: %v", asOf, r[0], r[1], i+1, err)
				}
				left += want[i].TimeToConvert.Skipped
			}
		}
	}
	if left == 0 {
		t.Error("no converted deal skipped a step: the data does not exercise the rule")
	}
}

// rawCycle is the cycle time answer from the input events.
func rawCycle(deals map[string][]event.Event, cq CycleQuery) CycleResult {
	n := len(cq.Ladder)
	k := slices.Index(cq.Ladder, cq.FromStep) + 1
	type acc struct {
		secs       [3][]int64
		notReached [3]int64
	}
	add := func(a *acc, o int, ok bool, secs int64) {
		for _, i := range []int{0, o} {
			if ok {
				a.secs[i] = append(a.secs[i], secs)
			} else {
				a.notReached[i]++
			}
		}
	}
	outcomes := func(a *acc) CycleOutcomes {
		var out [3]CycleTime
		for i := range out {
			days := make([]float64, len(a.secs[i]))
			for j, s := range a.secs[i] {
				days[j] = float64(s) / 86400
			}
			sort.Float64s(days)
			out[i] = CycleTime{N: int64(len(days)), NotReached: a.notReached[i],
				Median: quantile(days, 0.5), P75: quantile(days, 0.75), P90: quantile(days, 0.9)}
		}
		return CycleOutcomes{Closed: out[0], Won: out[1], Lost: out[2]}
	}
	var total acc
	type gkey struct {
		period, key string
		other       bool
	}
	groups := map[gkey]*acc{}
	var counted []rawState
	pop := map[string]int{}
	for _, evs := range deals {
		s := rawFold(evs, cq.AsOf, n)
		if s.status == "open" || s.closedAt.Before(cq.From) || !s.closedAt.Before(cq.To) {
			continue
		}
		counted = append(counted, s)
		pop[s.owner]++
	}
	kept, _ := rawTop(pop, cq.Top)
	for _, s := range counted {
		o := 1
		if s.status == "lost" {
			o = 2
		}
		start := s.created
		if k > 0 {
			start = s.reach[k]
		}
		ok := !start.IsZero() && !start.After(s.closedAt)
		secs := int64(s.closedAt.Sub(start) / time.Second)
		add(&total, o, ok, secs)
		if cq.By != "" || cq.Interval != "" {
			gk := gkey{period: periodStart(s.closedAt, cq.Interval)}
			if cq.By != "" {
				gk.key = s.owner
				if !kept[s.owner] {
					gk.key, gk.other = "", true
				}
			}
			if groups[gk] == nil {
				groups[gk] = &acc{}
			}
			add(groups[gk], o, ok, secs)
		}
	}
	res := CycleResult{FromStep: cq.FromStep, FromIndex: k, CycleOutcomes: outcomes(&total)}
	for gk, a := range groups {
		res.Groups = append(res.Groups, CycleGroup{Period: gk.period, Key: gk.key, Other: gk.other, CycleOutcomes: outcomes(a)})
	}
	g := res.Groups
	sort.Slice(g, func(a, b int) bool {
		return groupLess(g[a].Period, g[a].Key, g[a].Other, g[b].Period, g[b].Key, g[b].Other)
	})
	return res
}

// TestCycleTimeAgainstRawOracle compares the cycle time, from creation and
// from several steps, with and without breakdowns, for several as_of
// dates and periods, with the oracle from the input events.
func TestCycleTimeAgainstRawOracle(t *testing.T) {
	s := openStore(t)
	rng := rand.New(rand.NewSource(11))
	deals := rawDeals(rng, "acme", 300)
	// Another tenant with the same opportunity ids.
	other := rawDeals(rand.New(rand.NewSource(12)), "other", 50)
	l := loadRaw(t, s, rng, deals, date("2025-01-01T00:00:00Z"))
	loadRaw(t, s, rng, other, date("2025-01-01T00:00:00Z"))
	q := New(s.Conn())
	ctx := context.Background()
	var won, lost, notReached int64
	n := 0
	for _, asOf := range []time.Time{date("2025-01-01T00:00:00Z"), date("2024-05-10T00:00:00Z"), date("2024-03-15T06:00:00Z")} {
		for _, r := range [][2]time.Time{
			{date("2024-01-01T00:00:00Z"), date("2025-01-01T00:00:00Z")},
			{date("2024-02-15T00:00:00Z"), date("2024-05-01T00:00:00Z")},
		} {
			for _, from := range []string{"", "explore", "change", "invest", "decide"} {
				g := [][2]string{{"", ""}, {"owner", ""}, {"", "month"}, {"owner", "week"}}[n%4]
				n++
				cq := CycleQuery{Tenant: "acme", AsOf: asOf, From: r[0], To: r[1], FromStep: from, By: g[0], Interval: g[1],
					Ladder: ladderKeys(l), LadderVersion: l.Version}
				got, err := q.CycleTime(ctx, cq)
				if err != nil {
					t.Fatal(err)
				}
				want := rawCycle(deals, cq)
				want.Definitions = Definitions{Tenant: "acme", AsOf: asOf, From: timePtr(r[0]), To: timePtr(r[1]),
					By: g[0], Interval: g[1], LadderVersion: l.Version, Ladder: ladderKeys(l), Rules: cycleRules}
				if err := approxEqual(got, &want); err != nil {
					t.Fatalf("%+v: %v", cq, err)
				}
				won += want.Won.N
				lost += want.Lost.N
				notReached += want.Closed.NotReached
			}
		}
	}
	if won == 0 || lost == 0 || notReached == 0 {
		t.Errorf("coverage: won %d lost %d not reached %d", won, lost, notReached)
	}
}

// TestCycleTimeReclosed pins a lost deal later won: as of a date between
// the two closes it is lost, closed at the loss; after, won, closed at the
// win; and a date-only deal created and won the same day took 0 days.
func TestCycleTimeReclosed(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	t0 := date("2024-01-01T00:00:00Z")
	ev := func(opp, id string, day int, typ event.Type, p event.Payload) event.Event {
		at := t0.AddDate(0, 0, day)
		return event.Event{V: 1, ID: id, Tenant: "t", Source: "salesforce", Type: typ, OccurredAt: at, ReceivedAt: at, OpportunityID: opp, Payload: p}
	}
	deals := map[string][]event.Event{
		"a": {
			ev("a", "1", 0, event.OpportunityCreated, &event.Opportunity{Stage: "Qualification", Amount: 10}),
			ev("a", "2", 10, event.ClosedLost, &event.Lost{}),
			ev("a", "3", 30, event.ClosedWon, &event.Won{}),
		},
		"b": {
			ev("b", "1", 5, event.OpportunityCreated, &event.Opportunity{Stage: "Prospecting", Amount: 10}),
			ev("b", "2", 5, event.StageChanged, &event.StageChange{To: "Closed Won"}),
		},
	}
	l := loadRaw(t, s, rand.New(rand.NewSource(1)), deals, t0.AddDate(1, 0, 0))
	q := New(s.Conn())
	ask := func(asOf time.Time, from string) *CycleResult {
		t.Helper()
		r, err := q.CycleTime(ctx, CycleQuery{Tenant: "t", AsOf: asOf, From: t0, To: t0.AddDate(1, 0, 0), FromStep: from,
			Ladder: ladderKeys(l), LadderVersion: l.Version})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := ask(t0.AddDate(0, 0, 20), "")
	if r.Lost.N != 1 || *r.Lost.Median != 10 || r.Won.N != 1 || *r.Won.Median != 0 || r.Closed.N != 2 {
		t.Errorf("as of day 20: %+v", r.CycleOutcomes)
	}
	// Sorted [0, 30]: every quantile is element floor(q*2) = 1.
	r = ask(t0.AddDate(0, 0, 40), "")
	if r.Lost.N != 0 || r.Lost.Median != nil || r.Won.N != 2 || *r.Won.Median != 30 || *r.Won.P90 != 30 {
		t.Errorf("as of day 40: %+v", r.CycleOutcomes)
	}
	// From explore: a reached it at creation; b only when won (decide),
	// the same instant as its close.
	r = ask(t0.AddDate(0, 0, 20), "explore")
	if r.Won.N != 1 || *r.Won.Median != 0 || r.Lost.N != 1 || *r.Lost.Median != 10 || r.Won.NotReached != 0 {
		t.Errorf("from explore: %+v", r.CycleOutcomes)
	}
	// From execute: never reached.
	r = ask(t0.AddDate(0, 0, 40), "execute")
	if r.Won.N != 0 || r.Won.NotReached != 2 || r.Won.Median != nil {
		t.Errorf("from execute: %+v", r.CycleOutcomes)
	}
	if _, err := q.CycleTime(ctx, CycleQuery{Tenant: "t", From: t0, To: t0.AddDate(1, 0, 0), FromStep: "nope", Ladder: ladderKeys(l)}); err == nil {
		t.Error("an unknown from_step was accepted")
	}
}
