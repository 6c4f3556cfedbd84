package metrics

import (
	"context"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/commitflow/commitflow/internal/param"
	"github.com/commitflow/commitflow/internal/readmodel"
)

// CycleQuery asks how long the deals closed in [From, To) took to close:
// from their creation, or from reaching step FromStep.
type CycleQuery struct {
	Tenant string
	// AsOf is the instant the answer is computed at; zero means now.
	AsOf     time.Time
	From, To time.Time
	// FromStep is the ladder key of the step the cycle starts at; "" means
	// from the deal's creation.
	FromStep string
	// By breaks the answer down by a fact as of AsOf: owner, team,
	// segment, source or product ("" for none).
	By string
	// Interval groups the deals by the week, month or quarter in which
	// they closed ("" for none).
	Interval string
	// Top, when above 0, keeps the Top By values with the most deals
	// closed in [From, To) in groups of their own and merges the others
	// into one group per period (Other); 0 keeps every value.
	Top int
	// Ladder holds the step keys in order; step K is Ladder[K-1].
	Ladder        []string
	LadderVersion string
}

// cyclePopulation is the condition of a deal in a cycle-time answer: its
// last close as of @asof is in [@from, @to) and it is closed as of @asof.
var cyclePopulation = `arrayCount(t -> t <= toDateTime(@asof), close_times) > 0
	AND toUInt32(close_times[arrayCount(t -> t <= toDateTime(@asof), close_times)]) >= @from
	AND toUInt32(close_times[arrayCount(t -> t <= toDateTime(@asof), close_times)]) < @to
	AND fact_closed[` + readmodel.FactIndex("@asof") + `] = 1`

// CycleResult is the cycle time of the deals won, lost and closed in the
// period.
type CycleResult struct {
	Definitions Definitions `json:"definitions"`
	// FromStep and FromIndex name the step the cycle starts at; "" and 0
	// mean the deal's creation.
	FromStep  string `json:"from_step"`
	FromIndex int    `json:"from_index"`
	CycleOutcomes
	// Groups breaks the answer down by period and/or By value, sorted by
	// Period then Key; only groups with a closed deal are listed.
	Groups []CycleGroup `json:"groups,omitempty"`
}

// CycleGroup is one period and/or By value.
type CycleGroup struct {
	// Period is the first day (UTC, YYYY-MM-DD) of the week, month or
	// quarter in which the deals closed; "" without Interval.
	Period string `json:"period,omitempty"`
	// Key is the By value; "" without By (or when the fact is empty).
	Key string `json:"key"`
	// Other marks the group of the By values a top-N breakdown merged
	// (Key is then "").
	Other bool `json:"other,omitempty"`
	CycleOutcomes
}

// CycleOutcomes are the cycle times of won, lost and all closed deals.
type CycleOutcomes struct {
	Won    CycleTime `json:"won"`
	Lost   CycleTime `json:"lost"`
	Closed CycleTime `json:"closed"`
}

// CycleTime is the distribution of days from the start (creation or the
// step) to the close. Quantile q is sorted[min(n-1, floor(q*n))].
type CycleTime struct {
	// N counts the deals the figures are over.
	N int64 `json:"n"`
	// NotReached counts the deals closed in the period that had not
	// reached the step by their close (from creation: with no creation
	// known), left out of the figures.
	NotReached int64    `json:"not_reached"`
	Median     *float64 `json:"median_days"`
	P75        *float64 `json:"p75_days"`
	P90        *float64 `json:"p90_days"`
}

var cycleRules = []string{
	"status of a deal as of as_of = its facts' status as of as_of (a deal reopened by a move back to an open stage, and not closed again, is open: not counted); close time = that of its last deal.closed at or before as_of, in the fold's order (a lost deal later won is won, closed when won)",
	"the deals counted are those whose close time as of as_of is in [from, to): won, lost, and closed = both",
	"start = the deal's creation (deal.created) or, with from_step K, reach_time(K) = earliest commitment.gained with step index >= K (a skipped step is reached when a later one is gained)",
	"cycle time in days = (close time - start) / 86400, over the deals with a start at or before their close; the others are counted in not_reached; quantile q = sorted[min(n-1, floor(q*n))]",
	"by values are the deal's facts as of as_of (after every input event up to as_of, in the fold's order)",
	"interval periods start on Monday / the 1st of the month / of the quarter, UTC, of the close time",
	"with top = N (definitions.top), the N by values with the most deals counted keep groups of their own, ties by value; the others are merged into one group per period marked other (definitions.other_keys counts them)",
}

// CycleTime computes how long the deals that closed in [From, To) took,
// from creation or from reaching a step, per outcome.
func (q *Querier) CycleTime(ctx context.Context, cq CycleQuery) (*CycleResult, error) {
	c, err := validateCommon(cq.Tenant, cq.AsOf, cq.Ladder, cq.LadderVersion, 1)
	if err != nil {
		return nil, err
	}
	from, to, err := validateRange(cq.From, cq.To)
	if err != nil {
		return nil, err
	}
	k := 0
	if cq.FromStep != "" {
		k = slices.Index(c.ladder, cq.FromStep) + 1
		if k == 0 {
			return nil, param.Errorf("from_step", param.Invalid, "must be one of %s, or empty for the creation", strings.Join(c.ladder, ", "))
		}
	}
	g, err := cycleGrouping(cq.By, cq.Interval)
	if err != nil {
		return nil, err
	}
	if cq.Top < 0 {
		return nil, param.Errorf("top", param.OutOfRange, "must be 0 (every value) or more")
	}
	c.defs.From, c.defs.To = timePtr(from), timePtr(to)
	c.defs.By, c.defs.Interval = cq.By, cq.Interval

	args := func(s *scan) []any {
		return append(s.args,
			clickhouse.Named("tenant", c.tenant),
			clickhouse.Named("asof", int64(ts(c.asOf))),
			clickhouse.Named("from", ts(from)),
			clickhouse.Named("to", ts(to)),
			clickhouse.Named("k", uint64(k)),
			byAttr(cq.By))
	}
	type answer struct {
		rows []cycleRow
		keys keyset
	}
	ans, err := readScan(ctx, q, c.tenant, func(s *scan) (answer, error) {
		var keys keyset
		if cq.By != "" {
			var err error
			if keys, err = q.breakdownKeys(s, cq.By, cq.Top, cyclePopulation, args(s), s.latestBy(ts(c.asOf))); err != nil {
				return answer{}, err
			}
		}
		rows, err := queryRows(s, q.conn, "cycle time", cycleSQL(s.shape, g, k, keys), append(args(s), keys.arg()), (*cycleRow).dest)
		return answer{rows, keys}, err
	})
	if err != nil {
		return nil, err
	}
	return assembleCycle(c, cq.FromStep, k, cq.Top, ans.keys, ans.rows), nil
}

// cycleGrouping is the grouping of a cycle-time answer by by and interval:
// the facts as of @asof, the period of the close (ct). As in the funnel,
// groups are keyed by numbers: the period's first day and the By value's
// 64-bit hash, named by breakdownKeys.
func cycleGrouping(by, interval string) (grouping, error) {
	return breakdown(by, interval, readmodel.FactIndex("@asof"), "ct")
}

// cycleSQL is the query of the cycle-time answer on sh, grouped as g with
// the By values of keys, from the deal's creation (k = 0) or from reaching
// step @k (cycleRow).
func cycleSQL(sh shape, g grouping, k int, keys keyset) string {
	keyHash, period, periodOut := g.keyHash, g.period, g.periodOut
	start := "toUInt32(created_at)"
	if k > 0 {
		start = "toUInt32(reach[@k])"
	}
	grouped := g.by != "" || g.interval != ""
	// x = 2g + h: g = 1 for the group's row, 0 for the total; h = 1 for
	// the deal's own outcome (won or lost), 0 for closed.
	xs := "[toUInt8(0), toUInt8(1)]"
	if grouped {
		xs = "[toUInt8(0), toUInt8(1), toUInt8(2), toUInt8(3)]"
	}

	// Per opportunity: its last close as of as_of (index ci in the close_*
	// arrays, in fold order; 0 = still open), kept when in [from, to);
	// then partial counts and quantile states per (period, key, won).
	branch := func(from, prewhere, where string) string {
		return `SELECT pd, kh, won, count() AS n, sum(ok) AS nok,
	quantilesExactIfState(0.5, 0.75, 0.9)(secs, ok) AS qs
FROM (
	SELECT arrayCount(t -> t <= toDateTime(@asof), close_times) AS ci,
		toUInt32(close_times[ci]) AS ct,
		close_statuses[ci] = 'won' AS won,
		` + start + ` AS st,
		st != 0 AND st <= ct AS ok,
		toUInt32(if(ok, ct - st, 0)) AS secs,
		` + period + ` AS pd,
		` + keys.groupKey(keyHash) + ` AS kh
	FROM ` + from + `
	` + prewhere + `
	WHERE ` + where + `
		AND ci > 0 AND ct >= @from AND ct < @to
		AND fact_closed[` + readmodel.FactIndex("@asof") + `] = 1
)
GROUP BY pd, kh, won`
	}
	return `SELECT g, o, ` + periodOut + `, grp_kh,
	toUInt64(sum(n)), toUInt64(sum(nok)), quantilesExactIfMerge(0.5, 0.75, 0.9)(qs)
FROM (
	SELECT intDiv(x, 2) AS g, if(x % 2 = 0, 0, if(won, 1, 2)) AS o,
		if(g = 0, toDate(0), pd) AS grp_pd, if(g = 0, 0, kh) AS grp_kh, n, nok, qs
	FROM ` + sh.fanout(func(where string) string { return branch(sh.from, sh.prewhere, where) }) + `
	ARRAY JOIN ` + xs + ` AS x
)
GROUP BY g, o, grp_pd, grp_kh`
}

// cycleRow is one row of cycleSQL: the deals of the whole answer (g = 0)
// or of one group (g = 1: the period and By value hash kh) with outcome o
// (0 closed, 1 won, 2 lost); n counts them, nok those with a start at or
// before their close, and qs are the quantiles of their cycle times in
// seconds.
type cycleRow struct {
	g, o   uint8
	period string
	kh     uint64
	n, nok uint64
	qs     []uint32
}

// dest returns the scan destinations of r's columns.
func (r *cycleRow) dest() []any {
	return []any{&r.g, &r.o, &r.period, &r.kh, &r.n, &r.nok, &r.qs}
}

// assembleCycle makes the cycle-time answer of c from the rows of
// cycleSQL, from step fromStep (index k; "" and 0 for the creation), with
// the By values of keys, top the breakdown's top: the outcomes in total
// and per group, the groups sorted by period then key (the other group
// last).
func assembleCycle(c common, fromStep string, k, top int, keys keyset, rows []cycleRow) *CycleResult {
	res := &CycleResult{Definitions: c.defs, FromStep: fromStep, FromIndex: k}
	res.Definitions.Rules = cycleRules
	res.Definitions.setTop(c.defs.By, top, keys)
	type gkey struct {
		period string
		kh     uint64
	}
	groups := map[gkey]*CycleGroup{}
	for _, r := range rows {
		ct := CycleTime{N: int64(r.nok), NotReached: int64(r.n - r.nok)}
		if r.nok > 0 && len(r.qs) == 3 {
			days := func(secs uint32) *float64 { d := float64(secs) / 86400; return &d }
			ct.Median, ct.P75, ct.P90 = days(r.qs[0]), days(r.qs[1]), days(r.qs[2])
		}
		out := &res.CycleOutcomes
		if r.g != 0 {
			gk := gkey{r.period, r.kh}
			if groups[gk] == nil {
				key, other := keys.group(r.kh)
				groups[gk] = &CycleGroup{Period: r.period, Key: key, Other: other}
			}
			out = &groups[gk].CycleOutcomes
		}
		switch r.o {
		case 0:
			out.Closed = ct
		case 1:
			out.Won = ct
		default:
			out.Lost = ct
		}
	}
	for _, grp := range groups {
		res.Groups = append(res.Groups, *grp)
	}
	sort.Slice(res.Groups, func(a, b int) bool {
		ga, gb := res.Groups[a], res.Groups[b]
		return groupLess(ga.Period, ga.Key, ga.Other, gb.Period, gb.Key, gb.Other)
	})
	return res
}
