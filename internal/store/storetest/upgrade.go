package storetest

import (
	"slices"
	"time"

	"github.com/commitflow/commitflow/internal/derive"
)

// OldStateValue gives, for an opportunity_state column a later migration
// added, what a row written before that migration reads, as its
// migration's header says, from the same row as written today (ref, by
// column) or from the other columns of the old row as read (old). The
// upgrade tests (single server and cluster) fail for an added column that
// has no entry here.
var OldStateValue = map[string]func(ref, old map[string]any) any{
	// 0103-0105: computed by ClickHouse from columns the old row has.
	"miss_prev":        func(r, _ map[string]any) any { return r["miss_prev"] },
	"miss_prev_step":   func(r, _ map[string]any) any { return r["miss_prev_step"] },
	"miss_prev_reason": func(r, _ map[string]any) any { return r["miss_prev_reason"] },
	"miss_prev_owner":  func(r, _ map[string]any) any { return r["miss_prev_owner"] },
	"opp_hash":         func(r, _ map[string]any) any { return r["opp_hash"] },
	"fact_closed": func(r, _ map[string]any) any {
		out := []uint8{}
		for _, s := range r["statuses"].([]string) {
			if s == "won" || s == "lost" {
				out = append(out, 1)
			} else {
				out = append(out, 0)
			}
		}
		return out
	},
	// 0107: the entries the fact snapshots show, a stage differing from the
	// previous snapshot's.
	"stage_entry_times": func(r, _ map[string]any) any { t, _ := entriesFromFacts(r); return t },
	"stage_entries":     func(r, _ map[string]any) any { _, s := entriesFromFacts(r); return s },
	// 0108: currency unknown.
	"currencies":      func(r, _ map[string]any) any { return make([]string, len(r["amounts"].([]float64))) },
	"miss_currencies": func(r, _ map[string]any) any { return make([]string, len(r["miss_amounts"].([]float64))) },
	// 0109: no attributes.
	"attr_keys":   func(r, _ map[string]any) any { return make([][]string, len(r["fact_times"].([]time.Time))) },
	"attr_values": func(r, _ map[string]any) any { return make([][]string, len(r["fact_times"].([]time.Time))) },
	// 0110: no single-threaded times, not filled (the readers then take
	// them from derived_events).
	"single_threaded_times":  func(_, _ map[string]any) any { return []time.Time{} },
	"single_threaded_filled": func(_, _ map[string]any) any { return uint8(0) },
	// 0112: no forecast category.
	"forecast_categories": func(r, _ map[string]any) any { return make([]string, len(r["amounts"].([]float64))) },
	// 0113: computed by ClickHouse from columns the old row has.
	"miss_deal_prev_step":   func(r, _ map[string]any) any { return r["miss_deal_prev_step"] },
	"miss_deal_prev_reason": func(r, _ map[string]any) any { return r["miss_deal_prev_reason"] },
	"miss_deal_prev_owner":  func(r, _ map[string]any) any { return r["miss_deal_prev_owner"] },
	// 0115: computed by ClickHouse from the arrays the old row reads.
	"latest_at":                func(r, _ map[string]any) any { return r["latest_at"] },
	"latest_amount":            func(r, _ map[string]any) any { return r["latest_amount"] },
	"latest_currency":          func(_, o map[string]any) any { return last(o["currencies"].([]string)) },
	"latest_close_date":        func(r, _ map[string]any) any { return r["latest_close_date"] },
	"latest_probability":       func(r, _ map[string]any) any { return r["latest_probability"] },
	"latest_owner":             func(r, _ map[string]any) any { return r["latest_owner"] },
	"latest_team":              func(r, _ map[string]any) any { return r["latest_team"] },
	"latest_segment":           func(r, _ map[string]any) any { return r["latest_segment"] },
	"latest_forecast_category": func(_, o map[string]any) any { return last(o["forecast_categories"].([]string)) },
	"latest_attr_keys":         func(_, o map[string]any) any { return lastOr(o["attr_keys"].([][]string), []string{}) },
	"latest_attr_values":       func(_, o map[string]any) any { return lastOr(o["attr_values"].([][]string), []string{}) },
	"latest_gain_at":           func(r, _ map[string]any) any { return r["latest_gain_at"] },
	// 0116: computed by ClickHouse from the arrays the old row reads.
	"owner_runs":        func(r, _ map[string]any) any { return r["owner_runs"] },
	"owner_run_times":   func(r, _ map[string]any) any { return r["owner_run_times"] },
	"team_runs":         func(r, _ map[string]any) any { return r["team_runs"] },
	"team_run_times":    func(r, _ map[string]any) any { return r["team_run_times"] },
	"segment_runs":      func(r, _ map[string]any) any { return r["segment_runs"] },
	"segment_run_times": func(r, _ map[string]any) any { return r["segment_run_times"] },
	"reached_steps":     func(r, _ map[string]any) any { return r["reached_steps"] },
	// 0114: the later of created_at and first_at.
	"created_seen": func(r, _ map[string]any) any {
		c, f := r["created_at"].(time.Time), r["first_at"].(time.Time)
		if c.After(f) {
			return c
		}
		return f
	},
}

// last is the last element of s, "" when it is empty (as s[-1] in
// ClickHouse).
func last(s []string) string { return lastOr(s, "") }

// lastOr is the last element of s, or none when s is empty.
func lastOr[T any](s []T, none T) T {
	if len(s) == 0 {
		return none
	}
	return s[len(s)-1]
}

// entriesFromFacts returns the stage entries migration 0107 gives a row
// written before it: each fact snapshot whose stage is set and differs
// from the previous snapshot's.
func entriesFromFacts(r map[string]any) (times []time.Time, stages []string) {
	prev := ""
	for i, s := range r["stages"].([]string) {
		if s != "" && s != prev {
			times = append(times, r["fact_times"].([]time.Time)[i])
			stages = append(stages, s)
		}
		prev = s
	}
	return times, stages
}

// OldDerived is ref, the derived events as written today, as a release
// that wrote only the derived_events columns old reads them after the
// upgrade: seq 0 (0106), currency "" (0108), no attributes (0109), no
// forecast category (0112); nothing when old is empty (no table).
func OldDerived(ref map[string][]derive.Derived, old []string) map[string][]derive.Derived {
	out := map[string][]derive.Derived{}
	if len(old) == 0 {
		return out
	}
	for opp, ds := range ref {
		for _, d := range ds {
			if !slices.Contains(old, "seq") {
				d.Seq = 0
			}
			if !slices.Contains(old, "currency") {
				d.Currency = ""
			}
			if !slices.Contains(old, "attr_keys") {
				d.Attrs = nil
			}
			if !slices.Contains(old, "forecast_category") {
				d.ForecastCategory = ""
			}
			out[opp] = append(out[opp], d)
		}
	}
	return out
}
