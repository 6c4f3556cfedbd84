package forecast

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/store"
)

// synthSteps is the ladder length the synthetic rows use (steps 1..10);
// their opportunity states are summarized for it.
const synthSteps = 10

// synthConfig says what synthetic derived rows to make.
type synthConfig struct {
	Seed    uint64
	Tenant  string
	Opps    int
	Start   time.Time // opportunities are created in [Start, Start+Span)
	Span    time.Duration
	Prefix  string  // opportunity id prefix
	WinRate float64 // share of closed deals won, by step reached
}

// synth makes derived rows of cfg.Opps opportunities: creation, gains that
// climb (and skip) steps, interactions, amount updates, segment changes,
// closes (won or lost, some after the window), reopens followed by another
// close or none, ties in time, re-derived rows with higher versions and
// retractions. As derivation does, every row after a close carries the
// closed status until a deal.reopened.
func synth(cfg synthConfig) []store.DerivedRow {
	r := rand.New(rand.NewPCG(cfg.Seed, 77))
	segments := []string{"smb", "mid", "ent"}
	var out []store.DerivedRow
	day := 24 * time.Hour
	for i := 0; i < cfg.Opps; i++ {
		opp := fmt.Sprintf("%s%06d", cfg.Prefix, i)
		created := cfg.Start.Add(time.Duration(r.Int64N(int64(cfg.Span/time.Second))) * time.Second)
		snap := derive.Snapshot{
			Amount:      float64(1000 * (1 + r.IntN(200))),
			CloseDate:   truncDay(created.Add(time.Duration(30+r.IntN(240)) * day)),
			Stage:       "new",
			Probability: 0.1,
			Status:      "open",
			OwnerID:     fmt.Sprintf("owner%02d", r.IntN(12)),
			Segment:     segments[r.IntN(len(segments))],
		}
		snap.Team = "team" + snap.OwnerID[len(snap.OwnerID)-1:]
		if r.IntN(20) == 0 {
			snap.CloseDate = time.Time{} // unknown close date
		}
		seq := 0
		last := created // the latest row so far, the creation when there is none (a close comes after it)
		add := func(kind derive.Kind, at time.Time, step int, s derive.Snapshot) *store.DerivedRow {
			seq++
			if at.After(last) {
				last = at
			}
			d := derive.Derived{
				Tenant:        cfg.Tenant,
				OpportunityID: opp,
				ID:            fmt.Sprintf("%s-%03d-%x", opp, seq, r.Uint32()),
				Type:          kind,
				OccurredAt:    at,
				StepIndex:     step,
				Snapshot:      s,
				LadderVersion: "v1",
			}
			if step > 0 {
				d.Step = fmt.Sprintf("step%d", step)
			}
			out = append(out, store.DerivedRow{Derived: d, Version: 1})
			return &out[len(out)-1]
		}
		// Some opportunities have a call recorded before their creation.
		if r.IntN(10) == 0 {
			add(derive.InteractionHeld, created.Add(-time.Duration(1+r.IntN(5))*day), 0, snap)
		}
		// A few have no deal.created row at all.
		if r.IntN(30) != 0 {
			add(derive.DealCreated, created, 0, snap)
		}
		at := created
		step := 0
		maxStep := 1 + r.IntN(9)
		for step < maxStep && r.IntN(8) != 0 {
			at = at.Add(time.Duration(r.Int64N(int64(45*day/time.Second))) * time.Second)
			step += 1 + r.IntN(2)*r.IntN(2) // sometimes skip one
			if step > 10 {
				step = 10
			}
			snap.Probability = float64(step) / 10
			snap.Stage = fmt.Sprintf("stage%d", step)
			g := add(derive.CommitmentGained, at, step, snap)
			switch r.IntN(12) {
			case 0: // a tie: an interaction at the same second
				add(derive.InteractionHeld, at, 0, snap)
			case 1: // retracted later
				rt := *g
				rt.Version, rt.Retracted = 2, true
				out = append(out, rt)
			case 2: // re-derived with a later time
				rd := *g
				rd.Version = 3
				rd.OccurredAt = at.Add(time.Duration(r.IntN(3600)) * time.Second)
				out = append(out, rd)
				if rd.OccurredAt.After(last) {
					last = rd.OccurredAt
				}
			}
			if r.IntN(3) == 0 {
				add(derive.InteractionHeld, at.Add(time.Duration(r.IntN(86400*10))*time.Second), 0, snap)
			}
			if r.IntN(6) == 0 {
				snap.Amount = float64(1000 * (1 + r.IntN(200)))
				add(derive.DealUpdated, at.Add(time.Duration(r.IntN(86400*5))*time.Second), 0, snap)
			}
			if r.IntN(15) == 0 {
				snap.Segment = segments[r.IntN(len(segments))]
				add(derive.DealUpdated, at.Add(time.Duration(r.IntN(86400*5))*time.Second), 0, snap)
			}
			if r.IntN(10) == 0 { // reassigned, and back now and then
				snap.OwnerID = fmt.Sprintf("owner%02d", r.IntN(3))
				snap.Team = "team" + snap.OwnerID[len(snap.OwnerID)-1:]
				add(derive.DealUpdated, at.Add(time.Duration(r.IntN(86400*5))*time.Second), 0, snap)
			}
		}
		if r.IntN(4) == 0 {
			continue // still open
		}
		closeAt := last.Add(time.Second + time.Duration(r.Int64N(int64(90*day/time.Second)))*time.Second)
		win := r.Float64() < 0.1+0.08*float64(step)
		c := add(derive.DealClosed, closeAt, 0, closed(snap, win))
		switch {
		case r.IntN(25) == 0: // the close was retracted: open again
			rt := *c
			rt.Version, rt.Retracted = 2, true
			out = append(out, rt)
		case r.IntN(5) == 0: // reopened, then perhaps closed again
			at := closeAt.Add(time.Duration(1+r.Int64N(int64(60*day/time.Second))) * time.Second)
			add(derive.DealReopened, at, 0, snap)
			if r.IntN(4) == 0 {
				snap.Amount = float64(1000 * (1 + r.IntN(200)))
				at = at.Add(time.Duration(r.IntN(86400*20)) * time.Second)
				add(derive.DealUpdated, at, 0, snap)
			}
			if r.IntN(3) != 0 {
				add(derive.DealClosed, at.Add(time.Duration(1+r.Int64N(int64(120*day/time.Second)))*time.Second), 0, closed(snap, r.IntN(2) == 0))
			}
		case win && r.IntN(2) == 0:
			add(derive.CommitmentGained, closeAt.Add(20*day), 10, closed(snap, win))
		}
	}
	return out
}

// closed returns s closed won or lost.
func closed(s derive.Snapshot, won bool) derive.Snapshot {
	if won {
		s.Status, s.Probability = "won", 1
	} else {
		s.Status, s.Probability = "lost", 0
	}
	return s
}

func truncDay(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// current returns the derived events of tenant that hold: per id the row of
// the highest version, unless it is retracted.
func current(rows []store.DerivedRow, tenant string) []derive.Derived {
	best := map[string]store.DerivedRow{}
	for _, r := range rows {
		if r.Tenant != tenant {
			continue
		}
		key := r.OpportunityID + "\x00" + r.ID
		if b, ok := best[key]; !ok || r.Version >= b.Version {
			best[key] = r
		}
	}
	var out []derive.Derived
	for _, r := range best {
		if !r.Retracted {
			out = append(out, r.Derived)
		}
	}
	return out
}

// oracleOpp is everything the oracle knows of one opportunity up to a
// bound, rows sorted in fold order: (occurred_at, seq, id).
type oracleOpp struct {
	rows    []derive.Derived
	created time.Time
	closes  []*derive.Derived // in fold order
}

func oracleOpps(ds []derive.Derived, bound time.Time) map[string]*oracleOpp {
	m := map[string]*oracleOpp{}
	for _, d := range ds {
		if d.OccurredAt.After(bound) {
			continue
		}
		o := m[d.OpportunityID]
		if o == nil {
			o = &oracleOpp{}
			m[d.OpportunityID] = o
		}
		o.rows = append(o.rows, d)
	}
	for _, o := range m {
		sort.Slice(o.rows, func(i, j int) bool { return before(o.rows[i], o.rows[j]) })
		o.created = o.rows[0].OccurredAt
		for i := range o.rows {
			if o.rows[i].Type == derive.DealCreated {
				o.created = o.rows[i].OccurredAt
				break
			}
		}
		for i := range o.rows {
			if o.rows[i].Type == derive.DealClosed {
				o.closes = append(o.closes, &o.rows[i])
			}
		}
	}
	return m
}

func before(a, b derive.Derived) bool {
	if !a.OccurredAt.Equal(b.OccurredAt) {
		return a.OccurredAt.Before(b.OccurredAt)
	}
	if a.Seq != b.Seq {
		return a.Seq < b.Seq
	}
	return a.ID < b.ID
}

// openAt reports whether o is open at t: created by then, and its facts
// as of t say open.
func (o *oracleOpp) openAt(t time.Time) bool {
	if o.created.After(t) {
		return false
	}
	_, _, facts := o.stateAt(t)
	return facts.Status != "won" && facts.Status != "lost"
}

// closeAfter returns the first close after t, nil if none.
func (o *oracleOpp) closeAfter(t time.Time) *derive.Derived {
	for _, c := range o.closes {
		if c.OccurredAt.After(t) {
			return c
		}
	}
	return nil
}

// stateAt returns the highest step, last commitment time and latest facts at t.
func (o *oracleOpp) stateAt(t time.Time) (step int, last time.Time, facts derive.Snapshot) {
	last = o.created
	var lastGain time.Time
	for _, d := range o.rows {
		if d.OccurredAt.After(t) {
			break
		}
		facts = d.Snapshot
		if d.Type == derive.CommitmentGained {
			step = max(step, d.StepIndex)
			if d.OccurredAt.After(lastGain) {
				lastGain = d.OccurredAt
			}
		}
	}
	if !lastGain.IsZero() {
		last = lastGain
	}
	return step, last, facts
}

// oracleStates is the plain-Go statesSQL.
func oracleStates(ds []derive.Derived, refs []time.Time, bound time.Time, horizon int) []stateRow {
	var out []stateRow
	for id, o := range oracleOpps(ds, bound) {
		for _, t := range refs {
			if !o.openAt(t) {
				continue
			}
			step, last, facts := o.stateAt(t)
			s := stateRow{Opportunity: id, T: t, Step: step, LastAt: last,
				Days: int((t.Unix() - last.Unix()) / 86400), Segment: facts.Segment}
			if c := o.closeAfter(t); c != nil && int((c.OccurredAt.Unix()-t.Unix())/86400) < horizon {
				s.Day = int((c.OccurredAt.Unix() - t.Unix()) / 86400)
				s.Outcome = Lost
				if c.Status == "won" {
					s.Outcome = Won
				}
			} else {
				s.Day = min(int((bound.Unix()-t.Unix())/86400), horizon)
			}
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Opportunity != out[j].Opportunity {
			return out[i].Opportunity < out[j].Opportunity
		}
		return out[i].T.Before(out[j].T)
	})
	return out
}

// oracleTraining aggregates states as trainingSQL does.
func oracleTraining(states []stateRow) ([]trainRow, trainingStats) {
	type key struct {
		c   Cell
		o   Outcome
		day int
	}
	counts := map[key]float64{}
	opps := map[string]bool{}
	for _, s := range states {
		counts[key{Cell{s.Step, DaysBucket(s.Days), s.Segment}, s.Outcome, s.Day}]++
		opps[s.Opportunity] = true
	}
	var out []trainRow
	for k, n := range counts {
		out = append(out, trainRow{Cell: k.c, Outcome: k.o, Day: k.day, Count: n})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Cell != b.Cell {
			cs := []Cell{a.Cell, b.Cell}
			sortCells(cs)
			return cs[0] == a.Cell
		}
		if a.Outcome != b.Outcome {
			return a.Outcome < b.Outcome
		}
		return a.Day < b.Day
	})
	return out, trainingStats{samples: int64(len(states)), opportunities: int64(len(opps))}
}

// oracleDeals is the plain-Go dealsSQL.
func oracleDeals(ds []derive.Derived, at, bound time.Time) []dealRow {
	var out []dealRow
	for id, o := range oracleOpps(ds, bound) {
		if !o.openAt(at) {
			continue
		}
		step, last, facts := o.stateAt(at)
		d := dealRow{Opportunity: id, Amount: facts.Amount, CloseDate: facts.CloseDate, Probability: facts.Probability,
			Owner: facts.OwnerID, Team: facts.Team, Segment: facts.Segment, Step: step, LastAt: last}
		if c := o.closeAfter(at); c != nil {
			_, _, f := o.stateAt(c.OccurredAt)
			d.Closed, d.ClosedAt, d.Status, d.CloseAmount = true, c.OccurredAt, c.Status, f.Amount
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Opportunity < out[j].Opportunity })
	return out
}
