package exporttest

import (
	"fmt"
	"math/rand"
	"time"

	"github.com/commitflow/commitflow/internal/event"
)

const (
	tenant = "acme"
	// tenantReopened holds the deals that close and then move back to an
	// open stage, so that a sub-case that fails only for them can be
	// skipped while the rest is checked.
	tenantReopened = "acme-reopened"
	// tenantFX holds the deals of an fx book (see generate).
	tenantFX = "acme-fx"
	// tenantAged holds the deals the CRM dates before they were first
	// seen (see generateAged).
	tenantAged = "acme-aged"
	crmSource  = "salesforce"
	// callSource sorts before crmSource: a call and a CRM edit at one
	// instant fold call first.
	callSource = "gong"
)

// day parses a YYYY-MM-DD date at midnight UTC.
func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

var (
	// start is the first day of the generated history.
	start = day("2024-01-01")
	// busyDay is a date-only day on which many deals are created, edited
	// and closed: every change of the day happens at its midnight.
	busyDay = day("2024-05-13")
	// exportDay is the day an export of the deals open then is loaded:
	// deals the CRM created long before, first seen at its midnight.
	exportDay = day("2024-06-03")
)

// openStages are the standard Salesforce stages that close nothing, in
// pipeline order, and the CRM probability of each.
var openStages = []string{"Prospecting", "Qualification", "Needs Analysis", "Value Proposition",
	"Id. Decision Makers", "Perception Analysis", "Proposal/Price Quote", "Negotiation/Review"}

var stageProbability = map[string]float64{
	"Prospecting": 0.1, "Qualification": 0.2, "Needs Analysis": 0.25, "Value Proposition": 0.35,
	"Id. Decision Makers": 0.45, "Perception Analysis": 0.55, "Proposal/Price Quote": 0.7,
	"Negotiation/Review": 0.85, "Closed Won": 1, "Closed Lost": 0,
}

var (
	// currencies are those of generateFX's deals, "" for none given.
	currencies = []string{"USD", "EUR", "GBP", ""}
	regions    = []string{"emea", "amer", "apac"}
	dealTypes  = []string{"new", "renewal"}
	owners     = []string{"ann", "bob", "cy", "dee"}
	teamOf     = map[string]string{"ann": "east", "bob": "east", "cy": "west", "dee": "west"}
	segments   = []string{"smb", "mid", "ent"}
	sources    = []string{"web", "partner", "outbound"}
	products   = []string{"core", "plus"}
)

// dealGen writes the events of one opportunity in the order the CRM made
// them; ids sort in that order within the opportunity, so that events of
// one instant fold in the order they were made.
type dealGen struct {
	rng   *rand.Rand
	opp   string
	evs   []event.Event
	at    time.Time // the current instant (midnight: exports carry dates only)
	stage int       // index in openStages
	seen  []int     // stages entered so far
	close time.Time // the CRM close date
	owner string
	n     int
	// fx: the deal is one of an fx book's (see generate).
	fx bool
}

func (g *dealGen) add(at time.Time, source string, typ event.Type, p event.Payload) {
	g.n++
	prefix := "sf"
	if source == callSource {
		prefix = "call"
	}
	g.evs = append(g.evs, event.Event{
		V: 1, ID: fmt.Sprintf("%s-%s-%03d", prefix, g.opp, g.n), Tenant: tenant, Source: source, Type: typ,
		OccurredAt: at, ReceivedAt: at.Add(time.Duration(1+g.rng.Intn(72)) * time.Hour), OpportunityID: g.opp, Payload: p,
	})
}

// next moves the clock: often not at all (the next change is part of the
// same CRM edit, or of another edit of the same day), else by whole days;
// a deal active around the busy day has its change on it.
func (g *dealGen) next() {
	if g.rng.Intn(10) < 3 {
		return
	}
	to := g.at.AddDate(0, 0, 1+g.rng.Intn(25))
	if g.at.Before(busyDay) && to.After(busyDay) && g.rng.Intn(2) == 0 {
		to = busyDay
	}
	g.at = to
}

func (g *dealGen) toStage(i int) {
	g.stage = i
	g.seen = append(g.seen, i)
	st := openStages[i]
	g.add(g.at, crmSource, event.StageChanged, &event.StageChange{To: st, Probability: stageProbability[st]})
}

func (g *dealGen) amount() float64 { return float64(1000 * (1 + g.rng.Intn(120))) }

// edit is one CRM edit: one to three typed events at the current instant.
func (g *dealGen) edit() {
	for k := 1 + g.rng.Intn(3); k > 0; k-- {
		switch r := g.rng.Intn(20); {
		case r < 6: // forward, skipping up to two stages
			g.toStage(min(g.stage+1+g.rng.Intn(3), len(openStages)-1))
		case r < 8: // backward
			if g.stage > 0 {
				g.toStage(g.rng.Intn(g.stage))
			}
		case r < 9: // back into a stage entered before (possibly the current one: no change)
			g.toStage(g.seen[g.rng.Intn(len(g.seen))])
		case r < 12:
			g.amountChange()
		case r < 15: // pushed out or pulled in
			to := g.close.AddDate(0, 0, g.rng.Intn(61)-20)
			if to.Before(start) {
				to = start
			}
			g.add(g.at, crmSource, event.CloseDateChanged, &event.CloseDateChange{
				From: event.Date(g.close.Format(time.DateOnly)), To: event.Date(to.Format(time.DateOnly))})
			g.close = to
		case r < 17:
			g.owner = owners[g.rng.Intn(len(owners))]
			g.add(g.at, crmSource, event.OwnerChanged, &event.OwnerChange{To: g.owner, Team: teamOf[g.owner]})
		case r < 18:
			g.add(g.at, crmSource, event.ContactAdded, &event.Contact{
				ContactID: fmt.Sprintf("c-%s-%d", g.opp, g.n), Email: g.buyer(), Role: "Champion"})
		default:
			g.add(g.at, crmSource, event.OpportunityUpdated, &event.Opportunity{
				Segment: segments[g.rng.Intn(len(segments))], Product: products[g.rng.Intn(len(products))], Attributes: g.attrs()})
		}
	}
}

// amountChange is an amount_changed: in USD, or for an fx deal sometimes
// in another currency (a switch) or cleared.
func (g *dealGen) amountChange() {
	if !g.fx {
		g.add(g.at, crmSource, event.AmountChanged, &event.AmountChange{To: g.amount(), Currency: "USD"})
		return
	}
	switch g.rng.Intn(6) {
	case 0:
		g.add(g.at, crmSource, event.AmountChanged, &event.AmountChange{Cleared: true})
	case 1, 2:
		g.add(g.at, crmSource, event.AmountChanged, &event.AmountChange{To: g.amount(), Currency: currencies[g.rng.Intn(len(currencies))]})
	default: // the currency is left out: unchanged
		g.add(g.at, crmSource, event.AmountChanged, &event.AmountChange{To: g.amount()})
	}
}

// attrs are the free attributes an edit of an fx deal sets, changes or
// clears (an empty value); nil for other deals.
func (g *dealGen) attrs() map[string]string {
	if !g.fx || g.rng.Intn(3) == 0 {
		return nil
	}
	m := map[string]string{"region": ""}
	if g.rng.Intn(4) > 0 {
		m["region"] = regions[g.rng.Intn(len(regions))]
	}
	if g.rng.Intn(2) == 0 {
		m["deal_type"] = dealTypes[g.rng.Intn(len(dealTypes))]
	}
	return m
}

// buyer is one of the deal's four buyer-side people.
func (g *dealGen) buyer() string { return fmt.Sprintf("b%d@buyer-%s.example", g.rng.Intn(4), g.opp) }

// call is a recorded call later that day: buyer and seller participants
// (sometimes no buyer), buyer- and seller-owned action items, sometimes
// a booked next meeting.
func (g *dealGen) call() {
	at := g.at.Add(time.Duration(9+g.rng.Intn(8)) * time.Hour)
	c := &event.Call{
		CallID: fmt.Sprintf("%s-call-%d", g.opp, g.n), Title: "Weekly sync", StartedAt: at, DurationSeconds: 1800,
		Participants: []event.Participant{{Email: g.owner + "@seller.example", Side: event.Seller}},
	}
	if g.rng.Intn(3) == 0 {
		c.Title = "Discovery call"
	}
	if g.rng.Intn(6) > 0 {
		for k := 1 + g.rng.Intn(2); k > 0; k-- {
			c.Participants = append(c.Participants, event.Participant{Email: g.buyer(), Side: event.Buyer})
		}
	}
	switch g.rng.Intn(5) {
	case 0:
		c.ActionItems = append(c.ActionItems, event.ActionItem{Text: "Share usage data", OwnerSide: event.Buyer, OwnerEmail: g.buyer(), Kind: "share_data"})
	case 1:
		c.ActionItems = append(c.ActionItems, event.ActionItem{Text: "Confirm the budget for a pilot", OwnerSide: event.Buyer, OwnerEmail: g.buyer()})
	case 2:
		c.ActionItems = append(c.ActionItems, event.ActionItem{Text: "Send the deck", OwnerSide: event.Seller, Kind: "send_info"})
	case 3:
		c.NextMeetingBooked = true
	}
	if g.fx {
		g.fxCall(at, c)
	}
	g.add(at, callSource, event.CallCompleted, c)
}

// fxCall adds to a call of an fx deal: due dates of buyer action items
// (a second item, without an owner e-mail, sometimes), sometimes no
// participants but the seller, and a CRM meeting of the same conversation
// (logged an hour later sharing a participant, or listing none), which
// must not count as an interaction of its own.
func (g *dealGen) fxCall(at time.Time, c *event.Call) {
	if g.rng.Intn(3) == 0 {
		c.ActionItems = append(c.ActionItems, event.ActionItem{Text: "Send the security questionnaire", OwnerSide: event.Buyer})
	}
	for i := range c.ActionItems {
		if c.ActionItems[i].OwnerSide == event.Buyer && g.rng.Intn(4) > 0 {
			due := at.AddDate(0, 0, 1+g.rng.Intn(12))
			c.ActionItems[i].DueAt = &due
		}
	}
	if g.rng.Intn(3) == 0 {
		m := &event.Activity{Kind: event.ActivityMeeting, Subject: c.Title}
		if g.rng.Intn(2) == 0 {
			m.Participants = c.Participants[len(c.Participants)-1:]
		}
		g.add(at.Add(time.Hour), crmSource, event.ActivityLogged, m)
	}
}

// meeting is a CRM meeting of an fx deal: held (with a buyer, without
// one, or with nobody listed) or scheduled, a follow-up for the held ones
// before it.
func (g *dealGen) meeting() {
	at := g.at.Add(time.Duration(9+g.rng.Intn(8)) * time.Hour)
	m := &event.Activity{Kind: event.ActivityMeeting, Subject: "Check-in"}
	switch g.rng.Intn(5) {
	case 0:
		m.Status = "scheduled"
		m.Subject = "Next meeting"
	case 1:
		m.Participants = []event.Participant{{Email: g.owner + "@seller.example", Side: event.Seller}}
	case 2:
		m.Subject = "Working session"
		m.Status = "completed"
		m.Participants = []event.Participant{{Email: g.buyer(), Side: event.Buyer}}
	default:
		m.Participants = []event.Participant{{Email: g.owner + "@seller.example", Side: event.Seller}, {Email: g.buyer(), Side: event.Buyer}}
	}
	g.add(at, crmSource, event.ActivityLogged, m)
}

func (g *dealGen) closeWon() {
	if g.rng.Intn(2) == 0 {
		g.add(g.at, crmSource, event.StageChanged, &event.StageChange{To: "Closed Won", Probability: 1})
		return
	}
	p := &event.Won{}
	if g.rng.Intn(2) == 0 {
		p.Amount = g.amount()
	}
	g.add(g.at, crmSource, event.ClosedWon, p)
}

func (g *dealGen) closeLost() {
	if g.rng.Intn(2) == 0 {
		g.add(g.at, crmSource, event.StageChanged, &event.StageChange{To: "Closed Lost"})
		return
	}
	reason := "price"
	if g.rng.Intn(3) == 0 {
		reason = "no decision"
	}
	p := &event.Lost{Reason: reason, Competitor: "other"}
	if g.fx && g.rng.Intn(2) == 0 { // the amount lost, sometimes in another currency
		p.Amount = g.amount()
		if g.rng.Intn(3) == 0 {
			p.Currency = currencies[g.rng.Intn(len(currencies))]
		}
	}
	g.add(g.at, crmSource, event.ClosedLost, p)
}

// generate returns the input events of n opportunities, each
// opportunity's in the order they were made. The deals of an fx book
// (tenant tenantFX) also have amounts in USD, EUR, GBP or none, switch
// currency, clear their amount, lose with an amount, carry free
// attributes (region, deal_type) set, changed and cleared over time, hold
// CRM meetings (some logging a recorded call's conversation) and promise
// buyer actions with due dates.
func generate(seed int64, n int, fx bool) []event.Event {
	rng := rand.New(rand.NewSource(seed))
	prefix := "opp"
	if fx {
		prefix = "fx"
	}
	var all []event.Event
	for i := 0; i < n; i++ {
		g := &dealGen{rng: rng, opp: fmt.Sprintf("%s-%04d", prefix, i), fx: fx}
		g.at = start.AddDate(0, 0, rng.Intn(240))
		if rng.Intn(8) == 0 {
			g.at = busyDay
		}
		g.stage = rng.Intn(3)
		g.seen = []int{g.stage}
		g.close = g.at.AddDate(0, 0, 30+rng.Intn(90))
		g.owner = owners[rng.Intn(len(owners))]
		st := openStages[g.stage]
		created := &event.Opportunity{
			Name: "Deal " + g.opp, Amount: g.amount(), Currency: "USD", CloseDate: event.Date(g.close.Format(time.DateOnly)),
			Stage: st, Probability: stageProbability[st], OwnerID: g.owner, Team: teamOf[g.owner],
			Segment: segments[rng.Intn(len(segments))], LeadSource: sources[rng.Intn(len(sources))], Product: products[rng.Intn(len(products))],
		}
		if fx {
			created.Currency = currencies[rng.Intn(len(currencies))]
			created.Attributes = g.attrs()
		}
		g.add(g.at, crmSource, event.OpportunityCreated, created)
		if rng.Intn(4) == 0 { // the rest of the creating edit, at the same instant
			g.edit()
		}
		for m := 1 + rng.Intn(8); m > 0; m-- {
			g.next()
			g.edit()
			if rng.Intn(3) == 0 {
				g.call()
			}
			if fx && rng.Intn(3) == 0 {
				g.meeting()
			}
		}
		g.next()
		reopened := false
		switch r := rng.Intn(20); {
		case r < 5: // still open
		case r < 9:
			if rng.Intn(2) == 0 { // the closing edit also changes the amount
				g.add(g.at, crmSource, event.AmountChanged, &event.AmountChange{To: g.amount(), Currency: "USD"})
			}
			g.closeWon()
		case r < 14:
			g.closeLost()
		case r < 17: // lost, reopened by a move back to an open stage, then won
			reopened = true
			g.closeLost()
			g.at = g.at.AddDate(0, 0, 5+rng.Intn(40))
			g.toStage(rng.Intn(len(openStages)))
			if rng.Intn(3) > 0 {
				g.at = g.at.AddDate(0, 0, 5+rng.Intn(60))
				g.closeWon()
			}
		case r < 18: // lost and won at one instant: a correction in one edit
			g.closeLost()
			g.closeWon()
		default: // won, then the stage moved back: open again
			reopened = true
			g.closeWon()
			g.at = g.at.AddDate(0, 0, 1+rng.Intn(30))
			g.toStage(rng.Intn(len(openStages)))
		}
		switch {
		case fx:
			for i := range g.evs {
				g.evs[i].Tenant = tenantFX
			}
		case reopened:
			for i := range g.evs {
				g.evs[i].Tenant = tenantReopened
			}
		}
		all = append(all, g.evs...)
	}
	return all
}

// sellerCall is a recorded call at at with the seller alone, sometimes
// with the seller's own action item: evidence of no commitment.
func (g *dealGen) sellerCall(at time.Time) {
	c := &event.Call{
		CallID: fmt.Sprintf("%s-call-%d", g.opp, g.n), Title: "Intro", StartedAt: at, DurationSeconds: 900,
		Participants: []event.Participant{{Email: g.owner + "@seller.example", Side: event.Seller}},
	}
	if g.rng.Intn(2) == 0 {
		c.ActionItems = []event.ActionItem{{Text: "Send the deck", OwnerSide: event.Seller, Kind: "send_info"}}
	}
	g.add(at, callSource, event.CallCompleted, c)
}

// quiet is a change that shows no commitment, a few days on: an amount
// (currency unchanged), a close date or an owner changed, or a call with
// the seller alone.
func (g *dealGen) quiet() {
	g.at = g.at.AddDate(0, 0, 2+g.rng.Intn(30))
	switch g.rng.Intn(4) {
	case 0:
		g.add(g.at, crmSource, event.AmountChanged, &event.AmountChange{To: g.amount()})
	case 1:
		to := g.close.AddDate(0, 0, 1+g.rng.Intn(30))
		g.add(g.at, crmSource, event.CloseDateChanged, &event.CloseDateChange{
			From: event.Date(g.close.Format(time.DateOnly)), To: event.Date(to.Format(time.DateOnly))})
		g.close = to
	case 2:
		g.owner = owners[g.rng.Intn(len(owners))]
		g.add(g.at, crmSource, event.OwnerChanged, &event.OwnerChange{To: g.owner, Team: teamOf[g.owner]})
	default:
		g.sellerCall(g.at.Add(time.Duration(9+g.rng.Intn(8)) * time.Hour))
	}
}

// agedKind is how a deal of generateAged is first seen.
type agedKind int

const (
	// exported: first seen on exportDay, created 20 to 400 days before.
	exported agedKind = iota
	// webhook: first seen any day at a time of day, created 20 to 400
	// days before.
	webhook
	// calledFirst: seller-only calls 5 to 50 days before the opportunity,
	// which carries no earlier created_at.
	calledFirst
	// calledFirstDated: as calledFirst, but the opportunity carries a
	// created_at before it: a time of the day 0 to 60 days before the
	// first call (possibly later that day than the call), or halfway
	// between the first call and the opportunity.
	calledFirstDated
)

// generateAged returns the input events of n deals the CRM dates before
// they were first seen (tenant tenantAged), in Prospecting (no
// commitment) when the CRM first shows them: exported or sent by a
// webhook with a created_at far back (a date, or a date and a time), or
// first seen in calls with the seller alone before their opportunity,
// which carries no created_at or one before it.
// Then changes that show no commitment; then they stay without a
// commitment, gain one later (Qualification, Needs Analysis), are lost
// and reopened (into Prospecting: the stall clock restarts at the
// reopen; or into Qualification), or close. Amounts are in USD or EUR.
func generateAged(seed int64, n int) []event.Event {
	rng := rand.New(rand.NewSource(seed))
	var all []event.Event
	for i := 0; i < n; i++ {
		g := &dealGen{rng: rng, opp: fmt.Sprintf("aged-%04d", i), owner: owners[rng.Intn(len(owners))]}
		kind := agedKind(rng.Intn(4))
		g.at = exportDay
		if kind != exported {
			g.at = start.AddDate(0, 0, 40+rng.Intn(240)).Add(time.Duration(rng.Intn(86400)) * time.Second)
		}
		g.close = g.at.AddDate(0, 0, 30+rng.Intn(90)).Truncate(24 * time.Hour)
		g.seen = []int{0}
		created := &event.Opportunity{
			Name: "Deal " + g.opp, Amount: g.amount(), Currency: []string{"USD", "EUR"}[rng.Intn(2)],
			CloseDate: event.Date(g.close.Format(time.DateOnly)), Stage: openStages[0], Probability: stageProbability[openStages[0]],
			OwnerID: g.owner, Team: teamOf[g.owner], Segment: segments[rng.Intn(len(segments))],
			LeadSource: sources[rng.Intn(len(sources))], Product: products[rng.Intn(len(products))],
		}
		switch kind {
		case exported, webhook:
			c := g.at.AddDate(0, 0, -(20 + rng.Intn(380))).Truncate(24 * time.Hour)
			if rng.Intn(2) == 0 {
				c = c.Add(time.Duration(rng.Intn(86400)) * time.Second)
			}
			created.CreatedAt = &c
		case calledFirst, calledFirstDated:
			first := g.at.AddDate(0, 0, -(5 + rng.Intn(46)))
			g.sellerCall(first)
			if rng.Intn(2) == 0 {
				g.sellerCall(first.AddDate(0, 0, 1+rng.Intn(4)))
			}
			if kind == calledFirstDated {
				c := first.AddDate(0, 0, -rng.Intn(61)).Truncate(24 * time.Hour).Add(time.Duration(rng.Intn(86400)) * time.Second)
				if rng.Intn(2) == 0 {
					c = first.Add(g.at.Sub(first) / 2).Truncate(time.Second)
				}
				created.CreatedAt = &c
			}
		}
		g.add(g.at, crmSource, event.OpportunityCreated, created)
		if created.CreatedAt != nil && rng.Intn(2) == 0 {
			// Every row of the export carries the CRM's creation date.
			g.add(g.at, crmSource, event.OpportunityUpdated, &event.Opportunity{Product: created.Product, CreatedAt: created.CreatedAt})
		}
		for m := rng.Intn(4); m > 0; m-- {
			g.quiet()
		}
		switch r := rng.Intn(20); {
		case r < 8: // still open, without a commitment
		case r < 12: // a commitment later, then quiet again
			g.at = g.at.AddDate(0, 0, 5+rng.Intn(60))
			g.toStage(1 + rng.Intn(2))
			if rng.Intn(2) == 0 {
				g.quiet()
			}
		case r < 16: // lost by a stage change, then reopened
			g.at = g.at.AddDate(0, 0, 3+rng.Intn(40))
			g.add(g.at, crmSource, event.StageChanged, &event.StageChange{To: "Closed Lost"})
			g.at = g.at.AddDate(0, 0, 5+rng.Intn(40))
			g.toStage(rng.Intn(2))
			if rng.Intn(2) == 0 {
				g.quiet()
			}
		case r < 18:
			g.at = g.at.AddDate(0, 0, 3+rng.Intn(60))
			g.closeWon()
		default:
			g.at = g.at.AddDate(0, 0, 3+rng.Intn(60))
			g.closeLost()
		}
		for i := range g.evs {
			g.evs[i].Tenant = tenantAged
		}
		all = append(all, g.evs...)
	}
	return all
}

// arrival shuffles evs into an arrival order, every event of one instant
// included, and adds redeliveries of about one event in twenty.
func arrival(rng *rand.Rand, evs []event.Event) (first, again []event.Event) {
	first = append([]event.Event(nil), evs...)
	rng.Shuffle(len(first), func(a, b int) { first[a], first[b] = first[b], first[a] })
	for _, ev := range evs {
		if rng.Intn(20) == 0 {
			again = append(again, ev)
		}
	}
	return first, again
}
