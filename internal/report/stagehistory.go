package report

import (
	"fmt"

	"github.com/commitflow/commitflow/internal/metrics"
)

// stageHistoryTables renders the CRM stage history: a line of totals, the
// stages and the transition matrix, each with a key column for the by
// groups (the whole tenant first, key "all" in a table, empty in csv).
func stageHistoryTables(r *metrics.StageHistoryResult, f formatter) (string, []table) {
	tt := r.Total
	line := fmt.Sprintf("  deals %d, entries %d (re-entries %d), moves %d: forward %d, backward %d, lateral %d, unordered %d",
		tt.Deals, tt.Entries, tt.ReEntries, tt.Moves, tt.Forward, tt.Backward, tt.Lateral, tt.Unordered)
	stages := table{name: "stages", header: []string{"key", "stage", "step", "entries", "initial", "backward", "deals", "re_entries",
		"current", "n_left", "median_days", "p75_days", "p90_days"}}
	moves := table{name: "transitions", header: []string{"key", "from", "to", "from_step", "to_step", "direction", "count"}}
	add := func(key string, h metrics.StageHistory) {
		for _, s := range h.Stages {
			stages.rows = append(stages.rows, []string{key, s.Stage, f.text(s.Step), f.int(s.Entries), f.int(s.Initial), f.int(s.Backward),
				f.int(s.Deals), f.int(s.ReEntries), f.int(s.Current), f.int(s.TimeInStage.N),
				f.days(s.TimeInStage.Median), f.days(s.TimeInStage.P75), f.days(s.TimeInStage.P90)})
		}
		for _, m := range h.Transitions {
			moves.rows = append(moves.rows, []string{key, m.From, m.To, f.text(stepOf(r.Definitions.Ladder, m.FromStepIndex)),
				f.text(stepOf(r.Definitions.Ladder, m.ToStepIndex)), m.Direction, f.int(m.Count)})
		}
	}
	all := ""
	if f.human {
		all = "all"
	}
	add(all, r.StageHistory)
	for _, g := range r.Groups {
		add(f.byKey(r.Definitions.By, g.Key, g.Other, r.Definitions.OtherKeys), g.StageHistory)
	}
	if f.human && len(r.Groups) == 0 { // drop the key column
		for _, t := range []*table{&stages, &moves} {
			t.header = t.header[1:]
			for i, row := range t.rows {
				t.rows[i] = row[1:]
			}
		}
	}
	return line, []table{stages, moves}
}

// stepOf is the key of a 1-based ladder step, "" for 0.
func stepOf(ladder []string, i int) string {
	if i >= 1 && i <= len(ladder) {
		return ladder[i-1]
	}
	return ""
}
