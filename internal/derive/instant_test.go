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
// edit's order, backward moves, skipped and re-entered stages, changes of
// team, segment, lead source, product or probability alone (an
// opportunity.updated, an owner change to the same owner with a new team, a
// stage change to the same stage with a new probability), and a close by a
// won/lost stage or by closed_won/closed_lost (some with an amount),
// sometimes at the instant of the last edit, sometimes followed by moves
// back to an open stage and closes again (won, lost, won again).
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
	pick := func(vs ...string) string { return vs[r.IntN(len(vs))] }
	prob := func() float64 { return float64(1+r.IntN(9)) / 10 }
	owner := owners[0]
	closeDate := d.AddDate(0, 2, 0)
	stageI := r.IntN(3)
	evs := []event.Event{mk(d, &event.Opportunity{
		Amount: float64(1000 * (1 + r.IntN(50))), Stage: sfStages[stageI], OwnerID: owner,
		CloseDate: event.Date(closeDate.Format(time.DateOnly)), Probability: prob(),
		Team: "east", Segment: "mid", LeadSource: "inbound", Product: "core",
	})}
	attributes := func(at time.Time) {
		switch r.IntN(3) {
		case 0: // an update of some attributes, perhaps to their values
			u := &event.Opportunity{}
			if r.IntN(2) == 0 {
				u.Team = pick("east", "west")
			}
			if r.IntN(2) == 0 {
				u.Segment = pick("mid", "smb", "ent")
			}
			if r.IntN(3) == 0 {
				u.LeadSource = pick("inbound", "partner")
			}
			if r.IntN(3) == 0 {
				u.Product = pick("core", "plus")
			}
			if r.IntN(3) == 0 {
				u.Probability = prob()
			}
			e := mk(at, u)
			e.Type = event.OpportunityUpdated
			evs = append(evs, e)
		case 1:
			evs = append(evs, mk(at, &event.OwnerChange{From: owner, To: owner, Team: pick("east", "west", "north")}))
		default:
			evs = append(evs, mk(at, &event.StageChange{To: sfStages[stageI], Probability: prob()}))
		}
	}
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
			owner = owners[r.IntN(len(owners))]
			evs = append(evs, mk(d, &event.OwnerChange{To: owner}))
		}
		if r.IntN(3) == 0 {
			attributes(d)
		}
		if r.IntN(3) == 0 {
			evs = append(evs, mk(d, &event.Contact{ContactID: fmt.Sprint(n), Email: fmt.Sprintf("p%d@buyer.example", r.IntN(4)), Role: "Champion"}))
		}
	}
	if r.IntN(3) > 0 {
		d = d.AddDate(0, 0, r.IntN(10)) // 0: the close shares the last edit's date
	}
	closeWon := func(at time.Time) {
		if r.IntN(2) == 0 {
			evs = append(evs, mk(at, &event.StageChange{To: "Closed Won"}))
		} else {
			evs = append(evs, mk(at, &event.Won{Amount: float64(1000 * (1 + r.IntN(50)))}))
		}
	}
	closeLost := func(at time.Time) {
		switch r.IntN(3) {
		case 0:
			evs = append(evs, mk(at, &event.StageChange{To: "Closed Lost"}))
		case 1:
			evs = append(evs, mk(at, &event.Lost{Reason: lossWhy[r.IntN(len(lossWhy))]}))
		default:
			evs = append(evs, mk(at, &event.Lost{Reason: lossWhy[r.IntN(len(lossWhy))]}),
				mk(at, &event.StageChange{To: "Closed Lost"}))
		}
	}
	won := r.IntN(2) == 0
	if r.IntN(5) == 4 {
		return validated(evs) // still open
	}
	for closes := 1 + r.IntN(4); closes > 0; closes-- {
		if won {
			closeWon(d)
		} else {
			closeLost(d)
		}
		d = d.AddDate(0, 0, r.IntN(15)) // 0: several moves in one day
		if r.IntN(2) == 0 {             // back to an open stage, or an edit
			stageI = r.IntN(len(sfStages))
			evs = append(evs, mk(d, &event.StageChange{To: sfStages[stageI]}))
			if r.IntN(2) == 0 {
				attributes(d)
			}
			d = d.AddDate(0, 0, r.IntN(15))
		}
		if r.IntN(3) > 0 {
			won = !won
		}
	}
	return validated(evs)
}

// validated panics if one of evs is invalid, and returns evs.
func validated(evs []event.Event) []event.Event {
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
// (a won/lost stage or closed_won/closed_lost closes, any other stage
// opens, so a closed deal moved back to an open stage is open again; an
// amount on closed_won
// sets it; an empty field or a zero probability leaves a fact unchanged).
// ok is false before the first CRM event.
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
	set := func(f *string, v string) {
		if v != "" {
			*f = v
		}
	}
	setProb := func(v float64) {
		if v > 0 {
			f.Probability = v
		}
	}
	attrs := map[string]string{}
	setCurrency := func(c string) {
		if c != "" {
			f.Currency = strings.ToUpper(c)
		}
	}
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
		default: // a stage that closes nothing: open, reopened if closed
			f.Status = StatusOpen
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
			set(&f.OwnerID, p.OwnerID)
			set(&f.Team, p.Team)
			set(&f.Segment, p.Segment)
			set(&f.LeadSource, p.LeadSource)
			set(&f.Product, p.Product)
			set(&f.ForecastCategory, p.ForecastCategory)
			setProb(p.Probability)
			setStage(p.Stage)
			setCurrency(p.Currency)
			for k, v := range p.Attributes {
				attrs[k] = v
			}
		case *event.StageChange:
			ok = true
			setProb(p.Probability)
			setStage(p.To)
		case *event.AmountChange:
			ok = true
			f.Amount = p.To
			setCurrency(p.Currency)
		case *event.ProbabilityChange:
			ok = true
			f.Probability = p.To
		case *event.ForecastCategoryChange:
			ok = true
			f.ForecastCategory = p.To
		case *event.CloseDateChange:
			ok = true
			f.CloseDate = p.To.Time()
		case *event.OwnerChange:
			ok = true
			f.OwnerID = p.To
			set(&f.Team, p.Team)
		case *event.Won:
			ok = true
			if p.Amount > 0 {
				f.Amount = p.Amount
			}
			setCurrency(p.Currency)
			f.Status = StatusWon
		case *event.Lost:
			ok = true
			if p.Amount > 0 {
				f.Amount = p.Amount
			}
			setCurrency(p.Currency)
			f.Status = StatusLost
		}
	}
	for k, v := range attrs {
		if v != "" {
			f.Attrs = append(f.Attrs, Attr{Key: k, Value: v})
		}
	}
	slices.SortFunc(f.Attrs, func(a, b Attr) int { return strings.Compare(a.Key, b.Key) })
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

// stored is what the store keeps of out: one event per id, the last one
// if last, else the first.
func stored(out []Derived, last bool) []Derived {
	at := map[string]int{}
	var kept []Derived
	for _, d := range out {
		if i, ok := at[d.ID]; ok {
			if last {
				kept[i] = d
			}
			continue
		}
		at[d.ID] = len(kept)
		kept = append(kept, d)
	}
	return kept
}

// checkFactsAsOf compares every fact and, if reach, the highest step
// reached that the state of the stored derived events of evs gives as of
// each event's time, a second before it and half a day after it, with the
// oracle's; and checks that no two derived events share an id. Of events
// sharing an id the store keeps one: both the first and the last are
// checked.
func checkFactsAsOf(t *testing.T, name string, evs []event.Event, reach bool) {
	t.Helper()
	l := ladder.Default()
	now := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	out := Derive(tTenant, evs[0].OpportunityID, evs, l, now)
	seen := map[string]bool{}
	for _, d := range out {
		if seen[d.ID] {
			t.Fatalf("%s: two derived events have the id %s (%s)", name, d.ID, line(d))
		}
		seen[d.ID] = true
	}
	first, last := Summarize(stored(out, false), l.Len()), Summarize(stored(out, true), l.Len())
	var dates []time.Time
	for _, e := range evs {
		dates = append(dates, e.OccurredAt, e.OccurredAt.Add(-time.Second), e.OccurredAt.Add(12*time.Hour))
	}
	for _, at := range dates {
		want, wok := oracleFacts(evs, at)
		wantHighest := 0
		if reach {
			wantHighest = oracleHighest(evs, at)
		}
		for _, st := range []State{first, last} {
			got, gok := factsAsOf(st, at)
			if wok != gok {
				t.Fatalf("%s as of %s: facts present %v, oracle %v", name, at.Format(time.RFC3339), gok, wok)
			}
			if wok && !sameSnapshot(got, want) {
				t.Fatalf("%s as of %s:\n got %+v\nwant %+v", name, at.Format(time.RFC3339), got, want)
			}
			if got := highestAsOf(st, at); reach && got != wantHighest {
				t.Fatalf("%s as of %s: highest step reached %d, oracle %d", name, at.Format(time.RFC3339), got, wantHighest)
			}
		}
	}
}

// TestExportFactsAsOf checks the facts as of many dates against the
// oracle's on export-shaped histories delivered in any order, and on
// date-only random histories.
func TestExportFactsAsOf(t *testing.T) {
	for seed := uint64(1); seed <= 400; seed++ {
		r := rand.New(rand.NewPCG(seed, 11))
		evs := exportOpp(r, fmt.Sprintf("exp-%d", seed))
		r.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
		checkFactsAsOf(t, fmt.Sprintf("export seed %d", seed), evs, true)
	}
	for seed := uint64(1); seed <= 200; seed++ {
		r := rand.New(rand.NewPCG(seed, 13))
		evs := randomOpp(r, fmt.Sprintf("rnd-%d", seed), 5+r.IntN(40))
		dateOnly(evs)
		r.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
		checkFactsAsOf(t, fmt.Sprintf("date-only seed %d", seed), evs, false)
	}
}

// TestClosedAgainFactsAsOf: a deal that closes a second time with a status
// it had before keeps both closes (each its own id), so the facts between
// them are those of the close before.
func TestClosedAgainFactsAsOf(t *testing.T) {
	tests := []struct {
		name string
		evs  []event.Event
	}{
		{"won, lost, won by closed_won/closed_lost", []event.Event{
			created("o1", day(0), "Qualification", 1000),
			won("w1", day(2)),
			lost("l1", day(4), "Price"),
			won("w2", day(6)),
		}},
		{"lost, won, lost by closed_lost/closed_won", []event.Event{
			created("o1", day(0), "Needs Analysis", 1000),
			lost("l1", day(2), "Price"),
			won("w1", day(4)),
			lost("l2", day(6), "Competitor"),
		}},
		{"lost, won, lost by stage", []event.Event{
			created("o1", day(0), "Qualification", 1000),
			lost("l1", day(2), "Price"),
			stage("s1", day(3), "Negotiation/Review"), // moved back to an open stage
			stage("s2", day(4), "Closed Won"),
			stage("s3", day(6), "Closed Lost"),
		}},
		{"won, lost, won, lost in one day", dayOnly([]event.Event{
			created("o1", day(0), "Qualification", 1000),
			won("w1", day(2)),
			stage("s1", day(2.1), "Closed Lost"),
			stage("s2", day(2.2), "Closed Won"),
			lost("l1", day(3), ""),
		})},
	}
	for _, tc := range tests {
		checkFactsAsOf(t, tc.name, tc.evs, true)
	}
}

// TestAttributeChangesFactsAsOf: a change of team, segment, lead source,
// product or probability alone is in the facts as of its time, and so is
// a close date first known from a change.
func TestAttributeChangesFactsAsOf(t *testing.T) {
	tests := []struct {
		name string
		evs  []event.Event
	}{
		{"team alone", []event.Event{
			created("o1", day(0), "Qualification", 1000),
			updated("u1", day(2), &event.Opportunity{Team: "west"}),
			stage("s1", day(5), "Needs Analysis"),
		}},
		{"segment, lead source, product alone", []event.Event{
			created("o1", day(0), "Qualification", 1000),
			updated("u1", day(1), &event.Opportunity{Segment: "ent"}),
			updated("u2", day(2), &event.Opportunity{LeadSource: "partner", Product: "plus"}),
			updated("u3", day(3), &event.Opportunity{Segment: "ent", Team: "east"}), // unchanged
		}},
		{"owner change to the same owner with a new team", []event.Event{
			created("o1", day(0), "Qualification", 1000),
			ev("w1", day(2), &event.OwnerChange{From: "rep-1", To: "rep-1", Team: "north"}),
		}},
		{"probability alone", []event.Event{
			created("o1", day(0), "Qualification", 1000),
			ev("p1", day(2), &event.StageChange{To: "Qualification", Probability: 0.3}),
			updated("u1", day(3), &event.Opportunity{Probability: 0.4}),
		}},
		{"a first close date from a change to the date it had", []event.Event{
			ev("o1", day(0), &event.Opportunity{Stage: "Qualification", Amount: 1000, OwnerID: "rep-1"}),
			ev("d1", day(2), &event.CloseDateChange{From: "2025-06-30", To: "2025-06-30"}),
		}},
		{"attributes with an amount change", []event.Event{
			created("o1", day(0), "Qualification", 1000),
			updated("u1", day(2), &event.Opportunity{Amount: 2000, Team: "west", Probability: 0.5}),
		}},
	}
	for _, tc := range tests {
		checkFactsAsOf(t, tc.name, tc.evs, true)
	}
}

// dayOnly moves every event of evs to midnight UTC of its day and returns
// evs.
func dayOnly(evs []event.Event) []event.Event {
	dateOnly(evs)
	return evs
}
