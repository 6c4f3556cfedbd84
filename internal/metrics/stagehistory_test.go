package metrics

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/store"
)

// The stage history oracle works on the raw input events: it knows the
// default ladder's Salesforce stages by heart and replays each deal's CRM
// events in the fold's order (occurred_at, source, id), without derive.

// shStages are the default ladder's Salesforce stages and their steps.
var shStages = map[string]int{
	"Prospecting": 0, "Qualification": 2, "Needs Analysis": 3, "Value Proposition": 4,
	"Id. Decision Makers": 5, "Perception Analysis": 6, "Proposal/Price Quote": 7,
	"Negotiation/Review": 8, "Closed Won": 9, "Closed Lost": 0,
}

type shEntry struct {
	at    time.Time
	stage string
}

// oracleStageHistory computes the stage history of the deals' raw events
// as of asOf, grouped by the By value as of asOf ("" for none).
func oracleStageHistory(deals map[string][]event.Event, asOf time.Time, by string) (StageHistory, map[string]StageHistory) {
	type acc struct {
		stats map[string]*StageStats
		secs  map[string][]float64
		moves map[[2]string]int64
	}
	accs := map[string]*acc{}
	get := func(k string) *acc {
		if accs[k] == nil {
			accs[k] = &acc{stats: map[string]*StageStats{}, secs: map[string][]float64{}, moves: map[[2]string]int64{}}
		}
		return accs[k]
	}
	for _, evs := range deals {
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
		var (
			entries            []shEntry
			stage, status      = "", "open"
			owner, team, other string
		)
		enter := func(at time.Time, to string) {
			if to == "" || to == stage {
				return
			}
			stage = to
			entries = append(entries, shEntry{at.UTC().Truncate(time.Second), to})
			switch to {
			case "Closed Won":
				status = "won"
			case "Closed Lost":
				status = "lost"
			default: // a stage that closes nothing reopens a closed deal
				status = "open"
			}
		}
		for _, e := range evs {
			if e.OccurredAt.UTC().Truncate(time.Second).After(asOf) {
				break
			}
			switch p := e.Payload.(type) {
			case *event.Opportunity:
				owner, team = cmp.Or(p.OwnerID, owner), cmp.Or(p.Team, team)
				enter(e.OccurredAt, p.Stage)
			case *event.StageChange:
				enter(e.OccurredAt, p.To)
			case *event.OwnerChange:
				owner, team = p.To, cmp.Or(p.Team, team)
			case *event.Won:
				status = "won"
			case *event.Lost:
				status = "lost"
			}
		}
		if len(entries) == 0 {
			continue
		}
		switch by {
		case "owner":
			other = owner
		case "team":
			other = team
		}
		keys := []string{""}
		if by != "" {
			keys = append(keys, "g:"+other)
		}
		for _, k := range keys {
			a := get(k)
			for i, en := range entries {
				st := a.stats[en.stage]
				if st == nil {
					st = &StageStats{Stage: en.stage, StepIndex: shStages[en.stage], Step: stepName(defaultSteps(), shStages[en.stage])}
					a.stats[en.stage] = st
				}
				st.Entries++
				seen := false
				for _, p := range entries[:i] {
					seen = seen || p.stage == en.stage
				}
				if seen {
					st.ReEntries++
				} else {
					st.Deals++
				}
				prev := ""
				if i > 0 {
					prev = entries[i-1].stage
				}
				a.moves[[2]string{prev, en.stage}]++
				if i+1 < len(entries) {
					a.secs[en.stage] = append(a.secs[en.stage], float64(entries[i+1].at.Sub(en.at)/time.Second))
				} else if status == "open" {
					st.Current++
				}
			}
		}
	}
	build := func(a *acc) StageHistory {
		var moves []StageTransition
		for m, n := range a.moves {
			moves = append(moves, StageTransition{From: m[0], To: m[1], FromStepIndex: shStages[m[0]], ToStepIndex: shStages[m[1]], Count: n})
		}
		for s, secs := range a.secs {
			sort.Float64s(secs)
			t := StageTime{N: int64(len(secs))}
			day := func(q float64) *float64 { v := *quantile(secs, q) / 86400; return &v }
			t.Median, t.P75, t.P90 = day(0.5), day(0.75), day(0.9)
			a.stats[s].TimeInStage = t
		}
		return stageHistory(a.stats, moves)
	}
	total := StageHistory{Stages: []StageStats{}, Transitions: []StageTransition{}}
	if a := accs[""]; a != nil {
		total = build(a)
	}
	groups := map[string]StageHistory{}
	for k, a := range accs {
		if k != "" {
			groups[k[2:]] = build(a)
		}
	}
	return total, groups
}

// stageHistoryDeals generates export-shaped CRM histories: date-only and
// timed events, one edit as several typed events at one instant, backward
// moves, re-entries (also within one second), skipped stages, owner
// changes, closes by stage and by closed_won / closed_lost.
func stageHistoryDeals(rng *rand.Rand, n int, t0 time.Time) map[string][]event.Event {
	names := make([]string, 0, len(shStages))
	for s := range shStages {
		names = append(names, s)
	}
	slices.Sort(names)
	open := slices.DeleteFunc(slices.Clone(names), func(s string) bool { return s == "Closed Won" || s == "Closed Lost" })
	owners := []string{"ann", "bob", "cyd"}
	teams := map[string]string{"ann": "east", "bob": "east", "cyd": "west"}
	deals := map[string][]event.Event{}
	for d := range n {
		opp := fmt.Sprintf("deal-%03d", d)
		var evs []event.Event
		at := t0.Add(time.Duration(rng.Intn(20*24)) * time.Hour)
		dateOnly := rng.Intn(2) == 0
		if dateOnly {
			at = at.Truncate(24 * time.Hour)
		}
		add := func(p event.Payload, typ event.Type) {
			e := event.Event{V: 1, ID: fmt.Sprintf("e%03d-%02d", d, len(evs)), Tenant: "acme", Source: "salesforce", Type: typ,
				OccurredAt: at, ReceivedAt: at, OpportunityID: opp, Payload: p}
			if rng.Intn(8) == 0 { // ids do not follow time: the fold orders an instant by id
				e.ID = fmt.Sprintf("e%03d-x%02d", d, rng.Intn(100))
			}
			if err := e.Validate(); err != nil {
				panic(err)
			}
			evs = append(evs, e)
		}
		if rng.Intn(6) != 0 {
			o := owners[rng.Intn(3)]
			add(&event.Opportunity{Name: "Deal", Amount: 1000, Stage: open[rng.Intn(len(open))], OwnerID: o, Team: teams[o]},
				event.OpportunityCreated)
		}
		// One closing stage at most: derive gives a second close with
		// the same status (lost, won, lost again) the first one's id.
		closing := false
		for range rng.Intn(8) {
			switch r := rng.Intn(10); {
			case r < 3: // same instant
			case dateOnly:
				at = at.Add(time.Duration(1+rng.Intn(6)) * 24 * time.Hour)
			default:
				at = at.Add(time.Duration(1+rng.Intn(200)) * time.Hour)
			}
			switch r := rng.Intn(12); {
			case r < 7:
				add(&event.StageChange{To: open[rng.Intn(len(open))]}, event.StageChanged)
			case r < 8:
				o := owners[rng.Intn(3)]
				add(&event.Opportunity{Amount: 2000, Stage: open[rng.Intn(len(open))], OwnerID: o, Team: teams[o]}, event.OpportunityUpdated)
			case r < 9:
				o := owners[rng.Intn(3)]
				add(&event.OwnerChange{To: o, Team: teams[o]}, event.OwnerChanged)
			case r < 10 || closing:
				add(&event.AmountChange{To: 3000}, event.AmountChanged)
			default:
				closing = true
				add(&event.StageChange{To: []string{"Closed Won", "Closed Lost"}[rng.Intn(2)]}, event.StageChanged)
			}
		}
		switch rng.Intn(5) {
		case 0:
			add(&event.Won{}, event.ClosedWon)
		case 1:
			add(&event.Lost{Reason: "price"}, event.ClosedLost)
		}
		rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
		deals[opp] = evs
	}
	return deals
}

// loadDeals derives the deals' events with the default ladder and stores
// the derived rows and states.
func loadDeals(t *testing.T, s *store.Store, deals map[string][]event.Event, now time.Time) {
	t.Helper()
	l := ladder.Default()
	var rows []store.DerivedRow
	for opp, evs := range deals {
		for _, d := range derive.Derive("acme", opp, evs, l, now) {
			rows = append(rows, store.DerivedRow{Derived: d, Version: 1})
		}
	}
	if err := s.InsertDerivedWithStates(context.Background(), rows, l.Len()); err != nil {
		t.Fatal(err)
	}
}

// defaultSteps are the default ladder's step keys.
func defaultSteps() []string {
	l := ladder.Default()
	keys := make([]string, l.Len())
	for i := range keys {
		keys[i] = l.Key(i + 1)
	}
	return keys
}

func stageHistoryQuery(asOf time.Time, by string) StageHistoryQuery {
	l := ladder.Default()
	return StageHistoryQuery{
		Tenant: "acme", AsOf: asOf, By: by, Ladder: defaultSteps(), LadderVersion: l.Version,
		StageStep: func(stage string) int { step, _ := l.StageStep("*", stage); return step },
	}
}

// TestStageHistoryAgainstOracle compares every number of the stage history
// with the oracle over the raw events, for several seeds, as_of dates and
// breakdowns.
func TestStageHistoryAgainstOracle(t *testing.T) {
	t0 := time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC)
	for _, seed := range []int64{1, 2} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			s := openStore(t)
			deals := stageHistoryDeals(rand.New(rand.NewSource(seed)), 120, t0)
			loadDeals(t, s, deals, t0.AddDate(0, 4, 0))
			q := New(s.Conn())
			for _, asOf := range []time.Time{t0.AddDate(0, 0, 3), t0.AddDate(0, 0, 12), t0.Add(20*24*time.Hour + 13*time.Hour), t0.AddDate(0, 4, 0)} {
				for _, by := range []string{"", "owner", "team"} {
					got, err := q.StageHistory(context.Background(), stageHistoryQuery(asOf, by))
					if err != nil {
						t.Fatal(err)
					}
					want, groups := oracleStageHistory(deals, asOf, by)
					name := fmt.Sprintf("as of %s by %q", asOf.Format(time.RFC3339), by)
					compareStageHistory(t, name, got.StageHistory, want)
					if len(got.Groups) != len(groups) {
						t.Errorf("%s: %d groups, want %d", name, len(got.Groups), len(groups))
					}
					for _, g := range got.Groups {
						compareStageHistory(t, name+" group "+g.Key, g.StageHistory, groups[g.Key])
					}
				}
			}
		})
	}
}

func compareStageHistory(t *testing.T, name string, got, want StageHistory) {
	t.Helper()
	if got.Total != want.Total {
		t.Errorf("%s: total %+v, want %+v", name, got.Total, want.Total)
	}
	if !reflect.DeepEqual(got.Transitions, want.Transitions) {
		t.Errorf("%s: transitions\n%+v\nwant\n%+v", name, got.Transitions, want.Transitions)
	}
	if len(got.Stages) != len(want.Stages) {
		t.Errorf("%s: %d stages, want %d", name, len(got.Stages), len(want.Stages))
		return
	}
	for i := range got.Stages {
		g, w := got.Stages[i], want.Stages[i]
		gt, wt := g.TimeInStage, w.TimeInStage
		g.TimeInStage, w.TimeInStage = StageTime{}, StageTime{}
		if g != w {
			t.Errorf("%s: stage %+v, want %+v", name, g, w)
		}
		if gt.N != wt.N || !sameDays(gt.Median, wt.Median) || !sameDays(gt.P75, wt.P75) || !sameDays(gt.P90, wt.P90) {
			t.Errorf("%s: %s: time in stage %s, want %s", name, w.Stage, fmtStageTime(gt), fmtStageTime(wt))
		}
	}
}

func sameDays(a, b *float64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return math.Abs(*a-*b) < 1e-9
}

func fmtStageTime(s StageTime) string {
	f := func(p *float64) string {
		if p == nil {
			return "nil"
		}
		return fmt.Sprintf("%.4f", *p)
	}
	return fmt.Sprintf("n=%d median=%s p75=%s p90=%s", s.N, f(s.Median), f(s.P75), f(s.P90))
}

// TestStageHistoryOneInstant: one CRM edit that moves a deal twice in one
// second (Qualification, then back to Prospecting, then Qualification:
// exports with dates but no times) counts every entry, in the fold's
// order, and a backward move from Needs Analysis to Qualification.
func TestStageHistoryOneInstant(t *testing.T) {
	s := openStore(t)
	d0 := time.Date(2025, 2, 3, 0, 0, 0, 0, time.UTC)
	ev := func(id string, at time.Time, p event.Payload, typ event.Type) event.Event {
		return event.Event{V: 1, ID: id, Tenant: "acme", Source: "salesforce", Type: typ, OccurredAt: at, ReceivedAt: at, OpportunityID: "o1", Payload: p}
	}
	deals := map[string][]event.Event{"o1": {
		ev("a", d0, &event.Opportunity{Stage: "Prospecting", OwnerID: "ann"}, event.OpportunityCreated),
		ev("b", d0.AddDate(0, 0, 2), &event.StageChange{To: "Qualification"}, event.StageChanged),
		ev("c", d0.AddDate(0, 0, 2), &event.StageChange{To: "Prospecting"}, event.StageChanged),
		ev("d", d0.AddDate(0, 0, 2), &event.StageChange{To: "Qualification"}, event.StageChanged),
		ev("e", d0.AddDate(0, 0, 5), &event.StageChange{To: "Needs Analysis"}, event.StageChanged),
		ev("f", d0.AddDate(0, 0, 9), &event.StageChange{To: "Qualification"}, event.StageChanged),
	}}
	loadDeals(t, s, deals, d0.AddDate(0, 1, 0))
	got, err := New(s.Conn()).StageHistory(context.Background(), stageHistoryQuery(d0.AddDate(0, 1, 0), ""))
	if err != nil {
		t.Fatal(err)
	}
	want := StageTotals{Deals: 1, Entries: 6, ReEntries: 3, Moves: 5, Forward: 1, Backward: 1, Unordered: 3}
	if got.Total != want {
		t.Errorf("total %+v, want %+v", got.Total, want)
	}
	byStage := map[string]StageStats{}
	for _, st := range got.Stages {
		byStage[st.Stage] = st
	}
	if q := byStage["Qualification"]; q.Entries != 3 || q.ReEntries != 2 || q.Backward != 1 || q.Current != 1 || q.TimeInStage.N != 2 {
		t.Errorf("Qualification %+v", q)
	}
	if p := byStage["Prospecting"]; p.Entries != 2 || p.TimeInStage.N != 2 || *p.TimeInStage.Median != 2 || *p.TimeInStage.P90 != 2 {
		t.Errorf("Prospecting %+v (time in stage %s): want 2 entries, 0 and 2 days", p, fmtStageTime(p.TimeInStage))
	}
}

// TestStageEntriesDefault: states written before migration 0107 read the
// entries their fact arrays show.
func TestStageEntriesDefault(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	err := s.Conn().Exec(ctx, `INSERT INTO opportunity_state (tenant, opportunity_id, fact_times, stages, version)
SELECT 'acme', 'o1', [toDateTime('2025-01-01 00:00:00', 'UTC'), toDateTime('2025-01-02 00:00:00', 'UTC'), toDateTime('2025-01-03 00:00:00', 'UTC'),
	toDateTime('2025-01-04 00:00:00', 'UTC'), toDateTime('2025-01-05 00:00:00', 'UTC')],
	['', 'Prospecting', 'Prospecting', 'Qualification', 'Prospecting'], toUInt64(1)`)
	if err != nil {
		t.Fatal(err)
	}
	var (
		times  []time.Time
		stages []string
	)
	if err := s.Conn().QueryRow(ctx, `SELECT stage_entry_times, stage_entries FROM opportunity_state WHERE opportunity_id = 'o1'`).Scan(&times, &stages); err != nil {
		t.Fatal(err)
	}
	if want := []string{"Prospecting", "Qualification", "Prospecting"}; !reflect.DeepEqual(stages, want) {
		t.Errorf("stages %q, want %q", stages, want)
	}
	var days []int
	for _, tm := range times {
		days = append(days, tm.UTC().Day())
	}
	if want := []int{2, 4, 5}; !reflect.DeepEqual(days, want) {
		t.Errorf("entry days %v, want %v", days, want)
	}
}

// TestStageHistoryTop checks a stage history by owner that keeps only the
// owners with the most deals against the oracle: the kept owners' groups
// as the oracle's, and the other group as the oracle's history of the
// deals of every owner not kept, ranked by the oracle's own deal counts.
func TestStageHistoryTop(t *testing.T) {
	t0 := time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC)
	s := openStore(t)
	deals := stageHistoryDeals(rand.New(rand.NewSource(3)), 120, t0)
	loadDeals(t, s, deals, t0.AddDate(0, 4, 0))
	q := New(s.Conn())
	merged := 0
	for _, asOf := range []time.Time{t0.AddDate(0, 0, 12), t0.AddDate(0, 4, 0)} {
		// Each deal's owner as of asOf, by the oracle.
		ownerOf := map[string]string{}
		pop := map[string]int{}
		for id, evs := range deals {
			_, g := oracleStageHistory(map[string][]event.Event{id: evs}, asOf, "owner")
			for k := range g {
				ownerOf[id] = k
				pop[k]++
			}
		}
		for _, top := range []int{1, 2, 3, 100} {
			sq := stageHistoryQuery(asOf, "owner")
			sq.Top = top
			got, err := q.StageHistory(context.Background(), sq)
			if err != nil {
				t.Fatal(err)
			}
			kept, other := rawTop(pop, top)
			_, groups := oracleStageHistory(deals, asOf, "owner")
			rest := map[string][]event.Event{}
			for id, evs := range deals {
				if o, ok := ownerOf[id]; ok && !kept[o] {
					rest[id] = evs
				}
			}
			name := fmt.Sprintf("as of %s top %d", asOf.Format(time.DateOnly), top)
			if got.Definitions.Top != top || got.Definitions.OtherKeys != other {
				t.Errorf("%s: definitions top %d other_keys %d, want %d %d", name, got.Definitions.Top, got.Definitions.OtherKeys, top, other)
			}
			wantGroups := len(kept)
			if other > 0 {
				wantGroups++
			}
			if len(got.Groups) != wantGroups {
				t.Fatalf("%s: %d groups, want %d", name, len(got.Groups), wantGroups)
			}
			for i, g := range got.Groups {
				if g.Other {
					if i != len(got.Groups)-1 || g.Key != "" {
						t.Errorf("%s: the other group is not last or has key %q", name, g.Key)
					}
					want, _ := oracleStageHistory(rest, asOf, "")
					compareStageHistory(t, name+" other", g.StageHistory, want)
					continue
				}
				if !kept[g.Key] {
					t.Errorf("%s: owner %s has a group but is not among the top", name, g.Key)
				}
				compareStageHistory(t, name+" group "+g.Key, g.StageHistory, groups[g.Key])
			}
			merged += other
		}
	}
	if merged == 0 {
		t.Error("no owner merged: the data does not exercise the other group")
	}
}
