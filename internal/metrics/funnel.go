package metrics

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/commitflow/commitflow/internal/fx"
	"github.com/commitflow/commitflow/internal/param"
	"github.com/commitflow/commitflow/internal/readmodel"
)

// FunnelQuery asks for conversion K→K+1 of the cohorts that reached each
// step K in [From, To).
type FunnelQuery struct {
	Tenant string
	// AsOf is the instant the answer is computed at; zero means now.
	AsOf     time.Time
	From, To time.Time
	// WindowDays, when set, requires K+1 within that many days of K.
	WindowDays *int
	// By breaks every step down by a fact as of AsOf: owner, team,
	// segment, source or product ("" for none).
	By string
	// Interval groups cohorts by the week, month or quarter in which they
	// reached K ("" for none).
	Interval string
	// Top, when above 0, keeps the Top By values with the most
	// opportunities reaching a step in [From, To) in groups of their own
	// and merges the others into one group per period (Other); 0 keeps
	// every value.
	Top int
	// Ladder holds the step keys in order; step K is Ladder[K-1].
	Ladder        []string
	LadderVersion string
	// Currency is the currency to convert the amounts to with the
	// Querier's rate table; "" means its base currency (see Options.Rates).
	Currency string
}

// FunnelResult is the conversion of every step of the ladder.
type FunnelResult struct {
	Definitions Definitions  `json:"definitions"`
	Steps       []FunnelStep `json:"steps"`
}

// FunnelStep is the conversion from step FromIndex to ToIndex = FromIndex+1.
type FunnelStep struct {
	FromStep  string `json:"from_step"`
	FromIndex int    `json:"from_index"`
	ToStep    string `json:"to_step"`
	ToIndex   int    `json:"to_index"`
	FunnelCounts
	// Groups breaks the step down by period and/or By value, sorted by
	// Period then Key; only groups with a cohort are listed.
	Groups []FunnelGroup `json:"groups,omitempty"`
}

// FunnelGroup is one period and/or By value of a step.
type FunnelGroup struct {
	// Period is the first day (UTC, YYYY-MM-DD) of the week, month or
	// quarter in which the cohort reached the step; "" without Interval.
	Period string `json:"period,omitempty"`
	// Key is the By value; "" without By (or when the fact is empty).
	Key string `json:"key"`
	// Other marks the group of the By values a top-N breakdown merged
	// (Key is then "").
	Other bool `json:"other,omitempty"`
	FunnelCounts
}

// FunnelCounts are the outcomes of one cohort, in count and amount. The
// scalar amounts, and the rates made of them, are the plain sums when the
// answer's amounts are all in one currency, their conversion when the
// Querier has a rate table, else nil (Definitions.Currency and Converted
// say which); AmountsByCurrency always holds the unconverted sums.
type FunnelCounts struct {
	Reached   int64 `json:"reached"`
	Converted int64 `json:"converted"`
	StillOpen int64 `json:"still_open"`
	Dropped   int64 `json:"dropped"`
	// Skipped counts cohort members that reached the step by gaining a
	// later one: step K itself was not gained at reach_time(K) (never, or
	// only afterwards).
	Skipped         int64    `json:"skipped"`
	ReachedAmount   *float64 `json:"reached_amount"`
	ConvertedAmount *float64 `json:"converted_amount"`
	StillOpenAmount *float64 `json:"still_open_amount"`
	DroppedAmount   *float64 `json:"dropped_amount"`
	SkippedAmount   *float64 `json:"skipped_amount"`
	// ConversionRateDecided is converted / (converted + dropped); null
	// when nothing is decided yet.
	ConversionRateDecided *float64 `json:"conversion_rate_decided"`
	// ConversionRateReached is converted / reached.
	ConversionRateReached       *float64 `json:"conversion_rate_reached"`
	AmountConversionRateDecided *float64 `json:"amount_conversion_rate_decided"`
	AmountConversionRateReached *float64 `json:"amount_conversion_rate_reached"`
	// AmountsByCurrency holds the amounts per currency code ("" = none
	// given), unconverted; currencies whose amounts are all 0 are left
	// out.
	AmountsByCurrency map[string]FunnelAmounts `json:"amounts_by_currency,omitempty"`
	TimeToConvert     TimeToConvert            `json:"time_to_convert"`
}

// FunnelAmounts are the amounts of a cohort in one currency.
type FunnelAmounts struct {
	ReachedAmount               float64  `json:"reached_amount"`
	ConvertedAmount             float64  `json:"converted_amount"`
	StillOpenAmount             float64  `json:"still_open_amount"`
	DroppedAmount               float64  `json:"dropped_amount"`
	SkippedAmount               float64  `json:"skipped_amount"`
	AmountConversionRateDecided *float64 `json:"amount_conversion_rate_decided"`
	AmountConversionRateReached *float64 `json:"amount_conversion_rate_reached"`
}

// funnelAmounts makes the FunnelAmounts of the sums a: reached,
// converted, dropped, still open, skipped (the order of the query's a0..a4).
func funnelAmounts(a []float64) FunnelAmounts {
	return FunnelAmounts{
		ReachedAmount: a[0], ConvertedAmount: a[1], DroppedAmount: a[2], StillOpenAmount: a[3], SkippedAmount: a[4],
		AmountConversionRateDecided: ratio(a[1], a[1]+a[2]),
		AmountConversionRateReached: ratio(a[1], a[0]),
	}
}

// TimeToConvert is the distribution of days from K to K+1 over converted
// opportunities that did not skip K: one that reached K by gaining a later
// step reached K+1 at that same instant, which says nothing about how long
// K→K+1 takes. Quantile q is sorted[min(n-1, floor(q*n))].
type TimeToConvert struct {
	// N counts the converted opportunities the figures are over.
	N int64 `json:"n"`
	// Skipped counts the converted opportunities left out of the figures
	// because they skipped K; N + Skipped = converted.
	Skipped   int64    `json:"skipped"`
	Median    *float64 `json:"median_days"`
	P75       *float64 `json:"p75_days"`
	P90       *float64 `json:"p90_days"`
	Histogram []Bucket `json:"histogram"`
}

// setRates fills the rates from the counts.
func (c *FunnelCounts) setRates() {
	c.ConversionRateDecided = ratio(float64(c.Converted), float64(c.Converted+c.Dropped))
	c.ConversionRateReached = ratio(float64(c.Converted), float64(c.Reached))
}

// setAmounts fills the scalar amounts and the rates made of them from
// AmountsByCurrency, as m says.
func (c *FunnelCounts) setAmounts(m fx.Money) {
	by := c.AmountsByCurrency
	c.ReachedAmount = sum(m, by, func(a FunnelAmounts) float64 { return a.ReachedAmount })
	c.ConvertedAmount = sum(m, by, func(a FunnelAmounts) float64 { return a.ConvertedAmount })
	c.StillOpenAmount = sum(m, by, func(a FunnelAmounts) float64 { return a.StillOpenAmount })
	c.DroppedAmount = sum(m, by, func(a FunnelAmounts) float64 { return a.DroppedAmount })
	c.SkippedAmount = sum(m, by, func(a FunnelAmounts) float64 { return a.SkippedAmount })
	c.AmountConversionRateDecided = ratioPtr(c.ConvertedAmount, plus(c.ConvertedAmount, c.DroppedAmount))
	c.AmountConversionRateReached = ratioPtr(c.ConvertedAmount, c.ReachedAmount)
}

var funnelRules = []string{
	"reach_time(o, K) = earliest commitment.gained of o with step index >= K; o reached K when it exists",
	"cohort of step K = opportunities with reach_time(K) in [from, to)",
	"converted = reach_time(K+1) exists and, with a window, reach_time(K+1) - reach_time(K) <= window_days",
	"dropped = not converted and (status as of as_of is lost or won, or with a window reach_time(K) + window_days <= as_of)",
	"still_open = neither converted nor dropped",
	"skipped = cohort members that reached K by gaining a later step: no commitment.gained at step K exactly at reach_time(K) (never, or only later)",
	"amounts, status and by values are the opportunity's facts as of as_of (after every input event up to as_of, in the fold's order)",
	"conversion_rate_decided = converted / (converted + dropped); conversion_rate_reached = converted / reached",
	"time to convert in days = (reach_time(K+1) - reach_time(K)) / 86400 for converted members that did not skip K; converted members that skipped K are left out of it and counted in time_to_convert.skipped; quantile q = sorted[min(n-1, floor(q*n))]",
	"interval periods start on Monday / the 1st of the month / of the quarter, UTC, of reach_time(K)",
	"with top = N (definitions.top), the N by values with the most opportunities in the cohort of some step keep groups of their own, ties by value; the others are merged into one group per step and period marked other (definitions.other_keys counts them)",
}

// Funnel computes conversion K→K+1 for every step K of the ladder but the
// last.
func (q *Querier) Funnel(ctx context.Context, fq FunnelQuery) (*FunnelResult, error) {
	c, err := validateCommon(fq.Tenant, fq.AsOf, fq.Ladder, fq.LadderVersion, 2)
	if err != nil {
		return nil, err
	}
	ask, err := q.checkCurrency(fq.Currency)
	if err != nil {
		return nil, err
	}
	from, to, err := validateRange(fq.From, fq.To)
	if err != nil {
		return nil, err
	}
	window := int64(-1)
	if fq.WindowDays != nil {
		w := *fq.WindowDays
		if w < 0 || w > MaxWindowDays {
			return nil, param.Errorf("window_days", param.OutOfRange, "must be between 0 and %d", MaxWindowDays)
		}
		window = int64(w) * 86400
	}
	if _, err := funnelGrouping(fq.By, fq.Interval, false); err != nil {
		return nil, err
	}
	if fq.Top < 0 {
		return nil, param.Errorf("top", param.OutOfRange, "must be 0 (every value) or more")
	}
	c.defs.From, c.defs.To = timePtr(from), timePtr(to)
	if fq.WindowDays != nil {
		w := *fq.WindowDays
		c.defs.WindowDays = &w
	}
	c.defs.By, c.defs.Interval = fq.By, fq.Interval

	args := func(s *scan) []any {
		return append(s.args,
			clickhouse.Named("tenant", c.tenant),
			clickhouse.Named("asof", int64(ts(c.asOf))),
			clickhouse.Named("window", window),
			clickhouse.Named("nladder", uint64(len(c.ladder))),
			clickhouse.Named("nsteps", uint64(len(c.ladder)-1)),
			clickhouse.Named("from", ts(from)),
			clickhouse.Named("to", ts(to)),
			clickhouse.Named("nb", uint8(len(bucketEdges))),
			clickhouse.Named("skp", uint8(funnelSkipped)),
			byAttr(fq.By))
	}
	type answer struct {
		rows []funnelRow
		keys keyset
	}
	ans, err := readScan(ctx, q, c.tenant, func(s *scan) (answer, error) {
		latest := s.latestBy(ts(c.asOf))
		var keys keyset
		if fq.By != "" {
			var err error
			if keys, err = q.breakdownKeys(s, fq.By, fq.Top, funnelPopulation, args(s), latest); err != nil {
				return answer{}, err
			}
		}
		g, err := funnelGrouping(fq.By, fq.Interval, latest)
		if err != nil {
			return answer{}, err
		}
		perCode := len(keys.top) <= q.codedKeys
		rows, err := queryRows(s, q.conn, "funnel", funnelSQL(s.shape, g, keys, latest, perCode), append(args(s), keys.arg()), (*funnelRow).dest)
		return answer{rows, keys}, err
	})
	if err != nil {
		return nil, err
	}
	return assembleFunnel(c, fq.Top, ans.keys, ans.rows, ask)
}

// funnelGrouping is the grouping of a funnel by by and interval: the facts
// of element fi, the period of reaching the step (rk). Groups are keyed by
// numbers: the period's first day as a Date and the By value's 64-bit
// hash, named from a second query (two values of one tenant collide with
// odds of about n^2/2^65). With latest (shape.latestBy @asof) the value
// is that of the deal's latest_* columns where it has one.
func funnelGrouping(by, interval string, latest bool) (grouping, error) {
	g, err := breakdown(by, interval, "fi", "rk")
	if e, ok := latestElement(by); err == nil && latest && ok {
		g.keyHash = "cityHash64(" + e + ")"
	}
	return g, err
}

// funnelSQL is the query of the funnel answer on sh, grouped as g with the
// By values of keys (funnelRow); with latest (shape.latestBy @asof) each
// deal's amount, currency and whether it is closed come from its latest_*
// columns, not from its facts at fi. With perCode each group's members are
// counted per outcome code first and the numbers made from those counts;
// without it each number is a sum of its own. On 18.16 the codes cost
// less while the groups are few and more when they multiply many: at 10M
// events by owner, monthly, the top 20 values took 0.48 s of ClickHouse
// CPU with the codes and 0.53 s without, every value (240: 26k groups)
// 0.99 s with and 0.78 s without.
func funnelSQL(sh shape, g grouping, keys keyset, latest, perCode bool) string {
	keyHash, period, periodOut := g.keyHash, g.period, g.periodOut
	grouped := g.by != "" || g.interval != ""
	groups := "[toUInt8(0)]"
	if grouped {
		groups = "[toUInt8(0), toUInt8(1)]"
	}

	// Per opportunity: its facts as of as_of (fact index fi), and for
	// K = 1..n reach_time(K) as of as_of in UInt32 seconds (0 = none:
	// reach[K] is the earliest gain at K or above overall, so it holds as
	// of as_of exactly when it is at or before as_of) and whether step K
	// itself was gained by then. Then one row per step K reached in
	// [from, to) with its outcome (cohort). Step K is skipped unless it was
	// gained exactly at reach_time(K): reach[K] <= gained[K] always, and
	// they differ when a later step was gained first (or K never was).
	// Only numbers cross the ARRAY
	// JOIN: on 18.16 a String replicated per row cost more than the rest
	// of the query, so groups are keyed by the By value's hash; and the
	// quantiles are of UInt32 seconds, which cost a fraction of Int64's.
	// A deal whose By value is not among a top N's is keyed to the other
	// group before the ARRAY JOIN, so the aggregation holds the top's
	// groups alone (at 10M events by owner, 0.45 s of ClickHouse CPU
	// instead of 0.82 s).
	fi := readmodel.FactIndex("@asof") + " AS fi,"
	amt, cur, closed := "amounts[fi]", sh.sumCurSQL("fi"), "fact_closed[fi]"
	if latest {
		amt, cur, closed = "latest_amount", sh.sumCurLatestSQL(), "fact_closed[-1]"
		if _, ok := latestElement(g.by); ok || g.by == "" {
			fi = "" // nothing reads the facts at fi: fact_times is not read
		}
	}
	cohort := func(from, prewhere, where string) string {
		return `SELECT K, rk, rk1, skipped, amt, cur, kh,
		` + period + ` AS pd,
		rk1 != 0 AND (@window < 0 OR rk1 - rk <= @window) AS conv,
		NOT conv AND (closed OR (@window >= 0 AND rk + @window <= @asof)) AS dropped
	FROM (
		SELECT ` + fi + `
			` + amt + ` AS amt,
			` + cur + ` AS cur,
			` + closed + ` AS closed,
			` + keys.groupKey(keyHash) + ` AS kh,
			arrayMap(r -> if(r <= toDateTime(@asof), toUInt32(r), toUInt32(0)), arrayResize(reach, @nladder)) AS rks,
			arrayPopBack(rks) AS rk_k,
			arrayPopFront(rks) AS rk_k1,
			arrayMap((g, r) -> g != r, arrayResize(gained, @nsteps), arrayResize(reach, @nsteps)) AS skp
		FROM ` + from + `
		` + prewhere + `
		WHERE ` + where + `
			AND arrayExists(t -> t >= @from AND t < @to, rk_k)
	)
	ARRAY JOIN
		arrayMap(x -> toUInt8(x + 1), range(@nsteps)) AS K,
		rk_k AS rk,
		rk_k1 AS rk1,
		skp AS skipped
	WHERE rk >= @from AND rk < @to`
	}
	// Each branch returns partial counts per (K, period, key, currency): n0..n4
	// reached, converted, dropped, still open, skipped, n5 converted but
	// skipped; a0..a4 their amounts; qs and h0.. the time to convert of
	// the converted that did not skip K, quantiles and count per bucket.
	branch := func(from, prewhere, where string) string {
		if perCode {
			hs := ""
			for i := range bucketEdges {
				hs += fmt.Sprintf(", n * (code = %d) AS h%d", i, i)
			}
			return `SELECT K, pd, kh, cur,
	n AS n0, n * (c < @nb) AS n1, n * (c = @nb + 1) AS n2, n * (c = @nb) AS n3, n * (code >= @skp) AS n4, n * (code >= @skp AND c < @nb) AS n5,
	a AS a0, a * (c < @nb) AS a1, a * (c = @nb + 1) AS a2, a * (c = @nb) AS a3, a * (code >= @skp) AS a4,
	qs` + hs + `
FROM (
	SELECT K, pd, kh, cur, toUInt8(` + funnelCodeSQL + `) AS code, code % @skp AS c,
		count() AS n, sum(amt) AS a,
		quantilesExactIfState(0.5, 0.75, 0.9)(toUInt32(rk1 - rk), conv AND NOT skipped) AS qs
	FROM (` + cohort(from, prewhere, where) + `)
	GROUP BY K, pd, kh, cur, code
)`
		}
		return `SELECT K, pd, kh, cur,
	count() AS n0, sum(conv) AS n1, sum(dropped) AS n2, sum(NOT conv AND NOT dropped) AS n3, sum(skipped) AS n4, sum(conv AND skipped) AS n5,
	sum(amt) AS a0, sum(amt * conv) AS a1, sum(amt * dropped) AS a2, sum(amt * (NOT conv AND NOT dropped)) AS a3, sum(amt * skipped) AS a4,
	quantilesExactIfState(0.5, 0.75, 0.9)(toUInt32(rk1 - rk), conv AND NOT skipped) AS qs` + bucketCountsSQL(bucketIndexSQL("(rk1 - rk)", "conv AND NOT skipped")) + `
FROM (` + cohort(from, prewhere, where) + `)
GROUP BY K, pd, kh, cur`
	}
	// The whole step (g = 0) and its groups (g = 1) are merged from the
	// branches' partial counts per (K, period, key, currency), over
	// all currencies but the amounts.
	return `SELECT K, g, ` + periodOut + `, grp_kh,
		toUInt64(sum(n0)), toUInt64(sum(n1)), toUInt64(sum(n2)), toUInt64(sum(n3)), toUInt64(sum(n4)), toUInt64(sum(n5)),
		` + sumMapSQL("a0", "a1", "a2", "a3", "a4") + `,
		quantilesExactIfMerge(0.5, 0.75, 0.9)(qs)` + bucketSumsSQL() + `
	FROM ` + sh.fanout(func(where string) string { return branch(sh.from, sh.prewhere, where) }) + `
	ARRAY JOIN ` + groups + ` AS g
	GROUP BY K, g, if(g = 0, toDate(0), pd) AS grp_pd, if(g = 0, 0, kh) AS grp_kh`
}

// funnelRow is one row of funnelSQL: the cohort of step k as a whole (g =
// 0) or of one group (g = 1: the period and By value hash kh). n holds
// reached, converted, dropped, still open, skipped and converted but
// skipped; sums the amounts of the first five per currency curs; qs the
// quantiles and hist the histogram of the time to convert of the
// converted that did not skip k, in seconds.
type funnelRow struct {
	k, g   uint8
	period string
	kh     uint64
	n      [6]uint64
	curs   []uint32
	sums   [][]float64
	qs     []uint32
	hist   [len(bucketEdges)]uint64
}

// dest returns the scan destinations of r's columns.
func (r *funnelRow) dest() []any {
	r.sums = make([][]float64, 5)
	dest := append([]any{&r.k, &r.g, &r.period, &r.kh, &r.n[0], &r.n[1], &r.n[2], &r.n[3], &r.n[4], &r.n[5]}, sumMapDest(&r.curs, r.sums)...)
	dest = append(dest, &r.qs)
	for i := range r.hist {
		dest = append(dest, &r.hist[i])
	}
	return dest
}

// assembleFunnel makes the funnel answer of c from the rows of funnelSQL
// and the By values of keys, top the breakdown's top: every step of the
// ladder but the last (empty when no row has it; rows of other steps
// are left out), its groups sorted by period then key (the other group
// last), and the scalar amounts as ask says.
func assembleFunnel(c common, top int, keys keyset, rows []funnelRow, ask moneyAsk) (*FunnelResult, error) {
	res := &FunnelResult{Definitions: c.defs}
	res.Definitions.Rules = funnelRules
	res.Definitions.setTop(c.defs.By, top, keys)
	res.Steps = make([]FunnelStep, len(c.ladder)-1)
	for i := range res.Steps {
		res.Steps[i] = FunnelStep{
			FromStep: c.ladder[i], FromIndex: i + 1,
			ToStep: c.ladder[i+1], ToIndex: i + 2,
			FunnelCounts: emptyCounts(),
		}
	}
	for _, r := range rows {
		if int(r.k) < 1 || int(r.k) > len(res.Steps) {
			continue
		}
		n := r.n
		fc := FunnelCounts{
			Reached: int64(n[0]), Converted: int64(n[1]), Dropped: int64(n[2]), StillOpen: int64(n[3]), Skipped: int64(n[4]),
			AmountsByCurrency: byCurrency(r.curs, r.sums, funnelAmounts),
		}
		fc.TimeToConvert = TimeToConvert{N: int64(n[1] - n[5]), Skipped: int64(n[5]), Histogram: newBuckets()}
		if n[1] > n[5] && len(r.qs) == 3 {
			days := func(secs uint32) *float64 { d := float64(secs) / 86400; return &d }
			fc.TimeToConvert.Median, fc.TimeToConvert.P75, fc.TimeToConvert.P90 = days(r.qs[0]), days(r.qs[1]), days(r.qs[2])
		}
		for i := range r.hist {
			fc.TimeToConvert.Histogram[i].Count = int64(r.hist[i])
		}
		fc.setRates()
		st := &res.Steps[r.k-1]
		if r.g == 0 {
			st.FunnelCounts = fc
		} else {
			key, other := keys.group(r.kh)
			st.Groups = append(st.Groups, FunnelGroup{Period: r.period, Key: key, Other: other, FunnelCounts: fc})
		}
	}
	present := map[string]bool{}
	for i := range res.Steps {
		st := &res.Steps[i]
		sort.Slice(st.Groups, func(a, b int) bool {
			ga, gb := st.Groups[a], st.Groups[b]
			return groupLess(ga.Period, ga.Key, ga.Other, gb.Period, gb.Key, gb.Other)
		})
		addCurrencies(present, st.AmountsByCurrency)
		for _, g := range st.Groups {
			addCurrencies(present, g.AmountsByCurrency)
		}
	}
	m, err := ask.money(c.asOf, present, &res.Definitions)
	if err != nil {
		return nil, err
	}
	for i := range res.Steps {
		st := &res.Steps[i]
		st.setAmounts(m)
		for j := range st.Groups {
			st.Groups[j].setAmounts(m)
		}
	}
	return res, nil
}

// funnelCodeSQL is the outcome code of a cohort member: its
// time-to-convert bucket 0..len(bucketEdges)-1 when converted, else
// len(bucketEdges) when still open, len(bucketEdges)+1 when dropped; plus
// funnelSkipped when it skipped the step. c is the code without that
// flag; a code below len(bucketEdges) is a converted member that did not
// skip, the only ones the histogram counts.
var funnelCodeSQL = bucketIndexSQL("(rk1 - rk)", "conv") + " + dropped + " + itoa(funnelSkipped) + " * skipped"

// funnelSkipped is the flag funnelCodeSQL adds for a skipped step.
const funnelSkipped = 16

// breakdownKeys names the By values of a breakdown's groups by their
// cityHash64 and keeps the top ones: the values of dimension by as of
// @asof among the tenant's opportunities for which cond (an SQL condition
// on an opportunity_state row) holds, ranked by how many such
// opportunities have each, most first, ties by value. With top > 0 only
// the first top values keep their own groups: the others are merged into
// one group per period (see otherKey), and other counts them.
func (q *Querier) breakdownKeys(s *scan, by string, top int, cond string, args []any, latest bool) (keyset, error) {
	rows, err := queryRows(s, q.conn, "breakdown keys", breakdownKeysSQL(s.shape, by, cond, latest), args, (*keyRow).dest)
	if err != nil {
		return keyset{}, err
	}
	return topKeys(rows, top), nil
}

// breakdownKeysSQL is the query of breakdownKeys on sh (keyRow), most
// opportunities first, ties by value; with latest (shape.latestBy @asof)
// the values of the deals' latest_* columns where they have one.
func breakdownKeysSQL(sh shape, by, cond string, latest bool) string {
	elem, _ := byElement(by, readmodel.FactIndex("@asof"))
	if e, ok := latestElement(by); latest && ok {
		elem = e
	}
	return `SELECT key, cityHash64(key), sum(n) AS n FROM ` + sh.fanout(func(where string) string {
		return `SELECT ` + elem + ` AS key, count() AS n
		FROM ` + sh.from + `
		` + sh.prewhere + `
		WHERE ` + where + ` AND (` + cond + `)
		GROUP BY key`
	}) + `
	GROUP BY key
	ORDER BY n DESC, key`
}

// keyRow is one row of breakdownKeysSQL: a By value, its cityHash64 and
// how many opportunities have it.
type keyRow struct {
	key     string
	hash, n uint64
}

// dest returns the scan destinations of r's columns.
func (r *keyRow) dest() []any { return []any{&r.key, &r.hash, &r.n} }

// topKeys keeps the first top of the By values of rows (all when top is
// 0), in order, and counts the others.
func topKeys(rows []keyRow, top int) keyset {
	k := keyset{names: map[uint64]string{}}
	for _, r := range rows {
		if top > 0 && len(k.names) == top {
			k.other++
			continue
		}
		k.names[r.hash] = r.key
		k.top = append(k.top, r.hash)
	}
	return k
}

// funnelPopulation is the condition of an opportunity in a funnel
// answer: it reached a step below the last in [@from, @to) as of @asof.
const funnelPopulation = `arrayExists(r -> r <= toDateTime(@asof) AND toUInt32(r) >= @from AND toUInt32(r) < @to, arrayResize(reach, @nsteps))`

// groupLess orders groups by period, then key, the other group last.
func groupLess(pa, ka string, oa bool, pb, kb string, ob bool) bool {
	if pa != pb {
		return pa < pb
	}
	if oa != ob {
		return ob
	}
	return ka < kb
}

// keyset is the By values of a breakdown that keep their own groups.
type keyset struct {
	// names maps a value's cityHash64 to the value.
	names map[uint64]string
	// top holds the hashes of names, most opportunities first.
	top []uint64
	// other counts the values merged into the other group.
	other int
}

// otherKey is the group key hash of the values a top-N breakdown merges.
// A value hashing to it would be taken for them: odds 2^-64 per value.
const otherKey = 1

// groupKey returns the SQL of the group key of a row whose By value
// hashes to kh: kh, or otherKey when the value is not among the top.
func (k keyset) groupKey(kh string) string {
	if k.other == 0 {
		return kh
	}
	return "if(has(@top_keys, " + kh + "), " + kh + ", toUInt64(" + itoa(otherKey) + "))"
}

// arg is the @top_keys argument of groupKey.
func (k keyset) arg() driver.NamedValue {
	return clickhouse.Named("top_keys", append([]uint64{}, k.top...))
}

// group returns the Key and Other of the group with key hash kh.
func (k keyset) group(kh uint64) (string, bool) {
	if k.other > 0 && kh == otherKey {
		return "", true
	}
	return k.names[kh], false
}

// emptyCounts are the counts of an empty cohort.
func emptyCounts() FunnelCounts {
	c := FunnelCounts{TimeToConvert: TimeToConvert{Histogram: newBuckets()}}
	c.setRates()
	return c
}

// grouping is the SQL of a breakdown by a fact (By) and a period
// (Interval): by and interval are the dimension and the interval (empty
// for none), keyHash the group key's hash of its value, period the period
// of a time, periodOut the period as the answer shows it.
type grouping struct{ by, interval, keyHash, period, periodOut string }

// breakdown returns the grouping of by and interval, taking the fact of
// element fi and the period of the time at (SQL expressions), or an input
// error naming the parameter that is not one of the known values.
func breakdown(by, interval, fi, at string) (grouping, error) {
	g := grouping{keyHash: "toUInt64(0)", period: "toDate(0)", periodOut: "''"}
	if by != "" {
		elem, ok := byElement(by, fi)
		if !ok {
			return grouping{}, errBy
		}
		g.by, g.keyHash = by, "cityHash64("+elem+")"
	}
	if interval != "" {
		fn, ok := intervalFunc(interval)
		if !ok {
			return grouping{}, param.Errorf("interval", param.Invalid, "must be one of week, month, quarter")
		}
		g.interval, g.period = interval, fmt.Sprintf("%s(toDateTime(%s), 'UTC')", fn, at)
		g.periodOut = "if(g = 0, '', toString(grp_pd))"
	}
	return g, nil
}
