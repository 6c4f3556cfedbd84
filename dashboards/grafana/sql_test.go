package grafana_test

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/commitflow/commitflow/internal/deals"
	"github.com/commitflow/commitflow/internal/forecast"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/metrics"
	"github.com/commitflow/commitflow/internal/metrics/synth"
	"github.com/commitflow/commitflow/internal/snapshot"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

// grafanaQuery is what Grafana and the ClickHouse plugin fill a query's
// macros and variables with.
type grafanaQuery struct {
	from, to time.Time
	interval time.Duration
	vars     map[string]string
}

var (
	// ${name}, ${name:format} and $name; $__macros are not variables.
	varRe = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::([A-Za-z]+))?\}|\$([A-Za-z][A-Za-z0-9_]*)`)
	// $__name(args) and $__name: the ClickHouse plugin's macros
	// (github.com/grafana/clickhouse-datasource, pkg/macros). Arguments
	// here never hold parentheses of their own.
	macroRe = regexp.MustCompile(`\$__([A-Za-z_]+)(?:\(([^()]*)\))?`)
)

// render fills sql's variables as Grafana does (sqlstring quotes and
// doubles quotes) and then its macros as the ClickHouse plugin does.
func (g grafanaQuery) render(sql string) (string, error) {
	var err error
	sql = varRe.ReplaceAllStringFunc(sql, func(m string) string {
		s := varRe.FindStringSubmatch(m)
		name, format := s[1]+s[3], s[2]
		v, ok := g.vars[name]
		if !ok {
			err = fmt.Errorf("unknown variable %s", m)
			return m
		}
		switch format {
		case "":
			return v
		case "sqlstring":
			return "'" + strings.ReplaceAll(v, "'", "''") + "'"
		}
		err = fmt.Errorf("variable format %s not rendered by the test", m)
		return m
	})
	dt := func(t time.Time) string { return fmt.Sprintf("toDateTime(%d)", t.Unix()) }
	secs := int(max(g.interval.Seconds(), 1))
	sql = macroRe.ReplaceAllStringFunc(sql, func(m string) string {
		s := macroRe.FindStringSubmatch(m)
		arg := strings.TrimSpace(s[2])
		switch s[1] {
		case "fromTime":
			return dt(g.from)
		case "toTime":
			return dt(g.to)
		case "interval_s":
			return fmt.Sprint(secs)
		case "timeFilter":
			return fmt.Sprintf("%s >= %s AND %s <= %s", arg, dt(g.from), arg, dt(g.to))
		case "timeInterval":
			return fmt.Sprintf("toStartOfInterval(toDateTime(%s), INTERVAL %d second)", arg, secs)
		}
		err = fmt.Errorf("macro %s not rendered by the test", m)
		return m
	})
	return sql, err
}

const tenant = "acme"

// book is a small generated book of two tenants with the same
// opportunity ids, loaded through the store as the deriver writes it.
func book(t *testing.T) *store.Store {
	t.Helper()
	s := storetest.Open(t, store.Options{})
	ladder := synth.DefaultLadder()
	var rows []store.DerivedRow
	for _, g := range []synth.Generator{
		{Tenant: tenant, Seed: 7, Ladder: ladder, LadderVersion: "v1", Start: day("2024-01-01"), Span: 180 * 24 * time.Hour,
			Currencies: []string{"USD", "EUR"}},
		{Tenant: "it's other", Seed: 8, Ladder: ladder, LadderVersion: "v1", Start: day("2024-01-01"), Span: 180 * 24 * time.Hour},
	} {
		rows = append(rows, g.Rows(300)...)
	}
	// The generator gives no CRM forecast category: one from the stage's
	// probability, as a CRM's defaults would, and none for the earliest
	// stages.
	for i := range rows {
		rows[i].ForecastCategory = forecastCategory(rows[i].Probability)
	}
	// Several batches in a random order, so that later versions sometimes
	// land first, as the deriver's retries do.
	rng := rand.New(rand.NewSource(1))
	rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	for len(rows) > 0 {
		n := min(len(rows), 1+rng.Intn(len(rows)))
		if err := s.InsertDerivedWithStates(context.Background(), rows[:n], len(ladder)); err != nil {
			t.Fatal(err)
		}
		rows = rows[n:]
	}
	return s
}

// forecastCategory is the CRM forecast category of a deal at probability
// p in the book.
func forecastCategory(p float64) string {
	switch {
	case p >= 1:
		return "Closed"
	case p >= 0.6:
		return "Commit"
	case p >= 0.4:
		return "Best Case"
	case p >= 0.2:
		return "Pipeline"
	}
	return ""
}

func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

// result is the answer of one query: column names and types, and rows.
type result struct {
	names, types []string
	rows         [][]any
}

// query runs sql and reads every row.
func query(ctx context.Context, conn driver.Conn, sql string) (result, error) {
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return result{}, err
	}
	defer rows.Close()
	var r result
	r.names = rows.Columns()
	for _, ct := range rows.ColumnTypes() {
		r.types = append(r.types, ct.DatabaseTypeName())
	}
	for rows.Next() {
		dest := make([]any, len(r.names))
		for i, ct := range rows.ColumnTypes() {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			return r, err
		}
		row := make([]any, len(dest))
		for i := range dest {
			row[i] = reflect.ValueOf(dest[i]).Elem().Interface()
		}
		r.rows = append(r.rows, row)
	}
	return r, rows.Err()
}

// col returns the index of column name in r, -1 when absent.
func (r result) col(name string) int {
	for i, n := range r.names {
		if n == name {
			return i
		}
	}
	return -1
}

// number reads a numeric cell (nil for NULL).
func number(v any) *float64 {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil
		}
		rv = rv.Elem()
	}
	var f float64
	switch {
	case rv.CanInt():
		f = float64(rv.Int())
	case rv.CanUint():
		f = float64(rv.Uint())
	case rv.CanFloat():
		f = rv.Float()
	default:
		return nil
	}
	return &f
}

// isTime and isNumber tell ClickHouse types apart (Nullable(...) looked
// through).
func isTime(ty string) bool {
	ty = strings.TrimSuffix(strings.TrimPrefix(ty, "Nullable("), ")")
	return ty == "Date" || strings.HasPrefix(ty, "DateTime")
}

func isNumber(ty string) bool {
	ty = strings.TrimSuffix(strings.TrimPrefix(ty, "Nullable("), ")")
	return strings.HasPrefix(ty, "UInt") || strings.HasPrefix(ty, "Int") || strings.HasPrefix(ty, "Float") || strings.HasPrefix(ty, "Decimal")
}

// sqlCase is one rendering of a panel's query: a time range and one value
// of each custom variable.
type sqlCase struct {
	name string
	q    grafanaQuery
}

// cases renders d's queries for two time ranges and every option of its
// custom variables, the tenant set to tenant.
func cases(d dashboard) []sqlCase {
	base := map[string]string{"tenant": tenant}
	for _, v := range d.Templating.List {
		if v.Type == "textbox" || v.Type == "constant" {
			base[v.Name], _ = v.Query.(string)
		}
	}
	ranges := []struct {
		name     string
		from, to time.Time
		interval time.Duration
	}{
		{"2024H1", day("2024-01-01"), day("2024-07-01"), 24 * time.Hour},
		{"2024-03-10..2024-05-20", day("2024-03-10"), day("2024-05-20").Add(6 * time.Hour), time.Hour},
	}
	var out []sqlCase
	for i, r := range ranges {
		vars := map[string]string{}
		for k, v := range base {
			vars[k] = v
		}
		name := r.name
		for _, v := range d.Templating.List {
			if v.Type == "custom" && len(v.Options) > 0 {
				// Every option over the ranges, the first range first.
				o := v.Options[i%len(v.Options)].Value
				vars[v.Name], name = o, name+" "+v.Name+"="+o
			}
		}
		out = append(out, sqlCase{name, grafanaQuery{from: r.from, to: r.to, interval: r.interval, vars: vars}})
	}
	for _, v := range d.Templating.List {
		if v.Type != "custom" {
			continue
		}
		for _, o := range v.Options {
			c := out[0]
			vars := map[string]string{}
			for k, x := range c.q.vars {
				vars[k] = x
			}
			vars[v.Name] = o.Value
			c.q.vars, c.name = vars, ranges[0].name+" "+v.Name+"="+o.Value
			out = append(out, c)
		}
	}
	return out
}

// TestSQLPanelsRun runs every ClickHouse query of every dashboard (panels
// and query variables) on the test server over a generated book, with its
// macros and variables filled as Grafana fills them, for several ranges
// and every option of each custom variable: each must run, return rows,
// and return what its panel shows: a time series a time column first and
// numbers after it (strings naming the series), a table or stat the
// columns its organize transformation lists, in that order.
func TestSQLPanelsRun(t *testing.T) {
	s := book(t)
	ctx := context.Background()
	ran := 0
	for _, d := range loadDashboards(t) {
		for _, v := range d.Templating.List {
			if v.Type != "query" || d.datasourceType(v.Datasource) != clickhouseType {
				continue
			}
			q, _ := v.Query.(string)
			r, err := query(ctx, s.Conn(), q)
			if err != nil {
				t.Fatalf("%s: variable %s: %v", d.file, v.Name, err)
			}
			if len(r.rows) != 2 || len(r.names) != 1 {
				t.Errorf("%s: variable %s: %d rows of %v, want the 2 tenants", d.file, v.Name, len(r.rows), r.names)
			}
			ran++
		}
		for _, p := range d.panels() {
			if d.datasourceType(p.Datasource) != clickhouseType {
				continue
			}
			for _, tg := range p.Targets {
				for _, c := range cases(d) {
					sql, err := c.q.render(tg.RawSQL)
					if err != nil {
						t.Fatalf("%s: %q: %v", d.file, p.Title, err)
					}
					r, err := query(ctx, s.Conn(), sql)
					if err != nil {
						t.Errorf("%s: %q (%s): %v\n%s", d.file, p.Title, c.name, err, sql)
						continue
					}
					ran++
					if len(r.rows) == 0 {
						t.Errorf("%s: %q (%s): no rows", d.file, p.Title, c.name)
					}
					if err := checkColumns(p, *tg.Format, r); err != nil {
						t.Errorf("%s: %q (%s): %v", d.file, p.Title, c.name, err)
					}
				}
			}
		}
	}
	if ran == 0 {
		t.Fatal("no ClickHouse query ran")
	}
}

// checkColumns checks that r is what panel p shows with its query format.
func checkColumns(p panel, format int, r result) error {
	if format == 0 {
		if len(r.names) < 2 || !isTime(r.types[0]) {
			return fmt.Errorf("a time series needs a time column first, then values: %v %v", r.names, r.types)
		}
		values := 0
		for i, ty := range r.types[1:] {
			switch {
			case isNumber(ty):
				values++
			case ty == "String":
			default:
				return fmt.Errorf("time series column %s is %s", r.names[i+1], ty)
			}
		}
		if values == 0 {
			return fmt.Errorf("a time series without values: %v %v", r.names, r.types)
		}
		return nil
	}
	if want := p.columns(); !reflect.DeepEqual(r.names, want) {
		return fmt.Errorf("columns %v, the panel shows %v", r.names, want)
	}
	return nil
}

// panelQuery returns the query of the panel titled title of the
// ClickHouse dashboard, filled in for q.
func panelQuery(t *testing.T, title string, q grafanaQuery) string {
	t.Helper()
	for _, d := range loadDashboards(t) {
		for _, p := range d.panels() {
			if p.Title == title && d.datasourceType(p.Datasource) == clickhouseType {
				sql, err := q.render(p.Targets[0].RawSQL)
				if err != nil {
					t.Fatal(err)
				}
				return sql
			}
		}
	}
	t.Fatalf("no ClickHouse panel %q", title)
	return ""
}

// TestSQLMatchesAPI checks the panels' numbers against the API's
// (package metrics answers GET /v1/stalls, /v1/funnel, /v1/missed and
// /v1/movement) on the same book, as of the end of the range: stalled and
// open deals, the funnel's cohorts and conversion rates by step and by
// month, misses by reason and by owner with their miss rates, and the
// pipeline's movement.
func TestSQLMatchesAPI(t *testing.T) {
	s := book(t)
	ctx := context.Background()
	conn := s.Conn()
	mq := metrics.New(conn)
	ladder := synth.DefaultLadder()
	for _, rg := range [][2]time.Time{
		{day("2024-01-01"), day("2024-07-01")},
		{day("2024-03-10"), day("2024-05-20").Add(6 * time.Hour)},
	} {
		from, to := rg[0], rg[1]
		q := grafanaQuery{from: from, to: to, interval: 24 * time.Hour, vars: map[string]string{
			"tenant": tenant, "period": "toStartOfMonth", "commitflow_url": "http://localhost:8080"}}
		name := from.Format(time.DateOnly) + ".." + to.Format(time.DateTime)
		run := func(title string) result {
			t.Helper()
			r, err := query(ctx, conn, panelQuery(t, title, q))
			if err != nil {
				t.Fatalf("%s %q: %v", name, title, err)
			}
			return r
		}

		st, err := mq.Stalls(ctx, metrics.StallsQuery{Tenant: tenant, AsOf: to, Ladder: ladder, LadderVersion: "v1"})
		if err != nil {
			t.Fatal(err)
		}
		if st.Stalled == 0 {
			t.Fatalf("%s: the book has no stalled deal", name)
		}
		r := run("Stalled deals")
		if got := [2]float64{*number(r.rows[0][0]), *number(r.rows[0][1])}; got != [2]float64{float64(st.Stalled), float64(st.Open)} {
			t.Errorf("%s: Stalled deals panel %v (stalled, open), API %d, %d", name, got, st.Stalled, st.Open)
		}
		r = run("Stalled deals by owner")
		var stalled, open float64
		amounts := map[string]float64{}
		for _, row := range r.rows {
			open += *number(row[r.col("open_deals")])
			stalled += *number(row[r.col("stalled_deals")])
			amounts[row[r.col("currency")].(string)] += *number(row[r.col("stalled_amount")])
		}
		if stalled != float64(st.Stalled) || open != float64(st.Open) {
			t.Errorf("%s: Stalled deals by owner add up to %v stalled, %v open; API %d, %d", name, stalled, open, st.Stalled, st.Open)
		}
		for cur, a := range st.AmountsByCurrency {
			if !near(amounts[cur], a.StalledAmount) {
				t.Errorf("%s: stalled amount in %q: panel %v, API %v", name, cur, amounts[cur], a.StalledAmount)
			}
		}
		r = run("Stalled deals, largest first")
		if len(r.rows) != int(min(st.Stalled, 200)) {
			t.Errorf("%s: %d stalled deals listed, API %d", name, len(r.rows), st.Stalled)
		}
		all, err := mq.Stalls(ctx, metrics.StallsQuery{Tenant: tenant, AsOf: to, Ladder: ladder, LadderVersion: "v1", PageSize: metrics.MaxPageSize})
		if err != nil {
			t.Fatal(err)
		}
		for i, d := range all.Deals[:min(len(all.Deals), len(r.rows))] {
			if id := r.rows[i][r.col("opportunity_id")]; id != d.OpportunityID {
				t.Errorf("%s: stalled deal %d is %v, API %s", name, i, id, d.OpportunityID)
				break
			}
		}

		fu, err := mq.Funnel(ctx, metrics.FunnelQuery{Tenant: tenant, AsOf: to, From: from, To: to, Ladder: ladder, LadderVersion: "v1"})
		if err != nil {
			t.Fatal(err)
		}
		r = run("Stage conversion in the range")
		got := map[int][]*float64{}
		for _, row := range r.rows {
			got[int(*number(row[0]))] = []*float64{number(row[2]), number(row[3]), number(row[4]), number(row[5]), number(row[6]), number(row[7])}
		}
		for _, fs := range fu.Steps {
			want := []*float64{ptr(float64(fs.Reached)), ptr(float64(fs.Converted)), ptr(float64(fs.Dropped)), ptr(float64(fs.StillOpen)),
				fs.ConversionRateDecided, fs.ConversionRateReached}
			if fs.Reached == 0 {
				if _, ok := got[fs.FromIndex]; ok {
					t.Errorf("%s: step %d: a row without a cohort", name, fs.FromIndex)
				}
				continue
			}
			if !nearAll(got[fs.FromIndex], want) {
				t.Errorf("%s: step %d: panel %v, API %v (reached, converted, dropped, still open, rates)", name, fs.FromIndex, show(got[fs.FromIndex]), show(want))
			}
		}
		fm, err := mq.Funnel(ctx, metrics.FunnelQuery{Tenant: tenant, AsOf: to, From: from, To: to, Interval: "month", Ladder: ladder, LadderVersion: "v1"})
		if err != nil {
			t.Fatal(err)
		}
		r = run("Stage conversion over time")
		series := map[string]*float64{}
		for _, row := range r.rows {
			series[row[0].(time.Time).Format(time.DateOnly)+" "+row[1].(string)] = number(row[2])
		}
		n := 0
		for _, fs := range fm.Steps {
			for _, g := range fs.Groups {
				key := fmt.Sprintf("%s %d → %d", g.Period, fs.FromIndex, fs.ToIndex)
				if !nearAll([]*float64{series[key]}, []*float64{g.ConversionRateReached}) {
					t.Errorf("%s: conversion %s: panel %v, API %v", name, key, show([]*float64{series[key]}), show([]*float64{g.ConversionRateReached}))
				}
				n++
			}
		}
		if n != len(series) || n == 0 {
			t.Errorf("%s: conversion over time: %d points, API %d", name, len(series), n)
		}

		mi, err := mq.Missed(ctx, metrics.MissedQuery{Tenant: tenant, AsOf: to, From: from, To: to, Ladder: ladder, LadderVersion: "v1"})
		if err != nil {
			t.Fatal(err)
		}
		r = run("Missed commitments by reason")
		byReason := map[string][2]float64{}
		for _, row := range r.rows {
			byReason[row[0].(string)] = [2]float64{*number(row[1]), *number(row[2])}
		}
		if len(byReason) != len(mi.ByReason) || len(mi.ByReason) == 0 {
			t.Errorf("%s: %d reasons, API %d", name, len(byReason), len(mi.ByReason))
		}
		for _, m := range mi.ByReason {
			if got := byReason[m.Key]; got != [2]float64{float64(m.Missed), float64(m.MissedInteractions)} {
				t.Errorf("%s: reason %s: panel %v, API %d, %d", name, m.Key, got, m.Missed, m.MissedInteractions)
			}
		}
		r = run("Missed commitments by owner")
		byOwner := map[string][]*float64{}
		for _, row := range r.rows {
			byOwner[row[0].(string)] = []*float64{number(row[1]), number(row[2]), number(row[3]), number(row[4])}
		}
		if len(byOwner) != len(mi.ByOwner) {
			t.Errorf("%s: %d owners, API %d", name, len(byOwner), len(mi.ByOwner))
		}
		for _, m := range mi.ByOwner {
			want := []*float64{ptr(float64(m.Missed)), ptr(float64(m.MissedInteractions)), ptr(float64(m.Interactions)), m.MissRate}
			if !nearAll(byOwner[m.Key], want) {
				t.Errorf("%s: owner %s: panel %v, API %v", name, m.Key, show(byOwner[m.Key]), show(want))
			}
		}

		mv, err := mq.Movement(ctx, metrics.MovementQuery{Tenant: tenant, AsOf: to, From: from, To: to, Ladder: ladder, LadderVersion: "v1"})
		if err != nil {
			t.Fatal(err)
		}
		r = run("Pipeline movement in the range")
		tot := mv.Total
		want := []int64{tot.New, tot.Advanced, tot.Regressed, tot.Stalled, tot.PulledIn, tot.PushedOut, tot.Won, tot.Lost}
		for i, w := range want {
			if got := *number(r.rows[0][i]); got != float64(w) {
				t.Errorf("%s: movement %s: panel %v, API %d", name, r.names[i], got, w)
			}
		}
	}
}

func ptr(f float64) *float64 { return &f }

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// nearAll compares numbers that may be missing (nil) pairwise.
func nearAll(a, b []*float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if (a[i] == nil) != (b[i] == nil) || a[i] != nil && !near(*a[i], *b[i]) {
			return false
		}
	}
	return true
}

func show(v []*float64) []string {
	out := make([]string, len(v))
	for i, f := range v {
		out[i] = "null"
		if f != nil {
			out[i] = fmt.Sprint(*f)
		}
	}
	return out
}

// cumulative is the conversion from the first step to each later one as
// the page computes it (panels.js): the product of the steps' decided
// rates, nil from the first step without one.
func cumulative(rates []*float64) []*float64 {
	out := make([]*float64, len(rates))
	c := ptr(1)
	for i, r := range rates {
		if c != nil && r != nil {
			c = ptr(*c * *r)
		} else {
			c = nil
		}
		out[i] = c
	}
	return out
}

// TestCumulativeConversionMatchesAPI checks the leadership dashboard's
// cumulative conversion from the first step, over the range and per
// period, against the product of GET /v1/funnel's decided rates (as the
// page's leadership view computes it) on the same book.
func TestCumulativeConversionMatchesAPI(t *testing.T) {
	s := book(t)
	ctx := context.Background()
	mq := metrics.New(s.Conn())
	ladder := synth.DefaultLadder()
	for _, rg := range [][2]time.Time{
		{day("2024-01-01"), day("2024-07-01")},
		{day("2024-03-10"), day("2024-05-20").Add(6 * time.Hour)},
	} {
		from, to := rg[0], rg[1]
		name := from.Format(time.DateOnly) + ".." + to.Format(time.DateTime)
		q := grafanaQuery{from: from, to: to, interval: 24 * time.Hour, vars: map[string]string{"tenant": tenant, "period": "toStartOfMonth"}}
		run := func(title string) result {
			t.Helper()
			r, err := query(ctx, s.Conn(), panelQuery(t, title, q))
			if err != nil {
				t.Fatalf("%s %q: %v", name, title, err)
			}
			return r
		}

		fu, err := mq.Funnel(ctx, metrics.FunnelQuery{Tenant: tenant, AsOf: to, From: from, To: to, Ladder: ladder, LadderVersion: "v1"})
		if err != nil {
			t.Fatal(err)
		}
		if len(fu.Steps) < 2 || fu.Steps[0].FromIndex != 1 {
			t.Fatalf("%s: funnel steps %d, the first from %d; the panels take step 1 as the first", name, len(fu.Steps), fu.Steps[0].FromIndex)
		}
		var rates []*float64
		for _, fs := range fu.Steps {
			rates = append(rates, fs.ConversionRateDecided)
		}
		want := cumulative(rates)
		r := run("Cumulative conversion from the first step in the range")
		got := map[int]*float64{}
		for _, row := range r.rows {
			got[int(*number(row[1]))] = number(row[2])
		}
		nonNull := 0
		for i, fs := range fu.Steps {
			if want[i] != nil {
				nonNull++
			}
			if g, ok := got[fs.ToIndex]; (ok || want[i] != nil) && !nearAll([]*float64{g}, []*float64{want[i]}) {
				t.Errorf("%s: 1 → %d: panel %v, API %v", name, fs.ToIndex, show([]*float64{g}), show([]*float64{want[i]}))
			}
		}
		if nonNull < 2 {
			t.Errorf("%s: %d cumulative rates, want a test with several", name, nonNull)
		}

		fm, err := mq.Funnel(ctx, metrics.FunnelQuery{Tenant: tenant, AsOf: to, From: from, To: to, Interval: "month", Ladder: ladder, LadderVersion: "v1"})
		if err != nil {
			t.Fatal(err)
		}
		r = run("Cumulative conversion from the first step over time")
		series := map[string]*float64{}
		for _, row := range r.rows {
			series[row[0].(time.Time).Format(time.DateOnly)+" "+row[1].(string)] = number(row[2])
		}
		periods := map[string]bool{}
		byStep := make([]map[string]*float64, len(fm.Steps))
		for i, fs := range fm.Steps {
			byStep[i] = map[string]*float64{}
			for _, g := range fs.Groups {
				byStep[i][g.Period] = g.ConversionRateDecided
				periods[g.Period] = true
			}
		}
		n := 0
		for p := range periods {
			var rates []*float64
			for i := range fm.Steps {
				rates = append(rates, byStep[i][p])
			}
			for i, c := range cumulative(rates) {
				key := fmt.Sprintf("%s 1 → %d", p, fm.Steps[i].ToIndex)
				g, ok := series[key]
				if !ok && c == nil {
					continue
				}
				n++
				if !nearAll([]*float64{g}, []*float64{c}) {
					t.Errorf("%s: cumulative %s: panel %v, API %v", name, key, show([]*float64{g}), show([]*float64{c}))
				}
			}
		}
		if n != len(series) || n == 0 {
			t.Errorf("%s: cumulative over time: %d points, API %d", name, len(series), n)
		}
	}
}

// TestCRMWeightedMatchesForecast checks the forecasters' dashboard against
// GET /v1/forecast (package forecast) on the same book, as of the end of
// the range: the open deals, amount and crm_weighted per close period
// (month and quarter) and per CRM forecast category, currency by currency.
func TestCRMWeightedMatchesForecast(t *testing.T) {
	s := book(t)
	ctx := context.Background()
	fc := forecast.New(s.Conn())
	for _, to := range []time.Time{day("2024-04-01"), day("2024-05-20").Add(6 * time.Hour)} {
		for _, period := range []string{"month", "quarter"} {
			name := to.Format(time.DateTime) + " " + period
			res, err := fc.Forecast(ctx, forecast.Query{Tenant: tenant, AsOf: to, ClosePeriod: period,
				By: []string{forecast.ByClosePeriod, forecast.ByForecastCategory}})
			if err != nil {
				t.Fatal(err)
			}
			q := grafanaQuery{from: to.AddDate(0, -1, 0), to: to, interval: time.Hour,
				vars: map[string]string{"tenant": tenant, "close_period": period, "commitflow_url": "http://localhost:8080"}}
			for _, c := range []struct {
				title  string
				groups []forecast.Group
			}{
				{"CRM-weighted pipeline by close period", res.Pipeline.ByClosePeriod},
				{"CRM-weighted pipeline by CRM forecast category", res.Pipeline.ByForecastCategory},
			} {
				r, err := query(ctx, s.Conn(), panelQuery(t, c.title, q))
				if err != nil {
					t.Fatalf("%s %q: %v", name, c.title, err)
				}
				type cell struct{ key, cur string }
				got := map[cell][3]float64{}
				deals := map[string]float64{}
				for _, row := range r.rows {
					k := cell{row[0].(string), strings.TrimRight(row[1].(string), "\x00")}
					got[k] = [3]float64{*number(row[2]), *number(row[3]), *number(row[4])}
					deals[k.key] += *number(row[2])
				}
				if len(c.groups) < 2 {
					t.Errorf("%s %q: %d groups, want a test with several", name, c.title, len(c.groups))
				}
				if len(deals) != len(c.groups) {
					t.Errorf("%s %q: %d groups, API %d", name, c.title, len(deals), len(c.groups))
				}
				for _, g := range c.groups {
					if deals[g.Key] != float64(g.Deals) {
						t.Errorf("%s %q %q: %v deals, API %d", name, c.title, g.Key, deals[g.Key], g.Deals)
					}
					for cur, a := range g.AmountsByCurrency {
						want := [3]float64{float64(a.Deals), a.Amount, a.CRMWeighted}
						if p := got[cell{g.Key, cur}]; p[0] != want[0] || !near(p[1], want[1]) || !near(p[2], want[2]) {
							t.Errorf("%s %q %q %s: panel %v (deals, amount, crm_weighted), API %v", name, c.title, g.Key, cur, p, want)
						}
					}
				}
			}
		}
	}
}

// TestWarningsMatchAPI checks the sales ops dashboard's deal warnings
// against GET /v1/warnings (package deals) on the same book with the
// default ladder (its consensus step is the dashboard's default, 5), as
// of the end of the range: per owner the deals, the deals of each kind
// and the amounts per currency, and the deals listed largest first with
// their warnings.
func TestWarningsMatchAPI(t *testing.T) {
	s := book(t)
	ctx := context.Background()
	r := deals.New(s, snapshot.New(s.Conn()), 2)
	l := ladder.Default()
	if got := l.Index(l.Consensus.Step); got != 5 {
		t.Fatalf("the default ladder's consensus step is %d, the dashboard's default 5", got)
	}
	for _, to := range []time.Time{day("2024-04-01"), day("2024-05-20").Add(6 * time.Hour)} {
		name := to.Format(time.DateTime)
		res, err := r.Warnings(ctx, deals.WarningsQuery{Tenant: tenant, AsOf: to, Ladder: l, PageSize: deals.MaxPageSize})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range deals.WarningKinds {
			if res.Total.Kinds[k] == 0 {
				t.Errorf("%s: no deal with a %s warning in the book", name, k)
			}
		}
		q := grafanaQuery{from: to.AddDate(0, -1, 0), to: to, interval: time.Hour,
			vars: map[string]string{"tenant": tenant, "consensus_step": "5", "commitflow_url": "http://localhost:8080"}}
		rs, err := query(ctx, s.Conn(), panelQuery(t, "Deal warnings by owner", q))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		type counts struct {
			deals   float64
			kinds   map[string]float64
			amounts map[string]float64
		}
		byOwner := map[string]*counts{}
		for _, row := range rs.rows {
			owner := row[rs.col("owner")].(string)
			c := byOwner[owner]
			if c == nil {
				c = &counts{kinds: map[string]float64{}, amounts: map[string]float64{}}
				byOwner[owner] = c
			}
			c.deals += *number(row[rs.col("deals")])
			for _, k := range deals.WarningKinds {
				c.kinds[k] += *number(row[rs.col(k)])
			}
			c.amounts[strings.TrimRight(row[rs.col("currency")].(string), "\x00")] += *number(row[rs.col("amount")])
		}
		if len(byOwner) != len(res.ByOwner) {
			t.Errorf("%s: %d owners, API %d", name, len(byOwner), len(res.ByOwner))
		}
		for _, w := range res.ByOwner {
			c := byOwner[w.Key]
			if c == nil {
				t.Errorf("%s: owner %q missing", name, w.Key)
				continue
			}
			if c.deals != float64(w.Deals) {
				t.Errorf("%s: owner %q: %v deals, API %d", name, w.Key, c.deals, w.Deals)
			}
			for _, k := range deals.WarningKinds {
				if c.kinds[k] != float64(w.Kinds[k]) {
					t.Errorf("%s: owner %q: %v %s, API %d", name, w.Key, c.kinds[k], k, w.Kinds[k])
				}
			}
			for cur, a := range w.AmountsByCurrency {
				if !near(c.amounts[cur], a) {
					t.Errorf("%s: owner %q: amount in %q %v, API %v", name, w.Key, cur, c.amounts[cur], a)
				}
			}
		}

		rs, err = query(ctx, s.Conn(), panelQuery(t, "Deals with warnings, largest first", q))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := min(res.Total.Deals, 200); int64(len(rs.rows)) != want {
			t.Errorf("%s: %d deals listed, API %d", name, len(rs.rows), want)
		}
		for i, d := range res.Deals[:min(len(res.Deals), len(rs.rows))] {
			var kinds []string
			for _, w := range d.Warnings {
				kinds = append(kinds, w.Kind)
			}
			got := [2]any{rs.rows[i][rs.col("opportunity_id")], rs.rows[i][rs.col("warnings")]}
			if want := [2]any{d.OpportunityID, strings.Join(kinds, ", ")}; got != want {
				t.Errorf("%s: deal %d: panel %v, API %v", name, i, got, want)
				break
			}
		}
	}
}
