package derive

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/ladder"
)

var (
	sfStages  = []string{"Prospecting", "Qualification", "Needs Analysis", "Value Proposition", "Id. Decision Makers", "Perception Analysis", "Proposal/Price Quote", "Negotiation/Review"}
	itemKinds = []string{"share_data", "define_success_criteria", "technical_deep_dive", "intro_stakeholder", "budget_confirmation", "pilot", "proposal_review", "security_review", "legal_review", "procurement", "sign_contract", "kickoff", "send_info", "schedule_meeting", ""}
	itemTexts = []string{"Send the deck", "Share data on the current process", "Introduce the CFO", "Review the proposal", "Confirm budget for Q3", "Follow up next week", "Complete the security questionnaire"}
	titles    = []string{"Intro", "Discovery call", "Weekly sync", "Technical deep dive", "Proposal walkthrough", "Negotiation", "Kickoff", "Check-in"}
	lossWhy   = []string{"Price", "No Decision", "Competitor", "status quo", ""}
)

// randomOpp builds a plausible opportunity history of about n events, with
// repeated timestamps to exercise tie-breaking.
func randomOpp(r *rand.Rand, opp string, n int) []event.Event {
	start := t0.Add(time.Duration(r.IntN(200*24)) * time.Hour)
	at := start
	next := func() time.Time {
		if r.IntN(6) > 0 { // sometimes the same instant as the previous event
			at = at.Add(time.Duration(1+r.IntN(5*24)) * time.Hour)
		}
		return at
	}
	buyers := []string{"ann@buyer.example", "bob@buyer.example", "cat@buyer.example", "dan@buyer.example", "eve@buyer.example"}
	sellers := []string{"rep@seller.example", "se@seller.example"}
	mk := func(i int, src string, t time.Time, p event.Payload) event.Event {
		return event.Event{V: 1, ID: fmt.Sprintf("%s-%d", opp, i), Tenant: tTenant, Source: src, Type: typeOf(p),
			OccurredAt: t, ReceivedAt: t, OpportunityID: opp, Payload: p}
	}
	var evs []event.Event
	evs = append(evs, mk(0, "salesforce", start, &event.Opportunity{
		Amount: float64(1000 * (1 + r.IntN(100))), Stage: "Prospecting", OwnerID: "rep-1", Team: "east",
		Segment: "mid", CloseDate: event.Date(start.AddDate(0, 3, 0).Format(time.DateOnly)),
	}))
	stageI := 0
	closeDate := start.AddDate(0, 3, 0)
	for i := 1; i < n; i++ {
		t := next()
		switch k := r.IntN(20); {
		case k < 10:
			c := &event.Call{CallID: fmt.Sprint(i), Title: titles[r.IntN(len(titles))], StartedAt: t, DurationSeconds: 1800}
			for _, b := range buyers[:r.IntN(4)] {
				c.Participants = append(c.Participants, event.Participant{Email: b, Side: event.Buyer})
			}
			c.Participants = append(c.Participants, event.Participant{Email: sellers[r.IntN(2)], Side: event.Seller})
			for j := r.IntN(4); j > 0; j-- {
				it := event.ActionItem{Kind: itemKinds[r.IntN(len(itemKinds))], Text: itemTexts[r.IntN(len(itemTexts))], OwnerSide: event.Seller}
				if r.IntN(2) == 0 {
					it.OwnerSide = event.Buyer
					if r.IntN(2) == 0 {
						due := t.Add(time.Duration(1+r.IntN(10)) * 24 * time.Hour)
						it.DueAt = &due
					}
				}
				c.ActionItems = append(c.ActionItems, it)
			}
			c.NextMeetingBooked = r.IntN(3) == 0
			evs = append(evs, mk(i, "gong", t, c))
		case k < 13:
			if r.IntN(4) == 0 && stageI > 0 {
				stageI-- // regress
			} else if stageI < len(sfStages)-1 {
				stageI++
			}
			evs = append(evs, mk(i, "salesforce", t, &event.StageChange{To: sfStages[stageI]}))
		case k < 14:
			closeDate = closeDate.AddDate(0, 0, r.IntN(60)-20)
			evs = append(evs, mk(i, "salesforce", t, &event.CloseDateChange{To: event.Date(closeDate.Format(time.DateOnly))}))
		case k < 15:
			evs = append(evs, mk(i, "salesforce", t, &event.Contact{ContactID: fmt.Sprint(i), Email: buyers[r.IntN(5)], Role: "Champion"}))
		case k < 17:
			a := &event.Activity{Kind: "meeting", Status: "completed", Subject: titles[r.IntN(len(titles))]}
			if r.IntN(2) == 0 {
				a.Participants = []event.Participant{{Email: buyers[r.IntN(5)], Side: event.Buyer}}
			}
			if r.IntN(4) == 0 {
				a.Status = "scheduled"
			}
			evs = append(evs, mk(i, "salesforce", t, a))
		case k < 18:
			ac := &event.AmountChange{To: float64(1000 * (1 + r.IntN(100))), Currency: []string{"", "USD", "EUR"}[r.IntN(3)]}
			if r.IntN(5) == 0 {
				ac.To, ac.Cleared = 0, true
			}
			evs = append(evs, mk(i, "salesforce", t, ac))
		case k < 19:
			switch r.IntN(3) {
			case 0:
				evs = append(evs, mk(i, "salesforce", t, &event.ForecastCategoryChange{To: []string{"Pipeline", "Best Case", "Commit"}[r.IntN(3)]}))
			case 1:
				evs = append(evs, mk(i, "salesforce", t, &event.ProbabilityChange{To: []float64{0, 0.2, 0.5}[r.IntN(3)]}))
			default:
				o := &event.Opportunity{Attributes: map[string]string{"region": []string{"", "EMEA", "APAC"}[r.IntN(3)], "type": []string{"new", "renewal"}[r.IntN(2)]}}
				e := mk(i, "salesforce", t, o)
				e.Type = event.OpportunityUpdated
				evs = append(evs, e)
			}
		default:
			evs = append(evs, mk(i, "salesforce", t, &event.Activity{Kind: "task", OwnerSide: event.Buyer, Status: "scheduled",
				Subject: itemTexts[r.IntN(len(itemTexts))], DueAt: ptr(t.Add(72 * time.Hour))}))
		}
	}
	switch r.IntN(3) {
	case 0:
		evs = append(evs, mk(n, "salesforce", next(), &event.Won{}))
		t := next()
		evs = append(evs, mk(n+1, "gong", t, &event.Call{CallID: "k", Title: "Kickoff", StartedAt: t, Participants: []event.Participant{{Email: buyers[0], Side: event.Buyer}},
			ActionItems: []event.ActionItem{{Kind: "kickoff", Text: "Kick off", OwnerSide: event.Buyer}}}))
	case 1:
		evs = append(evs, mk(n, "salesforce", next(), &event.Lost{Reason: lossWhy[r.IntN(len(lossWhy))]}))
	}
	for i := range evs {
		if err := evs[i].Validate(); err != nil {
			panic(fmt.Sprintf("random event %d invalid: %v", i, err))
		}
	}
	return evs
}

// dateOnly moves every event to midnight UTC of its day, as exports that
// carry dates without times do: many events then share an instant.
func dateOnly(evs []event.Event) {
	for i := range evs {
		evs[i].OccurredAt = evs[i].OccurredAt.UTC().Truncate(24 * time.Hour)
	}
}

// shuffleTies reorders evs by time and shuffles, within each run of events
// sharing an instant, their order only.
func shuffleTies(r *rand.Rand, evs []event.Event) {
	slices.SortStableFunc(evs, func(a, b event.Event) int { return a.OccurredAt.Compare(b.OccurredAt) })
	for i := 0; i < len(evs); {
		j := i + 1
		for j < len(evs) && evs[j].OccurredAt.Equal(evs[i].OccurredAt) {
			j++
		}
		tie := evs[i:j]
		r.Shuffle(len(tie), func(a, b int) { tie[a], tie[b] = tie[b], tie[a] })
		i = j
	}
}

// TestPermutationAndDuplication: any order and any duplication of an
// opportunity's events yields the same derived events with the same ids
// and the same state, also when many events share an instant (every
// second seed has dates only) and when only the order of events sharing
// an instant changes.
func TestPermutationAndDuplication(t *testing.T) {
	l := ladder.Default()
	for seed := uint64(1); seed <= 300; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		opp := fmt.Sprintf("opp-%d", seed)
		evs := randomOpp(r, opp, 5+r.IntN(60))
		if seed%2 == 0 {
			dateOnly(evs)
		}
		now := evs[len(evs)-1].OccurredAt.Add(time.Duration(r.IntN(90*24)) * time.Hour)
		want := Derive(tTenant, opp, evs, l, now)
		wantState := Summarize(want, l.Len())

		for trial := 0; trial < 6; trial++ {
			mixed := slices.Clone(evs)
			for j := r.IntN(len(evs) + 1); j > 0; j-- { // redeliveries
				d := evs[r.IntN(len(evs))]
				d.ReceivedAt = d.ReceivedAt.Add(time.Hour)
				mixed = append(mixed, d)
			}
			if trial%2 == 0 {
				r.Shuffle(len(mixed), func(i, j int) { mixed[i], mixed[j] = mixed[j], mixed[i] })
			} else {
				shuffleTies(r, mixed)
			}
			got := Derive(tTenant, opp, mixed, l, now)
			if len(got) != len(want) {
				t.Fatalf("seed %d trial %d: %d derived events, want %d\n got: %v\nwant: %v", seed, trial, len(got), len(want), lines(got), lines(want))
			}
			for i := range want {
				if !Equal(&got[i], &want[i]) {
					t.Fatalf("seed %d trial %d: event %d differs:\n got %+v\nwant %+v", seed, trial, i, got[i], want[i])
				}
			}
			if st := Summarize(got, l.Len()); !reflect.DeepEqual(st, wantState) {
				t.Fatalf("seed %d trial %d: the state differs", seed, trial)
			}
		}
		seen := map[string]bool{}
		for _, d := range want {
			if seen[d.ID] {
				t.Fatalf("seed %d: duplicate derived id %s (%s)", seed, d.ID, line(d))
			}
			seen[d.ID] = true
		}
	}
}

// TestArrivalPrefixes: deriving after every arrival and applying the diffs
// ends at the same set as deriving once from everything.
func TestArrivalPrefixes(t *testing.T) {
	l := ladder.Default()
	for seed := uint64(1); seed <= 50; seed++ {
		r := rand.New(rand.NewPCG(seed, 9))
		evs := randomOpp(r, "opp", 30)
		if seed%2 == 0 {
			dateOnly(evs)
		}
		now := evs[len(evs)-1].OccurredAt.Add(30 * 24 * time.Hour)
		r.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
		stored := map[string]Derived{}
		var prev []Derived
		for i := 1; i <= len(evs); i++ {
			cur := Derive(tTenant, "opp", evs[:i], l, now)
			added, retracted := Diff(prev, cur)
			for _, d := range retracted {
				delete(stored, d.ID)
			}
			for _, d := range added {
				stored[d.ID] = d
			}
			prev = cur
		}
		final := Derive(tTenant, "opp", evs, l, now)
		if len(stored) != len(final) {
			t.Fatalf("seed %d: %d stored, want %d", seed, len(stored), len(final))
		}
		for _, d := range final {
			s, ok := stored[d.ID]
			if !ok || !Equal(&s, &d) {
				t.Fatalf("seed %d: stored %+v, want %+v", seed, s, d)
			}
		}
	}
}

// BenchmarkDerive measures derivation throughput over realistic
// opportunities of 20 to 60 events.
func BenchmarkDerive(b *testing.B) {
	l := ladder.Default()
	r := rand.New(rand.NewPCG(42, 42))
	opps := make([][]event.Event, 500)
	total := 0
	for i := range opps {
		opps[i] = randomOpp(r, fmt.Sprintf("opp-%d", i), 20+r.IntN(41))
		total += len(opps[i])
	}
	now := t0.AddDate(2, 0, 0)
	b.ReportAllocs()
	b.ResetTimer()
	events := 0
	for i := 0; i < b.N; i++ {
		evs := opps[i%len(opps)]
		Derive(tTenant, "opp", evs, l, now)
		events += len(evs)
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(events)/float64(b.N), "events/op")
}
