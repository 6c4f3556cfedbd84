package forecast

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/commitflow/commitflow/internal/readmodel"
	"github.com/commitflow/commitflow/internal/snapshot"
)

// openSQL reads one row per opportunity of a tenant from opportunity_state
// (schemas/clickhouse/0101_opportunity_state.sql), through the View that
// {from}, {prewhere} and {where} stand for (see onView), as seen with only the
// events up to @bound: its creation time (deal.created if at or before
// @bound, else its earliest event), its closes, and the reference dates
// @refs at which it was open (open_ts). Open at t: created at or before t,
// and the facts' status as of t open (fact_closed, migration 0105), so a
// deal closed and then reopened is open again. Opportunities whose events
// are all after @bound, or all retracted (an empty state), have no creation
// time and never count as open.
//
// Most deals need no look-up of their facts: a deal never closed is open
// from its creation on, and one closed once and closed still (its last
// facts closed) is open from its creation until that close, since a reopen
// after a close needs another close to end closed (derivation emits
// deal.closed at every change of the status to won or lost). Only the
// others (reopened, or closed more than once) look their status up at each
// candidate date: cand, the dates after creation, less those from the last
// close on of a deal whose last facts are closed.
//
// On ClickHouse 18.16 a column that a lambda captures must also be used
// outside lambdas in an expression the query keeps ("Unknown identifier"
// otherwise): created, lc, ends_closed and simple are, and so are the
// columns behind fc (in ends_closed) and ft (statesSQL's segment look-up).
var openSQL = `
SELECT
    opportunity_id AS o,
    gain_times AS gt,
    fact_times AS ft,
    fact_closed AS fc,
    reach,
    segments AS segs,
    close_times AS cts,
    close_statuses AS css,
    ` + readmodel.Created("@bound") + ` AS created,
    close_times[-1] AS lc,
    notEmpty(close_times) AND fact_closed[-1] = 1 AS ends_closed,
    empty(close_times) OR (length(close_times) = 1 AND ends_closed) AS simple,
    arrayFilter(t -> created <= t AND NOT (ends_closed AND lc <= t), arrayMap(x -> toDateTime(x), @refs)) AS cand,
    if(simple, cand, arrayFilter(t -> fc[` + readmodel.FactIndexOf("ft", "t") + `] = 0, if(simple, emptyArrayDateTime(), cand))) AS open_ts
FROM {from}
{prewhere}
WHERE tenant = @tenant AND {where} AND toUInt32(first_at) > 0 AND first_at <= toDateTime(@bound)`

// statesSQL gives one row per (opportunity, reference date t) at which the
// opportunity was open: its state at t (highest step h, last commitment
// time, whole days since it, segment) and its outcome observed up to @bound
// (0 censored, 1 won, 2 lost within @horizon days) with the day it happened,
// or for censored samples the whole days of follow-up capped at @horizon;
// k is 1 for an opportunity's first sample. The outcome is the first close
// after t (ci; closes are in fold order): a deal lost, reopened and won is
// lost for the dates before the loss and won for those after the reopen.
// Gains and facts are ordered by time, so "as of t" is a prefix of the
// arrays: the first gi gains and the facts element fi.
var statesSQL = `
SELECT o, t, k, h, last_at, days, seg, outcome, day FROM (
    SELECT
        o,
        t,
        k,
        arrayCount(g -> g <= t, gt) AS gi,
        ` + readmodel.HighestStep("t") + ` AS h,
        if(gi = 0, created, gt[gi]) AS last_at,
        intDiv(toInt64(toUInt32(t)) - toInt64(toUInt32(last_at)), 86400) AS days,
        segs[` + readmodel.FactIndexOf("ft", "t") + `] AS seg,
        arrayFirstIndex(x -> x > t, cts) AS ci,
        ci > 0 AND cts[ci] <= toDateTime(@bound) AS closed,
        intDiv(toInt64(toUInt32(cts[ci])) - toInt64(toUInt32(t)), 86400) AS close_day,
        multiIf(NOT closed OR close_day >= @horizon, 0, css[ci] = 'won', 1, 2) AS outcome,
        if(outcome = 0, least(intDiv(toInt64(@bound) - toInt64(toUInt32(t)), 86400), @horizon), close_day) AS day
    FROM (` + openSQL + `)
    ARRAY JOIN open_ts AS t, arrayEnumerate(open_ts) AS k
)`

// trainingSQL aggregates the states into groups of identical samples: the
// few thousand rows the estimator needs. Its totals count the samples and
// the opportunities (each has one sample with k = 1; per group, firsts
// means nothing).
var trainingSQL = `
SELECT
    h,
    multiIf(days <= 14, 0, days <= 30, 1, days <= 60, 2, 3) AS bucket,
    seg,
    outcome,
    day,
    count() AS n,
    countIf(k = 1) AS firsts
FROM (` + statesSQL + `)
GROUP BY h, bucket, seg, outcome, day
WITH TOTALS
ORDER BY h, bucket, seg, outcome, day`

// dealsSQL gives the opportunities open at @at with their facts as of @at
// (element fi of the fact arrays; {attrs} is attrsSQL, {category} the
// forecast category or ” when not asked for), their state at @at, and their first
// close after @at observed up to @bound with the amount as of the close
// time (element cfi). Each amount comes with its currency (currencies[i]
// is that of amounts[i]) as the number reinterpretAsUInt32 makes of the
// code (see curCode), which costs the client no string per row. Open at @at: created by @at and the facts' status as of @at open
// (a deal closed and reopened is open). The inner WHERE keeps, on the
// table's columns, the candidates openSQL describes (18.16 pushes no
// condition on computed columns down, and would compute every fact look-up
// of the closed majority first); the outer WHERE the open ones. The rows
// come in no order: deals sorts them (an ORDER BY o cost 18.16 ~40 ms of
// CPU for the 110k open deals of 10M events, and held every row back
// until all were sorted).
var dealsSQL = `
SELECT {columns} FROM (
    SELECT
        opportunity_id AS o,
        ` + readmodel.Created("@bound") + ` AS created,
        ` + readmodel.FactIndex("@at") + ` AS fi,
        fact_closed[fi] AS f_closed,
        amounts[fi] AS f_amount,
        reinterpretAsUInt32(currencies[fi]) AS f_currency,
        close_dates[fi] AS f_close_date,
        probabilities[fi] AS f_probability,
        ` + readmodel.FactRun("owner", "@at") + ` AS f_owner,
        ` + readmodel.FactRun("team", "@at") + ` AS f_team,
        ` + readmodel.FactRun("segment", "@at") + ` AS f_segment,
        {category} AS f_category,
        {attrs} AS f_attrs,
        arrayCount(g -> g <= toDateTime(@at), gain_times) AS gi,
        ` + readmodel.HighestStep("@at") + ` AS h,
        if(gi = 0, created, gain_times[gi]) AS last_at,
        arrayFirstIndex(x -> x > toDateTime(@at), close_times) AS ci,
        ci > 0 AND close_times[ci] <= toDateTime(@bound) AS closed,
        close_times[ci] AS ct,
        close_statuses[ci] AS cs,
        ` + readmodel.FactIndexOf("fact_times", "ct") + ` AS cfi,
        amounts[cfi] AS close_amount,
        reinterpretAsUInt32(currencies[cfi]) AS close_currency
    FROM {from}
    {prewhere}
    WHERE tenant = @tenant AND {where} AND ` + openCandidate + `
)
WHERE f_closed = 0`

// latestDealsSQL is dealsSQL for an @at at or after the last event of
// every deal of the tenant (latest_at, migration 0115): a deal's facts as
// of @at are then its last ones, every gain is at or before @at and no
// close after it, so the latest_* columns stand for the arrays ({attrs}
// and {category} as in dealsSQL, of those columns). As of now that reads
// 77 MB at 10M raw events instead of 374, and ClickHouse spends about a
// quarter of the CPU.
var latestDealsSQL = `
SELECT {columns} FROM (
    SELECT
        opportunity_id AS o,
        fact_closed[-1] AS f_closed,
        latest_amount AS f_amount,
        reinterpretAsUInt32(latest_currency) AS f_currency,
        latest_close_date AS f_close_date,
        latest_probability AS f_probability,
        latest_owner AS f_owner,
        latest_team AS f_team,
        latest_segment AS f_segment,
        {category} AS f_category,
        {attrs} AS f_attrs,
        reached_steps AS h,
        if(toUInt32(latest_gain_at) = 0, ` + readmodel.Created("@bound") + `, latest_gain_at) AS last_at,
        toUInt8(0) AS closed,
        toDateTime(0) AS ct,
        '' AS cs,
        toFloat64(0) AS close_amount,
        toUInt32(0) AS close_currency
    FROM {from}
    {prewhere}
    WHERE tenant = @tenant AND {where} AND ` + openCandidate + `
)
WHERE f_closed = 0`

// dealColumns are the columns of dealsSQL and latestDealsSQL (dealRow),
// and f_attrs when attributes are asked for: scanning an empty array per
// row cost the client a reflect.MakeSlice.
const dealColumns = "o, f_amount, f_currency, f_close_date, f_probability, f_owner, f_team, f_segment, f_category, h, last_at, closed, ct, cs, close_amount, close_currency"

// openCandidate keeps, on the table's columns, the deals dealsSQL may
// find open at @at: created by then and not closed for good by then.
var openCandidate = `toUInt32(first_at) > 0 AND first_at <= toDateTime(@bound)
        AND ` + readmodel.Created("@bound") + ` <= toDateTime(@at)
        AND NOT (notEmpty(close_times) AND fact_closed[-1] = 1 AND close_times[-1] <= toDateTime(@at))`

// stateRow is one (opportunity, reference date) sample as statesSQL gives
// it.
type stateRow struct {
	Opportunity string
	T           time.Time
	Step        int
	LastAt      time.Time
	Days        int
	Segment     string
	Outcome     Outcome
	Day         int
}

// attrsSQL is the array of the values of the attribute keys @attr0,
// @attr1, ... (attrArgs) in a deal's attribute keys and values (the
// arrays of one fact element: "" when the deal has none).
// One element per key, not an arrayMap over the keys: 18.16 does not find
// the table's columns from inside that lambda.
func attrsSQL(keys []string, keyCol, valueCol string) string {
	if len(keys) == 0 {
		return "emptyArrayString()"
	}
	elems := make([]string, len(keys))
	for i := range keys {
		elems[i] = fmt.Sprintf("%s[indexOf(%s, @attr%d)]", valueCol, keyCol, i)
	}
	return "[" + strings.Join(elems, ", ") + "]"
}

// attrArgs binds the keys attrsSQL names.
func attrArgs(keys []string) []any {
	args := make([]any, len(keys))
	for i, k := range keys {
		args[i] = clickhouse.Named(fmt.Sprintf("attr%d", i), k)
	}
	return args
}

// dealRow is one open opportunity as dealsSQL gives it.
type dealRow struct {
	Opportunity string
	Amount      float64
	// Currency is the currency of Amount ("" = none given).
	Currency    string
	CloseDate   time.Time
	Probability float64
	Owner       string
	Team        string
	Segment     string
	// ForecastCategory is the CRM forecast category as of the forecast
	// date, read only when the breakdown asks for it.
	ForecastCategory string
	Step             int
	LastAt           time.Time
	Closed           bool
	ClosedAt         time.Time
	Status           string
	CloseAmount      float64
	// CloseCurrency is the currency of CloseAmount.
	CloseCurrency string
	// Attrs are the values of the attributes asked for, in their order.
	Attrs []string
}

// trainingStats are the totals of the training query.
type trainingStats struct {
	samples       int64
	opportunities int64
}

// chunks collects rows in fixed-size chunks: growing one slice of
// tens of thousands of these structs by append cost ten times more (224 ms
// against 23 ms for 85k deal rows on the 2-core machine) than filling
// chunks, and copying those into one slice still cost ~30 ms for the 113k
// open deals of 10M events, so the open deals are read from the chunks
// where they are (rows).
type chunks[T any] struct {
	full [][]T
	cur  []T
	n    int
	// order, when not nil, is the order of the rows by index (sortFunc).
	order []int32
}

// chunkSize is the number of rows of each chunk.
const chunkSize = 4096

// add appends r.
func (c *chunks[T]) add(r T) { *c.next() = r }

// next appends a zero row and returns its address, for the caller to
// fill in place.
func (c *chunks[T]) next() *T {
	if len(c.cur) == cap(c.cur) {
		if c.cur != nil {
			c.full = append(c.full, c.cur)
		}
		c.cur = make([]T, 0, chunkSize)
	}
	c.cur = c.cur[:len(c.cur)+1]
	c.n++
	if c.order != nil {
		c.order = append(c.order, int32(c.n-1))
	}
	return &c.cur[len(c.cur)-1]
}

// len returns the number of rows.
func (c *chunks[T]) len() int { return c.n }

// at returns the address of row i in the order of adding.
func (c *chunks[T]) at(i int) *T {
	if k := i / chunkSize; k < len(c.full) {
		return &c.full[k][i%chunkSize]
	}
	return &c.cur[i%chunkSize]
}

// sortFunc puts the rows in the order of cmp (stable), without moving
// them: rows and all yield them in that order.
func (c *chunks[T]) sortFunc(cmp func(a, b *T) int) {
	c.order = make([]int32, c.n)
	for i := range c.order {
		c.order[i] = int32(i)
	}
	slices.SortStableFunc(c.order, func(a, b int32) int { return cmp(c.at(int(a)), c.at(int(b))) })
}

// rows yields the index and address of every row, in order.
func (c *chunks[T]) rows() iter.Seq2[int, *T] {
	return func(yield func(int, *T) bool) {
		if c.order != nil {
			for i, k := range c.order {
				if !yield(i, c.at(int(k))) {
					return
				}
			}
			return
		}
		i := 0
		for _, page := range append(c.full, c.cur) {
			for j := range page {
				if !yield(i, &page[j]) {
					return
				}
				i++
			}
		}
	}
}

// all returns the rows in order in one slice, nil if there are none.
func (c *chunks[T]) all() []T {
	if c.n == 0 {
		return nil
	}
	out := make([]T, 0, c.n)
	for _, r := range c.rows() {
		out = append(out, *r)
	}
	return out
}

func unix32(t time.Time) uint32 {
	s := t.Unix()
	if s < 0 {
		return 0
	}
	return uint32(s)
}

func refArgs(refs []time.Time) []uint32 {
	out := make([]uint32, len(refs))
	for i, r := range refs {
		out[i] = unix32(r)
	}
	return out
}

// dealsQuery is dealsSQL, or latestDealsSQL when latest, with the
// forecast category when byCat and the attributes attrs (attrArgs binds
// their keys).
func dealsQuery(latest, byCat bool, attrs []string) string {
	sql, category, keys, values := dealsSQL, "forecast_categories[fi]", "attr_keys[fi]", "attr_values[fi]"
	if latest {
		sql, category, keys, values = latestDealsSQL, "latest_forecast_category", "latest_attr_keys", "latest_attr_values"
	}
	if !byCat {
		category = "''"
	}
	columns := dealColumns
	if len(attrs) > 0 {
		columns += ", f_attrs"
	}
	return strings.NewReplacer("{columns}", columns, "{attrs}", attrsSQL(attrs, keys, values), "{category}", category).Replace(sql)
}

// samplesSQL lists statesSQL's samples in order (states).
var samplesSQL = "SELECT o, t, h, last_at, days, seg, outcome, day FROM (" + statesSQL + ") ORDER BY o, t"

// onView returns sql reading v: {from}, {prewhere} and {where} replaced by
// the View's table expression and conditions.
func onView(sql string, v *snapshot.View) string {
	return strings.NewReplacer("{from}", v.From(), "{prewhere}", v.Prewhere(), "{where}", v.Where()).Replace(sql)
}

// query runs sql on v with the bound arguments args and the View's own,
// with the settings of every read of opportunity_state
// (snapshot.QueryContext: max_block_size 8192 above all, since the per-row
// lambdas over FINAL's 65,536-row blocks on 18.16 ran up to 10 times
// slower).
func (f *Forecaster) query(ctx context.Context, v *snapshot.View, sql string, args ...any) (driver.Rows, error) {
	ctx, err := v.Context(snapshot.QueryContext(ctx, 0))
	if err != nil {
		return nil, err
	}
	return f.conn.Query(ctx, onView(sql, v), append(args, v.Args()...)...)
}

// states runs statesSQL: the per-(opportunity, reference date) samples of
// tenant with outcomes observed up to bound.
func (f *Forecaster) states(ctx context.Context, v *snapshot.View, tenant string, refs []time.Time, bound time.Time, horizon int) ([]stateRow, error) {
	rows, err := f.query(ctx, v, samplesSQL,
		clickhouse.Named("tenant", tenant),
		clickhouse.Named("refs", refArgs(refs)),
		clickhouse.Named("bound", unix32(bound)),
		clickhouse.Named("horizon", horizon))
	if err != nil {
		return nil, fmt.Errorf("forecast states: %w", err)
	}
	defer rows.Close()
	var out chunks[stateRow]
	for rows.Next() {
		var (
			r          stateRow
			h, outcome uint8
			days, day  int64
			tt, lastAt time.Time
		)
		if err := rows.Scan(&r.Opportunity, &tt, &h, &lastAt, &days, &r.Segment, &outcome, &day); err != nil {
			return nil, fmt.Errorf("forecast states: scan: %w", err)
		}
		r.T, r.LastAt = tt.UTC(), lastAt.UTC()
		r.Step, r.Days, r.Outcome, r.Day = int(h), int(days), Outcome(outcome), int(day)
		out.add(r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("forecast states: %w", err)
	}
	return out.all(), nil
}

// training runs trainingSQL.
func (f *Forecaster) training(ctx context.Context, v *snapshot.View, tenant string, refs []time.Time, bound time.Time, horizon int) ([]trainRow, trainingStats, error) {
	var st trainingStats
	rows, err := f.query(ctx, v, trainingSQL,
		clickhouse.Named("tenant", tenant),
		clickhouse.Named("refs", refArgs(refs)),
		clickhouse.Named("bound", unix32(bound)),
		clickhouse.Named("horizon", horizon))
	if err != nil {
		return nil, st, fmt.Errorf("forecast training set: %w", err)
	}
	defer rows.Close()
	var out []trainRow
	for rows.Next() {
		var (
			h, bucket, outcome uint8
			seg                string
			day                int64
			n, firsts          uint64
		)
		if err := rows.Scan(&h, &bucket, &seg, &outcome, &day, &n, &firsts); err != nil {
			return nil, st, fmt.Errorf("forecast training set: scan: %w", err)
		}
		out = append(out, trainRow{
			Cell:    Cell{Step: int(h), Bucket: int(bucket), Segment: seg},
			Outcome: Outcome(outcome),
			Day:     int(day),
			Count:   float64(n),
		})
	}
	if err := rows.Err(); err != nil {
		return nil, st, fmt.Errorf("forecast training set: %w", err)
	}
	var (
		h, bucket, outcome uint8
		seg                string
		day                int64
		n, firsts          uint64
	)
	if err := rows.Totals(&h, &bucket, &seg, &outcome, &day, &n, &firsts); err != nil {
		return nil, st, fmt.Errorf("forecast training set: totals: %w", err)
	}
	st.samples, st.opportunities = int64(n), int64(firsts)
	return out, st, nil
}

// latestBy reports whether every deal of tenant that v reads had its
// last event at or before at (snapshot.Summary.Latest), so that
// latestDealsSQL answers for dealsSQL; never for a View read with FINAL.
func (f *Forecaster) latestBy(ctx context.Context, v *snapshot.View, tenant string, at time.Time) (bool, error) {
	sum, ok, err := f.parts.Of(snapshot.QueryContext(ctx, 0), f.conn, tenant, v)
	if err != nil {
		return false, fmt.Errorf("forecast open deals: %w", err)
	}
	return ok && sum.Latest <= unix32(at), nil
}

// deals runs dealsSQL (or latestDealsSQL, see latestBy): the opportunities open at at, with closes observed up
// to bound, their forecast categories if byCat, and the attributes attrs.
func (f *Forecaster) deals(ctx context.Context, v *snapshot.View, tenant string, at, bound time.Time, byCat bool, attrs []string) (*chunks[dealRow], error) {
	latest, err := f.latestBy(ctx, v, tenant, at)
	if err != nil {
		return nil, err
	}
	rows, err := f.query(ctx, v, dealsQuery(latest, byCat, attrs),
		append(attrArgs(attrs),
			clickhouse.Named("tenant", tenant),
			clickhouse.Named("at", unix32(at)),
			clickhouse.Named("bound", unix32(bound)))...)
	if err != nil {
		return nil, fmt.Errorf("forecast open deals: %w", err)
	}
	defer rows.Close()
	out := &chunks[dealRow]{}
	var codes currencyCodes
	var (
		h         uint8
		closed    uint8
		cur, ccur uint32
	)
	for rows.Next() {
		// Scanned in place: copying each ~250-byte row into its chunk
		// was a fifth of this loop's CPU.
		r := out.next()
		dest := []any{&r.Opportunity, &r.Amount, &cur, &r.CloseDate, &r.Probability, &r.Owner, &r.Team, &r.Segment, &r.ForecastCategory,
			&h, &r.LastAt, &closed, &r.ClosedAt, &r.Status, &r.CloseAmount, &ccur}
		if len(attrs) > 0 {
			dest = append(dest, &r.Attrs)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("forecast open deals: scan: %w", err)
		}
		r.Step, r.Closed = int(h), closed == 1
		if len(r.Attrs) == 0 {
			r.Attrs = nil
		}
		r.Currency, r.CloseCurrency = codes.code(cur), codes.code(ccur)
		r.CloseDate, r.LastAt, r.ClosedAt = r.CloseDate.UTC(), r.LastAt.UTC(), r.ClosedAt.UTC()
		if !r.Closed {
			r.ClosedAt, r.Status, r.CloseAmount, r.CloseCurrency = time.Time{}, "", 0, ""
		}
		if r.CloseDate.Unix() <= 0 {
			r.CloseDate = time.Time{}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("forecast open deals: %w", err)
	}
	// In the order of their ids, so that an answer's Monte Carlo draws
	// fall on the same deals whatever order ClickHouse sent them in.
	out.sortFunc(func(a, b *dealRow) int { return strings.Compare(a.Opportunity, b.Opportunity) })
	return out, nil
}
