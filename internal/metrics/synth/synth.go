// Package synth generates synthetic but realistic derived events for the
// metrics tests and benchmarks: opportunities climbing the ladder with
// skips, regressions, fact changes, interactions and misses, stalls and
// closes, plus later versions of some rows that retract them or move them
// in time, as the deriver produces when late inputs arrive.
package synth

import (
	"context"
	"fmt"
	"math/rand"
	"time"

	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/store"
)

// Generator makes the derived rows of one tenant's opportunities.
type Generator struct {
	Tenant string
	Seed   int64
	// Ladder is the step keys; step i is Ladder[i-1].
	Ladder        []string
	LadderVersion string
	// Start and Span bound the creation times of opportunities; their
	// later events run up to about 300 days past creation.
	Start time.Time
	Span  time.Duration
	// Currencies, when set, are the currency codes of the amounts ("" =
	// none given): each opportunity's amount is in one picked at random,
	// and some amount changes move it to another. Without them every
	// amount has no currency, and the rows are those of before.
	Currencies []string
}

// DefaultLadder is the ten-step default ladder.
func DefaultLadder() []string {
	return []string{"time", "explore", "change", "collaborate", "build_consensus",
		"invest", "review", "resolve_concerns", "decide", "execute"}
}

// Opportunity returns the rows of opportunity i, versions included, in no
// particular order. The same generator and i always give the same rows.
func (g *Generator) Opportunity(i int) []store.DerivedRow {
	rng := rand.New(rand.NewSource(g.Seed*1_000_003 + int64(i)))
	o := &opp{g: g, rng: rng, id: fmt.Sprintf("opp-%06d", i)}
	o.run()
	return o.versions()
}

// Rows returns the rows of opportunities 0..n-1.
func (g *Generator) Rows(n int) []store.DerivedRow {
	var out []store.DerivedRow
	for i := 0; i < n; i++ {
		out = append(out, g.Opportunity(i)...)
	}
	return out
}

type opp struct {
	g    *Generator
	rng  *rand.Rand
	id   string
	seq  int
	now  time.Time
	snap derive.Snapshot
	step int
	rows []derive.Derived
}

func (o *opp) pick(s []string) string { return s[o.rng.Intn(len(s))] }

// advance moves the clock by a random gap; sometimes to the same instant,
// sometimes rounded to the hour so that events tie.
func (o *opp) advance() {
	switch r := o.rng.Float64(); {
	case r < 0.08:
		// same instant as the previous event
	case r < 0.5:
		o.now = o.now.Add(time.Duration(o.rng.Intn(72*3600)) * time.Second)
	default:
		o.now = o.now.Add(time.Duration(o.rng.ExpFloat64()*12*24*3600) * time.Second)
	}
	if o.rng.Float64() < 0.2 {
		o.now = o.now.Truncate(time.Hour)
	}
}

func (o *opp) emit(kind derive.Kind, step int, reason, interaction string) {
	o.seq++
	d := derive.Derived{
		Tenant:        o.g.Tenant,
		OpportunityID: o.id,
		ID:            fmt.Sprintf("%s-%s-%03d", o.id, kind, o.seq),
		Type:          kind,
		OccurredAt:    o.now,
		StepIndex:     step,
		Reason:        reason,
		InteractionID: interaction,
		Snapshot:      o.snap,
		LadderVersion: o.g.LadderVersion,
	}
	if step >= 1 && step <= len(o.g.Ladder) {
		d.Step = o.g.Ladder[step-1]
	}
	o.rows = append(o.rows, d)
}

func (o *opp) closeDate() time.Time {
	if o.rng.Float64() < 0.05 {
		return time.Time{} // unknown
	}
	d := o.now.AddDate(0, 0, 14+o.rng.Intn(150))
	return time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC)
}

func (o *opp) run() {
	owners := []string{"u01", "u02", "u03", "u04", "u05", "u06", "u07", "u08", "u09", "u10", "u11", "u12"}
	teams := []string{"east", "west", "north", "enterprise"}
	segments := []string{"smb", "mid", "ent"}
	sources := []string{"inbound", "outbound", "partner", "event", ""}
	products := []string{"core", "plus", "suite"}
	n := len(o.g.Ladder)
	span := int64(o.g.Span / time.Second)
	o.now = o.g.Start.Add(time.Duration(o.rng.Int63n(span)) * time.Second).UTC()
	o.snap = derive.Snapshot{
		Amount:      float64(1000 * (1 + o.rng.Intn(200))),
		CloseDate:   o.closeDate(),
		Stage:       "Prospecting",
		Probability: 0.1,
		Status:      "open",
		OwnerID:     o.pick(owners),
		Team:        o.pick(teams),
		Segment:     o.pick(segments),
		LeadSource:  o.pick(sources),
		Product:     o.pick(products),
	}
	if len(o.g.Currencies) > 0 {
		o.snap.Currency = o.pick(o.g.Currencies)
	}
	if o.rng.Float64() < 0.95 {
		o.emit(derive.DealCreated, 0, "", "")
	}
	calls := 0
	events := 3 + o.rng.Intn(25)
	for e := 0; e < events; e++ {
		o.advance()
		switch r := o.rng.Float64(); {
		case r < 0.30 && o.step < n:
			next := o.step + 1
			if o.rng.Float64() < 0.2 {
				next += 1 + o.rng.Intn(2)
			}
			if next > n {
				next = n
			}
			o.step = next
			o.snap.Probability = float64(next) / float64(n+1)
			o.snap.Stage = fmt.Sprintf("Stage %d", next)
			o.emit(derive.CommitmentGained, next, "", "")
			if o.rng.Float64() < 0.08 && next > 1 {
				// the same commitment shown again, or a lower one late
				o.emit(derive.CommitmentGained, 1+o.rng.Intn(next), "", "")
			}
		case r < 0.45:
			switch o.rng.Intn(4) {
			case 0:
				o.snap.Amount = float64(1000 * (1 + o.rng.Intn(200)))
				if len(o.g.Currencies) > 0 && o.rng.Float64() < 0.2 {
					o.snap.Currency = o.pick(o.g.Currencies)
				}
				o.emit(derive.DealUpdated, 0, "amount", "")
			case 1:
				o.snap.CloseDate = o.closeDate()
				o.emit(derive.DealUpdated, 0, "close_date", "")
				if o.rng.Float64() < 0.5 {
					o.emit(derive.CommitmentMissed, o.step+1, derive.MissCloseDatePushed, "")
				}
			case 2:
				o.snap.OwnerID = o.pick(owners)
				o.snap.Team = o.pick(teams)
				o.emit(derive.DealUpdated, 0, "owner", "")
			case 3:
				o.snap.Segment = o.pick(segments)
				o.snap.Product = o.pick(products)
				o.emit(derive.DealUpdated, 0, "stage", "")
			}
		case r < 0.75:
			calls++
			call := fmt.Sprintf("%s-call-%d", o.id, calls)
			if o.rng.Float64() < 0.4 {
				o.emit(derive.InteractionHeld, o.step+1, derive.InteractionAdvanced, call)
				break
			}
			o.emit(derive.InteractionHeld, o.step+1, derive.InteractionContinuation, call)
			reasons := []string{derive.MissNoNextStep, derive.MissSellerOnlyActions, derive.MissNoBuyerPresent}
			o.emit(derive.CommitmentMissed, o.step+1, o.pick(reasons), call)
			if o.rng.Float64() < 0.2 {
				o.emit(derive.CommitmentMissed, o.step+1, derive.MissBuyerActionOverdue, call)
			}
			if o.rng.Float64() < 0.05 {
				o.emit(derive.CommitmentMissed, o.step+1, derive.MissNoDecision, call)
			}
		case r < 0.85:
			o.emit(derive.DealStalled, o.step, "", "")
		case r < 0.90 && o.step > 1:
			o.emit(derive.StageRegressed, 1+o.rng.Intn(o.step-1), "", "")
		case r < 0.93:
			o.emit(derive.DealSingleThreaded, o.step, "", "")
		default:
			won := o.rng.Float64() < float64(o.step)/float64(n)
			if won {
				o.snap.Status, o.snap.Probability = "won", 1
			} else {
				o.snap.Status, o.snap.Probability = "lost", 0
			}
			o.emit(derive.DealClosed, o.step, "", "")
			if won && o.step < n && o.rng.Float64() < 0.5 {
				o.advance()
				o.step = n
				o.emit(derive.CommitmentGained, n, "", "")
			}
			return
		}
	}
}

// versions turns the events into stored rows: most at version 1; some
// retracted by a version 2, some moved in time (a late input changed
// them), a few moved and then retracted.
func (o *opp) versions() []store.DerivedRow {
	var out []store.DerivedRow
	for _, d := range o.rows {
		out = append(out, store.DerivedRow{Derived: d, Version: 1})
		switch r := o.rng.Float64(); {
		case r < 0.06:
			out = append(out, store.DerivedRow{Derived: d, Version: 2, Retracted: true})
		case r < 0.11:
			m := d
			m.OccurredAt = d.OccurredAt.Add(time.Duration(o.rng.Intn(20*24*3600)-10*24*3600) * time.Second)
			m.Amount = float64(1000 * (1 + o.rng.Intn(200)))
			out = append(out, store.DerivedRow{Derived: m, Version: 2})
			if o.rng.Float64() < 0.2 {
				out = append(out, store.DerivedRow{Derived: m, Version: 3, Retracted: true})
			}
		case r < 0.12:
			// retracted, then restored with a later version
			out = append(out, store.DerivedRow{Derived: d, Version: 2, Retracted: true},
				store.DerivedRow{Derived: d, Version: 3})
		}
	}
	return out
}

// Load generates opportunities 0..n-1 and inserts their rows into s in
// batches, with the opportunity_state rows the metrics read (for a ladder
// of len(g.Ladder) steps), returning how many derived rows it inserted.
func (g *Generator) Load(ctx context.Context, s *store.Store, n int) (int, error) {
	const batch = 50_000
	var rows []store.DerivedRow
	total := 0
	for i := 0; i < n; i++ {
		rows = append(rows, g.Opportunity(i)...)
		if len(rows) >= batch || i == n-1 {
			if err := s.InsertDerivedWithStates(ctx, rows, len(g.Ladder)); err != nil {
				return total, fmt.Errorf("load synthetic derived events: %w", err)
			}
			total += len(rows)
			rows = rows[:0]
		}
	}
	return total, nil
}
