package exporttest

import (
	"cmp"
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
	closeDate   time.Time
	stage       string
	probability float64
	status      string // open, won or lost
	owner, team string
	segment     string
	source      string
	product     string
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
	id      string
	created time.Time // the first CRM (opportunity.*) event
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
	stalls  []time.Time // when the stall clock ran out

	reopened time.Time // the last move of a closed deal back to an open stage
	fired    bool      // the current stall clock has run out
	maxStage int
	pipeline string
	engaged  []string
}

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
	for i := range evs {
		e := &evs[i]
		if e.OccurredAt.After(upTo) {
			break
		}
		d.clock(l, e.OccurredAt, false)
		d.apply(l, e)
	}
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
	firstCRM := crm && d.created.IsZero()
	if firstCRM {
		d.created = t
	}
	stageBefore := d.f.stage
	newStage := ""
	switch p := e.Payload.(type) {
	case *event.Opportunity:
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
		if p.Amount > 0 {
			d.f.amount = p.Amount
		}
		if p.CloseDate != "" {
			d.f.closeDate = p.CloseDate.Time()
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
		d.f.amount = p.To
	case *event.CloseDateChange:
		if d.f.closeDate.IsZero() && p.From != "" {
			d.f.closeDate = p.From.Time()
		}
		d.f.closeDate = p.To.Time()
	case *event.OwnerChange:
		if p.Team != "" {
			d.f.team = p.Team
		}
		d.f.owner = p.To
	case *event.Won:
		if p.Amount > 0 {
			d.f.amount = p.Amount
		}
		d.close(l, t, "won")
	case *event.Lost:
		d.close(l, t, "lost")
	case *event.Contact:
		if p.Side != event.Seller && l.IsConsensusRole(p.Role) {
			key := strings.ToLower(p.Email)
			if key == "" {
				key = "contact:" + p.ContactID
			}
			d.engage(l, key, t)
		}
	case *event.Call:
		d.call(l, t, p)
	}
	if newStage != "" && newStage != stageBefore {
		d.f.stage = newStage
		if !firstCRM {
			d.entries = append(d.entries, mark{at: t, stage: newStage})
		}
		d.stageEvidence(l, t, newStage)
	}
	if firstCRM && d.f.stage != "" {
		d.entries = append(d.entries, mark{at: t, stage: d.f.stage})
	}
}

// stageEvidence applies a move to stage: a commitment (or a regression
// below the highest stage step seen), and a close or a reopen.
func (d *deal) stageEvidence(l *ladder.Ladder, t time.Time, stage string) {
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
		d.close(l, t, "won")
	case l.IsLostStage(stage):
		d.close(l, t, "lost")
	case !d.open():
		d.f.status = "open"
		d.reopened = t
		d.fired = false // the stall clock restarts at the reopen
	}
}

func (d *deal) close(l *ladder.Ladder, t time.Time, status string) {
	if d.f.status == status {
		return
	}
	d.f.status = status
	d.closes = append(d.closes, mark{at: t, status: status})
	if status == "won" {
		d.gain(l.Index(l.WonStep), t)
	}
}

func (d *deal) gain(k int, t time.Time) {
	if k < 1 || k >= len(d.gained) || !d.gained[k].IsZero() {
		return
	}
	d.gained[k] = t
	d.highest = max(d.highest, k)
	for j := 1; j <= k; j++ {
		if d.reach[j].IsZero() {
			d.reach[j] = t
		}
	}
	d.lastGain = t
	d.fired = false
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

// call applies a recorded call: its buyer people are engaged, and it is
// evidence of the steps its title and buyer-owned action items match.
func (d *deal) call(l *ladder.Ladder, t time.Time, c *event.Call) {
	present := false
	for _, p := range c.Participants {
		if p.Side == event.Buyer {
			present = true
			d.engage(l, p.Key(), t)
		}
	}
	won := d.f.status == "won"
	steps := l.MatchActivity(nil, ladder.Interaction{Kind: "call", Subject: c.Title, BuyerPresent: present, AfterWin: won})
	for _, it := range c.ActionItems {
		if it.OwnerSide == event.Buyer && it.OwnerEmail != "" {
			d.engage(l, strings.ToLower(it.OwnerEmail), t)
		}
		steps = l.MatchActionItem(steps, it.Kind, it.Text, string(it.OwnerSide), won)
	}
	for _, k := range steps {
		d.gain(k, t)
	}
}

// clock runs the stall clock to t: an open deal stalls when no commitment
// was gained for its highest step's threshold (step 1's before any),
// counted from the last gain, the first event before any, or the last
// reopen when later. What happens at that very instant comes first.
func (d *deal) clock(l *ladder.Ladder, t time.Time, inclusive bool) {
	at, ok := d.stallAt(l)
	if ok && !d.fired && (at.Before(t) || inclusive && at.Equal(t)) {
		d.fired = true
		d.stalls = append(d.stalls, at)
	}
}

// stallAt is when the running stall clock of an open deal runs out.
func (d *deal) stallAt(l *ladder.Ladder) (time.Time, bool) {
	if !d.open() || d.first.IsZero() {
		return time.Time{}, false
	}
	anchor, step := d.lastGain, d.highest
	if anchor.IsZero() {
		anchor, step = d.first, 1
	}
	if d.reopened.After(anchor) {
		anchor = d.reopened
	}
	th := l.StallAfter(max(step, 1))
	if th <= 0 {
		return time.Time{}, false
	}
	return anchor.Add(th), true
}

// book is every opportunity's sorted input events.
type book struct {
	l    *ladder.Ladder
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
