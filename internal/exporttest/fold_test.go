package exporttest

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/ladder"
)

// The oracle's fold: one opportunity's raw input events up to a time,
// by the brief's definitions, reading only the ladder's configuration.

// facts are a deal's facts.
type facts struct {
	amount      float64
	currency    string // ISO 4217 in upper case, "" when none was given
	closeDate   time.Time
	stage       string
	probability float64
	status      string // open, won or lost
	owner, team string
	segment     string
	source      string
	product     string
	// attrs are the free attributes; replaced, never changed in place.
	attrs map[string]string
}

// mark is a time with a step or a status.
type mark struct {
	at     time.Time
	step   int
	status string
	stage  string
}

// deal is an opportunity as of a time.
type deal struct {
	id   string
	name string // the CRM's name of the deal
	// created is the deal's creation, once the CRM knows it: its first
	// CRM (opportunity.*) event, or the CRM's created_at when an
	// opportunity event reports an earlier one (a webhook or an export of
	// a deal opened before).
	created time.Time
	crmAt   time.Time // the first CRM event
	first   time.Time // the first event of any kind
	f       facts

	// gained[K] is when step K was gained, reach[K] the earliest gain of
	// K or a later step (zero: none); highest is the highest gained.
	gained, reach []time.Time
	highest       int
	lastGain      time.Time

	entries []mark      // entries into a CRM stage
	closes  []mark      // every change of status to won or lost
	regress []time.Time // moves to a stage of a lower step than the highest stage seen
	stalls  []time.Time // when the deal became stalled (see clock)

	reopened time.Time // the last move of a closed deal back to an open stage
	fired    bool      // the current stall clock has run out
	// stalledSince is when the deal became stalled, zero while it is not.
	stalledSince time.Time
	maxStage     int
	pipeline     string
	engaged      []string

	// The buyer interactions and misses (see the rules at touch).
	held, misses   []touch
	items          []pending // buyer action items waiting for due + grace
	meetings       []pending // held CRM meetings waiting for a follow-up
	calls          []callRef // every recorded call of the opportunity
	lastBuyerAt    time.Time // the last buyer engagement: a buyer present, or a gain
	lastFollowupAt time.Time // the last booked meeting or buyer-owned action
	noDecision     bool      // the no_decision miss was counted
	closeReason    [2]string // the reason of the last close won, lost
	input          int       // the position in the fold of the event applied
	emitted        int       // touches so far
}

// touch is a buyer interaction held (interaction.held) or a commitment
// missed, with the facts of the moment derivation decides it.
//
// The rules, those of internal/derive (written down here, mirrored, not
// called):
//   - A recorded call is an interaction unless the deal is lost or has
//     gained its last step (then nothing is expected). It advanced the
//     deal when a buyer was present and there is a buyer-owned action
//     item or a booked next meeting; its expected step is then the one
//     after the highest before the call, else the one after the highest
//     after the call's own gains. Missed: no_buyer_present without a
//     buyer participant, else (not advanced) seller_only_actions when the
//     seller owns an item, else no_next_step.
//   - A held CRM meeting (status empty or completed) is the same
//     conversation as a recorded call when it is within 6 hours of the
//     call and shares a participant or lists none: it is then no
//     interaction of its own (its evidence still counts). Otherwise,
//     unless the deal is lost or nothing is expected: no_buyer_present
//     when its participants are listed and none is a buyer; advanced when
//     it gained a step; else it waits for the follow-up window (the
//     ladder's followup_hours): advanced when a meeting was booked or a
//     buyer-owned action promised (scheduled meeting, call with a buyer
//     item or booked meeting) at or after it, by the window's end, else
//     missed no_next_step. Its interaction and miss are dated at the
//     meeting, with the facts of the meeting, however late they are
//     decided.
//   - A buyer-owned action item with a due date, promised while open, is
//     missed buyer_action_overdue at due + the ladder's grace, dated then,
//     when the deal is still open and the buyer has not engaged after the
//     promise (a buyer present at a call or meeting, or any step gained);
//     its expected step is the step the item matched, else the one after
//     the highest then. A timer at an instant fires after every event of
//     that instant.
//   - close_date_pushed: a CRM edit moves a known close date later while
//     the deal is open (and a step is still expected); dated at the edit,
//     with the facts after it (before the stage it may set takes effect).
//   - no_decision: once per deal, at its first loss (or when a reason
//     comes later for a loss without one) when it never gained change or
//     a later step (expected: change) or the reason is a status quo one
//     (expected: the step after the highest).
//
// Derivation runs with a clock after every event, so the touches are
// those of a fold up to that clock, filtered by their time.
type touch struct {
	at          time.Time
	step        int
	reason      string // the miss reason; advanced or continuation for a held one
	interaction string
	owner       string
	amount      float64
	currency    string
	pos         uint64 // position in the fold: 1 + input index << 32 | count
}

// pending is a buyer action item or a CRM meeting waiting for its timer.
type pending struct {
	fireAt      time.Time
	at          time.Time // when it was promised or held
	interaction string
	step        int
	f           facts // a meeting's facts when held
	input       int   // a meeting's position in the fold
}

// callRef is a recorded call's time and its participants' keys.
type callRef struct {
	at     time.Time
	people []string
}

// sameConversation is how close a CRM meeting and a recorded call sharing
// a participant are to be one conversation.
const sameConversation = 6 * time.Hour

// sortEvents returns evs in the fold's order, (occurred_at, source, id),
// one copy of each (source, id).
func sortEvents(evs []event.Event) []event.Event {
	out := slices.Clone(evs)
	slices.SortFunc(out, func(a, b event.Event) int {
		if c := a.OccurredAt.Compare(b.OccurredAt); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Source, b.Source); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return slices.CompactFunc(out, func(a, b event.Event) bool { return a.Source == b.Source && a.ID == b.ID })
}

// fold applies the sorted events of one opportunity that happened at or
// before upTo.
func fold(l *ladder.Ladder, id string, evs []event.Event, upTo time.Time) *deal {
	n := l.Len()
	d := &deal{id: id, gained: make([]time.Time, n+1), reach: make([]time.Time, n+1)}
	d.f.status = "open"
	for _, e := range evs {
		if c, ok := e.Payload.(*event.Call); ok {
			ref := callRef{at: e.OccurredAt}
			for _, p := range c.Participants {
				ref.people = append(ref.people, p.Key())
			}
			d.calls = append(d.calls, ref)
		}
	}
	for i := range evs {
		e := &evs[i]
		if e.OccurredAt.After(upTo) {
			break
		}
		d.input = i
		d.clock(l, e.OccurredAt, false)
		d.apply(l, e)
	}
	d.input = len(evs)
	d.clock(l, upTo, true)
	return d
}

func (d *deal) open() bool { return d.f.status == "open" }

func (d *deal) apply(l *ladder.Ladder, e *event.Event) {
	t := e.OccurredAt
	if d.first.IsZero() {
		d.first = t
	}
	crm := strings.HasPrefix(string(e.Type), "opportunity.")
	firstCRM := crm && d.crmAt.IsZero()
	if firstCRM {
		d.crmAt, d.created = t, t
	}
	stageBefore := d.f.stage
	newStage := ""
	pushed := false
	switch p := e.Payload.(type) {
	case *event.Opportunity:
		if p.Name != "" {
			d.name = p.Name
		}
		if p.Pipeline != "" {
			d.pipeline = p.Pipeline
		}
		if p.Probability > 0 {
			d.f.probability = p.Probability
		}
		set := func(f *string, v string) {
			if v != "" {
				*f = v
			}
		}
		set(&d.f.team, p.Team)
		set(&d.f.segment, p.Segment)
		set(&d.f.source, p.LeadSource)
		set(&d.f.product, p.Product)
		set(&d.f.owner, p.OwnerID)
		if p.CreatedAt != nil && p.CreatedAt.Before(d.created) {
			d.created = p.CreatedAt.Truncate(time.Second)
		}
		d.setAttrs(p.Attributes)
		d.setAmount(p.Amount, p.Currency)
		if p.CloseDate != "" {
			pushed = d.setCloseDate(p.CloseDate.Time())
		}
		newStage = p.Stage
	case *event.StageChange:
		if p.Pipeline != "" {
			d.pipeline = p.Pipeline
		}
		if p.Probability > 0 {
			d.f.probability = p.Probability
		}
		newStage = p.To
	case *event.AmountChange:
		d.f.amount = p.To // 0 when cleared
		d.setAmount(0, p.Currency)
	case *event.CloseDateChange:
		if d.f.closeDate.IsZero() && p.From != "" && p.From != p.To {
			d.f.closeDate = p.From.Time()
		}
		pushed = d.setCloseDate(p.To.Time())
	case *event.OwnerChange:
		if p.Team != "" {
			d.f.team = p.Team
		}
		d.f.owner = p.To
	case *event.Won:
		d.setAmount(p.Amount, p.Currency)
		d.close(l, e, "won", p.Reason)
	case *event.Lost:
		d.setAmount(p.Amount, p.Currency)
		d.close(l, e, "lost", p.Reason)
	case *event.Contact:
		if p.Side != event.Seller && l.IsConsensusRole(p.Role) {
			key := strings.ToLower(p.Email)
			if key == "" {
				key = "contact:" + p.ContactID
			}
			d.engage(l, key, t)
		}
	case *event.Call:
		d.call(l, e, p)
	case *event.Activity:
		d.activity(l, e, p)
	}
	if newStage != "" && newStage != stageBefore {
		d.f.stage = newStage
		if !firstCRM {
			d.entries = append(d.entries, mark{at: t, stage: newStage})
		}
	}
	if firstCRM && d.f.stage != "" {
		d.entries = append(d.entries, mark{at: t, stage: d.f.stage})
	}
	if pushed && d.open() && d.expectedNext(l) > 0 {
		d.miss(t, d.expectedNext(l), "close_date_pushed", e.ID)
	}
	if newStage != "" && newStage != stageBefore {
		d.stageEvidence(l, e, newStage)
	}
	if firstCRM && d.lastGain.IsZero() {
		d.creationClock()
	}
}

// creationClock restarts the stall clock of a deal without commitments
// when the CRM first shows it: the clock now runs from the deal's
// creation (see stallAt), and a stall of its first event's clock no
// longer counts. The deal stalls when the new clock runs out, at the
// first CRM event itself when it already had.
func (d *deal) creationClock() {
	d.fired = false
	d.stalledSince = time.Time{}
}

// setAmount sets a positive amount (0 keeps it) and a currency (""
// keeps it; codes in any case).
func (d *deal) setAmount(v float64, cur string) {
	if v > 0 {
		d.f.amount = v
	}
	if cur != "" {
		d.f.currency = strings.ToUpper(cur)
	}
}

// setCloseDate sets the close date and reports whether a known one moved
// later.
func (d *deal) setCloseDate(to time.Time) bool {
	prev := d.f.closeDate
	d.f.closeDate = to
	return !prev.IsZero() && to.After(prev)
}

// setAttrs sets the attributes listed, an empty value clearing one.
func (d *deal) setAttrs(m map[string]string) {
	if len(m) == 0 {
		return
	}
	attrs := maps.Clone(d.f.attrs)
	if attrs == nil {
		attrs = map[string]string{}
	}
	for k, v := range m {
		if v == "" {
			delete(attrs, k)
		} else {
			attrs[k] = v
		}
	}
	d.f.attrs = attrs
}

// stageEvidence applies a move to stage: a commitment (or a regression
// below the highest stage step seen), and a close or a reopen.
func (d *deal) stageEvidence(l *ladder.Ladder, e *event.Event, stage string) {
	t := e.OccurredAt
	if step, known := l.StageStep(d.pipeline, stage); known && step > 0 {
		if step < d.maxStage {
			d.regress = append(d.regress, t)
		} else {
			d.maxStage = step
			d.gain(step, t)
		}
	}
	switch {
	case l.IsWonStage(stage):
		d.close(l, e, "won", "")
	case l.IsLostStage(stage):
		d.close(l, e, "lost", "")
	case !d.open():
		d.f.status = "open"
		d.reopened = t
		d.fired = false // the stall clock restarts at the reopen
	}
}

// close moves the deal to won or lost; a close with the status it already
// has only gives a reason to the close that had none.
func (d *deal) close(l *ladder.Ladder, e *event.Event, status, reason string) {
	k := 0
	if status == "lost" {
		k = 1
	}
	if d.f.status == status {
		if reason != "" && d.closeReason[k] == "" {
			d.closeReason[k] = reason
			if status == "lost" {
				d.noDecisionMiss(l, e, reason)
			}
		}
		return
	}
	t := e.OccurredAt
	d.f.status = status
	d.closeReason[k] = reason
	d.closes = append(d.closes, mark{at: t, status: status})
	d.stalledSince = time.Time{} // a closed deal is not stalled
	if status == "won" {
		d.gain(l.Index(l.WonStep), t)
		return
	}
	d.noDecisionMiss(l, e, reason)
}

// noDecisionMiss counts the deal's no_decision miss (see touch).
func (d *deal) noDecisionMiss(l *ladder.Ladder, e *event.Event, reason string) {
	nd := l.Index(l.NoDecision.Step)
	never := nd > 0 && d.highest < nd
	if d.noDecision || !never && !l.IsNoDecisionReason(reason) {
		return
	}
	exp := d.expectedNext(l)
	if never {
		exp = nd
	}
	if exp == 0 {
		return
	}
	d.noDecision = true
	d.miss(e.OccurredAt, exp, "no_decision", e.ID)
}

func (d *deal) gain(k int, t time.Time) bool {
	if k < 1 || k >= len(d.gained) || !d.gained[k].IsZero() {
		return false
	}
	d.gained[k] = t
	d.highest = max(d.highest, k)
	for j := 1; j <= k; j++ {
		if d.reach[j].IsZero() {
			d.reach[j] = t
		}
	}
	d.lastGain = t
	d.lastBuyerAt = t
	d.fired = false
	d.stalledSince = time.Time{}
	return true
}

// gainAll gains steps, in order, and reports whether one was new.
func (d *deal) gainAll(steps []int, t time.Time) bool {
	slices.Sort(steps)
	gained := false
	for _, k := range steps {
		gained = d.gain(k, t) || gained
	}
	return gained
}

// expectedNext is the step after the highest gained, 0 after the last.
func (d *deal) expectedNext(l *ladder.Ladder) int {
	if d.highest >= l.Len() {
		return 0
	}
	return d.highest + 1
}

// touchAt records an interaction or a miss at at with the facts f, in
// the fold's position of input event input.
func (d *deal) touchAt(to *[]touch, at time.Time, step int, reason, interaction string, f facts, input int) {
	d.emitted++
	*to = append(*to, touch{at: at, step: step, reason: reason, interaction: interaction,
		owner: f.owner, amount: f.amount, currency: f.currency, pos: uint64(input+1)<<32 | uint64(d.emitted)})
}

func (d *deal) miss(at time.Time, step int, reason, interaction string) {
	d.touchAt(&d.misses, at, step, reason, interaction, d.f, d.input)
}

func (d *deal) hold(at time.Time, step int, advanced bool, interaction string) {
	d.touchAt(&d.held, at, step, outcome(advanced), interaction, d.f, d.input)
}

func outcome(advanced bool) string {
	if advanced {
		return "advanced"
	}
	return "continuation"
}

// engage counts a buyer person; consensus is gained when enough are.
func (d *deal) engage(l *ladder.Ladder, key string, t time.Time) {
	if key == "" || slices.Contains(d.engaged, key) {
		return
	}
	d.engaged = append(d.engaged, key)
	if len(d.engaged) == l.Consensus.Stakeholders {
		d.gain(l.Index(l.Consensus.Step), t)
	}
}

// call applies a recorded call: its buyer people are engaged, it is
// evidence of the steps its title and buyer-owned action items match, and
// an interaction (see touch).
func (d *deal) call(l *ladder.Ladder, e *event.Event, c *event.Call) {
	t := e.OccurredAt
	expBefore := d.expectedNext(l)
	present := false
	for _, p := range c.Participants {
		if p.Side == event.Buyer {
			present = true
			d.engage(l, p.Key(), t)
		}
	}
	if present {
		d.lastBuyerAt = t
	}
	won := d.f.status == "won"
	steps := l.MatchActivity(nil, ladder.Interaction{Kind: "call", Subject: c.Title, BuyerPresent: present, AfterWin: won})
	buyerActs, sellerActs := false, false
	for _, it := range c.ActionItems {
		if it.OwnerSide == event.Buyer {
			buyerActs = true
			if it.OwnerEmail != "" {
				d.engage(l, strings.ToLower(it.OwnerEmail), t)
			}
		} else {
			sellerActs = true
		}
		before := len(steps)
		steps = l.MatchActionItem(steps, it.Kind, it.Text, string(it.OwnerSide), won)
		if it.OwnerSide == event.Buyer && it.DueAt != nil && d.open() {
			step := 0
			if len(steps) > before {
				step = steps[before]
			} else if st := l.MatchActionItem(nil, it.Kind, it.Text, string(it.OwnerSide), won); len(st) > 0 {
				step = st[0]
			}
			d.items = append(d.items, pending{fireAt: it.DueAt.Add(l.OverdueGrace()), at: t, interaction: e.ID, step: step})
		}
	}
	advanced := buyerActs || c.NextMeetingBooked
	if advanced {
		d.lastFollowupAt = t
	}
	d.gainAll(steps, t)
	exp := d.expectedNext(l)
	if d.f.status == "lost" || exp == 0 {
		return
	}
	if present && advanced && expBefore > 0 {
		exp = expBefore
	}
	d.hold(t, exp, present && advanced, e.ID)
	switch {
	case !present:
		d.miss(t, exp, "no_buyer_present", e.ID)
	case advanced:
	case sellerActs:
		d.miss(t, exp, "seller_only_actions", e.ID)
	default:
		d.miss(t, exp, "no_next_step", e.ID)
	}
}

// activity applies a CRM meeting, held or scheduled (the books log no
// other activity): its buyer people are engaged, it is evidence of the
// steps it matches, and a held one is an interaction (see touch).
func (d *deal) activity(l *ladder.Ladder, e *event.Event, a *event.Activity) {
	t := e.OccurredAt
	expBefore := d.expectedNext(l)
	held := a.Status == "" || a.Status == "completed"
	present := len(a.Participants) == 0
	for _, p := range a.Participants {
		if p.Side == event.Buyer {
			present = true
		}
	}
	meeting := a.Kind == event.ActivityMeeting
	if meeting && held {
		for _, p := range a.Participants {
			if p.Side == event.Buyer {
				d.engage(l, p.Key(), t)
			}
		}
		if present {
			d.lastBuyerAt = t
		}
	}
	if meeting && !held {
		d.lastFollowupAt = t
	}
	steps := l.MatchActivity(nil, ladder.Interaction{Kind: a.Kind, Status: a.Status, Subject: a.Subject,
		BuyerPresent: present, AfterWin: d.f.status == "won"})
	gained := d.gainAll(steps, t)
	if !meeting || !held || d.f.status == "lost" || d.recorded(t, a.Participants) {
		return
	}
	exp := d.expectedNext(l)
	switch {
	case exp == 0:
	case !present:
		d.hold(t, exp, false, e.ID)
		d.miss(t, exp, "no_buyer_present", e.ID)
	case gained:
		d.hold(t, expBefore, true, e.ID)
	default:
		d.meetings = append(d.meetings, pending{fireAt: t.Add(l.Followup()), at: t, interaction: e.ID, step: exp, f: d.f, input: d.input})
	}
}

// recorded reports whether a CRM meeting at t with participants ps is the
// conversation of a recorded call (see touch).
func (d *deal) recorded(t time.Time, ps []event.Participant) bool {
	for _, c := range d.calls {
		if dt := t.Sub(c.at); dt > sameConversation || dt < -sameConversation {
			continue
		}
		if len(ps) == 0 {
			return true
		}
		for _, p := range ps {
			if slices.Contains(c.people, p.Key()) {
				return true
			}
		}
	}
	return false
}

// clock runs the timers to t: the stall clock (see stallAt; the deal is
// stalled from when it runs out until a gain, a close or a later clock
// that has not run out), the buyer action items and the CRM meetings (see
// touch). What happens at that very instant comes first.
func (d *deal) clock(l *ladder.Ladder, t time.Time, inclusive bool) {
	due := func(at time.Time) bool { return at.Before(t) || inclusive && at.Equal(t) }
	if at, ok := d.stallAt(l); ok && !d.fired && due(at) {
		d.fired = true
		if d.stalledSince.IsZero() {
			d.stalledSince = at
			d.stalls = append(d.stalls, at)
		}
	}
	keep := d.items[:0]
	for _, it := range d.items {
		switch {
		case !due(it.fireAt):
			keep = append(keep, it)
		case !d.open() || d.lastBuyerAt.After(it.at):
		default:
			exp := it.step
			if exp == 0 {
				exp = d.expectedNext(l)
			}
			if exp > 0 {
				d.miss(it.fireAt, exp, "buyer_action_overdue", it.interaction)
			}
		}
	}
	d.items = keep
	waiting := d.meetings[:0]
	for _, m := range d.meetings {
		switch {
		case !due(m.fireAt):
			waiting = append(waiting, m)
		case !d.lastFollowupAt.IsZero() && !d.lastFollowupAt.Before(m.at):
			d.touchAt(&d.held, m.at, m.step, "advanced", m.interaction, m.f, m.input)
		default:
			d.touchAt(&d.held, m.at, m.step, "continuation", m.interaction, m.f, m.input)
			d.touchAt(&d.misses, m.at, m.step, "no_next_step", m.interaction, m.f, m.input)
		}
	}
	d.meetings = waiting
}

// stallAt is when the running stall clock of an open deal runs out: its
// highest step's threshold (step 1's before any gain) after what days
// since the last commitment count from (see reference), or after the
// last reopen when later. The clock of a deal's creation starts when the
// CRM first shows the deal: it runs out at that first CRM event at the
// earliest (max(created + threshold, first CRM event)).
func (d *deal) stallAt(l *ladder.Ladder) (time.Time, bool) {
	if !d.open() || d.first.IsZero() {
		return time.Time{}, false
	}
	anchor, step, floor := d.lastGain, d.highest, time.Time{}
	if anchor.IsZero() {
		anchor, step = d.reference(), 1
		floor = d.crmAt
	}
	if d.reopened.After(anchor) {
		anchor = d.reopened
	}
	th := l.StallAfter(max(step, 1))
	if th <= 0 {
		return time.Time{}, false
	}
	return later(anchor.Add(th), floor), true
}

// later is the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// book is every opportunity's sorted input events.
type book struct {
	l    *ladder.Ladder
	fx   *rateTable // the operator's rate table; nil for none
	ids  []string
	opps map[string][]event.Event
}

func newBook(l *ladder.Ladder, evs []event.Event) *book {
	b := &book{l: l, opps: map[string][]event.Event{}}
	for _, e := range evs {
		b.opps[e.OpportunityID] = append(b.opps[e.OpportunityID], e)
	}
	for id, oe := range b.opps {
		b.opps[id] = sortEvents(oe)
		b.ids = append(b.ids, id)
	}
	slices.Sort(b.ids)
	return b
}

// at folds every opportunity up to t.
func (b *book) at(t time.Time) []*deal {
	out := make([]*deal, 0, len(b.ids))
	for _, id := range b.ids {
		out = append(out, fold(b.l, id, b.opps[id], t))
	}
	return out
}
