package derive

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/ladder"
)

// Status values of Snapshot.Status.
const (
	StatusOpen = "open"
	StatusWon  = "won"
	StatusLost = "lost"
)

// Reasons of deal.updated: the fact that changed.
const (
	FactAmount           = "amount"
	FactCloseDate        = "close_date"
	FactOwner            = "owner"
	FactStage            = "stage"
	FactForecastCategory = "forecast_category"
	// The attributes: a deal.updated reports a change of one of these only
	// when its input event changed none of the facts above, whose
	// deal.updated carries the new attributes in its snapshot.
	FactProbability = "probability"
	FactTeam        = "team"
	FactSegment     = "segment"
	FactLeadSource  = "lead_source"
	FactProduct     = "product"
	// FactAttribute is a free breakdown attribute; Detail names it:
	// {"key":"region","from":"EMEA","to":"APAC"}.
	FactAttribute = "attribute"
)

// Derive folds the input events of one opportunity into its derived events.
// It is pure: the result depends only on the arguments, not on the order of
// evs or on duplicates in it. evs holds one copy of each (source, id), the
// one Latest chooses by stream sequence; further copies are taken to be
// identical redeliveries and dropped.
// Time-based events (stalls, overdue buyer actions, CRM meetings without a
// follow-up) fire at their event time when that is no later than now.
// The result is ordered by second (UTC), then by position in the fold
// (Seq), so the last event of a second carries the facts after every input
// event up to its end.
func Derive(tenant, opportunityID string, evs []event.Event, l *ladder.Ladder, now time.Time) []Derived {
	s := newState(tenant, opportunityID, l, now, len(evs))
	evp := ordered(evs)
	s.calls = recordedCalls(evp)
	s.crmCreated = crmCreated(evp)
	for i, e := range evp {
		s.input = i
		s.apply(e)
	}
	s.input = len(evp)
	s.settle()
	s.advance(now, true)
	s.noteCreatedAt()
	return s.finish()
}

// crmCreated returns the earliest creation time the CRM reported in any
// of evs (Opportunity.CreatedAt); zero if none. It is read before the fold
// because the stall clock of a deal without commitments runs from it,
// whichever event carries it.
func crmCreated(evs []*event.Event) time.Time {
	var c time.Time
	for _, e := range evs {
		if p, ok := e.Payload.(*event.Opportunity); ok && p.CreatedAt != nil && (c.IsZero() || p.CreatedAt.Before(c)) {
			c = *p.CreatedAt
		}
	}
	return c
}

// ordered returns pointers to evs sorted by (occurred_at, source, id), with
// duplicates of a (source, id) removed. Which of two conflicting copies
// wins is Latest's to decide, by stream sequence, before Derive; what is
// left here are identical copies, of which the earliest is kept.
func ordered(evs []event.Event) []*event.Event {
	ps := make([]*event.Event, len(evs))
	for i := range evs {
		ps[i] = &evs[i]
	}
	slices.SortFunc(ps, func(a, b *event.Event) int {
		if c := cmp.Compare(a.Source, b.Source); c != 0 {
			return c
		}
		if c := cmp.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return a.OccurredAt.Compare(b.OccurredAt)
	})
	out := ps[:0]
	for i, p := range ps {
		if i > 0 && p.Source == ps[i-1].Source && p.ID == ps[i-1].ID {
			continue
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *event.Event) int {
		if c := a.OccurredAt.Compare(b.OccurredAt); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Source, b.Source); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out
}

// pendingItem is a buyer-owned action item with a due time.
type pendingItem struct {
	fireAt      time.Time // due + grace
	promisedAt  time.Time
	interaction string // id of the call or task
	source      string
	item        int // index of the action item on the call; -1 for a task
	step        int
}

// pendingMeeting is a held CRM meeting waiting for a follow-up.
type pendingMeeting struct {
	fireAt      time.Time
	at          time.Time
	interaction string
	source      string
	expected    int
	snap        Snapshot
	input       int // the meeting's position among the input events
}

// change is one fact change of an opportunity event; the JSON of the
// values is rendered only for a deal.updated.
type change struct {
	fact       string
	attribute  bool // probability, team, segment, lead_source or product
	fromS, toS string
	fromF, toF float64
	fromT, toT time.Time
	fromC, toC string // currencies of an amount change
	cleared    bool   // the amount was emptied
	key        string // of an attribute
}

// detail renders {"from":...,"to":...} for the change.
func (c *change) detail() string {
	var from, to string
	switch c.fact {
	case FactAmount:
		from, to = jsonNum(c.fromF), jsonNum(c.toF)
		if c.cleared {
			to = "null"
		}
		if c.toC != "" {
			to += `,"currency":` + jsonStr(c.toC)
		}
		if c.fromC != c.toC && c.fromC != "" {
			to += `,"from_currency":` + jsonStr(c.fromC)
		}
	case FactProbability:
		from, to = jsonNum(c.fromF), jsonNum(c.toF)
	case FactCloseDate:
		from, to = jsonDate(c.fromT), jsonDate(c.toT)
	case FactAttribute:
		return `{"key":` + jsonStr(c.key) + `,"from":` + jsonStr(c.fromS) + `,"to":` + jsonStr(c.toS) + `}`
	default:
		from, to = jsonStr(c.fromS), jsonStr(c.toS)
	}
	return `{"from":` + from + `,"to":` + to + `}`
}

// state is the per-opportunity fold.
type state struct {
	l      *ladder.Ladder
	tenant string
	opp    string
	now    time.Time
	n      int // ladder steps

	// Facts.
	facts    Snapshot
	pipeline string
	created  bool
	firstAt  time.Time
	// crmCreated is the earliest creation time the CRM reported
	// (Opportunity.CreatedAt); createdIdx the index in out of deal.created.
	crmCreated time.Time
	createdIdx int

	// Commitments: gained[i] for 1-based step i.
	gained      []bool
	highest     int
	lastGainAt  time.Time
	anchor      [16]byte  // id hash of the last commitment.gained
	hasAnchor   bool      // a commitment was gained
	stallFired  bool      // a stall fired for the current anchor
	maxStage    int       // highest step the CRM stage has mapped to
	stDone      bool      // deal.single_threaded emitted
	stPending   bool      // a gain at stAt may make the deal single-threaded (see settle)
	stAt        time.Time // the first such gain of the current second
	noDecision  bool      // no_decision miss emitted
	closedIndex [2]int    // index in out of the last deal.closed won/lost, -1 for none
	closes      [2]int    // deal.closed won/lost emitted so far
	reopenedAt  time.Time // the last deal.reopened; zero if none
	reopenedBy  string    // source/id of the event that reopened it

	// People.
	stakeholders []string // engaged buyer people
	stakeEv      []string // the event that engaged each
	sellers      []string

	// Recorded calls, to recognise a CRM meeting that logs the same
	// conversation.
	calls []callRef

	// Buyer actions and follow-ups.
	items          []pendingItem
	meetings       []pendingMeeting
	lastBuyerAt    time.Time // last buyer engagement: interaction, task or gain
	lastFollowupAt time.Time // last scheduled meeting or buyer action

	// Ladder lookups.
	consensusStep int
	need          int
	wonStep       int
	stFrom        int
	ndStep        int

	changes []change
	steps   []int
	idBuf   []byte
	strs    []string // backing array of one-element evidence slices
	out     []Derived
	sums    [][16]byte // id hashes, parallel to out
	// pos orders out in the fold, parallel to out: 1 + the index (in the
	// fold's order) of the input event an emission belongs with in the
	// high 32 bits, the emission count in the low ones. Timers fired
	// before an input event belong with it, ahead of its own emissions.
	pos   []uint64
	input int // index of the input event being applied; len(evs) after the last
}

func newState(tenant, opp string, l *ladder.Ladder, now time.Time, cap int) *state {
	s := &state{
		l: l, tenant: tenant, opp: opp, now: now, n: l.Len(),
		gained:        make([]bool, l.Len()+1),
		consensusStep: l.Index(l.Consensus.Step),
		need:          l.Consensus.Stakeholders,
		wonStep:       l.Index(l.WonStep),
		stFrom:        l.Index(l.SingleThreadedFrom),
		ndStep:        l.Index(l.NoDecision.Step),
		closedIndex:   [2]int{-1, -1},
		createdIdx:    -1,
		out:           make([]Derived, 0, 8+cap),
		sums:          make([][16]byte, 0, 8+cap),
		pos:           make([]uint64, 0, 8+cap),
		strs:          make([]string, 0, cap),
	}
	s.facts.Status = StatusOpen
	return s
}

func (s *state) open() bool { return s.facts.Status == StatusOpen }

// SameInteraction is how close in time a CRM meeting and a recorded call
// sharing a participant must be to count as one conversation.
const SameInteraction = 6 * time.Hour

// callRef is a recorded call's time and its participants' keys.
type callRef struct {
	at     time.Time
	people []string
}

// recordedCalls lists the recorded calls among evs.
func recordedCalls(evs []*event.Event) []callRef {
	var out []callRef
	for _, e := range evs {
		c, ok := e.Payload.(*event.Call)
		if !ok {
			continue
		}
		ref := callRef{at: e.OccurredAt, people: make([]string, len(c.Participants))}
		for i := range c.Participants {
			ref.people[i] = c.Participants[i].Key()
		}
		out = append(out, ref)
	}
	return out
}

// recorded reports whether a CRM meeting at t with participants ps is the
// same conversation as a recorded call: within SameInteraction of it and
// sharing a participant (or listing none). The call, which carries the
// action items, is then the interaction; the meeting only adds evidence.
func (s *state) recorded(t time.Time, ps []event.Participant) bool {
	for _, c := range s.calls {
		if d := t.Sub(c.at); d > SameInteraction || d < -SameInteraction {
			continue
		}
		if len(ps) == 0 {
			return true
		}
		for i := range ps {
			if slices.Contains(c.people, ps[i].Key()) {
				return true
			}
		}
	}
	return false
}

// expectedNext is the step after the highest gained, or 0 if none is left.
func (s *state) expectedNext() int {
	if s.highest >= s.n {
		return 0
	}
	return s.highest + 1
}

func (s *state) apply(e *event.Event) {
	t := e.OccurredAt
	if s.stPending && t.Unix() != s.stAt.Unix() {
		s.settle()
	}
	s.advance(t, false)
	if s.firstAt.IsZero() {
		s.firstAt = t
	}
	// The fact changes of this event alone: what crmChanged reports.
	s.changes = s.changes[:0]
	switch p := e.Payload.(type) {
	case *event.Opportunity:
		if p.Pipeline != "" {
			s.pipeline = p.Pipeline
		}
		s.setProbability(p.Probability)
		s.setAttribute(FactTeam, &s.facts.Team, p.Team)
		s.setAttribute(FactSegment, &s.facts.Segment, p.Segment)
		s.setAttribute(FactLeadSource, &s.facts.LeadSource, p.LeadSource)
		s.setAttribute(FactProduct, &s.facts.Product, p.Product)
		s.setAttrs(p.Attributes)
		s.setAmount(cmp.Or(p.Amount, s.facts.Amount), p.Currency)
		pushed := false
		if p.CloseDate != "" {
			pushed = s.setCloseDate(p.CloseDate.Time())
		}
		if p.OwnerID != "" {
			s.setOwner(p.OwnerID)
		}
		if p.ForecastCategory != "" {
			s.setForecast(p.ForecastCategory)
		}
		stageChanged := p.Stage != "" && p.Stage != s.facts.Stage
		if stageChanged {
			s.setStage(p.Stage)
		}
		s.crmChanged(e)
		if pushed {
			s.closeDatePushed(e)
		}
		if stageChanged {
			s.stageEvidence(e, p.Stage)
		}
	case *event.StageChange:
		if p.Pipeline != "" {
			s.pipeline = p.Pipeline
		}
		s.setProbability(p.Probability)
		changed := p.To != s.facts.Stage
		if changed {
			s.setStage(p.To)
		}
		s.crmChanged(e)
		if changed {
			s.stageEvidence(e, p.To)
		}
	case *event.AmountChange:
		s.setAmount(p.To, p.Currency)
		if p.Cleared && len(s.changes) > 0 {
			s.changes[len(s.changes)-1].cleared = true
		}
		s.crmChanged(e)
	case *event.ProbabilityChange:
		s.setProbabilityTo(p.To)
		s.crmChanged(e)
	case *event.CloseDateChange:
		if s.facts.CloseDate.IsZero() && p.From != "" && p.From != p.To {
			s.facts.CloseDate = p.From.Time() // the CRM knew it before we did
		}
		pushed := s.setCloseDate(p.To.Time())
		s.crmChanged(e)
		if pushed {
			s.closeDatePushed(e)
		}
	case *event.OwnerChange:
		s.setAttribute(FactTeam, &s.facts.Team, p.Team)
		s.setOwner(p.To)
		s.crmChanged(e)
	case *event.ForecastCategoryChange:
		s.setForecast(p.To)
		s.crmChanged(e)
	case *event.Won:
		s.setAmount(cmp.Or(p.Amount, s.facts.Amount), p.Currency)
		s.crmChanged(e)
		s.close(e, StatusWon, p.Reason)
	case *event.Lost:
		s.setAmount(cmp.Or(p.Amount, s.facts.Amount), p.Currency)
		s.crmChanged(e)
		s.close(e, StatusLost, p.Reason)
	case *event.Contact:
		key := contactKey(p)
		if p.Side == event.Seller {
			s.sellers = addPerson(s.sellers, key)
		} else if s.l.IsConsensusRole(p.Role) {
			s.engage(key, e)
		}
	case *event.Activity:
		s.activity(e, p)
	case *event.Call:
		s.call(e, p)
	}
}

// crmChanged emits deal.created for the first CRM event of the opportunity
// and deal.updated for each recorded fact change after that: of every
// change, or only of those that are not attributes when there are some.
// Either way the facts after every CRM event that changed any are carried
// by a derived event of its own, so they hold as of its time.
func (s *state) crmChanged(e *event.Event) {
	if !s.created {
		s.created = true
		s.createdIdx = len(s.out)
		s.emit(Derived{Type: DealCreated, OccurredAt: e.OccurredAt, Evidence: s.one(e.ID)}, "created")
		if !s.hasAnchor {
			// The stall clock of a deal without commitments now runs
			// from its creation (see advance).
			s.stallFired = false
		}
		return
	}
	onlyAttributes := true
	for i := range s.changes {
		if !s.changes[i].attribute {
			onlyAttributes = false
			break
		}
	}
	for _, c := range s.changes {
		if c.attribute && !onlyAttributes {
			continue
		}
		d := Derived{Type: DealUpdated, OccurredAt: e.OccurredAt, Reason: c.fact, Evidence: s.one(e.ID), Detail: c.detail()}
		if c.fact == FactAttribute {
			s.emit(d, "updated", c.fact, c.key, e.Source, e.ID)
		} else {
			s.emit(d, "updated", c.fact, e.Source, e.ID)
		}
	}
}

func (s *state) record(c change) {
	if s.created { // before deal.created, changes are not reported
		s.changes = append(s.changes, c)
	}
}

// setAmount sets the amount to v in currency cur (an ISO 4217 code in any
// case; empty means unchanged).
func (s *state) setAmount(v float64, cur string) {
	cur = strings.ToUpper(cur)
	if cur == "" {
		cur = s.facts.Currency
	}
	if v == s.facts.Amount && cur == s.facts.Currency && s.created {
		return
	}
	s.record(change{fact: FactAmount, fromF: s.facts.Amount, toF: v, fromC: s.facts.Currency, toC: cur})
	s.facts.Amount, s.facts.Currency = v, cur
}

// setCloseDate sets the close date and reports whether it moved later.
func (s *state) setCloseDate(d time.Time) bool {
	if d.Equal(s.facts.CloseDate) {
		return false
	}
	prev := s.facts.CloseDate
	s.record(change{fact: FactCloseDate, fromT: prev, toT: d})
	s.facts.CloseDate = d
	return !prev.IsZero() && d.After(prev)
}

func (s *state) setOwner(o string) {
	if o == s.facts.OwnerID {
		return
	}
	s.record(change{fact: FactOwner, fromS: s.facts.OwnerID, toS: o})
	s.facts.OwnerID = o
}

func (s *state) setForecast(f string) {
	if f == s.facts.ForecastCategory {
		return
	}
	s.record(change{fact: FactForecastCategory, fromS: s.facts.ForecastCategory, toS: f})
	s.facts.ForecastCategory = f
}

// setProbability sets the CRM stage probability; 0 means unchanged.
func (s *state) setProbability(v float64) {
	if v > 0 {
		s.setProbabilityTo(v)
	}
}

// setProbabilityTo sets the CRM probability to v, 0 included.
func (s *state) setProbabilityTo(v float64) {
	if v == s.facts.Probability {
		return
	}
	s.record(change{fact: FactProbability, attribute: true, fromF: s.facts.Probability, toF: v})
	s.facts.Probability = v
}

// setAttrs applies an opportunity event's free attributes: each key
// listed is set, an empty value removes it. The facts' Attrs is replaced,
// never changed in place: snapshots already emitted share it.
func (s *state) setAttrs(m map[string]string) {
	if len(m) == 0 {
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := m[k]
		i, found := slices.BinarySearchFunc(s.facts.Attrs, k, func(a Attr, k string) int { return strings.Compare(a.Key, k) })
		var from string
		if found {
			from = s.facts.Attrs[i].Value
		}
		if v == from {
			continue
		}
		s.record(change{fact: FactAttribute, attribute: true, key: k, fromS: from, toS: v})
		attrs := slices.Clone(s.facts.Attrs)
		switch {
		case v == "":
			attrs = slices.Delete(attrs, i, i+1)
		case found:
			attrs[i].Value = v
		default:
			attrs = slices.Insert(attrs, i, Attr{Key: k, Value: v})
		}
		s.facts.Attrs = attrs
	}
}

// noteCreatedAt puts the creation time the CRM reported, when earlier
// than deal.created, in deal.created's Detail: {"created_at":"..."}.
func (s *state) noteCreatedAt() {
	if s.createdIdx < 0 || s.crmCreated.IsZero() {
		return
	}
	d := &s.out[s.createdIdx]
	if c := sec(s.crmCreated); c.Before(sec(d.OccurredAt)) {
		d.Detail = `{"created_at":` + jsonStr(c.Format(time.RFC3339)) + `}`
	}
}

// createdAt is the deal's creation time as the state records it
// (State.CreatedAt): the CRM's, when earlier than deal.created, else
// deal.created's. It needs deal.created emitted.
func (s *state) createdAt() time.Time {
	at := s.out[s.createdIdx].OccurredAt
	if c := sec(s.crmCreated); !s.crmCreated.IsZero() && c.Before(sec(at)) {
		return c
	}
	return at
}

// setAttribute sets the attribute fact (team, segment, lead_source or
// product) at *f to v; empty means unchanged.
func (s *state) setAttribute(fact string, f *string, v string) {
	if v == "" || v == *f {
		return
	}
	s.record(change{fact: fact, attribute: true, fromS: *f, toS: v})
	*f = v
}

func (s *state) setStage(st string) {
	s.record(change{fact: FactStage, fromS: s.facts.Stage, toS: st})
	s.facts.Stage = st
}

// stageEvidence applies what a move to stage shows: a commitment, a
// regression, or a close.
func (s *state) stageEvidence(e *event.Event, stage string) {
	if step, known := s.l.StageStep(s.pipeline, stage); known && step > 0 {
		if step < s.maxStage {
			s.emit(Derived{
				Type: StageRegressed, OccurredAt: e.OccurredAt,
				Step: s.l.Key(step), StepIndex: step, Evidence: s.one(e.ID),
				Detail: `{"from":` + jsonStr(s.l.Key(s.maxStage)) + `,"from_index":` + strconv.Itoa(s.maxStage) + `}`,
			}, "regressed", e.Source, e.ID)
		} else {
			s.maxStage = step
			s.gain(step, e.OccurredAt, s.one(e.ID))
		}
	}
	switch {
	case s.l.IsWonStage(stage):
		s.close(e, StatusWon, "")
	case s.l.IsLostStage(stage):
		s.close(e, StatusLost, "")
	case !s.open():
		s.reopen(e)
	}
}

// reopen makes a closed deal open again: its stage moved to one that
// closes nothing (neither a won nor a lost stage), as the CRM's IsClosed
// follows the stage. The stall clock restarts at the reopen; the next
// close is a new deal.closed.
func (s *state) reopen(e *event.Event) {
	from := s.facts.Status
	s.facts.Status = StatusOpen
	s.reopenedAt = e.OccurredAt
	s.reopenedBy = e.Source + "/" + e.ID
	s.stallFired = false // the stall clock restarts at the reopen
	s.emit(Derived{
		Type: DealReopened, OccurredAt: e.OccurredAt, Evidence: s.one(e.ID),
		Detail: `{"from":` + jsonStr(from) + `}`,
	}, "reopened", e.Source, e.ID)
}

func (s *state) closeDatePushed(e *event.Event) {
	exp := s.expectedNext()
	if !s.open() || exp == 0 {
		return
	}
	s.miss(e.OccurredAt, MissCloseDatePushed, exp, e.ID, "close_date_pushed", e.Source, e.ID)
}

// close moves the deal to won or lost. A close with the status the deal
// already has only fills in a reason the close that set it lacked. The
// first close of each status has the discriminator closed/STATUS, the
// N-th (a deal won, lost, then won again) closed/STATUS/N.
func (s *state) close(e *event.Event, status, reason string) {
	k := 0
	if status == StatusLost {
		k = 1
	}
	if s.facts.Status == status {
		if i := s.closedIndex[k]; i >= 0 && reason != "" && s.out[i].Reason == "" {
			s.out[i].Reason = reason
			s.out[i].Evidence = append(s.out[i].Evidence, e.ID)
			if status == StatusLost {
				s.checkNoDecision(e, reason)
			}
		}
		return
	}
	s.facts.Status = status
	s.closedIndex[k] = len(s.out)
	s.closes[k]++
	d := Derived{Type: DealClosed, OccurredAt: e.OccurredAt, Reason: reason, Evidence: s.one(e.ID)}
	if s.closes[k] == 1 {
		s.emit(d, "closed", status)
	} else { // closed with this status again, after closing with the other
		s.emit(d, "closed", status, strconv.Itoa(s.closes[k]))
	}
	if status == StatusWon {
		if s.wonStep > 0 {
			s.gain(s.wonStep, e.OccurredAt, s.one(e.ID))
		}
		return
	}
	s.checkNoDecision(e, reason)
}

func (s *state) checkNoDecision(e *event.Event, reason string) {
	if s.noDecision {
		return
	}
	// Reached, not gained: a deal that gained a later step passed it.
	neverChanged := s.ndStep > 0 && s.highest < s.ndStep
	if !neverChanged && !s.l.IsNoDecisionReason(reason) {
		return
	}
	exp := s.expectedNext()
	if neverChanged {
		exp = s.ndStep
	}
	if exp == 0 {
		return
	}
	s.noDecision = true
	s.miss(e.OccurredAt, MissNoDecision, exp, e.ID, "no_decision")
}

func contactKey(c *event.Contact) string {
	if c.Email != "" {
		return strings.ToLower(c.Email)
	}
	return "contact:" + c.ContactID
}

func addPerson(list []string, key string) []string {
	if key == "" || slices.Contains(list, key) {
		return list
	}
	return append(list, key)
}

// engage counts a buyer person as an engaged stakeholder; the consensus step
// is gained when enough are.
func (s *state) engage(key string, e *event.Event) {
	if key == "" || slices.Contains(s.stakeholders, key) {
		return
	}
	s.stakeholders = append(s.stakeholders, key)
	if !slices.Contains(s.stakeEv, e.ID) {
		s.stakeEv = append(s.stakeEv, e.ID)
	}
	if len(s.stakeholders) == s.need && s.consensusStep > 0 {
		s.gain(s.consensusStep, e.OccurredAt, slices.Clone(s.stakeEv))
	}
}

func (s *state) activity(e *event.Event, a *event.Activity) {
	t := e.OccurredAt
	expBefore := s.expectedNext()
	completed := a.Status == "" || a.Status == "completed"
	present := len(a.Participants) == 0
	for i := range a.Participants {
		if a.Participants[i].Side == event.Buyer {
			present = true
		}
	}
	meeting := a.Kind == event.ActivityMeeting
	if meeting && completed {
		for i := range a.Participants {
			pp := &a.Participants[i]
			if pp.Side == event.Buyer {
				s.engage(pp.Key(), e)
			} else {
				s.sellers = addPerson(s.sellers, pp.Key())
			}
		}
		if present {
			s.lastBuyerAt = t
		}
	}
	if meeting && !completed {
		s.lastFollowupAt = t
	}
	buyerTask := a.Kind == event.ActivityTask && a.OwnerSide == event.Buyer
	if buyerTask {
		s.lastFollowupAt = t
		if completed {
			s.lastBuyerAt = t
		}
	}

	won := s.facts.Status == StatusWon
	s.steps = s.l.MatchActivity(s.steps[:0], ladder.Interaction{
		Kind: a.Kind, Status: a.Status, OwnerSide: string(a.OwnerSide), Subject: a.Subject,
		BuyerPresent: present, AfterWin: won,
	})
	if a.Kind == event.ActivityTask {
		s.steps = s.l.MatchActionItem(s.steps, "", a.Subject, string(a.OwnerSide), won)
	}
	newGain := s.gainAll(e)

	if buyerTask && !completed && a.DueAt != nil && s.open() {
		step := 0
		if len(s.steps) > 0 {
			step = s.steps[0]
		}
		s.items = append(s.items, pendingItem{
			fireAt: a.DueAt.Add(s.l.OverdueGrace()), promisedAt: t,
			interaction: e.ID, source: e.Source, item: -1, step: step,
		})
	}

	if !meeting || !completed || s.facts.Status == StatusLost || s.recorded(t, a.Participants) {
		return
	}
	exp := s.expectedNext()
	if exp == 0 {
		return
	}
	switch {
	case !present:
		s.held(t, InteractionContinuation, exp, e, s.facts)
		s.miss(t, MissNoBuyerPresent, exp, e.ID, "missed", e.Source, e.ID)
	case newGain:
		s.held(t, InteractionAdvanced, expBefore, e, s.facts)
	default:
		s.meetings = append(s.meetings, pendingMeeting{
			fireAt: t.Add(s.l.Followup()), at: t, interaction: e.ID,
			source: e.Source, expected: exp, snap: s.facts, input: s.input,
		})
	}
}

func (s *state) call(e *event.Event, c *event.Call) {
	t := e.OccurredAt
	expBefore := s.expectedNext()
	present := false
	for i := range c.Participants {
		pp := &c.Participants[i]
		if pp.Side == event.Buyer {
			present = true
			s.engage(pp.Key(), e)
		} else {
			s.sellers = addPerson(s.sellers, pp.Key())
		}
	}
	if present {
		s.lastBuyerAt = t
	}
	won := s.facts.Status == StatusWon
	s.steps = s.l.MatchActivity(s.steps[:0], ladder.Interaction{
		Kind: "call", Subject: c.Title, BuyerPresent: present, AfterWin: won,
	})
	buyerActs, sellerActs := false, false
	for i := range c.ActionItems {
		it := &c.ActionItems[i]
		if it.OwnerSide == event.Buyer {
			buyerActs = true
			if it.OwnerEmail != "" {
				s.engage(strings.ToLower(it.OwnerEmail), e)
			}
		} else {
			sellerActs = true
		}
		before := len(s.steps)
		s.steps = s.l.MatchActionItem(s.steps, it.Kind, it.Text, string(it.OwnerSide), won)
		if it.OwnerSide == event.Buyer && it.DueAt != nil && s.open() {
			step := 0
			if len(s.steps) > before {
				step = s.steps[before]
			} else if st := s.l.MatchActionItem(nil, it.Kind, it.Text, string(it.OwnerSide), won); len(st) > 0 {
				step = st[0] // already matched by an earlier item or the title
			}
			s.items = append(s.items, pendingItem{
				fireAt: it.DueAt.Add(s.l.OverdueGrace()), promisedAt: t,
				interaction: e.ID, source: e.Source, item: i, step: step,
			})
		}
	}
	advanced := buyerActs || c.NextMeetingBooked
	if advanced {
		s.lastFollowupAt = t
	}
	s.gainAll(e)

	if s.facts.Status == StatusLost {
		return
	}
	exp := s.expectedNext()
	if exp == 0 {
		return
	}
	outcome := InteractionContinuation
	if present && advanced {
		outcome = InteractionAdvanced
	}
	if outcome == InteractionAdvanced && expBefore > 0 {
		exp = expBefore // the step it was expected to win, before it won it
	}
	s.held(t, outcome, exp, e, s.facts)
	switch {
	case !present:
		s.miss(t, MissNoBuyerPresent, exp, e.ID, "missed", e.Source, e.ID)
	case advanced:
	case sellerActs:
		s.miss(t, MissSellerOnlyActions, exp, e.ID, "missed", e.Source, e.ID)
	default:
		s.miss(t, MissNoNextStep, exp, e.ID, "missed", e.Source, e.ID)
	}
}

// gainAll gains every step in s.steps with e as evidence and reports whether
// any was new.
func (s *state) gainAll(e *event.Event) bool {
	if len(s.steps) == 0 {
		return false
	}
	slices.Sort(s.steps)
	gainedNew := false
	for _, st := range s.steps {
		if s.gain(st, e.OccurredAt, s.one(e.ID)) {
			gainedNew = true
		}
	}
	return gainedNew
}

// gain records the first evidence of a step and reports whether it was new.
func (s *state) gain(step int, at time.Time, evidence []string) bool {
	if step < 1 || step > s.n || s.gained[step] {
		return false
	}
	s.gained[step] = true
	if step > s.highest {
		s.highest = step
	}
	key := s.l.Key(step)
	sum := s.emit(Derived{Type: CommitmentGained, OccurredAt: at, Step: key, StepIndex: step, Evidence: evidence}, "gained", key)
	s.lastGainAt = at
	s.lastBuyerAt = at
	s.anchor, s.hasAnchor = sum, true
	s.stallFired = false
	if s.stFrom > 0 && s.highest >= s.stFrom && !s.stDone && !s.stPending {
		s.stPending, s.stAt = true, at
	}
	return true
}

// settle decides, once the fold has applied every input event of the
// second of a gain at or past single_threaded_from, whether the deal is
// single-threaded: still open (a win at that instant is no warning) with
// fewer engaged stakeholders than consensus needs. A deal that is not may
// be flagged at a later gain.
func (s *state) settle() {
	if !s.stPending {
		return
	}
	s.stPending = false
	if !s.open() || len(s.stakeholders) >= s.need {
		return
	}
	s.stDone = true
	s.emit(Derived{
		Type: DealSingleThreaded, OccurredAt: s.stAt, Step: s.l.Key(s.highest), StepIndex: s.highest,
		Value:  float64(len(s.stakeholders)),
		Detail: `{"needed":` + strconv.Itoa(s.need) + `}`,
	}, "single_threaded")
}

// held records one buyer interaction and whether it advanced the deal: the
// denominator of the miss rate.
func (s *state) held(at time.Time, outcome string, expected int, e *event.Event, snap Snapshot) {
	s.emitSnap(Derived{
		Type: InteractionHeld, OccurredAt: at, Step: s.l.Key(expected), StepIndex: expected,
		Reason: outcome, InteractionID: e.ID,
	}, snap, s.input, "held", e.Source, e.ID)
}

func (s *state) miss(at time.Time, reason string, expected int, interaction string, disc ...string) {
	s.emit(Derived{
		Type: CommitmentMissed, OccurredAt: at, Step: s.l.Key(expected), StepIndex: expected,
		Reason: reason, InteractionID: interaction,
	}, disc...)
}

// advance fires the timers due before t (or at t, if inclusive).
func (s *state) advance(t time.Time, inclusive bool) {
	due := func(at time.Time) bool { return at.Before(t) || inclusive && at.Equal(t) }

	// deal.stalled: once per anchor (the last commitment gained, or,
	// before any, the deal's creation: the first event until deal.created,
	// then its creation time), as the read model's stall rule
	// (readmodel.StallColumns) counts it.
	if s.open() && !s.stallFired && !s.firstAt.IsZero() {
		anchorAt, step := s.lastGainAt, s.highest
		anchor := "start"
		var floor time.Time
		switch {
		case s.hasAnchor:
			anchor = hex.EncodeToString(s.anchor[:])
		case s.createdIdx < 0:
			anchorAt, floor, step = s.firstAt, s.firstAt, 1
		default:
			// Not before deal.created: a deal the CRM dates long
			// before the events seen stalls when first seen.
			anchorAt, floor, step = s.createdAt(), s.out[s.createdIdx].OccurredAt, 1
			if floor.After(s.firstAt) {
				anchor = "created"
			}
		}
		if s.reopenedAt.After(anchorAt) {
			// No stall while closed: the clock restarts at the reopen.
			anchorAt = s.reopenedAt
			anchor += "/reopened/" + s.reopenedBy
		}
		if th := s.l.StallAfter(max(step, 1)); th > 0 {
			at := anchorAt.Add(th)
			if at.Before(floor) {
				at = floor
			}
			if due(at) {
				s.stallFired = true
				s.emit(Derived{
					Type: DealStalled, OccurredAt: at, Step: s.l.Key(s.highest), StepIndex: s.highest,
					Value:  th.Hours() / 24,
					Detail: `{"since":` + jsonStr(anchorAt.UTC().Format(time.RFC3339)) + `}`,
				}, "stalled/"+anchor)
			}
		}
	}

	// Buyer action items: missed at due+grace unless the buyer engaged
	// after promising (a buyer interaction, a completed buyer task or a
	// commitment gained). Dropped once the deal closed.
	if len(s.items) > 0 {
		keep := s.items[:0]
		for _, it := range s.items {
			if !due(it.fireAt) {
				keep = append(keep, it)
				continue
			}
			if !s.open() || s.lastBuyerAt.After(it.promisedAt) {
				continue
			}
			exp := it.step
			if exp == 0 {
				exp = s.expectedNext()
			}
			if exp > 0 {
				if it.item < 0 {
					s.miss(it.fireAt, MissBuyerActionOverdue, exp, it.interaction, "overdue", it.source, it.interaction)
				} else {
					s.miss(it.fireAt, MissBuyerActionOverdue, exp, it.interaction, "overdue", it.source, it.interaction, strconv.Itoa(it.item))
				}
			}
		}
		s.items = keep
	}

	// CRM meetings: no_next_step unless a scheduled meeting or buyer action
	// followed within the follow-up window.
	if len(s.meetings) > 0 {
		keep := s.meetings[:0]
		for _, m := range s.meetings {
			if !due(m.fireAt) {
				keep = append(keep, m)
				continue
			}
			if !s.lastFollowupAt.IsZero() && !s.lastFollowupAt.Before(m.at) {
				s.emitSnap(Derived{
					Type: InteractionHeld, OccurredAt: m.at, Step: s.l.Key(m.expected), StepIndex: m.expected,
					Reason: InteractionAdvanced, InteractionID: m.interaction,
				}, m.snap, m.input, "held", m.source, m.interaction)
				continue
			}
			s.emitSnap(Derived{
				Type: InteractionHeld, OccurredAt: m.at, Step: s.l.Key(m.expected), StepIndex: m.expected,
				Reason: InteractionContinuation, InteractionID: m.interaction,
			}, m.snap, m.input, "held", m.source, m.interaction)
			d := Derived{
				Type: CommitmentMissed, OccurredAt: m.at, Step: s.l.Key(m.expected), StepIndex: m.expected,
				Reason: MissNoNextStep, InteractionID: m.interaction,
			}
			s.emitSnap(d, m.snap, m.input, "missed", m.source, m.interaction)
		}
		s.meetings = keep
	}
}

// emit completes d with the opportunity, the current facts and the ladder
// version, appends it at the current position in the fold and returns the
// hash its id is made of; ids are set by finish.
func (s *state) emit(d Derived, disc ...string) [16]byte {
	return s.emitSnap(d, s.facts, s.input, disc...)
}

// emitSnap is emit with the snapshot snap, placed in the fold right after
// the emissions of input event input (an event decided later, such as a
// CRM meeting's outcome, belongs where its meeting was applied).
func (s *state) emitSnap(d Derived, snap Snapshot, input int, disc ...string) [16]byte {
	d.Tenant, d.OpportunityID = s.tenant, s.opp
	d.Snapshot = snap
	d.LadderVersion = s.l.Version
	sum := s.sum(d.Type, disc)
	s.pos = append(s.pos, uint64(input+1)<<32|uint64(len(s.out)))
	s.out = append(s.out, d)
	s.sums = append(s.sums, sum)
	return sum
}

// finish returns the emitted events ordered by second, then by position in
// the fold, with their Seq within the second and their ids (all from one
// allocation).
func (s *state) finish() []Derived {
	order := make([]int, len(s.out))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		if c := cmp.Compare(s.out[a].OccurredAt.Unix(), s.out[b].OccurredAt.Unix()); c != 0 {
			return c
		}
		return cmp.Compare(s.pos[a], s.pos[b])
	})
	buf := make([]byte, 32*len(s.out))
	for i := range s.sums {
		hex.Encode(buf[32*i:], s.sums[i][:])
	}
	all := string(buf)
	out := make([]Derived, len(s.out))
	for k, i := range order {
		out[k] = s.out[i]
		out[k].ID = all[32*i : 32*i+32]
		if k > 0 && out[k].OccurredAt.Unix() == out[k-1].OccurredAt.Unix() {
			out[k].Seq = out[k-1].Seq + 1
		}
	}
	return out
}

// one returns a one-element evidence slice from a shared backing array.
// Its capacity is capped, so appending to it copies.
func (s *state) one(id string) []string {
	if len(s.strs) == cap(s.strs) {
		s.strs = make([]string, 0, 32)
	}
	s.strs = append(s.strs, id)
	n := len(s.strs)
	return s.strs[n-1 : n : n]
}

// id is the hex of the first 16 bytes of sha256(tenant NUL opportunity NUL
// type NUL disc), where disc is the parts joined by "/".
func (s *state) id(k Kind, parts []string) string {
	sum := s.sum(k, parts)
	return hex.EncodeToString(sum[:])
}

func (s *state) sum(k Kind, parts []string) [16]byte {
	b := s.idBuf[:0]
	b = append(b, s.tenant...)
	b = append(b, 0)
	b = append(b, s.opp...)
	b = append(b, 0)
	b = append(b, k...)
	b = append(b, 0)
	for i, p := range parts {
		if i > 0 {
			b = append(b, '/')
		}
		b = append(b, p...)
	}
	s.idBuf = b
	sum := sha256.Sum256(b)
	return [16]byte(sum[:16])
}

// ID returns the derived event id Derive gives an event of kind k about the
// opportunity with the discriminator disc (see README.md).
func ID(tenant, opportunityID string, k Kind, disc string) string {
	s := state{tenant: tenant, opp: opportunityID}
	return s.id(k, []string{disc})
}

func jsonStr(v string) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func jsonNum(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func jsonDate(t time.Time) string {
	if t.IsZero() {
		return "null"
	}
	return `"` + t.Format(time.DateOnly) + `"`
}
