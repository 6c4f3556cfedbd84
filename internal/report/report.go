// Package report renders the answers of the metrics and forecast queries
// as text: aligned tables for people, with a line stating the definitions
// the answer used, CSV (one table) or JSON for machines. It is pure: an
// answer in, text out.
package report

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/commitflow/commitflow/internal/deals"
	"github.com/commitflow/commitflow/internal/forecast"
	"github.com/commitflow/commitflow/internal/metrics"
)

// table is one table of a report.
type table struct {
	name   string
	header []string
	rows   [][]string
}

// Write prints res, the answer of the metric name (a *metrics.FunnelResult,
// ..., a *forecast.Result) or of the API's deals or warnings list (a
// *deals.ListResult or *deals.WarningsResult), in format: "json" as the API
// answers it, "csv" the table only names, or the first (numbers with a dot
// decimal, times in RFC 3339, dates YYYY-MM-DD, a text a spreadsheet would
// take for a formula quoted, see csvCell), and "table" a line of the
// definitions the answer used followed by every table, or only the one
// only names, aligned for people. A table only names that the answer does
// not hold is an error wrapping ErrNoTable.
func Write(w io.Writer, name string, res any, format, only string) error {
	return WriteNamed(w, name, res, format, only, nil)
}

// WriteNamed is Write with the names of the people the answer names by
// owner id (see api.OwnerIDs): a table shows an owner as "Name (id)",
// csv and json keep the ids.
func WriteNamed(w io.Writer, name string, res any, format, only string, names map[string]string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	human := format == "table"
	defs, tables := render(res, formatter{human: human, names: names})
	if only != "" {
		i := slices.IndexFunc(tables, func(t table) bool { return t.name == only })
		if i < 0 {
			return fmt.Errorf("report %s: table %s: %w", name, only, ErrNoTable)
		}
		tables = tables[i : i+1]
	}
	if format == "csv" {
		if len(tables) == 0 {
			return fmt.Errorf("report %s: nothing to print", name)
		}
		cw := csv.NewWriter(w)
		cw.Write(tables[0].header)
		for _, row := range tables[0].rows {
			cells := make([]string, len(row))
			for i, c := range row {
				cells[i] = csvCell(c)
			}
			cw.Write(cells)
		}
		cw.Flush()
		return cw.Error()
	}
	fmt.Fprintln(w, defs)
	for _, t := range tables {
		fmt.Fprintf(w, "\n%s\n", strings.ReplaceAll(t.name, "_", " "))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(t.header, "\t")+"\t")
		for _, r := range t.rows {
			fmt.Fprintln(tw, strings.Join(r, "\t")+"\t")
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// ErrNoTable is the error of Write asked for a table the answer does not
// hold: the back-test tables of a forecast without a back-test.
var ErrNoTable = errors.New("not in this answer")

// csvCell is a cell of a CSV as spreadsheets may read it: a text that
// starts with =, +, -, @, a tab or a carriage return is prefixed with a
// single quote, so that a spreadsheet shows it rather than evaluating it
// as a formula (OWASP's advice against CSV injection: a deal or stage name
// comes from the CRM). Numbers, negative ones included, are left as they
// are.
func csvCell(s string) string {
	if s == "" || !strings.ContainsRune("=+-@\t\r", rune(s[0])) || isNumber(s) {
		return s
	}
	return "'" + s
}

// isNumber reports whether s is a decimal number as the formatter writes
// one: an optional minus, digits, and optionally a dot and digits.
func isNumber(s string) bool {
	s = strings.TrimPrefix(s, "-")
	whole, frac, dot := strings.Cut(s, ".")
	digits := func(s string) bool {
		return s != "" && strings.Trim(s, "0123456789") == ""
	}
	return digits(whole) && (!dot || digits(frac))
}

// TableNames lists the tables of a report (a metric, or the deals or
// warnings list of the API), the CSV default first.
func TableNames(name string) []string {
	switch name {
	case "deals":
		return []string{"deals"}
	case "warnings":
		return []string{"deals", "by_kind", "by_owner", "by_team"}
	case "funnel":
		return []string{"steps"}
	case "stalls":
		return []string{"steps", "deals"}
	case "missed":
		return []string{"by_step", "by_reason", "by_owner"}
	case "movement":
		return []string{"by_step"}
	case "forecast":
		return forecastTableNames()
	case "cycle-time":
		return []string{"outcomes"}
	case "stage-history":
		return []string{"stages", "transitions"}
	}
	return nil
}

// Tables lists the tables res, an answer of the report name, holds: those
// of TableNames but the back-test tables of a forecast without a
// back-test.
func Tables(name string, res any) []string {
	names := TableNames(name)
	if fc, ok := res.(*forecast.Result); ok && fc.Backtest == nil {
		names = slices.DeleteFunc(names, func(t string) bool { return t == "backtest" || t == "calibration" })
	}
	return names
}

// render turns a result into a definitions line and its tables.
func render(res any, f formatter) (string, []table) {
	switch r := res.(type) {
	case *metrics.FunnelResult:
		return defsLine(r.Definitions), []table{funnelTable(r, f)}
	case *metrics.StallsResult:
		return defsLine(r.Definitions) + fmt.Sprintf("  open %d (%s), stalled %d (%s), page %d", r.Open, f.money(r.OpenAmount), r.Stalled, f.money(r.StalledAmount), r.Page),
			stallsTables(r, f)
	case *metrics.MissedResult:
		return defsLine(r.Definitions), missedTables(r, f)
	case *metrics.MovementResult:
		return defsLine(r.Definitions), []table{movementTable(r, f)}
	case *metrics.StageHistoryResult:
		line, tables := stageHistoryTables(r, f)
		return defsLine(r.Definitions) + line, tables
	case *deals.ListResult:
		return dealListTables(r, f)
	case *deals.WarningsResult:
		return warningsTables(r, f)
	case *metrics.CycleResult:
		start := "from creation"
		if r.FromStep != "" {
			start = "from step " + r.FromStep
		}
		return defsLine(r.Definitions) + ", " + start, []table{cycleTable(r, f)}
	}
	return forecastTables(res, f)
}

// defsLine states the definitions an answer used.
func defsLine(d metrics.Definitions) string {
	parts := []string{"tenant " + d.Tenant, "as of " + d.AsOf.Format(time.RFC3339)}
	if d.From != nil && d.To != nil {
		parts = append(parts, fmt.Sprintf("[%s, %s)", d.From.Format(time.DateOnly), d.To.Format(time.DateOnly)))
	}
	if d.WindowDays != nil {
		parts = append(parts, fmt.Sprintf("window %d days", *d.WindowDays))
	}
	if d.By != "" {
		parts = append(parts, "by "+d.By)
	}
	if d.Interval != "" {
		parts = append(parts, "by "+d.Interval)
	}
	parts = append(parts, "ladder "+d.LadderVersion)
	switch {
	case d.Converted != nil:
		parts = append(parts, fmt.Sprintf("amounts in %s at the rates of %s", d.Converted.To, d.Converted.RatesOn))
	case d.Currency != nil && *d.Currency != "":
		parts = append(parts, "amounts in "+*d.Currency)
	}
	return strings.Join(parts, ", ")
}

// formatter renders numbers for people (table) or for machines (csv),
// and owners by name (names: by id) for people.
type formatter struct {
	human bool
	names map[string]string
}

// owner is an owner id, as "Name (id)" for people when its name is known.
func (f formatter) owner(id string) string {
	if n := f.names[id]; f.human && n != "" {
		return n + " (" + id + ")"
	}
	return f.text(id)
}

// byKey is key for a group of the breakdown by: an owner by name.
func (f formatter) byKey(by, key string, other bool, merged int) string {
	if by == "owner" && !other {
		return f.owner(key)
	}
	return f.key(key, other, merged)
}

func (f formatter) int(n int64) string { return strconv.FormatInt(n, 10) }

func (f formatter) amount(x float64) string {
	if f.human {
		return strconv.FormatFloat(x, 'f', 0, 64)
	}
	return strconv.FormatFloat(x, 'f', 2, 64)
}

// money renders an amount that may be null (amounts in several
// currencies, not converted) as rate renders a missing ratio.
func (f formatter) money(x *float64) string {
	if x == nil {
		return f.rate(nil)
	}
	return f.amount(*x)
}

// rate renders a ratio: a percentage for people, a fraction for machines;
// "" (csv) or "-" (table) when there is none.
func (f formatter) rate(r *float64) string {
	switch {
	case r == nil && f.human:
		return "-"
	case r == nil:
		return ""
	case f.human:
		return strconv.FormatFloat(100**r, 'f', 1, 64) + "%"
	}
	return strconv.FormatFloat(*r, 'f', 4, 64)
}

func (f formatter) days(d *float64) string {
	switch {
	case d == nil && f.human:
		return "-"
	case d == nil:
		return ""
	}
	return strconv.FormatFloat(*d, 'f', 1, 64)
}

func (f formatter) text(s string) string {
	if s == "" && f.human {
		return "-"
	}
	return s
}

// key is a group's By value, or for the group of the values a top-N
// breakdown merged "(other)" — with how many values it merged when
// written for people.
func (f formatter) key(key string, other bool, merged int) string {
	switch {
	case other && f.human:
		return fmt.Sprintf("(%d others)", merged)
	case other:
		return "(other)"
	}
	return f.text(key)
}

func funnelTable(r *metrics.FunnelResult, f formatter) table {
	t := table{name: "steps", header: []string{"from_step", "to_step", "period", "key",
		"reached", "converted", "still_open", "dropped", "skipped",
		"conversion_decided", "conversion_reached", "amount_conversion_decided",
		"reached_amount", "converted_amount", "still_open_amount", "dropped_amount",
		"median_days", "p75_days", "p90_days"}}
	row := func(s metrics.FunnelStep, period, key string, c metrics.FunnelCounts) []string {
		return []string{s.FromStep, s.ToStep, period, key,
			f.int(c.Reached), f.int(c.Converted), f.int(c.StillOpen), f.int(c.Dropped), f.int(c.Skipped),
			f.rate(c.ConversionRateDecided), f.rate(c.ConversionRateReached), f.rate(c.AmountConversionRateDecided),
			f.money(c.ReachedAmount), f.money(c.ConvertedAmount), f.money(c.StillOpenAmount), f.money(c.DroppedAmount),
			f.days(c.TimeToConvert.Median), f.days(c.TimeToConvert.P75), f.days(c.TimeToConvert.P90)}
	}
	all := "all"
	if !f.human {
		all = ""
	}
	grouped := false
	for _, s := range r.Steps {
		t.rows = append(t.rows, row(s, all, all, s.FunnelCounts))
		for _, g := range s.Groups {
			t.rows = append(t.rows, row(s, f.text(g.Period), f.byKey(r.Definitions.By, g.Key, g.Other, r.Definitions.OtherKeys), g.FunnelCounts))
			grouped = true
		}
	}
	if f.human && !grouped { // drop the empty period and key columns
		t.header = append(t.header[:2:2], t.header[4:]...)
		for i, r := range t.rows {
			t.rows[i] = append(r[:2:2], r[4:]...)
		}
	}
	return t
}

func cycleTable(r *metrics.CycleResult, f formatter) table {
	t := table{name: "outcomes", header: []string{"period", "key", "outcome", "n", "not_reached", "median_days", "p75_days", "p90_days"}}
	add := func(period, key string, o metrics.CycleOutcomes) {
		for _, c := range []struct {
			name string
			t    metrics.CycleTime
		}{{"won", o.Won}, {"lost", o.Lost}, {"closed", o.Closed}} {
			t.rows = append(t.rows, []string{period, key, c.name, f.int(c.t.N), f.int(c.t.NotReached),
				f.days(c.t.Median), f.days(c.t.P75), f.days(c.t.P90)})
		}
	}
	all := "all"
	if !f.human {
		all = ""
	}
	add(all, all, r.CycleOutcomes)
	for _, g := range r.Groups {
		add(f.text(g.Period), f.byKey(r.Definitions.By, g.Key, g.Other, r.Definitions.OtherKeys), g.CycleOutcomes)
	}
	if f.human && len(r.Groups) == 0 { // drop the empty period and key columns
		t.header = t.header[2:]
		for i, row := range t.rows {
			t.rows[i] = row[2:]
		}
	}
	return t
}

func stallsTables(r *metrics.StallsResult, f formatter) []table {
	steps := table{name: "steps", header: []string{"step_index", "step", "open", "open_amount", "stalled", "stalled_amount"}}
	for _, s := range r.Steps {
		steps.rows = append(steps.rows, []string{strconv.Itoa(s.StepIndex), f.text(s.Step),
			f.int(s.Open), f.money(s.OpenAmount), f.int(s.Stalled), f.money(s.StalledAmount)})
	}
	deals := table{name: "deals", header: []string{"opportunity_id", "owner_id", "team", "amount", "currency", "step_index", "step", "days_since_commitment", "stalled_since"}}
	for _, d := range r.Deals {
		deals.rows = append(deals.rows, []string{d.OpportunityID, f.owner(d.OwnerID), f.text(d.Team), f.amount(d.Amount), f.text(d.Currency),
			strconv.Itoa(d.StepIndex), f.text(d.Step), f.int(d.DaysSinceCommitment), d.StalledSince.Format(time.RFC3339)})
	}
	return []table{steps, deals}
}

func missedTables(r *metrics.MissedResult, f formatter) []table {
	tab := func(name, keyName string, rows []metrics.MissedRow, total bool) table {
		t := table{name: name, header: []string{keyName, "missed", "deals", "value_at_stake", "missed_interactions", "interactions", "miss_rate"}}
		if name == "by_step" {
			t.header = append([]string{"step_index"}, t.header...)
		}
		add := func(m metrics.MissedRow, key string) {
			row := []string{key, f.int(m.Missed), f.int(m.Deals), f.money(m.ValueAtStake), f.int(m.MissedInteractions), f.int(m.Interactions), f.rate(m.MissRate)}
			if name == "by_step" {
				row = append([]string{strconv.Itoa(m.StepIndex)}, row...)
			}
			t.rows = append(t.rows, row)
		}
		for _, m := range rows {
			if name == "by_owner" {
				add(m, f.owner(m.Key))
			} else {
				add(m, f.text(m.Key))
			}
		}
		if total {
			add(r.Total, "total")
		}
		return t
	}
	return []table{
		tab("by_step", "step", r.ByStep, true),
		tab("by_reason", "reason", r.ByReason, false),
		tab("by_owner", "owner", r.ByOwner, false),
	}
}

func movementTable(r *metrics.MovementResult, f formatter) table {
	t := table{name: "by_step", header: []string{"step_index", "step",
		"new", "new_amount", "advanced", "advanced_amount", "regressed", "regressed_amount",
		"stalled", "stalled_amount", "pulled_in", "pulled_in_amount", "pushed_out", "pushed_out_amount",
		"won", "won_amount", "lost", "lost_amount"}}
	row := func(idx, step string, c metrics.MovementCounts) []string {
		return []string{idx, step,
			f.int(c.New), f.money(c.NewAmount), f.int(c.Advanced), f.money(c.AdvancedAmount),
			f.int(c.Regressed), f.money(c.RegressedAmount), f.int(c.Stalled), f.money(c.StalledAmount),
			f.int(c.PulledIn), f.money(c.PulledInAmount), f.int(c.PushedOut), f.money(c.PushedOutAmount),
			f.int(c.Won), f.money(c.WonAmount), f.int(c.Lost), f.money(c.LostAmount)}
	}
	for _, s := range r.ByStep {
		t.rows = append(t.rows, row(strconv.Itoa(s.StepIndex), f.text(s.Step), s.MovementCounts))
	}
	t.rows = append(t.rows, row("", "total", r.Total))
	return t
}

func forecastTableNames() []string {
	return []string{"pipeline", "model", "backtest", "calibration"}
}

// forecastTables turns a forecast result into its definitions line and
// tables; anything else yields nothing.
func forecastTables(res any, f formatter) (string, []table) {
	r, ok := res.(*forecast.Result)
	if !ok {
		return fmt.Sprintf("unexpected result %T", res), nil
	}
	d := r.Definitions
	defs := fmt.Sprintf("tenant %s, as of %s, forecast at %s, horizon %d days, %d reference months, prior strength %g, ladder %s; %d open deals, %d training samples",
		d.Tenant, d.AsOf.Format(time.RFC3339), d.ForecastAt.Format(time.RFC3339), d.HorizonDays, len(d.ReferenceDates), d.PriorStrength, d.LadderVersion,
		r.Samples.OpenDeals, r.Samples.TrainingSamples)
	opt := func(x *float64) string {
		if x == nil {
			return f.text("")
		}
		return f.amount(*x)
	}
	pipe := table{name: "pipeline", header: []string{"breakdown", "key", "deals", "amount", "expected", "p10", "p90", "crm_weighted"}}
	add := func(breakdown string, gs ...forecast.Group) {
		for _, g := range gs {
			key := f.text(g.Key)
			if breakdown == "owner" {
				key = f.owner(g.Key)
			}
			pipe.rows = append(pipe.rows, []string{breakdown, key, strconv.Itoa(g.Deals), f.money(g.Amount),
				f.money(g.Expected), opt(g.P10), opt(g.P90), f.money(g.CRMWeighted)})
		}
	}
	add("total", r.Pipeline.Total)
	add("close_period", r.Pipeline.ByClosePeriod...)
	add("owner", r.Pipeline.ByOwner...)
	add("team", r.Pipeline.ByTeam...)
	add("forecast_category", r.Pipeline.ByForecastCategory...)

	model := table{name: "model", header: []string{"level", "step", "days_bucket", "n", "won", "lost", "censored", "effective_n", "raw", "p", "lo", "hi"}}
	if r.Model != nil {
		for _, e := range append(append([]forecast.Estimate{r.Model.Pooled}, r.Model.Steps...), r.Model.StepDays...) {
			step := ""
			if e.Step != nil {
				step = strconv.Itoa(*e.Step)
			}
			model.rows = append(model.rows, []string{e.Level, f.text(step), f.text(e.DaysBucket),
				f.int(e.N), f.int(e.Won), f.int(e.Lost), f.int(e.Censored), strconv.FormatFloat(e.EffectiveN, 'f', 1, 64),
				f.rate(e.Raw), f.rate(&e.P), f.rate(&e.Lo), f.rate(&e.Hi)})
		}
	}
	tables := []table{pipe, model}
	if bt := r.Backtest; bt != nil {
		acc := table{name: "backtest", header: []string{"weighting", "date", "period_end", "complete", "deals", "forecast", "actual", "error", "pct_error", "brier"}}
		cal := table{name: "calibration", header: []string{"weighting", "lo", "hi", "deals", "won", "mean_predicted", "actual_win_rate"}}
		for _, w := range []struct {
			name string
			a    forecast.Accuracy
		}{{"commitment", bt.Commitment}, {"crm", bt.CRM}} {
			pct := f.text("")
			if w.a.PctError != nil {
				pct = strconv.FormatFloat(*w.a.PctError, 'f', 1, 64)
			}
			acc.rows = append(acc.rows, []string{w.name, bt.Date.Format(time.DateOnly), bt.PeriodEnd.Format(time.DateOnly), strconv.FormatBool(bt.Complete),
				strconv.Itoa(bt.Deals), f.money(w.a.Forecast), f.money(w.a.Actual), f.money(w.a.Error), pct,
				strconv.FormatFloat(w.a.Brier, 'f', 4, 64)})
			for _, b := range w.a.Calibration {
				cal.rows = append(cal.rows, []string{w.name, strconv.FormatFloat(b.Lo, 'f', 2, 64), strconv.FormatFloat(b.Hi, 'f', 2, 64),
					strconv.Itoa(b.Deals), strconv.Itoa(b.Won), f.rate(b.MeanPredicted), f.rate(b.ActualWinRate)})
			}
		}
		tables = append(tables, acc, cal)
	}
	return defs, tables
}
