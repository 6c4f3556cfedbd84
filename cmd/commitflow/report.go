package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/commitflow/commitflow/internal/api"
	"github.com/commitflow/commitflow/internal/chserver"
	"github.com/commitflow/commitflow/internal/config"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/forecast"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/metrics"
	"github.com/commitflow/commitflow/internal/snapshot"
	"github.com/commitflow/commitflow/internal/store"
)

// cmdReport prints one metric: commitflow report NAME [flags]. Its flags
// are the API's query parameters (window_days becomes --window-days), read
// by the same parse functions as the API.
func cmdReport(ctx context.Context, args []string, stdout io.Writer) error {
	eps := api.Endpoints()
	names := make([]string, len(eps))
	for i, e := range eps {
		names[i] = e.Name
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(stdout, "usage: commitflow report %s [flags]\n\nRun \"commitflow report NAME -h\" for its flags.\n", strings.Join(names, "|"))
		if len(args) == 0 {
			return errors.New("report: which metric?")
		}
		return flag.ErrHelp
	}
	var ep *api.Endpoint
	for i := range eps {
		if eps[i].Name == args[0] {
			ep = &eps[i]
		}
	}
	if ep == nil {
		return fmt.Errorf("report: unknown metric %q (want %s)", args[0], strings.Join(names, ", "))
	}

	fs := flag.NewFlagSet("report "+ep.Name, flag.ContinueOnError)
	fs.SetOutput(stdout)
	var c config.Common
	c.Register(fs)
	fs.Lookup("clickhouse").Usage = "ClickHouse `DSN`; empty: the managed server of the commitflow run under --data, while it runs"
	ladderFile := fs.String("ladder", "", "ladder configuration `FILE` the states were derived with (of every tenant without its own in --ladders); empty with --ladders empty: the ladders of the commitflow run under --data while it runs, else the shipped default")
	laddersDir := fs.String("ladders", "", "`DIR`ectory of per-tenant ladders the states were derived with, <tenant>.yaml and optionally default.yaml")
	format := fs.String("format", "table", "output format: table, csv or json")
	only := fs.String("table", "", "print only this table ("+strings.Join(tableNames(ep.Name), ", ")+"); csv prints the first when none is given")
	timeout := fs.Duration("timeout", api.DefaultTimeout, "query timeout")
	fxRates, fxBase := fxFlags(fs)
	params := make(map[string]*string, len(ep.Params))
	for _, p := range ep.Params {
		params[p.Name] = fs.String(flagName(p.Name), "", p.Doc)
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: commitflow report %s [flags]\n\n%s\n\nflags:\n", ep.Name, ep.Doc)
		fs.PrintDefaults()
	}
	if err := config.Parse(ctx, fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("report %s: unexpected argument %q", ep.Name, fs.Arg(0))
	}
	switch *format {
	case "table", "csv", "json":
	default:
		return fmt.Errorf("report: --format: want table, csv or json, got %q", *format)
	}
	if *only != "" && !contains(tableNames(ep.Name), *only) {
		return fmt.Errorf("report: --table: want one of %s, got %q", strings.Join(tableNames(ep.Name), ", "), *only)
	}
	if !event.ValidToken(c.Tenant) {
		return errors.New("report: --tenant (or COMMITFLOW_TENANT) must name a tenant")
	}

	// Only the flags given become parameters, so defaults are the API's.
	v := url.Values{}
	fs.Visit(func(f *flag.Flag) {
		for name, val := range params {
			if flagName(name) == f.Name {
				v.Set(name, *val)
			}
		}
	})
	if err := api.Check(ep.Name, v); err != nil {
		return fmt.Errorf("report %s: %w", ep.Name, cliParamError(err))
	}
	dsn := c.ClickHouse
	if dsn == "" {
		d, ok := chserver.Running(filepath.Join(c.Data, "clickhouse"))
		if !ok {
			return fmt.Errorf("report: no --clickhouse DSN given (nor COMMITFLOW_CLICKHOUSE) and no managed ClickHouse running under %s: start `commitflow run --data %s`, or pass --clickhouse DSN, e.g. clickhouse://127.0.0.1:9000/default",
				filepath.Join(c.Data, "clickhouse"), c.Data)
		}
		dsn = d
	}
	l, ladderFlags, ladderName, err := reportLadder(*ladderFile, *laddersDir, c.Data, c.Tenant)
	if err != nil {
		return err
	}
	rates, err := loadRates(*fxRates, *fxBase)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	log := newLogger(c.LogLevel)
	st, err := store.Open(ctx, dsn, store.Options{Cluster: c.ClickHouseCluster, Logger: log})
	if err != nil {
		return err
	}
	defer st.Close()
	ok, err := st.Migrated(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("report: the ClickHouse schema is not migrated; run commitflow migrate")
	}
	qctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	pin := snapshot.New(st.Conn())
	res, err := api.Query(qctx, metrics.NewWithOptions(st.Conn(), metrics.Options{Pinner: pin, Rates: rates}), forecast.NewWithPinner(st.Conn(), pin), l, ep.Name, c.Tenant, v)
	var le *metrics.LadderError
	if errors.As(err, &le) {
		replay := "commitflow replay --tenant " + c.Tenant
		replay += ladderFlags
		return fmt.Errorf("report %s: %w (%s): pass the ladder file they were derived with, --ladder FILE, or replay them with this one: %s",
			ep.Name, err, ladderName, replay)
	}
	if err != nil {
		return fmt.Errorf("report %s: %w", ep.Name, cliParamError(err))
	}
	return writeReport(stdout, ep.Name, res, *format, *only)
}

// reportLadder loads the ladder of tenant report answers with: from the
// file and directory given, else from those of the `commitflow run` under
// data, else the shipped default. It returns the ladder, the flags that
// name it to replay ("" for the default) and how to name it in messages.
func reportLadder(file, dir, data, tenant string) (*ladder.Ladder, string, string, error) {
	run, src := "", ""
	if file == "" && dir == "" {
		info, err := readRunInfo(data)
		switch {
		case errors.Is(err, errNoRun) || err == nil && info.Ladder == "" && info.Ladders == "":
			return ladder.Default(), "", "the shipped default", nil
		case err != nil:
			return nil, "", "", fmt.Errorf("report: %w", err)
		}
		file, dir = info.Ladder, info.Ladders
		run, src = "the ladder of commitflow run, ", info.source(data)
	}
	ls, err := ladder.LoadSet(file, dir)
	if err != nil && src != "" {
		return nil, "", "", fmt.Errorf("report: the ladder of commitflow run (%s): %w", src, err)
	}
	if err != nil {
		return nil, "", "", err
	}
	var flags, name string
	if file != "" {
		flags, name = " --ladder "+file, file
	}
	if dir != "" {
		flags += " --ladders " + dir
		switch {
		case slices.Contains(ls.Tenants(), tenant):
			name = tenant + "'s ladder in " + dir
		case file == "":
			name = "the default ladder of " + dir
		}
	}
	return ls.For(tenant), flags, run + name, nil
}

// flagName turns a parameter name into its flag: window_days → window-days.
func flagName(param string) string { return strings.ReplaceAll(param, "_", "-") }

// cliParamError names the flag of a parameter error.
func cliParamError(err error) error {
	var pe *api.ParamError
	if errors.As(err, &pe) {
		return fmt.Errorf("--%s: %s", flagName(pe.Param), pe.Reason)
	}
	var me *metrics.InputError
	if errors.As(err, &me) {
		return fmt.Errorf("--%s: %s", flagName(me.Param), me.Reason)
	}
	var fe *forecast.InputError
	if errors.As(err, &fe) {
		return fmt.Errorf("--%s: %s", flagName(fe.Param), fe.Reason)
	}
	return err
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// reportTable is one table of a report.
type reportTable struct {
	name   string
	header []string
	rows   [][]string
}

// writeReport prints res as JSON, as CSV (one table) or as aligned tables.
func writeReport(w io.Writer, name string, res any, format, only string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	human := format == "table"
	defs, tables := reportTables(res, human)
	if only != "" {
		for _, t := range tables {
			if t.name == only {
				tables = []reportTable{t}
				break
			}
		}
	}
	if format == "csv" {
		if len(tables) == 0 {
			return fmt.Errorf("report %s: nothing to print", name)
		}
		cw := csv.NewWriter(w)
		cw.Write(tables[0].header)
		cw.WriteAll(tables[0].rows)
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

// tableNames lists the tables of a metric's report, the CSV default first.
func tableNames(name string) []string {
	switch name {
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

// reportTables turns a result into a definitions line and its tables.
func reportTables(res any, human bool) (string, []reportTable) {
	f := formatter{human: human}
	switch r := res.(type) {
	case *metrics.FunnelResult:
		return defsLine(r.Definitions), []reportTable{funnelTable(r, f)}
	case *metrics.StallsResult:
		return defsLine(r.Definitions) + fmt.Sprintf("  open %d (%s), stalled %d (%s), page %d", r.Open, f.money(r.OpenAmount), r.Stalled, f.money(r.StalledAmount), r.Page),
			stallsTables(r, f)
	case *metrics.MissedResult:
		return defsLine(r.Definitions), missedTables(r, f)
	case *metrics.MovementResult:
		return defsLine(r.Definitions), []reportTable{movementTable(r, f)}
	case *metrics.StageHistoryResult:
		line, tables := stageHistoryTables(r, f)
		return defsLine(r.Definitions) + line, tables
	case *metrics.CycleResult:
		start := "from creation"
		if r.FromStep != "" {
			start = "from step " + r.FromStep
		}
		return defsLine(r.Definitions) + ", " + start, []reportTable{cycleTable(r, f)}
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

// formatter renders numbers for people (table) or for machines (csv).
type formatter struct{ human bool }

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

func funnelTable(r *metrics.FunnelResult, f formatter) reportTable {
	t := reportTable{name: "steps", header: []string{"from_step", "to_step", "period", "key",
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
			t.rows = append(t.rows, row(s, f.text(g.Period), f.text(g.Key), g.FunnelCounts))
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

func cycleTable(r *metrics.CycleResult, f formatter) reportTable {
	t := reportTable{name: "outcomes", header: []string{"period", "key", "outcome", "n", "not_reached", "median_days", "p75_days", "p90_days"}}
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
		add(f.text(g.Period), f.text(g.Key), g.CycleOutcomes)
	}
	if f.human && len(r.Groups) == 0 { // drop the empty period and key columns
		t.header = t.header[2:]
		for i, row := range t.rows {
			t.rows[i] = row[2:]
		}
	}
	return t
}

func stallsTables(r *metrics.StallsResult, f formatter) []reportTable {
	steps := reportTable{name: "steps", header: []string{"step_index", "step", "open", "open_amount", "stalled", "stalled_amount"}}
	for _, s := range r.Steps {
		steps.rows = append(steps.rows, []string{strconv.Itoa(s.StepIndex), f.text(s.Step),
			f.int(s.Open), f.money(s.OpenAmount), f.int(s.Stalled), f.money(s.StalledAmount)})
	}
	deals := reportTable{name: "deals", header: []string{"opportunity_id", "owner_id", "team", "amount", "currency", "step_index", "step", "days_since_commitment", "stalled_since"}}
	for _, d := range r.Deals {
		deals.rows = append(deals.rows, []string{d.OpportunityID, f.text(d.OwnerID), f.text(d.Team), f.amount(d.Amount), f.text(d.Currency),
			strconv.Itoa(d.StepIndex), f.text(d.Step), f.int(d.DaysSinceCommitment), d.StalledSince.Format(time.RFC3339)})
	}
	return []reportTable{steps, deals}
}

func missedTables(r *metrics.MissedResult, f formatter) []reportTable {
	tab := func(name, keyName string, rows []metrics.MissedRow, total bool) reportTable {
		t := reportTable{name: name, header: []string{keyName, "missed", "missed_amount", "missed_interactions", "interactions", "miss_rate"}}
		if name == "by_step" {
			t.header = append([]string{"step_index"}, t.header...)
		}
		add := func(m metrics.MissedRow, key string) {
			row := []string{key, f.int(m.Missed), f.money(m.MissedAmount), f.int(m.MissedInteractions), f.int(m.Interactions), f.rate(m.MissRate)}
			if name == "by_step" {
				row = append([]string{strconv.Itoa(m.StepIndex)}, row...)
			}
			t.rows = append(t.rows, row)
		}
		for _, m := range rows {
			add(m, f.text(m.Key))
		}
		if total {
			add(r.Total, "total")
		}
		return t
	}
	return []reportTable{
		tab("by_step", "step", r.ByStep, true),
		tab("by_reason", "reason", r.ByReason, false),
		tab("by_owner", "owner", r.ByOwner, false),
	}
}

func movementTable(r *metrics.MovementResult, f formatter) reportTable {
	t := reportTable{name: "by_step", header: []string{"step_index", "step",
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
func forecastTables(res any, f formatter) (string, []reportTable) {
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
	pipe := reportTable{name: "pipeline", header: []string{"breakdown", "key", "deals", "amount", "expected", "p10", "p90", "crm_weighted"}}
	add := func(breakdown string, gs ...forecast.Group) {
		for _, g := range gs {
			pipe.rows = append(pipe.rows, []string{breakdown, f.text(g.Key), strconv.Itoa(g.Deals), f.amount(g.Amount),
				f.amount(g.Expected), opt(g.P10), opt(g.P90), f.amount(g.CRMWeighted)})
		}
	}
	add("total", r.Pipeline.Total)
	add("close_period", r.Pipeline.ByClosePeriod...)
	add("owner", r.Pipeline.ByOwner...)
	add("team", r.Pipeline.ByTeam...)

	model := reportTable{name: "model", header: []string{"level", "step", "days_bucket", "n", "won", "lost", "censored", "effective_n", "raw", "p", "lo", "hi"}}
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
	tables := []reportTable{pipe, model}
	if bt := r.Backtest; bt != nil {
		acc := reportTable{name: "backtest", header: []string{"weighting", "date", "period_end", "complete", "deals", "forecast", "actual", "error", "pct_error", "brier"}}
		cal := reportTable{name: "calibration", header: []string{"weighting", "lo", "hi", "deals", "won", "mean_predicted", "actual_win_rate"}}
		for _, w := range []struct {
			name string
			a    forecast.Accuracy
		}{{"commitment", bt.Commitment}, {"crm", bt.CRM}} {
			pct := f.text("")
			if w.a.PctError != nil {
				pct = strconv.FormatFloat(*w.a.PctError, 'f', 1, 64)
			}
			acc.rows = append(acc.rows, []string{w.name, bt.Date.Format(time.DateOnly), bt.PeriodEnd.Format(time.DateOnly), strconv.FormatBool(bt.Complete),
				strconv.Itoa(bt.Deals), f.amount(w.a.Forecast), f.amount(w.a.Actual), f.amount(w.a.Error), pct,
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
