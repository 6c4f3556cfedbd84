package store

import (
	"context"
	"fmt"
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
		ht, hs, hr, hi, ho, _, _ := interactionColumns(r.Held)
		entryTimes, entries := make([]time.Time, len(r.StageEntries)), make([]string, len(r.StageEntries))
		for j, e := range r.StageEntries {
			entryTimes[j], entries[j] = orEpoch(e.At), e.Stage
		}
		if err := batch.Append(r.Tenant, r.OpportunityID, orEpoch(r.CreatedAt), orEpoch(r.CreatedSeen), orEpoch(r.FirstAt),
			epochs(r.Reach), epochs(r.Gained), epochs(r.GainTimes), orEmpty(r.GainSteps),
			epochs(r.FactTimes), amounts, currencies, closeDates, stages, probs, statuses, owners, teams, segments, sources, products,
			categories, attrKeys, attrValues, stallTimes, stallSteps, epochs(r.RegressTimes), closeTimes, closeStatuses, closeReasons,
			mt, ms, mr, mi, mo, ma, mc, ht, hs, hr, hi, ho, entryTimes, entries,
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
