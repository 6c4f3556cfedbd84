package derive

import (
	"cmp"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// State is one opportunity's current derived history folded into one row of
// the opportunity_state table (schemas/clickhouse/0101_opportunity_state.sql
// documents every field). Metrics answer "as of" questions from it with
// array look-ups instead of reading every derived event.
//
// Times are UTC at second precision; a zero time means "none".
type State struct {
	Tenant        string
	OpportunityID string
	CreatedAt     time.Time // the CRM's creation time if earlier (deal.created's Detail), else deal.created; zero if none
	CreatedSeen   time.Time // deal.created, when the CRM first showed the deal; zero if none
	FirstAt       time.Time // the earliest derived event

	// Reach[K-1] is reach_time(K): the earliest commitment.gained with step
	// index >= K. Gained[K-1] is when step K itself was gained. Both have
	// one element per ladder step.
	Reach  []time.Time
	Gained []time.Time

	// Every commitment.gained, in fold order (see Summarize).
	GainTimes []time.Time
	GainSteps []uint8

	// Facts after each distinct second at which they changed, ordered by
	// time: the snapshot of the last derived event of that second in fold
	// order, i.e. the facts after every input event up to its end.
	FactTimes []time.Time
	Facts     []Snapshot

	// Every entry into a CRM stage, in fold order: the stage of
	// deal.created, then the new stage of each deal.updated for a stage
	// change, several in one second included. An empty stage is no entry.
	StageEntries []StageEntry

	Stalls        []Mark // deal.stalled: time and step
	RegressTimes  []time.Time
	Closes        []Close       // deal.closed, in fold order
	Misses        []Interaction // commitment.missed, in fold order
	Held          []Interaction // interaction.held, in fold order
	LadderVersion string

	// SingleThreaded is every deal.single_threaded, in fold order.
	SingleThreaded []time.Time
}

// Mark is a time and a step.
type Mark struct {
	At   time.Time
	Step uint8
}

// StageEntry is an entry into a CRM stage.
type StageEntry struct {
	At    time.Time
	Stage string
}

// Close is a deal.closed event.
type Close struct {
	At     time.Time
	Status string
	Reason string
}

// Interaction is a commitment.missed or interaction.held event: Reason is
// the miss reason or the held outcome; Owner and Amount come from the
// event's own snapshot.
type Interaction struct {
	At            time.Time
	Step          uint8
	Reason        string
	InteractionID string
	Owner         string
	Amount        float64
	Currency      string
}

// Summarize folds an opportunity's current derived events (none retracted,
// the latest version of each id) into its State for a ladder of steps
// steps. The order of cur does not matter: events are taken in fold order,
// by second, then Seq (then time and id, which only matters for events
// stored before Seq existed, all 0).
func Summarize(cur []Derived, steps int) State {
	ds := make([]*Derived, len(cur))
	for i := range cur {
		ds[i] = &cur[i]
	}
	slices.SortFunc(ds, func(a, b *Derived) int {
		if c := cmp.Compare(a.OccurredAt.Unix(), b.OccurredAt.Unix()); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Seq, b.Seq); c != 0 {
			return c
		}
		if c := a.OccurredAt.Compare(b.OccurredAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	s := State{Reach: make([]time.Time, steps), Gained: make([]time.Time, steps)}
	for i, d := range ds {
		at := sec(d.OccurredAt)
		if i == 0 {
			s.Tenant, s.OpportunityID, s.FirstAt = d.Tenant, d.OpportunityID, at
		}
		s.LadderVersion = d.LadderVersion
		// Facts: the last snapshot of each second, kept when changed.
		if i == len(ds)-1 || ds[i+1].OccurredAt.Unix() != d.OccurredAt.Unix() {
			snap := d.Snapshot
			snap.CloseDate = dateOf(snap.CloseDate)
			if n := len(s.Facts); n == 0 || !sameSnapshot(s.Facts[n-1], snap) {
				s.FactTimes = append(s.FactTimes, at)
				s.Facts = append(s.Facts, snap)
			}
		}
		switch d.Type {
		case DealCreated:
			if s.CreatedAt.IsZero() {
				s.CreatedAt, s.CreatedSeen = at, at
				if c, ok := createdAt(d.Detail); ok && c.Before(at) {
					s.CreatedAt = c
				}
			}
			s.enterStage(at, d.Stage)
		case DealUpdated:
			if d.Reason == FactStage {
				s.enterStage(at, d.Stage)
			}
		case CommitmentGained:
			k := d.StepIndex
			if k < 1 || k > steps {
				continue
			}
			s.GainTimes = append(s.GainTimes, at)
			s.GainSteps = append(s.GainSteps, uint8(k))
			if s.Gained[k-1].IsZero() {
				s.Gained[k-1] = at
			}
			for j := 0; j < k; j++ {
				if s.Reach[j].IsZero() || at.Before(s.Reach[j]) {
					s.Reach[j] = at
				}
			}
		case DealStalled:
			s.Stalls = append(s.Stalls, Mark{At: at, Step: uint8(d.StepIndex)})
		case DealSingleThreaded:
			s.SingleThreaded = append(s.SingleThreaded, at)
		case StageRegressed:
			s.RegressTimes = append(s.RegressTimes, at)
		case DealClosed:
			s.Closes = append(s.Closes, Close{At: at, Status: d.Status, Reason: d.Reason})
		case CommitmentMissed:
			s.Misses = append(s.Misses, interaction(d, at))
		case InteractionHeld:
			s.Held = append(s.Held, interaction(d, at))
		}
	}
	return s
}

// createdAt reads the creation time in deal.created's Detail.
func createdAt(detail string) (time.Time, bool) {
	if !strings.Contains(detail, "created_at") {
		return time.Time{}, false
	}
	var v struct {
		CreatedAt time.Time `json:"created_at"`
	}
	if json.Unmarshal([]byte(detail), &v) != nil || v.CreatedAt.IsZero() {
		return time.Time{}, false
	}
	return sec(v.CreatedAt), true
}

// enterStage records an entry into stage at, unless stage is empty.
func (s *State) enterStage(at time.Time, stage string) {
	if stage != "" {
		s.StageEntries = append(s.StageEntries, StageEntry{At: at, Stage: stage})
	}
}

func interaction(d *Derived, at time.Time) Interaction {
	return Interaction{At: at, Step: uint8(d.StepIndex), Reason: d.Reason, InteractionID: d.InteractionID, Owner: d.OwnerID, Amount: d.Amount, Currency: d.Currency}
}

// sec is t in UTC at ClickHouse DateTime precision.
func sec(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }

// dateOf is t's date at 00:00 UTC, ClickHouse Date precision; zero stays zero.
func dateOf(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(24 * time.Hour)
}

func sameSnapshot(a, b Snapshot) bool {
	return a.Amount == b.Amount && a.Currency == b.Currency && a.CloseDate.Equal(b.CloseDate) && a.Stage == b.Stage &&
		a.Probability == b.Probability && a.Status == b.Status && a.OwnerID == b.OwnerID &&
		a.Team == b.Team && a.Segment == b.Segment && a.LeadSource == b.LeadSource && a.Product == b.Product &&
		a.ForecastCategory == b.ForecastCategory &&
		slices.Equal(a.Attrs, b.Attrs)
}
