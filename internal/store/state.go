package store

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/commitflow/commitflow/internal/derive"
)

// StateRow is an opportunity's state as stored: the row with the highest
// Version for (tenant, opportunity_id) wins.
type StateRow struct {
	derive.State
	Version uint64
}

const stateColumns = `tenant, opportunity_id, created_at, created_seen, first_at, reach, gained, gain_times, gain_steps,
fact_times, amounts, currencies, close_dates, stages, probabilities, statuses, owners, teams, segments, lead_sources, products,
forecast_categories, attr_keys, attr_values,
stall_times, stall_steps, regress_times, close_times, close_statuses, close_reasons,
miss_times, miss_steps, miss_reasons, miss_interactions, miss_owners, miss_amounts, miss_currencies,
miss_prev, miss_prev_step, miss_prev_reason, miss_prev_owner, miss_deal_prev_step, miss_deal_prev_reason, miss_deal_prev_owner,
held_times, held_steps, held_outcomes, held_interactions, held_owners, stage_entry_times, stage_entries,
single_threaded_times, single_threaded_filled, ladder_version, version`

// InsertStates inserts opportunity states as one batch.
func (s *Store) InsertStates(ctx context.Context, rows []StateRow) error {
	if len(rows) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO opportunity_state ("+stateColumns+")")
	if err != nil {
		return fmt.Errorf("insert opportunity states: %w", err)
	}
	for i := range rows {
		r := &rows[i]
		n := len(r.Facts)
		amounts, probs, currencies := make([]float64, n), make([]float64, n), make([]string, n)
		closeDates := make([]time.Time, n)
		attrKeys, attrValues, categories := make([][]string, n), make([][]string, n), make([]string, n)
		stages, statuses, owners, teams, segments, sources, products := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		for j, f := range r.Facts {
			amounts[j], probs[j], closeDates[j], currencies[j] = f.Amount, f.Probability, dateOrEpoch(f.CloseDate), f.Currency
			stages[j], statuses[j], owners[j], teams[j] = f.Stage, f.Status, f.OwnerID, f.Team
			segments[j], sources[j], products[j] = f.Segment, f.LeadSource, f.Product
			attrKeys[j], attrValues[j] = attrColumns(f.Attrs)
			categories[j] = f.ForecastCategory
		}
		stallTimes, stallSteps := make([]time.Time, len(r.Stalls)), make([]uint8, len(r.Stalls))
		for j, m := range r.Stalls {
			stallTimes[j], stallSteps[j] = orEpoch(m.At), m.Step
		}
		closeTimes, closeStatuses, closeReasons := make([]time.Time, len(r.Closes)), make([]string, len(r.Closes)), make([]string, len(r.Closes))
		for j, c := range r.Closes {
			closeTimes[j], closeStatuses[j], closeReasons[j] = orEpoch(c.At), c.Status, c.Reason
		}
		mt, ms, mr, mi, mo, ma, mc := interactionColumns(r.Misses)
		lb := missLookbacks(r.Misses)
		ht, hs, hr, hi, ho, _, _ := interactionColumns(r.Held)
		entryTimes, entries := make([]time.Time, len(r.StageEntries)), make([]string, len(r.StageEntries))
		for j, e := range r.StageEntries {
			entryTimes[j], entries[j] = orEpoch(e.At), e.Stage
		}
		if err := batch.Append(r.Tenant, r.OpportunityID, orEpoch(r.CreatedAt), orEpoch(r.CreatedSeen), orEpoch(r.FirstAt),
			epochs(r.Reach), epochs(r.Gained), epochs(r.GainTimes), orEmpty(r.GainSteps),
			epochs(r.FactTimes), amounts, currencies, closeDates, stages, probs, statuses, owners, teams, segments, sources, products,
			categories, attrKeys, attrValues, stallTimes, stallSteps, epochs(r.RegressTimes), closeTimes, closeStatuses, closeReasons,
			mt, ms, mr, mi, mo, ma, mc, lb.prev, lb.prevStep, lb.prevReason, lb.prevOwner, lb.dealStep, lb.dealReason, lb.dealOwner,
			ht, hs, hr, hi, ho, entryTimes, entries,
			epochs(r.SingleThreaded), uint8(1), r.LadderVersion, r.Version); err != nil {
			batch.Abort()
			return fmt.Errorf("insert opportunity states: %s: %w", r.OpportunityID, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert opportunity states: %w", err)
	}
	return nil
}

func interactionColumns(xs []derive.Interaction) (times []time.Time, steps []uint8, reasons, ids, owners []string, amounts []float64, currencies []string) {
	n := len(xs)
	times, steps, reasons, ids, owners, amounts, currencies = make([]time.Time, n), make([]uint8, n), make([]string, n), make([]string, n), make([]string, n), make([]float64, n), make([]string, n)
	for i, x := range xs {
		times[i], steps[i], reasons[i], ids[i], owners[i], amounts[i], currencies[i] = orEpoch(x.At), x.Step, x.Reason, x.InteractionID, x.Owner, x.Amount, x.Currency
	}
	return
}

// lookbacks are the columns of migrations 0103 and 0113: for each miss,
// the time in seconds of the deal's previous miss about the same
// interaction (prev), the same interaction and expected step, reason or
// owner (prevStep, prevReason, prevOwner), and of its previous miss at
// the same step, with the same reason or owner (dealStep, dealReason,
// dealOwner); 0 when there is none. A miss without an interaction id, or
// with reason close_date_pushed or no_decision, is about no interaction:
// its prev* are 4294967295 and it is no other miss's previous one.
type lookbacks struct {
	prev, prevStep, prevReason, prevOwner []uint32
	dealStep, dealReason, dealOwner       []uint32
}

// noInteraction is the prev* of a miss about no interaction.
const noInteraction = math.MaxUint32

// missLookbacks computes the lookbacks of the misses xs (in fold order)
// as the DEFAULT expressions of 0103 and 0113 do, so that ClickHouse does
// not evaluate those on insert: their lambdas take time quadratic in a
// deal's misses and were most of the cost of inserting a state. The
// expressions stay for rows written before. A time is the seconds of the
// DateTime the miss's time is stored as.
func missLookbacks(xs []derive.Interaction) lookbacks {
	n := len(xs)
	lb := lookbacks{
		prev: make([]uint32, n), prevStep: make([]uint32, n), prevReason: make([]uint32, n), prevOwner: make([]uint32, n),
		dealStep: make([]uint32, n), dealReason: make([]uint32, n), dealOwner: make([]uint32, n),
	}
	if n == 0 {
		return lb // most states: no maps to make
	}
	// The latest time of the misses before the current one, per key.
	type iidStep struct {
		iid  string
		step uint8
	}
	var (
		steps                 = map[uint8]uint32{}
		reasons, owners       = map[string]uint32{}, map[string]uint32{}
		iids                  = map[string]uint32{}
		iidSteps              = map[iidStep]uint32{}
		iidReasons, iidOwners = map[[2]string]uint32{}, map[[2]string]uint32{}
	)
	for i, x := range xs {
		t := uint32(orEpoch(x.At).Unix())
		lb.dealStep[i], lb.dealReason[i], lb.dealOwner[i] = steps[x.Step], reasons[x.Reason], owners[x.Owner]
		steps[x.Step], reasons[x.Reason], owners[x.Owner] = max(steps[x.Step], t), max(reasons[x.Reason], t), max(owners[x.Owner], t)
		if x.InteractionID == "" || x.Reason == derive.MissCloseDatePushed || x.Reason == derive.MissNoDecision {
			lb.prev[i], lb.prevStep[i], lb.prevReason[i], lb.prevOwner[i] = noInteraction, noInteraction, noInteraction, noInteraction
			continue
		}
		id, step, reason, owner := x.InteractionID, iidStep{x.InteractionID, x.Step}, [2]string{x.InteractionID, x.Reason}, [2]string{x.InteractionID, x.Owner}
		lb.prev[i], lb.prevStep[i], lb.prevReason[i], lb.prevOwner[i] = iids[id], iidSteps[step], iidReasons[reason], iidOwners[owner]
		iids[id], iidSteps[step] = max(iids[id], t), max(iidSteps[step], t)
		iidReasons[reason], iidOwners[owner] = max(iidReasons[reason], t), max(iidOwners[owner], t)
	}
	return lb
}

func epochs(ts []time.Time) []time.Time {
	out := make([]time.Time, len(ts))
	for i, t := range ts {
		out[i] = orEpoch(t)
	}
	return out
}

func orEmpty(b []uint8) []uint8 {
	if b == nil {
		return []uint8{}
	}
	return b
}

func dateOrEpoch(t time.Time) time.Time {
	t = orEpoch(t)
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// InsertDerivedWithStates inserts derived rows, then recomputes and stores
// the state of every opportunity they touch from its current derived set as
// stored (for a ladder of steps steps). Derivation writes states itself;
// this is for loading derived rows made elsewhere (tests, benchmarks).
func (s *Store) InsertDerivedWithStates(ctx context.Context, rows []DerivedRow, steps int) error {
	if err := s.InsertDerived(ctx, rows); err != nil {
		return err
	}
	touched := map[string][]string{}
	seen := map[[2]string]bool{}
	for _, r := range rows {
		k := [2]string{r.Tenant, r.OpportunityID}
		if !seen[k] {
			seen[k] = true
			touched[r.Tenant] = append(touched[r.Tenant], r.OpportunityID)
		}
	}
	version := uint64(time.Now().UnixNano())
	for tenant, ids := range touched {
		cur, err := s.LoadDerived(ctx, tenant, ids)
		if err != nil {
			return err
		}
		states := make([]StateRow, 0, len(ids))
		for _, id := range ids {
			st := derive.Summarize(cur[id], steps)
			if len(cur[id]) == 0 {
				// Everything retracted: an empty state replaces the old one.
				st.Tenant, st.OpportunityID = tenant, id
				st.Reach, st.Gained = make([]time.Time, steps), make([]time.Time, steps)
			}
			states = append(states, StateRow{State: st, Version: version})
			if len(states) == 5000 {
				if err := s.InsertStates(ctx, states); err != nil {
					return err
				}
				states = states[:0]
			}
		}
		if err := s.InsertStates(ctx, states); err != nil {
			return err
		}
	}
	return nil
}
