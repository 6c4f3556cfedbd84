package derive

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/ladder"
)

// factsAsOf is the last element of st.Facts whose time is at or before at,
// as the metrics read it (element arrayCount(t -> t <= at, fact_times));
// ok is false when there is none.
func factsAsOf(st State, at time.Time) (Snapshot, bool) {
	n := 0
	for _, t := range st.FactTimes {
		if !t.After(at) {
			n++
		}
	}
	if n == 0 {
		return Snapshot{}, false
	}
	return st.Facts[n-1], true
}

// TestCloseByStageFacts is the minimal case: a deal created, then
// moved to the lost stage. The stage change and the close it implies
// happen at one instant; the facts after it must be closed lost.
func TestCloseByStageFacts(t *testing.T) {
	l := ladder.Default()
	for i := range 40 {
		opp := fmt.Sprintf("deal-%d", i)
		evs := []event.Event{
			created("c"+opp, day(0), "Qualification", 1000),
			stage("s"+opp, day(3), "Closed Lost"),
		}
		for j := range evs {
			evs[j].OpportunityID = opp
		}
		st := Summarize(Derive(tTenant, opp, evs, l, day(10)), l.Len())
		f, ok := factsAsOf(st, day(3))
		if !ok || f.Status != StatusLost || f.Stage != "Closed Lost" {
			t.Errorf("%s: facts after the lost stage = %+v, want status lost at stage Closed Lost", opp, f)
		}
	}
}

// TestSeqOrdersOneSecond checks that the events of one second carry
// consecutive positions in fold order, whatever their ids, and that the
// last one holds the facts after every input event of that second.
func TestSeqOrdersOneSecond(t *testing.T) {
	out := run([]event.Event{
		created("o1", day(0), "Qualification", 1000),
		// One CRM edit of three fields at one instant, then the close.
		ev("e1", day(2), &event.AmountChange{To: 1500}),
		stage("e2", day(2), "Closed Won"),
		ev("e3", day(2), &event.OwnerChange{To: "rep-2"}),
	}, day(3))
	var last Derived
	for i, d := range out {
		want := 0
		if i > 0 && d.OccurredAt.Equal(out[i-1].OccurredAt) {
			want = out[i-1].Seq + 1
		}
		if d.Seq != want {
			t.Errorf("%s has seq %d, want %d", line(d), d.Seq, want)
		}
		if d.OccurredAt.Equal(day(2)) {
			last = d
		}
	}
	if last.Status != StatusWon || last.Amount != 1500 || last.OwnerID != "rep-2" || last.Stage != "Closed Won" {
		t.Errorf("last event of the second (%s) has facts %+v", line(last), last.Snapshot)
	}
}

// exportOpp builds the history of an opportunity as a CRM export gives it:
// dates without times (every event at midnight UTC), each CRM edit as
// several typed events at one instant with ids that do not follow the
// edit's order, backward moves, skipped and re-entered stages, and a close
// by a won/lost stage or by closed_won/closed_lost (some with an amount),
// sometimes at the instant of the last edit.
func exportOpp(r *rand.Rand, opp string) []event.Event {
	d := time.Date(2024, time.Month(1+r.IntN(12)), 1+r.IntN(28), 0, 0, 0, 0, time.UTC)
	n := 0
	mk := func(at time.Time, p event.Payload) event.Event {
		n++
		id := fmt.Sprintf("%08x", r.Uint32()) // export row ids: no order
		return event.Event{V: 1, ID: id, Tenant: tTenant, Source: "salesforce", Type: typeOf(p),
			OccurredAt: at, ReceivedAt: at.Add(time.Duration(n) * time.Second), OpportunityID: opp, Payload: p}
	}
	owners := []string{"rep-1", "rep-2", "rep-3"}
	closeDate := d.AddDate(0, 2, 0)
	stageI := r.IntN(3)
	evs := []event.Event{mk(d, &event.Opportunity{
		Amount: float64(1000 * (1 + r.IntN(50))), Stage: sfStages[stageI], OwnerID: owners[0],
		CloseDate: event.Date(closeDate.Format(time.DateOnly)),
	})}
	for edits := 1 + r.IntN(8); edits > 0; edits-- {
		if r.IntN(4) > 0 { // sometimes the same date as the previous edit
			d = d.AddDate(0, 0, 1+r.IntN(20))
		}
		if r.IntN(3) > 0 {
			switch k := r.IntN(5); {
			case k == 0 && stageI > 0:
				stageI-- // backward
			case k == 1 && stageI < len(sfStages)-2:
				stageI += 2 // skipped one
			case stageI < len(sfStages)-1:
				stageI++
			}
			evs = append(evs, mk(d, &event.StageChange{To: sfStages[stageI]}))
		}
		if r.IntN(2) == 0 {
			evs = append(evs, mk(d, &event.AmountChange{To: float64(1000 * (1 + r.IntN(50)))}))
		}
		if r.IntN(2) == 0 {
			closeDate = closeDate.AddDate(0, 0, r.IntN(40)-15)
			evs = append(evs, mk(d, &event.CloseDateChange{To: event.Date(closeDate.Format(time.DateOnly))}))
		}
		if r.IntN(4) == 0 {
			evs = append(evs, mk(d, &event.OwnerChange{To: owners[r.IntN(len(owners))]}))
		}
		if r.IntN(3) == 0 {
			evs = append(evs, mk(d, &event.Contact{ContactID: fmt.Sprint(n), Email: fmt.Sprintf("p%d@buyer.example", r.IntN(4)), Role: "Champion"}))
		}
	}
	if r.IntN(3) > 0 {
		d = d.AddDate(0, 0, r.IntN(10)) // 0: the close shares the last edit's date
	}
	switch r.IntN(5) {
	case 0:
		evs = append(evs, mk(d, &event.StageChange{To: "Closed Won"}))
	case 1:
		evs = append(evs, mk(d, &event.StageChange{To: "Closed Lost"}))
	case 2:
		evs = append(evs, mk(d, &event.Won{Amount: float64(1000 * (1 + r.IntN(50)))}))
	case 3:
		evs = append(evs, mk(d, &event.Lost{Reason: lossWhy[r.IntN(len(lossWhy))]}),
			mk(d, &event.StageChange{To: "Closed Lost"}))
	}
	for i := range evs {
		if err := evs[i].Validate(); err != nil {
			panic(fmt.Sprintf("export event %d invalid: %v", i, err))
		}
	}
	return evs
}

// oracleFacts computes an opportunity's CRM facts as of at straight from
// its raw input events: every distinct (source, id) with occurred_at <= at,
// applied in (occurred_at, source, id) order, by the rules of the envelope
// (a won/lost stage or closed_won/closed_lost closes; an amount on
// closed_won sets it). ok is false before the first CRM event.
func oracleFacts(evs []event.Event, at time.Time) (f Snapshot, ok bool) {
	in := slices.Clone(evs)
	slices.SortStableFunc(in, func(a, b event.Event) int {
		if c := a.OccurredAt.Compare(b.OccurredAt); c != 0 {
			return c
		}
		if c := strings.Compare(a.Source, b.Source); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	f.Status = StatusOpen
	seen := map[[2]string]bool{}
	setStage := func(to string) {
		if to == "" || to == f.Stage {
			return
		}
		f.Stage = to
		switch to {
		case "Closed Won":
			f.Status = StatusWon
		case "Closed Lost":
			f.Status = StatusLost
		}
	}
	for _, e := range in {
		if e.OccurredAt.After(at) || seen[[2]string{e.Source, e.ID}] {
			continue
		}
		seen[[2]string{e.Source, e.ID}] = true
		switch p := e.Payload.(type) {
		case *event.Opportunity:
			ok = true
			if p.Amount > 0 {
				f.Amount = p.Amount
			}
			if p.CloseDate != "" {
				f.CloseDate = p.CloseDate.Time()
			}
			if p.OwnerID != "" {
				f.OwnerID = p.OwnerID
			}
			setStage(p.Stage)
		case *event.StageChange:
			ok = true
			setStage(p.To)
		case *event.AmountChange:
			ok = true
			f.Amount = p.To
		case *event.CloseDateChange:
			ok = true
			f.CloseDate = p.To.Time()
		case *event.OwnerChange:
			ok = true
			f.OwnerID = p.To
		case *event.Won:
			ok = true
			if p.Amount > 0 {
				f.Amount = p.Amount
			}
			f.Status = StatusWon
		case *event.Lost:
			ok = true
			f.Status = StatusLost
		}
	}
	return f, ok
}

// oracleSteps maps the standard Salesforce stages to their step in the
// default ladder (1 time ... 9 decide); stages not listed show none.
var oracleSteps = map[string]int{
	"Qualification": 2, "Needs Analysis": 3, "Value Proposition": 4, "Id. Decision Makers": 5,
	"Perception Analysis": 6, "Proposal/Price Quote": 7, "Negotiation/Review": 8, "Closed Won": 9,
}

// oracleHighest computes, from the raw CRM events of exportOpp, the highest
// step of the default ladder an opportunity reached by at: the highest
// step of a stage it entered, decide once won, build_consensus once three
// distinct buyer contacts with a consensus role were added. Reached K
// means highest >= K.
func oracleHighest(evs []event.Event, at time.Time) int {
	h := 0
	people := map[string]bool{}
	for _, e := range evs {
		if e.OccurredAt.After(at) {
			continue
		}
		switch p := e.Payload.(type) {
		case *event.Opportunity:
			h = max(h, oracleSteps[p.Stage])
		case *event.StageChange:
			h = max(h, oracleSteps[p.To])
		case *event.Won:
			h = max(h, 9)
		case *event.Contact:
			people[strings.ToLower(p.Email)] = true
			if len(people) >= 3 {
				h = max(h, 5)
			}
		}
	}
	return h
}

// highestAsOf is the highest K whose reach time is at or before at, as the
// metrics read it from the state.
func highestAsOf(st State, at time.Time) int {
	h := 0
	for k, t := range st.Reach {
		if !t.IsZero() && !t.After(at) {
			h = k + 1
		}
	}
	return h
}

// TestExportFactsAsOf compares the facts and the highest step reached that
// the state gives as of many dates with the oracle's, on export-shaped
// histories delivered in any order, and the facts on date-only random
// histories.
func TestExportFactsAsOf(t *testing.T) {
	l := ladder.Default()
	now := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	check := func(name string, evs []event.Event, reach bool) {
		t.Helper()
		st := Summarize(Derive(tTenant, evs[0].OpportunityID, evs, l, now), l.Len())
		var dates []time.Time
		for _, e := range evs {
			dates = append(dates, e.OccurredAt, e.OccurredAt.Add(-time.Second), e.OccurredAt.Add(12*time.Hour))
		}
		for _, at := range dates {
			want, wok := oracleFacts(evs, at)
			got, gok := factsAsOf(st, at)
			if wok != gok {
				t.Fatalf("%s as of %s: facts present %v, oracle %v", name, at.Format(time.RFC3339), gok, wok)
			}
			if wok && (got.Status != want.Status || got.Stage != want.Stage || got.Amount != want.Amount ||
				!got.CloseDate.Equal(want.CloseDate) || got.OwnerID != want.OwnerID) {
				t.Fatalf("%s as of %s:\n got %+v\nwant %+v", name, at.Format(time.RFC3339), got, want)
			}
			if !reach {
				continue
			}
			if got, want := highestAsOf(st, at), oracleHighest(evs, at); got != want {
				t.Fatalf("%s as of %s: highest step reached %d, oracle %d", name, at.Format(time.RFC3339), got, want)
			}
		}
	}
	for seed := uint64(1); seed <= 400; seed++ {
		r := rand.New(rand.NewPCG(seed, 11))
		evs := exportOpp(r, fmt.Sprintf("exp-%d", seed))
		r.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
		check(fmt.Sprintf("export seed %d", seed), evs, true)
	}
	for seed := uint64(1); seed <= 200; seed++ {
		r := rand.New(rand.NewPCG(seed, 13))
		evs := randomOpp(r, fmt.Sprintf("rnd-%d", seed), 5+r.IntN(40))
		dateOnly(evs)
		r.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
		check(fmt.Sprintf("date-only seed %d", seed), evs, false)
	}
}
