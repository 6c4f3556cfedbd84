package gen

import (
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/commitflow/commitflow/internal/event"
)

// Sources of generated events.
const (
	srcSalesforce = "salesforce"
	srcHubSpot    = "hubspot"
	srcGong       = "gong"
)

// Ladder steps, in the order of DOMAIN.md.
const (
	stepTime = iota
	stepExplore
	stepChange
	stepCollaborate
	stepConsensus
	stepInvest
	stepReview
	stepResolve
	stepDecide
	stepExecute
	numSteps
)

// crmStage is a CRM stage with its default probability and forecast
// category.
type crmStage struct {
	name string
	prob float64
	fc   string
}

// Salesforce standard opportunity stages.
var (
	sfProspecting   = crmStage{"Prospecting", 0.10, "Pipeline"}
	sfQualification = crmStage{"Qualification", 0.10, "Pipeline"}
	sfNeeds         = crmStage{"Needs Analysis", 0.20, "Pipeline"}
	sfValue         = crmStage{"Value Proposition", 0.50, "Pipeline"}
	sfDecisionMkrs  = crmStage{"Id. Decision Makers", 0.60, "Pipeline"}
	sfPerception    = crmStage{"Perception Analysis", 0.70, "Best Case"}
	sfProposal      = crmStage{"Proposal/Price Quote", 0.75, "Best Case"}
	sfNegotiation   = crmStage{"Negotiation/Review", 0.90, "Commit"}
	sfWon           = crmStage{"Closed Won", 1, "Closed"}
	sfLost          = crmStage{"Closed Lost", 0, "Omitted"}
)

// HubSpot default deal pipeline stages. Their forecast categories are
// Salesforce's labels: one company's deals share one set of categories,
// and a breakdown by category would otherwise show each twice.
var (
	hsAppointment  = crmStage{"appointmentscheduled", 0.20, "Pipeline"}
	hsQualified    = crmStage{"qualifiedtobuy", 0.40, "Pipeline"}
	hsPresentation = crmStage{"presentationscheduled", 0.60, "Best Case"}
	hsDecisionMkr  = crmStage{"decisionmakerboughtin", 0.80, "Best Case"}
	hsContract     = crmStage{"contractsent", 0.90, "Commit"}
	hsWon          = crmStage{"closedwon", 1, "Closed"}
	hsLost         = crmStage{"closedlost", 0, "Omitted"}
)

// phrase is an action item: its kind and what is to be done.
type phrase struct{ kind, text string }

// stepDef describes how a deal wins one ladder step.
type stepDef struct {
	title  string    // call title
	sf, hs *crmStage // stage entered when the step is won; nil: none
	buyer  []phrase  // buyer-owned next steps that show the commitment
	seller []phrase  // seller-owned follow-ups typical of the step
	drop   float64   // chance the deal is lost at this step
	tech   bool      // a sales engineer usually joins
}

// Seller follow-ups that commit the buyer to nothing.
var sellerGeneric = []phrase{
	{"send_info", "send the deck and pricing overview"},
	{"send_info", "send case studies from similar customers"},
	{"send_info", "send a recap email with the notes"},
	{"send_info", "share the product one-pager"},
	{"schedule_meeting", "send a calendar invite for a follow-up"},
	{"schedule_meeting", "find a time for the next session"},
}

func stepDefs() *[numSteps]stepDef {
	return &[numSteps]stepDef{
		stepTime: {title: "Intro call", sf: &sfProspecting, hs: &hsAppointment,
			buyer: []phrase{{"schedule_meeting", "find a slot for a discovery session with the team"}},
			drop:  0.08},
		stepExplore: {title: "Discovery", sf: &sfQualification,
			buyer: []phrase{
				{"share_data", "share current process data"},
				{"share_data", "send over last quarter's volume numbers"},
				{"share_data", "share the current workflow documentation"},
				{"share_data", "pull usage reports from the current tool"},
			},
			seller: []phrase{{"send_info", "send the discovery questionnaire"}},
			drop:   0.14},
		stepChange: {title: "Problem & success criteria", sf: &sfNeeds, hs: &hsQualified,
			buyer: []phrase{
				{"define_success_criteria", "define success criteria for the evaluation"},
				{"define_success_criteria", "write up the problem statement and goals"},
				{"define_success_criteria", "agree internally on the must-have requirements"},
			},
			seller: []phrase{{"send_info", "send the ROI calculator"}},
			drop:   0.18},
		stepCollaborate: {title: "Solution workshop", sf: &sfValue, hs: &hsPresentation, tech: true,
			buyer: []phrase{
				{"technical_deep_dive", "set up a technical deep dive with the IT team"},
				{"technical_deep_dive", "bring the architects to a working session"},
				{"technical_deep_dive", "walk through integration requirements with us"},
			},
			seller: []phrase{{"send_info", "prepare a demo environment with their data"}},
			drop:   0.1},
		stepConsensus: {title: "Stakeholder alignment", sf: &sfDecisionMkrs, hs: &hsDecisionMkr,
			buyer: []phrase{
				{"intro_stakeholder", "introduce us to the economic buyer"},
				{"intro_stakeholder", "loop in finance and IT for the next call"},
				{"intro_stakeholder", "bring the decision maker to the next meeting"},
			},
			seller: []phrase{{"send_info", "send an executive summary for the wider team"}},
			drop:   0.1},
		stepInvest: {title: "Business case & pilot", sf: &sfPerception, tech: true,
			buyer: []phrase{
				{"budget_confirmation", "confirm budget for this fiscal year"},
				{"budget_confirmation", "get budget approval from finance"},
				{"pilot", "sign off on a 30-day pilot"},
				{"pilot", "assign two users to the proof of concept"},
				{"pilot", "agree pilot scope and success metrics"},
			},
			seller: []phrase{{"send_info", "send the pilot plan"}},
			drop:   0.12},
		stepReview: {title: "Proposal review", sf: &sfProposal,
			buyer: []phrase{
				{"proposal_review", "review the proposal with the leadership team"},
				{"proposal_review", "review pricing and come back with questions"},
			},
			seller: []phrase{{"send_info", "send the revised proposal"}},
			drop:   0.1},
		stepResolve: {title: "Security, legal & procurement", sf: &sfNegotiation, hs: &hsContract, tech: true,
			buyer: []phrase{
				{"security_review", "send the security questionnaire"},
				{"security_review", "complete the security review"},
				{"legal_review", "send redlines on the MSA"},
				{"legal_review", "get legal review of the order form"},
				{"procurement", "start vendor onboarding with procurement"},
				{"procurement", "route the contract through procurement"},
			},
			seller: []phrase{{"send_info", "send the SOC 2 report"}},
			drop:   0.1},
		stepDecide: {title: "Final terms", sf: &sfWon, hs: &hsWon,
			buyer: []phrase{
				{"sign_contract", "sign the order form by end of month"},
				{"sign_contract", "get the contract signed"},
			},
			seller: []phrase{{"send_info", "send the final order form"}},
			drop:   0.12},
		stepExecute: {title: "Kickoff",
			buyer: []phrase{
				{"kickoff", "assign an implementation lead"},
				{"kickoff", "share the rollout plan with the project team"},
				{"share_data", "send the user list for provisioning"},
			},
			seller: []phrase{{"send_info", "send the onboarding checklist"}},
		},
	}
}

// Loss reasons, as CRM picklist values.
const (
	lossNoDecision   = "No Decision / Status Quo"
	lossCompetitor   = "Lost to Competitor"
	lossPrice        = "Price"
	lossBudget       = "No Budget"
	lossTiming       = "Timing"
	lossFit          = "Product Fit"
	lossUnresponsive = "Unresponsive"
)

// deal simulates one opportunity from first contact to close (or to End)
// and appends its events to g.buf.
type deal struct {
	g     *generator
	r     *rand.Rand
	idx   uint64
	t     *tenant
	crm   string
	oppID string
	seg   int
	rep   *rep
	acct  *account
	// engaged counts the buyers on the opportunity: acct.people[:engaged].
	engaged int
	single  bool // single-threaded: no one is brought in beyond the first contact
	amount  float64
	close   time.Time
	stage   *crmStage
	now     time.Time
	k       uint64 // events made so far
}

// gap returns the days between interactions for the deal's segment.
func (d *deal) gap() int {
	switch d.seg {
	case segSMB:
		return 2 + d.r.IntN(6)
	case segMid:
		return 4 + d.r.IntN(9)
	}
	return 6 + d.r.IntN(13)
}

// workTime returns a time in business hours on day, moved off the weekend.
func (d *deal) workTime(day time.Time) time.Time {
	day = day.Truncate(24 * time.Hour)
	switch day.Weekday() {
	case time.Saturday:
		day = day.AddDate(0, 0, 2)
	case time.Sunday:
		day = day.AddDate(0, 0, 1)
	}
	return day.Add(time.Duration(8*12+d.r.IntN(9*12)) * 5 * time.Minute)
}

func (d *deal) later(days int) time.Time { return d.workTime(d.now.AddDate(0, 0, days)) }

// crmTime returns a time 1 to maxHours hours after t, moved into business
// hours (08:00-19:00 on a weekday) when a rep would update the CRM.
func (d *deal) crmTime(t time.Time, maxHours int) time.Time {
	t = t.Add(time.Duration(1+d.r.IntN(maxHours)) * time.Hour).Add(time.Duration(d.r.IntN(60)) * time.Minute)
	if h := t.Hour(); h >= 19 || h < 8 || t.Weekday() == time.Saturday || t.Weekday() == time.Sunday {
		if h >= 19 {
			t = t.AddDate(0, 0, 1)
		}
		day := t.Truncate(24 * time.Hour)
		switch day.Weekday() {
		case time.Saturday:
			day = day.AddDate(0, 0, 2)
		case time.Sunday:
			day = day.AddDate(0, 0, 1)
		}
		t = day.Add(8*time.Hour + time.Duration(d.r.IntN(120))*time.Minute)
	}
	return t
}

func date(t time.Time) event.Date { return event.Date(t.Format(time.DateOnly)) }

// add appends an event that happened at "at", unless that is after End.
func (d *deal) add(at time.Time, typ event.Type, source string, p event.Payload) {
	if at.After(d.g.end) {
		return
	}
	d.k++
	var id string
	var delay time.Duration
	switch source {
	case srcGong:
		id = prefixedID("gong_", mix(d.g.key^nsEvent^(d.idx<<16|d.k)))
		delay = time.Duration(300+d.r.IntN(3300)) * time.Second
	case srcHubSpot:
		id = prefixedID("hs_", mix(d.g.key^nsEvent^(d.idx<<16|d.k)))
		delay = time.Duration(1+d.r.IntN(120)) * time.Second
	default:
		id = prefixedID("sf_", mix(d.g.key^nsEvent^(d.idx<<16|d.k)))
		delay = time.Duration(1+d.r.IntN(180)) * time.Second
	}
	d.g.buf = append(d.g.buf, event.Event{
		V:             event.EnvelopeVersion,
		ID:            id,
		Tenant:        d.t.name,
		Source:        source,
		Type:          typ,
		OccurredAt:    at,
		ReceivedAt:    at.Add(delay),
		OpportunityID: d.oppID,
		Payload:       p,
	})
}

func (d *deal) crmStageFor(s int) *crmStage {
	if d.crm == srcHubSpot {
		return d.g.steps[s].hs
	}
	return d.g.steps[s].sf
}

// run simulates the deal.
func (d *deal) run() {
	r := d.r
	span := d.g.end.Sub(d.g.start) - 4*24*time.Hour
	created := d.workTime(d.g.start.Add(time.Duration(r.Int64N(int64(span)))))
	cycle := [numSegments]int{45, 90, 160}[d.seg]
	d.close = created.AddDate(0, 0, cycle/2+r.IntN(cycle)).Truncate(24 * time.Hour)

	// Some first calls are recorded before the rep creates the opportunity.
	preCall := r.Float64() < 0.12
	if preCall {
		d.now = d.workTime(created.AddDate(0, 0, -1-r.IntN(6)))
		d.now = d.advanceCall(stepTime)
	}
	d.stage = d.crmStageFor(stepTime)
	d.opportunityCreated(created)
	d.now = created.Add(time.Duration(5+r.IntN(120)) * time.Minute)
	for i := range d.engaged {
		d.contactAdded(d.now.Add(time.Duration(i)*time.Minute), i)
	}
	if !preCall {
		d.now = d.later(1 + r.IntN(6))
		if !d.climb(stepTime) {
			return
		}
	}
	ownerChangeAt := -1
	if r.Float64() < 0.05 {
		ownerChangeAt = 1 + r.IntN(stepDecide-1)
	}
	updateAt := -1
	if r.Float64() < 0.1 {
		updateAt = 1 + r.IntN(stepDecide-1)
	}
	for s := stepExplore; s <= stepDecide; s++ {
		d.now = d.later(d.gap())
		if d.now.After(d.g.end) {
			return
		}
		if s == ownerChangeAt {
			d.ownerChange()
		}
		if s == updateAt {
			d.opportunityUpdated()
		}
		if r.Float64() < 0.09 && !d.stall() {
			return
		}
		if d.now.AddDate(0, 0, 3).After(d.close) {
			d.pushClose()
		}
		if !d.climb(s) {
			return
		}
	}
	d.execute()
}

// climb plays the interactions of step s: some calls that advance nothing,
// then either a loss or the call where the buyer commits. It reports whether
// the deal is still alive.
func (d *deal) climb(s int) bool {
	r := d.r
	drop := d.g.steps[s].drop * [numSegments]float64{0.9, 1, 1.15}[d.seg]
	if d.single && s >= stepInvest {
		drop *= 1.8
	}
	lost := r.Float64() < drop
	misses := 0
	switch x := r.Float64(); {
	case lost:
		misses = 1 + r.IntN(2)
	case x < 0.28:
		misses = 1
	case x < 0.40:
		misses = 2
	}
	for range misses {
		d.now = d.missCall(s)
		d.now = d.later(d.gap())
	}
	if lost {
		d.lose(d.lossReason(s))
		return false
	}
	switch {
	case s == stepCollaborate && !d.single && d.engaged < 3 && r.Float64() < 0.5:
		// An expert from the buyer's side joins the working session.
		d.engage(1)
	case s == stepConsensus && !d.single:
		// The champion brings in the rest of the buying group.
		d.engage(1 + r.IntN(3))
	}
	end := d.advanceCall(s)
	switch s {
	case stepReview:
		d.add(d.crmTime(end, 24), event.ActivityLogged, d.crm, &event.Activity{
			Kind: event.ActivityEmail, Subject: "Proposal: " + d.acct.name, Status: "completed",
		})
		if r.Float64() < 0.45 {
			d.changeAmount(d.crmTime(end, 48), 0.8+0.45*r.Float64())
		}
	case stepResolve:
		if r.Float64() < 0.3 {
			d.changeAmount(d.crmTime(end, 72), 0.85+0.1*r.Float64())
		}
	case stepDecide:
		d.now = d.crmTime(end, 8*24)
		d.win()
		return true
	}
	if st := d.crmStageFor(s); st != nil && s != stepTime {
		d.changeStage(d.crmTime(end, 72), st)
	}
	d.now = end
	return true
}

// stall leaves the deal silent for 30 to 90 days; then it resumes, is closed
// lost to the status quo, or stays silent. It reports whether it resumes.
func (d *deal) stall() bool {
	r := d.r
	d.now = d.later(30 + r.IntN(61))
	switch x := r.Float64(); {
	case x < 0.3:
		d.lose(lossNoDecision)
		return false
	case x < 0.45:
		if r.Float64() < 0.5 {
			// Cleaned up by the rep months later.
			d.now = d.later(60 + r.IntN(90))
			d.lose(lossNoDecision)
		}
		return false
	}
	d.pushClose()
	return true
}

func (d *deal) lossReason(s int) string {
	x := d.r.Float64()
	switch {
	case s <= stepExplore:
		switch {
		case x < 0.5:
			return lossNoDecision
		case x < 0.75:
			return lossUnresponsive
		case x < 0.9:
			return lossFit
		}
		return lossTiming
	case s <= stepInvest:
		switch {
		case x < 0.4:
			return lossNoDecision
		case x < 0.6:
			return lossBudget
		case x < 0.8:
			return lossCompetitor
		}
		return lossTiming
	}
	switch {
	case x < 0.45:
		return lossCompetitor
	case x < 0.75:
		return lossPrice
	case x < 0.9:
		return lossNoDecision
	}
	return lossTiming
}

func (d *deal) opportunityCreated(at time.Time) {
	r := d.r
	prods := products[d.seg]
	d.add(at, event.OpportunityCreated, d.crm, &event.Opportunity{
		Name:             d.acct.name + " - " + prods[r.IntN(len(prods))],
		AccountID:        d.accountID(),
		AccountName:      d.acct.name,
		Amount:           d.amount,
		Currency:         "USD",
		CloseDate:        date(d.close),
		Pipeline:         "default",
		Stage:            d.stage.name,
		Probability:      d.stage.prob,
		ForecastCategory: d.stage.fc,
		OwnerID:          d.rep.id,
		Team:             d.rep.team,
		Segment:          segmentNames[d.seg],
		LeadSource:       leadSources[r.IntN(len(leadSources))],
		Product:          prods[r.IntN(len(prods))],
	})
}

func (d *deal) opportunityUpdated() {
	p := &event.Opportunity{Product: products[d.seg][d.r.IntN(len(products[d.seg]))]}
	if d.r.IntN(2) == 0 {
		p.Name = d.acct.name + " - " + p.Product + " (expanded)"
	}
	d.add(d.crmTime(d.now.AddDate(0, 0, -3), 48), event.OpportunityUpdated, d.crm, p)
}

func (d *deal) accountID() string {
	v := mix(d.g.key ^ nsAccount ^ (uint64(d.t.index)<<56 | d.acct.index))
	if d.crm == srcHubSpot {
		return numID(v)
	}
	return sfID("001", v)
}

func (d *deal) contactID(p int) string {
	v := mix(d.g.key ^ nsContact ^ (uint64(d.t.index)<<56 | d.acct.index<<5 | uint64(p)))
	if d.crm == srcHubSpot {
		return numID(v)
	}
	return sfID("003", v)
}

func (d *deal) contactAdded(at time.Time, p int) {
	b := &d.acct.people[p]
	d.add(at, event.ContactAdded, d.crm, &event.Contact{
		ContactID: d.contactID(p),
		Name:      b.name,
		Email:     b.email,
		Title:     b.title,
		Role:      b.role,
		Side:      event.Buyer,
	})
}

// engage adds up to n more buyers of the account to the opportunity, shortly
// before the meeting at now.
func (d *deal) engage(n int) {
	for ; n > 0 && d.engaged < len(d.acct.people); n-- {
		d.contactAdded(d.now.Add(-time.Duration(5+d.r.IntN(120))*time.Minute), d.engaged)
		d.engaged++
	}
}

func (d *deal) changeStage(at time.Time, to *crmStage) {
	from := d.stage
	d.stage = to
	d.add(at, event.StageChanged, d.crm, &event.StageChange{
		Pipeline: "default", From: from.name, To: to.name, Probability: to.prob,
	})
	if from.fc != to.fc && d.crm == srcSalesforce {
		d.add(at.Add(time.Second), event.ForecastCategoryChanged, d.crm, &event.ForecastCategoryChange{From: from.fc, To: to.fc})
	}
}

func (d *deal) changeAmount(at time.Time, factor float64) {
	to := roundAmount(d.amount*factor, d.seg)
	if to == d.amount {
		return
	}
	d.add(at, event.AmountChanged, d.crm, &event.AmountChange{From: d.amount, To: to, Currency: "USD"})
	d.amount = to
}

// pushClose moves the close date out: the decision slipped.
func (d *deal) pushClose() {
	from := d.close
	d.close = d.now.AddDate(0, 0, [numSegments]int{14, 30, 45}[d.seg]+d.r.IntN(45)).Truncate(24 * time.Hour)
	if !d.close.After(from) {
		return
	}
	d.add(d.now.Add(-time.Duration(1+d.r.IntN(60))*time.Minute), event.CloseDateChanged, d.crm, &event.CloseDateChange{From: date(from), To: date(d.close)})
}

func (d *deal) ownerChange() {
	reps := d.t.bySegment[d.seg]
	to := reps[d.r.IntN(len(reps))]
	if to == d.rep {
		return
	}
	d.add(d.crmTime(d.now.AddDate(0, 0, -4), 72), event.OwnerChanged, d.crm, &event.OwnerChange{From: d.rep.id, To: to.id, Team: to.team})
	d.rep = to
}

func (d *deal) lose(reason string) {
	at := d.later(1 + d.r.IntN(10))
	prob := d.stage.prob
	if d.crm == srcHubSpot {
		d.changeStage(at, &hsLost)
	} else {
		d.changeStage(at, &sfLost)
	}
	p := &event.Lost{Reason: reason}
	if reason == lossCompetitor {
		p.Competitor = competitors[d.r.IntN(len(competitors))]
	}
	d.add(at.Add(2*time.Second), event.ClosedLost, d.crm, p)
	if d.crm != srcHubSpot {
		// Salesforce sets the probability of a lost deal to 0.
		d.add(at.Add(3*time.Second), event.ProbabilityChanged, d.crm, &event.ProbabilityChange{From: prob, To: 0})
	}
	d.now = at
}

func (d *deal) win() {
	at := d.now
	if d.crm == srcHubSpot {
		d.changeStage(at, &hsWon)
	} else {
		d.changeStage(at, &sfWon)
	}
	p := &event.Won{Amount: d.amount}
	if d.r.Float64() < 0.3 {
		p.Reason = [...]string{"Best fit", "Time to value", "Relationship", "Price"}[d.r.IntN(4)]
	}
	d.add(at.Add(2*time.Second), event.ClosedWon, d.crm, p)
}

// execute plays the post-sale kickoff (and often an onboarding call).
func (d *deal) execute() {
	d.now = d.later(5 + d.r.IntN(16))
	if d.r.Float64() < 0.85 {
		d.now = d.advanceCall(stepExecute)
	} else {
		d.now = d.call(stepExecute, callSellerOnly)
	}
	if d.r.Float64() < 0.6 {
		d.now = d.later(25 + d.r.IntN(20))
		d.call(stepExecute, callAdvance)
	}
}

// Call outcomes.
const (
	callAdvance    = iota // at least one buyer-owned action, often a booked next meeting
	callSellerOnly        // only the seller took actions
	callNoNextStep        // nothing agreed
	callNoShow            // the buyer did not join
)

func (d *deal) advanceCall(s int) time.Time { return d.call(s, callAdvance) }

func (d *deal) missCall(s int) time.Time {
	switch x := d.r.Float64(); {
	case x < 0.55:
		return d.call(s, callSellerOnly)
	case x < 0.9:
		return d.call(s, callNoNextStep)
	}
	return d.call(s, callNoShow)
}

// call records a call of step s at d.now with the given outcome, and
// sometimes the CRM's meeting, e-mail and task records around it. It
// returns when the call ended.
func (d *deal) call(s, outcome int) time.Time {
	r := d.r
	def := &d.g.steps[s]
	start := d.now
	dur := 20*60 + r.IntN(40*60)
	if outcome == callNoShow {
		dur = 120 + r.IntN(420)
	}
	end := start.Add(time.Duration(dur) * time.Second)

	parts := make([]event.Participant, 0, 6)
	parts = append(parts, sellerParticipant(&d.rep.person))
	if def.tech && r.Float64() < 0.7 {
		parts = append(parts, sellerParticipant(d.rep.se))
	}
	if d.seg == segEnt && s >= stepReview && r.Float64() < 0.5 {
		parts = append(parts, sellerParticipant(d.rep.manager))
	}
	var buyers []person
	if outcome != callNoShow {
		n := 1
		if s == stepConsensus || s == stepInvest {
			n = d.engaged
		} else if d.engaged > 1 {
			n = 1 + r.IntN(min(3, d.engaged))
		}
		buyers = d.acct.people[:n]
		for i := range buyers {
			p := &buyers[i]
			parts = append(parts, event.Participant{Email: p.email, Name: p.name, Side: event.Buyer, Title: p.title, Role: p.role})
		}
	}

	var items []event.ActionItem
	nextBooked := false
	switch outcome {
	case callAdvance:
		// One or two buyer commitments, different ones, the second often
		// taken by another buyer on the call.
		first, owner := r.IntN(len(def.buyer)), r.IntN(len(buyers))
		items = append(items, d.actionItem(&buyers[owner], event.Buyer, def.buyer[first], end))
		if len(def.buyer) > 1 && r.Float64() < 0.3 {
			second := (first + 1 + r.IntN(len(def.buyer)-1)) % len(def.buyer)
			owner = (owner + r.IntN(len(buyers))) % len(buyers)
			items = append(items, d.actionItem(&buyers[owner], event.Buyer, def.buyer[second], end))
		}
		if s == stepExplore && r.Float64() < 0.3 {
			items = append(items, d.actionItem(&buyers[0], event.Buyer,
				phrase{"schedule_meeting", "check calendars for a follow-up with the team"}, end))
		}
		if r.Float64() < 0.6 {
			items = append(items, d.sellerItem(def, end))
		}
		nextBooked = r.Float64() < 0.75
	case callSellerOnly:
		items = append(items, d.sellerItem(def, end))
		if r.Float64() < 0.4 {
			items = append(items, d.sellerItem(def, end))
		}
	}
	c := &event.Call{
		CallID:            numID(mix(d.g.key ^ nsCall ^ (d.idx<<16 | d.k))),
		Title:             d.acct.name + " <> " + d.t.company + " - " + def.title,
		StartedAt:         start,
		DurationSeconds:   dur,
		Participants:      parts,
		ActionItems:       items,
		NextMeetingBooked: nextBooked,
	}
	if nextBooked {
		next := d.workTime(end.AddDate(0, 0, d.gap()))
		c.NextMeetingAt = &next
	}
	d.add(end, event.CallCompleted, srcGong, c)

	// The CRM's view of the same interaction.
	if r.Float64() < 0.4 {
		d.add(end.Add(time.Duration(1+r.IntN(30))*time.Minute), event.ActivityLogged, d.crm, &event.Activity{
			Kind: event.ActivityMeeting, Subject: def.title, Status: "completed", Participants: parts,
		})
	}
	if outcome != callNoShow && r.Float64() < 0.45 {
		d.add(end.Add(time.Duration(10+r.IntN(240))*time.Minute), event.ActivityLogged, d.crm, &event.Activity{
			Kind: event.ActivityEmail, Subject: "Recap: " + def.title + " and next steps", Status: "completed",
		})
	}
	if len(items) > 0 && r.Float64() < 0.2 {
		it := items[r.IntN(len(items))]
		d.add(end.Add(time.Duration(5+r.IntN(60))*time.Minute), event.ActivityLogged, d.crm, &event.Activity{
			Kind: event.ActivityTask, Subject: "Follow up: " + it.Text, Status: "scheduled", OwnerSide: it.OwnerSide, DueAt: it.DueAt,
		})
	}
	if outcome == callNoShow && r.Float64() < 0.5 {
		d.add(end.Add(time.Duration(5+r.IntN(60))*time.Minute), event.ActivityLogged, d.crm, &event.Activity{
			Kind: event.ActivityEmail, Subject: "Sorry we missed you - " + def.title, Status: "completed",
		})
	}
	return end
}

func sellerParticipant(p *person) event.Participant {
	return event.Participant{Email: p.email, Name: p.name, Side: event.Seller, Title: p.title}
}

func (d *deal) sellerItem(def *stepDef, end time.Time) event.ActionItem {
	ph := sellerGeneric[d.r.IntN(len(sellerGeneric))]
	if len(def.seller) > 0 && d.r.IntN(2) == 0 {
		ph = def.seller[d.r.IntN(len(def.seller))]
	}
	return d.actionItem(&d.rep.person, event.Seller, ph, end)
}

func (d *deal) actionItem(owner *person, side event.Side, ph phrase, end time.Time) event.ActionItem {
	due := end.AddDate(0, 0, 2+d.r.IntN(12)).Truncate(24 * time.Hour).Add(17 * time.Hour)
	return event.ActionItem{
		Text:       owner.first + " to " + ph.text,
		OwnerSide:  side,
		OwnerEmail: owner.email,
		DueAt:      &due,
		Kind:       ph.kind,
	}
}

// roundAmount rounds to a price a rep would quote.
func roundAmount(v float64, seg int) float64 {
	unit := [numSegments]float64{100, 500, 1000}[seg]
	return math.Max(unit, math.Round(v/unit)*unit)
}

// dealAmount draws a log-normal deal size around the segment's median.
func dealAmount(r *rand.Rand, seg int) float64 {
	median := [numSegments]float64{15000, 75000, 350000}[seg]
	return roundAmount(median*math.Exp(0.55*r.NormFloat64()), seg)
}

// fillAccount derives account j of tenant t into a (reusing its slices).
func (g *generator) fillAccount(a *account, t *tenant, j uint64) {
	r := g.acctRand
	g.acctPCG.Seed(g.key^nsAccount, uint64(t.index)<<56|j)
	a.index = j
	a.segment = accountSegment(j)
	a.name, a.domain = accountName(j)
	n := [numSegments]int{4, 6, 9}[a.segment] + r.IntN(2)
	a.people = a.people[:0]
	for i := range n {
		first, last := randomName(r)
		local := emailLocal(first, last)
		for k := range a.people {
			if a.people[k].name == first+" "+last {
				local += strconv.Itoa(i)
				break
			}
		}
		role := buyerRoles[i%len(buyerRoles)]
		titles := titlesByRole[role]
		a.people = append(a.people, person{
			first: first,
			name:  first + " " + last,
			email: local + "@" + a.domain,
			title: titles[r.IntN(len(titles))],
			role:  role,
		})
	}
}
