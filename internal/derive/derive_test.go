package derive

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/ladder"
)

func run(evs []event.Event, now time.Time) []Derived {
	return Derive(tTenant, tOpp, evs, ladder.Default(), now)
}

// line renders a derived event as "day type step reason", day counted from
// t0, for compact golden comparisons.
func line(d Derived) string {
	days := d.OccurredAt.Sub(t0).Hours() / 24
	parts := []string{fmt.Sprintf("d%g", days), string(d.Type)}
	if d.Step != "" {
		parts = append(parts, d.Step)
	}
	if d.Reason != "" {
		parts = append(parts, d.Reason)
	}
	return strings.Join(parts, " ")
}

func lines(out []Derived) []string {
	s := make([]string, len(out))
	for i, d := range out {
		s[i] = line(d)
	}
	return s
}

// golden compares the rendered derived events with want, ignoring
// deal.created and deal.updated unless keepFacts, and interaction.held
// (TestInteractionHeld covers it).
func golden(t *testing.T, out []Derived, keepFacts bool, want ...string) {
	t.Helper()
	var got []string
	for _, d := range out {
		if d.Type == InteractionHeld || !keepFacts && (d.Type == DealCreated || d.Type == DealUpdated) {
			continue
		}
		got = append(got, line(d))
	}
	if !slices.Equal(got, want) {
		t.Errorf("derived events:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(want, "\n      "))
	}
}

func find(out []Derived, k Kind, stepOrReason string) *Derived {
	for i := range out {
		d := &out[i]
		if d.Type == k && (stepOrReason == "" || d.Step == stepOrReason || d.Reason == stepOrReason) {
			return d
		}
	}
	return nil
}

// climbAll is a deal that climbs all ten steps, wins and kicks off.
func climbAll() []event.Event {
	ann, bob, cat := buyer("ann@buyer.com"), buyer("bob@buyer.com"), buyer("cat@buyer.com")
	rep := seller("rep@seller.com")
	return []event.Event{
		created("o1", day(0), "Prospecting", 50000),
		call("c1", day(1), "Intro", people(ann, rep), booked),
		call("c2", day(5), "Discovery call", people(ann, rep), items(bItem("share_data", "Ann to share current usage data", ptr(day(9))))),
		stage("s1", day(6), "Qualification"),
		call("c3", day(10), "Follow-up", people(ann, rep), items(bItem("define_success_criteria", "Define success criteria", nil))),
		call("c4", day(15), "Technical deep dive", people(ann, bob, rep), items(bItem("technical_deep_dive", "Bob to bring architecture docs", nil))),
		call("c5", day(20), "Stakeholder alignment", people(ann, bob, cat, rep), booked),
		call("c6", day(25), "Budget", people(cat, rep), items(bItem("budget_confirmation", "Cat confirms budget", nil))),
		call("c7", day(30), "Proposal walkthrough", people(ann, cat, rep), items(bItem("proposal_review", "Review the proposal with CFO", nil))),
		call("c8", day(40), "Security", people(bob, rep), items(bItem("security_review", "Complete security questionnaire", nil))),
		won("w1", day(50)),
		call("c9", day(55), "Kickoff", people(ann, bob, rep), items(bItem("kickoff", "Assign project team", nil))),
	}
}

func TestGoldenClimbAllTenAndWin(t *testing.T) {
	out := run(climbAll(), day(120))
	golden(t, out, false,
		"d1 commitment.gained time",
		"d5 commitment.gained explore",
		"d10 commitment.gained change",
		"d15 commitment.gained collaborate",
		"d20 commitment.gained build_consensus",
		"d25 commitment.gained invest",
		"d30 commitment.gained review",
		"d40 commitment.gained resolve_concerns",
		"d50 deal.closed",
		"d50 commitment.gained decide",
		"d55 commitment.gained execute",
	)
	if d := find(out, CommitmentGained, "build_consensus"); !slices.Equal(d.Evidence, []string{"c1", "c4", "c5"}) {
		t.Errorf("consensus evidence = %v, want the calls that engaged each stakeholder", d.Evidence)
	}
	if d := find(out, DealClosed, ""); d.Status != StatusWon || d.Amount != 50000 {
		t.Errorf("deal.closed = %+v", d)
	}
	for i, d := range out {
		if d.LadderVersion != ladder.Default().Version || d.Tenant != tTenant || d.OpportunityID != tOpp || len(d.ID) != 32 {
			t.Errorf("out[%d] envelope incomplete: %+v", i, d)
		}
	}
	if g := find(out, CommitmentGained, "time"); g.ID != ID(tTenant, tOpp, CommitmentGained, "gained/time") || g.StepIndex != 1 {
		t.Errorf("gained time: id %s index %d", g.ID, g.StepIndex)
	}
}

func TestGoldenStallAfterExplore(t *testing.T) {
	ann, rep := buyer("ann@b.com"), seller("rep@s.com")
	evs := []event.Event{
		created("o1", day(0), "Prospecting", 20000),
		call("c1", day(1), "Discovery", people(ann, rep), items(bItem("share_data", "Send data", nil))),
	}
	golden(t, run(evs, day(60)), false,
		"d1 commitment.gained time",
		"d1 commitment.gained explore",
		"d15 deal.stalled explore",
	)
	st := find(run(evs, day(60)), DealStalled, "")
	if st.Value != 14 || st.StepIndex != 2 || !strings.Contains(st.Detail, "2025-03-04") {
		t.Errorf("stall = %+v", st)
	}
	// Not yet: the clock decides.
	if find(run(evs, day(14)), DealStalled, "") != nil {
		t.Error("stalled before the threshold passed")
	}
	// A gain at the threshold itself keeps the deal moving; a later one
	// starts a new stall period.
	more := append(slices.Clone(evs), stage("s1", day(15), "Needs Analysis"))
	golden(t, run(more, day(60)), false,
		"d1 commitment.gained time",
		"d1 commitment.gained explore",
		"d15 commitment.gained change",
		"d36 deal.stalled change",
	)
}

func TestGoldenSellerOnlyActions(t *testing.T) {
	evs := []event.Event{
		created("o1", day(0), "Qualification", 1000),
		call("c1", day(1), "Check-in", people(buyer("a@b.com"), seller("r@s.com")),
			items(sItem("send_info", "Send the deck"), sItem("schedule_meeting", "Find a time"))),
	}
	out := run(evs, day(2))
	golden(t, out, false,
		"d0 commitment.gained explore",
		"d1 commitment.gained time",
		"d1 commitment.missed change seller_only_actions",
	)
	if m := find(out, CommitmentMissed, ""); m.InteractionID != "c1" || m.StepIndex != 3 {
		t.Errorf("miss = %+v", m)
	}
}

func TestGoldenConsensusThroughThreeStakeholders(t *testing.T) {
	rep := seller("rep@s.com")
	evs := []event.Event{
		created("o1", day(0), "Value Proposition", 1000),
		call("c1", day(1), "Sync", people(buyer("a@b.com"), rep), booked),
		call("c2", day(3), "Sync", people(buyer("A@b.com"), buyer("b@b.com"), rep), booked), // same a@, any case
		contact("k1", day(4), "c@b.com", "Influencer"),
		contact("k2", day(4), "d@b.com", ""), // no role: not counted
	}
	out := run(evs, day(5))
	golden(t, out, false,
		"d0 commitment.gained collaborate",
		"d1 commitment.gained time",
		"d4 commitment.gained build_consensus",
	)
	if d := find(out, CommitmentGained, "build_consensus"); !slices.Equal(d.Evidence, []string{"c1", "c2", "k1"}) {
		t.Errorf("evidence = %v", d.Evidence)
	}
	// Two stakeholders only: no consensus.
	if find(run(evs[:3], day(5)), CommitmentGained, "build_consensus") != nil {
		t.Error("consensus with two stakeholders")
	}
}

func TestGoldenCallBeforeOpportunity(t *testing.T) {
	evs := []event.Event{
		call("c1", day(0), "Intro", people(buyer("a@b.com"), seller("r@s.com")),
			items(bItem("", "Ann will share the data from the current process", nil))),
		created("o1", day(2), "Prospecting", 1000),
	}
	out := run(evs, day(3))
	golden(t, out, true,
		"d0 commitment.gained time",
		"d0 commitment.gained explore",
		"d2 deal.created",
	)
	if c := find(out, DealCreated, ""); out[0].Amount != 0 || c == nil || c.Amount != 1000 {
		t.Errorf("snapshots: before creation %v, at creation %+v", out[0].Amount, c)
	}
	// The opportunity's first event anchors the stall clock.
	if st := find(run(evs, day(40)), DealStalled, ""); st == nil || !st.OccurredAt.Equal(day(14)) {
		t.Errorf("stall = %+v", st)
	}
}

func TestGoldenBuyerActionDueUnkept(t *testing.T) {
	ann, rep := buyer("a@b.com"), seller("r@s.com")
	evs := []event.Event{
		created("o1", day(0), "Qualification", 1000),
		call("c1", day(1), "Pilot planning", people(ann, rep), items(bItem("pilot", "Set up the pilot environment", ptr(day(8))))),
	}
	out := run(evs, day(30))
	golden(t, out, false,
		"d0 commitment.gained explore",
		"d1 commitment.gained time",
		"d1 commitment.gained invest",
		"d1 deal.single_threaded invest",
		"d10 commitment.missed invest buyer_action_overdue",
	)
	if st := find(run(evs, day(31)), DealStalled, ""); st == nil || !st.OccurredAt.Equal(day(31)) {
		t.Errorf("stall 30 days after invest = %+v", st)
	}
	// Not due yet at day 9 (grace 2 days).
	if find(run(evs, day(9)), CommitmentMissed, MissBuyerActionOverdue) != nil {
		t.Error("overdue inside the grace period")
	}
	// Kept: the buyer engaged again before due+grace.
	kept := append(slices.Clone(evs), call("c2", day(9), "Pilot review", people(ann, rep), booked))
	if find(run(kept, day(30)), CommitmentMissed, MissBuyerActionOverdue) != nil {
		t.Error("overdue although the buyer engaged again")
	}
	// Closed before due: no miss.
	closed := append(slices.Clone(evs), lost("l1", day(5), "Price"))
	if find(run(closed, day(30)), CommitmentMissed, MissBuyerActionOverdue) != nil {
		t.Error("overdue on a closed deal")
	}
}

func TestGoldenLostDeal(t *testing.T) {
	ann, rep := buyer("a@b.com"), seller("r@s.com")
	base := []event.Event{
		created("o1", day(0), "Needs Analysis", 1000),
		call("c1", day(1), "Sync", people(ann, rep), booked),
	}
	out := run(append(slices.Clone(base), lost("l1", day(20), "Price")), day(90))
	golden(t, out, false,
		"d0 commitment.gained change",
		"d1 commitment.gained time",
		"d20 deal.closed Price",
	)
	if d := find(out, DealClosed, ""); d.Status != StatusLost {
		t.Errorf("status = %q", d.Status)
	}

	// Lost to no decision, by reason.
	out = run(append(slices.Clone(base), lost("l1", day(20), "No Decision / Status Quo")), day(90))
	golden(t, out, false,
		"d0 commitment.gained change",
		"d1 commitment.gained time",
		"d20 deal.closed No Decision / Status Quo",
		"d20 commitment.missed collaborate no_decision",
	)

	// Lost without ever winning change: no_decision expecting change,
	// whatever the reason.
	never := []event.Event{
		created("o1", day(0), "Prospecting", 1000),
		call("c1", day(1), "Sync", people(ann, rep), booked),
		lost("l1", day(10), "Competitor"),
	}
	golden(t, run(never, day(90)), false,
		"d1 commitment.gained time",
		"d10 deal.closed Competitor",
		"d10 commitment.missed change no_decision",
	)
}

// TestRules covers each rule on a small input; want lists the expected
// lines (deal.created and deal.updated included).
func TestRules(t *testing.T) {
	a, b2, rep := buyer("a@b.com"), buyer("b@b.com"), seller("r@s.com")
	tests := []struct {
		name string
		evs  []event.Event
		now  time.Time
		want []string
	}{
		{"no next step", []event.Event{
			call("c1", day(0), "Chat", people(a, rep)),
		}, day(1), []string{"d0 commitment.gained time", "d0 commitment.missed explore no_next_step"}},
		{"no buyer present", []event.Event{
			call("c1", day(0), "Chat", people(rep), items(sItem("", "send deck"))),
		}, day(1), []string{"d0 commitment.missed time no_buyer_present"}},
		{"booked next meeting advances", []event.Event{
			call("c1", day(0), "Chat", people(a, rep), booked),
		}, day(1), []string{"d0 commitment.gained time"}},
		{"buyer action without a step advances", []event.Event{
			call("c1", day(0), "Chat", people(a, rep), items(bItem("schedule_meeting", "Ann books the room", nil))),
		}, day(1), []string{"d0 commitment.gained time"}},
		{"seller-owned item of a buyer kind is no evidence", []event.Event{
			call("c1", day(0), "Chat", people(a, rep), booked, items(sItem("pilot", "Set up pilot"))),
		}, day(1), []string{"d0 commitment.gained time"}},
		{"kickoff before the win is not execute", []event.Event{
			call("c1", day(0), "Chat", people(a, rep), items(bItem("kickoff", "Plan kickoff", nil))),
		}, day(1), []string{"d0 commitment.gained time"}},
		{"close date pushed", []event.Event{
			created("o1", day(0), "Qualification", 100),
			ev("d1", day(3), &event.CloseDateChange{From: "2025-06-30", To: "2025-08-31"}),
			ev("d2", day(4), &event.CloseDateChange{To: "2025-07-31"}), // pulled in
		}, day(5), []string{
			"d0 deal.created", "d0 commitment.gained explore",
			"d3 deal.updated close_date", "d3 commitment.missed change close_date_pushed",
			"d4 deal.updated close_date",
		}},
		{"close date pushed by opportunity.updated", []event.Event{
			created("o1", day(0), "Qualification", 100),
			ev("u1", day(3), &event.Opportunity{CloseDate: "2025-09-30"}),
		}, day(5), []string{
			"d0 deal.created", "d0 commitment.gained explore",
			"d3 deal.updated close_date", "d3 commitment.missed change close_date_pushed",
		}},
		{"stage regressed", []event.Event{
			created("o1", day(0), "Qualification", 100),
			stage("s1", day(1), "Proposal/Price Quote"),
			stage("s2", day(2), "Value Proposition"),
			stage("s3", day(3), "Proposal/Price Quote"),
		}, day(4), []string{
			"d0 deal.created", "d0 commitment.gained explore",
			"d1 deal.updated stage", "d1 commitment.gained review", "d1 deal.single_threaded review",
			"d2 deal.updated stage", "d2 stage.regressed collaborate",
			"d3 deal.updated stage",
		}},
		{"hubspot pipeline, case-insensitive, won stage closes", []event.Event{
			ev("o1", day(0), &event.Opportunity{Pipeline: "default", Stage: "AppointmentScheduled", Amount: 5}),
			stage("s1", day(1), "contractsent"),
			stage("s2", day(2), "closedwon"),
		}, day(3), []string{
			"d0 deal.created", "d0 commitment.gained time",
			"d1 deal.updated stage", "d1 commitment.gained review", "d1 deal.single_threaded review",
			"d2 deal.updated stage", "d2 commitment.gained decide", "d2 deal.closed",
		}},
		{"fact changes", []event.Event{
			created("o1", day(0), "Prospecting", 100),
			ev("a1", day(1), &event.AmountChange{From: 100, To: 250}),
			ev("w1", day(2), &event.OwnerChange{To: "rep-2", Team: "west"}),
			ev("f1", day(3), &event.ForecastCategoryChange{To: "Commit"}),
			ev("a2", day(4), &event.AmountChange{From: 250, To: 250}), // no change
		}, day(5), []string{
			"d0 deal.created", "d1 deal.updated amount", "d2 deal.updated owner", "d3 deal.updated forecast_category",
		}},
		{"single-threaded at invest", []event.Event{
			call("c1", day(0), "Budget", people(a, rep), items(bItem("budget_confirmation", "confirm budget", nil))),
		}, day(1), []string{"d0 commitment.gained time", "d0 commitment.gained invest", "d0 deal.single_threaded invest"}},
		{"not single-threaded with consensus", []event.Event{
			contact("k1", day(0), "x@b.com", "Economic Buyer"),
			call("c1", day(1), "Budget", people(a, b2, rep), items(bItem("", "We will confirm the budget", nil))),
		}, day(2), []string{"d1 commitment.gained build_consensus", "d1 commitment.gained time", "d1 commitment.gained invest"}},
		{"crm meeting with follow-up", []event.Event{
			meeting("m1", day(0), "Catch-up", a),
			ev("m2", day(1), &event.Activity{Kind: "meeting", Status: "scheduled", Subject: "Next"}),
		}, day(5), []string{"d0 commitment.gained time"}},
		{"crm meeting gaining nothing new, no follow-up", []event.Event{
			meeting("m1", day(0), "Intro", a),
			meeting("m2", day(5), "Catch-up", a),
		}, day(10), []string{"d0 commitment.gained time", "d5 commitment.missed explore no_next_step"}},
		{"crm meeting decided only after the window", []event.Event{
			meeting("m1", day(0), "Intro", a),
			meeting("m2", day(5), "Catch-up", a),
		}, day(6), []string{"d0 commitment.gained time"}},
		{"crm meeting without buyer", []event.Event{
			meeting("m1", day(0), "Internal prep", rep),
		}, day(1), []string{"d0 commitment.missed time no_buyer_present"}},
		{"buyer task is an action item", []event.Event{
			ev("t1", day(0), &event.Activity{Kind: "task", OwnerSide: event.Buyer, Status: "completed", Subject: "Share data on current process"}),
		}, day(1), []string{"d0 commitment.gained explore"}},
		{"buyer task overdue", []event.Event{
			ev("t1", day(0), &event.Activity{Kind: "task", OwnerSide: event.Buyer, Status: "scheduled", Subject: "Confirm budget", DueAt: ptr(day(3))}),
		}, day(10), []string{"d0 commitment.gained invest", "d0 deal.single_threaded invest", "d5 commitment.missed invest buyer_action_overdue"}},
		{"onboarding meeting after win is execute", []event.Event{
			won("w1", day(0)),
			meeting("m1", day(3), "Customer onboarding", a),
		}, day(4), []string{"d0 deal.created", "d0 deal.closed", "d0 commitment.gained decide", "d3 commitment.gained time", "d3 commitment.gained execute"}},
		{"lost reason arriving after the lost stage", []event.Event{
			created("o1", day(0), "Needs Analysis", 100),
			stage("a1", day(2), "Closed Lost"), // sorts before z1: the reason comes second
			lost("z1", day(2), "no decision"),
		}, day(3), []string{
			"d0 deal.created", "d0 commitment.gained change",
			"d2 deal.updated stage", "d2 deal.closed no decision", "d2 commitment.missed collaborate no_decision",
		}},
		{"no misses after a loss", []event.Event{
			lost("l1", day(0), ""),
			call("c1", day(1), "Chat", people(a, rep)),
		}, day(2), []string{"d0 deal.created", "d0 deal.closed", "d0 commitment.missed change no_decision", "d1 commitment.gained time"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			golden(t, run(tc.evs, tc.now), true, tc.want...)
		})
	}
}

func TestDealUpdatedSnapshotAndDetail(t *testing.T) {
	out := run([]event.Event{
		created("o1", day(0), "Prospecting", 100),
		ev("a1", day(1), &event.AmountChange{From: 100, To: 250.5}),
		ev("d1", day(2), &event.CloseDateChange{To: "2025-07-15"}),
	}, day(3))
	amt := find(out, DealUpdated, FactAmount)
	if amt.Amount != 250.5 || amt.Detail != `{"from":100,"to":250.5}` || !slices.Equal(amt.Evidence, []string{"a1"}) {
		t.Errorf("amount update = %+v", amt)
	}
	cd := find(out, DealUpdated, FactCloseDate)
	if cd.CloseDate.Format(time.DateOnly) != "2025-07-15" || cd.Detail != `{"from":"2025-06-30","to":"2025-07-15"}` {
		t.Errorf("close date update = %+v", cd)
	}
	cr := find(out, DealCreated, "")
	if cr.OwnerID != "rep-1" || cr.Team != "east" || cr.Segment != "mid" || cr.LeadSource != "inbound" ||
		cr.Product != "core" || cr.Status != StatusOpen || cr.Probability != 0.1 || cr.Stage != "Prospecting" {
		t.Errorf("created snapshot = %+v", cr.Snapshot)
	}
}

func TestShortCustomLadder(t *testing.T) {
	l, err := ladder.Parse("short.yaml", []byte(`
version: v7
steps:
  - {key: meet, stall_after_days: 5}
  - {key: buy}
activities:
  - {step: meet, kinds: [call]}
won_step: buy
`))
	if err != nil {
		t.Fatal(err)
	}
	out := Derive(tTenant, tOpp, []event.Event{
		call("c1", day(0), "Hi", people(buyer("a@b.com"), seller("r@s.com"))),
		won("w1", day(3)),
	}, l, day(30))
	golden(t, out, true,
		"d0 commitment.gained meet",
		"d0 commitment.missed buy no_next_step",
		"d3 deal.created",
		"d3 deal.closed",
		"d3 commitment.gained buy",
	)
	if g := find(out, CommitmentGained, "buy"); out[0].LadderVersion != "v7" || g == nil || g.StepIndex != 2 {
		t.Errorf("version %q, gained buy %+v", out[0].LadderVersion, g)
	}
}

func TestDiff(t *testing.T) {
	old := run(climbAll(), day(120))
	cur := run(append(climbAll(), ev("a9", day(60), &event.AmountChange{To: 1})), day(120))
	added, retracted := Diff(old, cur)
	if len(retracted) != 0 || len(added) != 1 || added[0].Type != DealUpdated {
		t.Errorf("added %v retracted %v", lines(added), lines(retracted))
	}
	added, retracted = Diff(cur, old)
	if len(added) != 0 || len(retracted) != 1 {
		t.Errorf("reverse: added %v retracted %v", lines(added), lines(retracted))
	}
	// The same id with new content counts as added.
	changed := slices.Clone(old)
	changed[0].Amount++
	if added, retracted := Diff(old, changed); len(added) != 1 || len(retracted) != 0 || added[0].ID != old[0].ID {
		t.Errorf("changed content: added %v retracted %v", lines(added), lines(retracted))
	}
	if a, r := Diff(old, old); len(a)+len(r) != 0 {
		t.Error("diff of a set with itself is not empty")
	}
	// A late event that removes a stall retracts it.
	evs := []event.Event{created("o1", day(0), "Qualification", 10)}
	before := run(evs, day(30))
	after := run(append(evs, stage("s1", day(10), "Needs Analysis")), day(30))
	_, retracted = Diff(before, after)
	if len(retracted) != 1 || retracted[0].Type != DealStalled {
		t.Errorf("retracted %v", lines(retracted))
	}
}

func TestDeterministicIDsUnique(t *testing.T) {
	out := run(climbAll(), day(400))
	seen := map[string]bool{}
	for _, d := range out {
		if seen[d.ID] {
			t.Errorf("duplicate id %s (%s)", d.ID, line(d))
		}
		seen[d.ID] = true
	}
}

// TestInteractionHeld checks that every buyer interaction is counted once,
// as advanced or continuation, for the miss rate's denominator.
func TestInteractionHeld(t *testing.T) {
	a, rep := buyer("a@b.com"), seller("r@s.com")
	out := run([]event.Event{
		created("o1", day(0), "Prospecting", 100),
		call("c1", day(1), "Intro", people(a, rep)),                                        // no next step
		call("c2", day(2), "Catch-up", people(rep)),                                        // no buyer present
		meeting("m1", day(3), "Working session", a),                                        // decided after the follow-up window
		call("c3", day(10), "Review", people(a, rep), items(bItem("", "Share data", nil))), // advanced
	}, day(20))
	var got []string
	for _, d := range out {
		if d.Type == InteractionHeld {
			got = append(got, line(d)+" "+d.InteractionID)
		}
	}
	want := []string{
		"d1 interaction.held explore continuation c1",
		"d2 interaction.held explore continuation c2",
		"d3 interaction.held explore advanced m1",
		"d10 interaction.held build_consensus advanced c3",
	}
	if !slices.Equal(got, want) {
		t.Errorf("interaction.held:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(want, "\n      "))
	}
}

// TestMeetingLoggedForRecordedCall checks that a CRM meeting logging the
// same conversation as a recorded call is not a second interaction.
func TestMeetingLoggedForRecordedCall(t *testing.T) {
	a, rep := buyer("a@b.com"), seller("r@s.com")
	out := run([]event.Event{
		created("o1", day(0), "Prospecting", 100),
		call("c1", day(1), "Intro", people(a, rep)),
		meeting("m1", day(1).Add(time.Hour), "Intro call", a, rep), // the same conversation
		meeting("m2", day(5), "Check-in", a, rep),                  // another one
	}, day(20))
	var got []string
	for _, d := range out {
		if d.Type == InteractionHeld || d.Type == CommitmentMissed {
			got = append(got, line(d)+" "+d.InteractionID)
		}
	}
	want := []string{
		"d1 interaction.held explore continuation c1",
		"d1 commitment.missed explore no_next_step c1",
		"d5 interaction.held explore continuation m2",
		"d5 commitment.missed explore no_next_step m2",
	}
	if !slices.Equal(got, want) {
		t.Errorf("interactions:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(want, "\n      "))
	}
}

// TestWonNotSingleThreaded: a deal won at an instant is not flagged
// single-threaded at that instant, whether the win is the stage that
// gains the step or another event of the same instant.
func TestWonNotSingleThreaded(t *testing.T) {
	tests := []struct {
		name    string
		evs     []event.Event
		flagged bool
	}{
		{"won stage gains decide", []event.Event{
			created("o1", day(0), "Prospecting", 100),
			stage("s1", day(5), "Closed Won"),
		}, false},
		{"proposal and won stage at one instant", []event.Event{
			created("o1", day(0), "Prospecting", 100),
			stage("s1", day(5), "Proposal/Price Quote"),
			won("s2", day(5)),
		}, false},
		{"won event first, then the stage at one instant", []event.Event{
			created("o1", day(0), "Prospecting", 100),
			won("a1", day(5)),
			stage("b1", day(5), "Closed Won"),
		}, false},
		// The stage change after the win in the fold reopens the deal:
		// open at review with no stakeholder after that instant.
		{"won event first, then an open stage at one instant", []event.Event{
			created("o1", day(0), "Prospecting", 100),
			won("a1", day(5)),
			stage("b1", day(5), "Proposal/Price Quote"),
		}, true},
		{"proposal one day before the win", []event.Event{
			created("o1", day(0), "Prospecting", 100),
			stage("s1", day(5), "Proposal/Price Quote"),
			stage("s2", day(6), "Closed Won"),
		}, true},
		{"enough stakeholders added at the same instant", []event.Event{
			created("o1", day(0), "Prospecting", 100),
			stage("s1", day(5), "Proposal/Price Quote"),
			contact("s2", day(5), "a@b.com", "Economic Buyer"),
			contact("s3", day(5), "b@b.com", "Champion"),
			contact("s4", day(5), "c@b.com", "Champion"),
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := find(run(tc.evs, day(10)), DealSingleThreaded, "")
			if (st != nil) != tc.flagged {
				t.Errorf("single_threaded = %v, want flagged %v", st, tc.flagged)
			}
			if st != nil && (!st.OccurredAt.Equal(day(5)) || st.Status != StatusOpen) {
				t.Errorf("single_threaded = %+v, want at day 5 on an open deal", st)
			}
		})
	}
}

// TestNoDecisionUsesReached: a deal that skipped change (a later step
// gained) reached it, so a loss is not no_decision unless its reason says
// so.
func TestNoDecisionUsesReached(t *testing.T) {
	ann, rep := buyer("a@b.com"), seller("r@s.com")
	skipped := []event.Event{
		created("o1", day(0), "Qualification", 1000),
		call("c1", day(1), "Sync", people(ann, rep), booked),
		stage("s1", day(4), "Value Proposition"), // collaborate: change skipped
	}
	golden(t, run(append(slices.Clone(skipped), lost("l1", day(20), "Competitor")), day(30)), false,
		"d0 commitment.gained explore",
		"d1 commitment.gained time",
		"d4 commitment.gained collaborate",
		"d20 deal.closed Competitor",
	)
	golden(t, run(append(slices.Clone(skipped), lost("l1", day(20), "No Decision")), day(30)), false,
		"d0 commitment.gained explore",
		"d1 commitment.gained time",
		"d4 commitment.gained collaborate",
		"d20 deal.closed No Decision",
		"d20 commitment.missed build_consensus no_decision",
	)
	// A ladder whose CRM stages never map to change.
	l, err := ladder.Parse("nochange.yaml", []byte(`
version: v1
steps: [{key: time}, {key: change}, {key: review}, {key: decide}]
pipelines:
  - pipeline: "*"
    stages: {Demo: time, Proposal: review, Won: decide, Lost: none}
won_stages: [Won]
lost_stages: [Lost]
won_step: decide
no_decision: {step: change}
`))
	if err != nil {
		t.Fatal(err)
	}
	evs := []event.Event{
		created("o1", day(0), "Demo", 1000),
		stage("s1", day(3), "Proposal"),
		stage("s2", day(9), "Lost"),
	}
	if m := find(Derive(tTenant, tOpp, evs, l, day(20)), CommitmentMissed, MissNoDecision); m != nil {
		t.Errorf("loss after reaching review is %s", line(*m))
	}
	evs = evs[:1:1]
	evs = append(evs, stage("s2", day(9), "Lost"))
	if m := find(Derive(tTenant, tOpp, evs, l, day(20)), CommitmentMissed, MissNoDecision); m == nil || m.Step != "change" {
		t.Errorf("loss before reaching change: no_decision = %v, want one expecting change", m)
	}
}

// TestGoldenReopen: a lost deal moved back to an open stage is open again
// (deal.reopened), stalls only counting from the reopen, and its next loss
// is a close of its own (closed/lost/2).
func TestGoldenReopen(t *testing.T) {
	out := run([]event.Event{
		created("o1", day(0), "Needs Analysis", 1000),
		stage("s1", day(5), "Closed Lost"),
		stage("s2", day(30), "Qualification"),
		lost("l1", day(60), "Price"),
	}, day(90))
	golden(t, out, false,
		"d0 commitment.gained change",
		"d5 deal.closed",
		"d30 stage.regressed explore",
		"d30 deal.reopened",
		"d51 deal.stalled change",
		"d60 deal.closed Price",
	)
	re := find(out, DealReopened, "")
	if re.Status != StatusOpen || re.Stage != "Qualification" || re.Detail != `{"from":"lost"}` {
		t.Errorf("deal.reopened = %+v, want open at Qualification from lost", re)
	}
	if want := ID(tTenant, tOpp, DealReopened, "reopened/salesforce/s2"); re.ID != want {
		t.Errorf("deal.reopened id %s, want %s", re.ID, want)
	}
	var closes []string
	for _, d := range out {
		if d.Type == DealClosed {
			closes = append(closes, d.ID)
		}
	}
	want := []string{ID(tTenant, tOpp, DealClosed, "closed/lost"), ID(tTenant, tOpp, DealClosed, "closed/lost/2")}
	if !slices.Equal(closes, want) {
		t.Errorf("deal.closed ids %v, want %v", closes, want)
	}
	st := Summarize(out, ladder.Default().Len())
	for _, c := range []struct {
		at     time.Time
		status string
	}{{day(4), StatusOpen}, {day(5), StatusLost}, {day(29), StatusLost}, {day(30), StatusOpen}, {day(59), StatusOpen}, {day(60), StatusLost}} {
		if f, _ := factsAsOf(st, c.at); f.Status != c.status {
			t.Errorf("status as of day %g = %q, want %q", c.at.Sub(t0).Hours()/24, f.Status, c.status)
		}
	}
}

// TestCurrency: every amount carries its currency, folded to upper case;
// a currency alone is a change of the amount fact; a close reporting no
// amount keeps the last one, one reporting an amount sets it.
func TestCurrency(t *testing.T) {
	tests := []struct {
		name   string
		evs    []event.Event
		amount float64
		cur    string
		detail string // of the last deal.updated amount; "" for none
	}{
		{"created without currency", []event.Event{created("o1", day(0), "Prospecting", 100)}, 100, "", ""},
		{"created in eur", []event.Event{
			ev("o1", day(0), &event.Opportunity{Amount: 100, Currency: "eur", Stage: "Prospecting"}),
		}, 100, "EUR", ""},
		{"amount change in another currency", []event.Event{
			ev("o1", day(0), &event.Opportunity{Amount: 100, Currency: "EUR", Stage: "Prospecting"}),
			ev("a1", day(1), &event.AmountChange{From: 100, To: 120, Currency: "GBP"}),
		}, 120, "GBP", `{"from":100,"to":120,"currency":"GBP","from_currency":"EUR"}`},
		{"amount change keeps the currency", []event.Event{
			ev("o1", day(0), &event.Opportunity{Amount: 100, Currency: "EUR", Stage: "Prospecting"}),
			ev("a1", day(1), &event.AmountChange{From: 100, To: 0}),
		}, 0, "EUR", `{"from":100,"to":0,"currency":"EUR"}`},
		{"currency alone", []event.Event{
			ev("o1", day(0), &event.Opportunity{Amount: 100, Currency: "EUR", Stage: "Prospecting"}),
			updated("u1", day(1), &event.Opportunity{Currency: "USD"}),
		}, 100, "USD", `{"from":100,"to":100,"currency":"USD","from_currency":"EUR"}`},
		{"lost keeps the last amount", []event.Event{
			ev("o1", day(0), &event.Opportunity{Amount: 100, Currency: "EUR", Stage: "Prospecting"}),
			lost("l1", day(2), "Price"),
		}, 100, "EUR", ""},
		{"lost with its amount", []event.Event{
			ev("o1", day(0), &event.Opportunity{Amount: 100, Currency: "EUR", Stage: "Prospecting"}),
			ev("l1", day(2), &event.Lost{Reason: "Price", Amount: 90}),
		}, 90, "EUR", `{"from":100,"to":90,"currency":"EUR"}`},
		{"won in another currency", []event.Event{
			ev("o1", day(0), &event.Opportunity{Amount: 100, Currency: "EUR", Stage: "Prospecting"}),
			ev("w1", day(2), &event.Won{Amount: 110, Currency: "CHF"}),
		}, 110, "CHF", `{"from":100,"to":110,"currency":"CHF","from_currency":"EUR"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := run(tt.evs, day(3))
			last := out[len(out)-1]
			if last.Amount != tt.amount || last.Currency != tt.cur {
				t.Errorf("last snapshot amount %v %q, want %v %q", last.Amount, last.Currency, tt.amount, tt.cur)
			}
			var detail string
			for _, d := range out {
				if d.Type == DealUpdated && d.Reason == FactAmount {
					detail = d.Detail
				}
			}
			if detail != tt.detail {
				t.Errorf("amount detail %s, want %s", detail, tt.detail)
			}
		})
	}
}

// TestEnvelopeFacts: what the envelope says beyond the typed changes — a
// probability set to 0, an amount emptied, the CRM's creation time, free
// breakdown attributes — ends in the facts and in State.
func TestEnvelopeFacts(t *testing.T) {
	crmCreated := day(-10)
	evs := []event.Event{
		created("o1", day(0), "Prospecting", 100),
		ev("p1", day(1), &event.ProbabilityChange{From: 0.1, To: 0}),
		ev("a1", day(2), &event.AmountChange{From: 100, Cleared: true}),
		updated("u1", day(3), &event.Opportunity{CreatedAt: &crmCreated, Attributes: map[string]string{"region": "EMEA", "deal_type": "new"}}),
		updated("u2", day(4), &event.Opportunity{Attributes: map[string]string{"region": "APAC", "deal_type": ""}}),
	}
	out := run(evs, day(5))
	var updates []string
	for _, d := range out {
		if d.Type == DealUpdated {
			updates = append(updates, d.Reason+" "+d.Detail)
		}
	}
	want := []string{
		`probability {"from":0.1,"to":0}`,
		`amount {"from":100,"to":null}`,
		`attribute {"key":"deal_type","from":"","to":"new"}`,
		`attribute {"key":"region","from":"","to":"EMEA"}`,
		`attribute {"key":"deal_type","from":"new","to":""}`,
		`attribute {"key":"region","from":"EMEA","to":"APAC"}`,
	}
	if !slices.Equal(updates, want) {
		t.Errorf("deal.updated:\n got %q\nwant %q", updates, want)
	}
	last := out[len(out)-1]
	if last.Probability != 0 || last.Amount != 0 || !slices.Equal(last.Attrs, []Attr{{"region", "APAC"}}) {
		t.Errorf("last snapshot %+v", last.Snapshot)
	}
	seen := map[string]bool{}
	for _, d := range out {
		if seen[d.ID] {
			t.Errorf("duplicate id %s (%s %s)", d.ID, d.Type, d.Detail)
		}
		seen[d.ID] = true
	}
	cr := find(out, DealCreated, "")
	if cr.Detail != `{"created_at":"`+crmCreated.Format(time.RFC3339)+`"}` {
		t.Errorf("deal.created detail %s", cr.Detail)
	}
	st := Summarize(out, ladder.Default().Len())
	if !st.CreatedAt.Equal(crmCreated) || !st.FirstAt.Equal(day(0)) {
		t.Errorf("state created %v first %v, want %v %v", st.CreatedAt, st.FirstAt, crmCreated, day(0))
	}
	// The attributes as of day 3 are in the facts of that second.
	if i := slices.IndexFunc(st.FactTimes, func(x time.Time) bool { return x.Equal(day(3)) }); i < 0 ||
		!slices.Equal(st.Facts[i].Attrs, []Attr{{"deal_type", "new"}, {"region", "EMEA"}}) {
		t.Errorf("facts at day 3: %v %+v", st.FactTimes, st.Facts)
	}
	// A creation time later than the first event changes nothing.
	late := day(1)
	out = run([]event.Event{created("o1", day(0), "Prospecting", 100), updated("u1", day(2), &event.Opportunity{CreatedAt: &late})}, day(3))
	if cr := find(out, DealCreated, ""); cr.Detail != "" {
		t.Errorf("late creation time noted: %s", cr.Detail)
	}
}

// TestStallClockRestartsAtReopen: a deal that stalled, closed and was
// reopened stalls again a threshold after the reopen, with an id of its
// own; before, the stall of the same last commitment fired only once.
func TestStallClockRestartsAtReopen(t *testing.T) {
	out := run([]event.Event{
		created("o1", day(0), "Perception Analysis", 1000), // invest: 30 days
		lost("l1", day(40), "Price"),
		stage("s1", day(60), "Qualification"),
	}, day(100))
	golden(t, out, false,
		"d0 commitment.gained invest",
		"d0 deal.single_threaded invest",
		"d30 deal.stalled invest",
		"d40 deal.closed Price",
		"d60 stage.regressed explore",
		"d60 deal.reopened",
		"d90 deal.stalled invest",
	)
	second := out[len(out)-1]
	if second.Detail != `{"since":"`+day(60).Format(time.RFC3339)+`"}` {
		t.Errorf("second stall detail %s", second.Detail)
	}
}
