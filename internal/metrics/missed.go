package metrics

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/commitflow/commitflow/internal/readmodel"
)

// MissedQuery asks for the commitments missed in [From, To).
type MissedQuery struct {
	Tenant string
	// AsOf is the instant the answer is computed at; zero means now.
	AsOf          time.Time
	From, To      time.Time
	Ladder        []string
	LadderVersion string
	// Currency is the currency to convert the amounts to with the
	// Querier's rate table; "" means its base currency.
	Currency string
}

// MissedResult is the missed commitments by expected step, reason and owner.
type MissedResult struct {
	Definitions Definitions `json:"definitions"`
	Total       MissedRow   `json:"total"`
	// ByStep is sorted by step index, ByReason by reason, ByOwner by owner
	// id; a row is listed when it has a miss or an interaction.
	ByStep   []MissedRow `json:"by_step"`
	ByReason []MissedRow `json:"by_reason"`
	ByOwner  []MissedRow `json:"by_owner"`
}

// MissedRow is the misses of one step, reason or owner.
type MissedRow struct {
	// Key is the step key, the reason or the owner id.
	Key       string `json:"key"`
	StepIndex int    `json:"step_index,omitempty"`
	// Missed counts commitment.missed events.
	Missed int64 `json:"missed"`
	// Deals counts the distinct deals with at least one miss in the row;
	// ValueAtStake sums their amounts as of as_of, each deal once, by the
	// rule of FunnelCounts: one currency, converted, or nil. A deal
	// counts once in the total and once in every row it has a miss in,
	// so the rows of a breakdown may add up to more than the total.
	Deals        int64    `json:"deals"`
	ValueAtStake *float64 `json:"value_at_stake"`
	// AmountsByCurrency holds the value at stake per currency (the deals'
	// currencies as of as_of), unconverted.
	AmountsByCurrency map[string]MissedAmounts `json:"amounts_by_currency,omitempty"`
	// MissedInteractions counts distinct interactions with a miss, leaving
	// out the reasons that are not about an interaction.
	MissedInteractions int64 `json:"missed_interactions"`
	// Interactions counts interaction.held events (not by reason).
	Interactions int64 `json:"interactions"`
	// MissRate is MissedInteractions / Interactions; null when there are
	// no interactions or the row is a reason.
	MissRate *float64 `json:"miss_rate"`
}

// MissedAmounts is the value at stake of a row in one currency.
type MissedAmounts struct {
	ValueAtStake float64 `json:"value_at_stake"`
}

func missedAmounts(a []float64) MissedAmounts { return MissedAmounts{ValueAtStake: a[0]} }

var missedRules = []string{
	"missed = commitment.missed events with occurred_at in [from, to) and at or before as_of",
	"step = the expected step of the miss or interaction; owner = owner_id of that event's snapshot",
	"deals = distinct opportunities with at least one miss in the row; value_at_stake = the sum of their amounts as of as_of (each in its currency then), each deal counted once: once in the total, and once in every step, reason and owner row it has a miss in, so a breakdown's rows may add up to more than the total",
	"missed_interactions = distinct interaction ids of misses, leaving out reasons close_date_pushed and no_decision (not interactions) and empty ids",
	"interactions = interaction.held events in [from, to) at or before as_of, for the same step or owner",
	"miss_rate = missed_interactions / interactions, per step, per owner and in total",
}

// Missed computes the missed commitments and miss rates in [From, To).
func (q *Querier) Missed(ctx context.Context, mq MissedQuery) (*MissedResult, error) {
	r, err := q.checkRanged(mq.Tenant, mq.AsOf, mq.Ladder, mq.LadderVersion, mq.Currency, mq.From, mq.To)
	if err != nil {
		return nil, err
	}
	c, ask, from, to := r.c, r.ask, r.from, r.to
	rows, err := readScan(ctx, q, c.tenant, func(s *scan) ([]missedRow, error) {
		args := append(s.args,
			clickhouse.Named("tenant", c.tenant),
			clickhouse.Named("asof", ts(c.asOf)),
			clickhouse.Named("from", ts(from)),
			clickhouse.Named("to", ts(to)))
		return queryRows(s, q.conn, "missed", missedSQL(s.shape, s.latestBy(ts(c.asOf))), args, (*missedRow).dest)
	})
	if err != nil {
		return nil, err
	}
	return assembleMissed(c, from, to, rows, ask)
}

// missedSQL is the query of the missed answer on sh (missedRow).
//
// Each miss is counted without distinct sets: a miss is the first in
// range of its interaction in a dimension (step, reason, owner) when the
// previous miss of the same interaction there (its miss_prev* element,
// see schemas/clickhouse/0103_opportunity_state_miss_prev.sql) is before
// @from, and the first of its deal with that step, reason or owner when
// the deal's previous miss with it (miss_deal_prev*, 0113) is; over all
// steps, the deal's previous miss is the one before it. So the distinct
// interactions and deals are sums, and a deal's amount as of @asof is
// added on its first miss alone, grouped by the deal's currency then (cur,
// see sumCurSQL). The total is the sum of the steps' counts over all
// steps (u0, d0, v0).
//
// One pass over the misses groups them by (step, reason, currency) and
// yields a step row and a reason row of each group; another groups them by
// (owner, currency); two more count the interactions held per step and
// owner. Each branch yields its rows as arrays of one element per (dim,
// k), ARRAY JOINed and summed by the outer query. On 18.16 a GROUP BY
// over several Strings (the owner with the reason) cost more than a pass
// of its own, while a step beside the reason costs little, and every pass
// reads the deal's amount again: with latest (shape.latestBy @asof) its
// latest_amount and latest_currency, not the fact arrays.
func missedSQL(sh shape, latest bool) string {
	in := func(t string) string {
		return t + " >= toDateTime(@from) AND " + t + " < toDateTime(@to) AND " + t + " <= toDateTime(@asof)"
	}
	// The deal's amount (amt) and currency (cur, see sumCurSQL) as of
	// @asof, looked up once per deal before the ARRAY JOIN copies them
	// beside each of its misses.
	fi := readmodel.FactIndex("@asof")
	deal := "amounts[" + fi + "] AS amt, " + sh.sumCurSQL(fi) + " AS cur"
	if latest {
		deal = "latest_amount AS amt, " + sh.sumCurLatestSQL() + " AS cur"
	}
	// pass reads the tenant's misses or interactions in range: the columns
	// (with deal, if given) of the tenant's rows, then the arrays ARRAY
	// JOINed as named (t is the event time).
	pass := func(where, deal, columns, arrays string) string {
		if deal != "" {
			columns = deal + ", " + columns
		}
		return `FROM (
			SELECT ` + columns + `
			FROM ` + sh.from + `
			` + sh.prewhere + `
			WHERE ` + where + `
		)
		ARRAY JOIN ` + arrays + `
		WHERE ` + in("t")
	}
	// The deal's previous miss over all steps is the one before.
	prev := "arrayPopBack(arrayPushFront(arrayMap(m -> toUInt32(m), miss_times), toUInt32(0)))"
	// A miss pass counts its misses (n) and sums their deals' amounts (a)
	// per code, whose bit i is set when the miss is the first in range of
	// its kind i (the ith of the columns code was made of is before
	// @from), and makes every number from those: on 18.16 a sum of a
	// comparison per number costs more (the step and reason pass at 10M
	// events took 0.25 s of ClickHouse CPU, with the codes 0.21 s).
	code := func(cols ...string) string {
		s := make([]string, len(cols))
		for i, c := range cols {
			s[i] = fmt.Sprintf("%d * (%s < @from)", 1<<i, c)
		}
		return "toUInt8(" + strings.Join(s, " + ") + ") AS code"
	}
	first := func(i int) string { return fmt.Sprintf("n * bitTest(code, %d)", i) }
	value := func(i int) string { return fmt.Sprintf("a * bitTest(code, %d)", i) }
	const none, zero = "toUInt64(0)", "toFloat64(0)"
	// row is one branch's columns: the arrays of its rows' dims, keys,
	// misses, first interactions (all steps: u0), first deals (d0), values
	// at stake (v0) and interactions held, then the currency.
	row := func(dims, ks, ns, us, u0s, ds, d0s, vs, v0s, held, cur string) string {
		return `SELECT [` + dims + `] AS dims, [` + ks + `] AS ks, [` + ns + `] AS ns, [` + us + `] AS us, [` + u0s + `] AS u0s,
			[` + ds + `] AS ds, [` + d0s + `] AS d0s, [` + vs + `] AS vs, [` + v0s + `] AS v0s, [` + held + `] AS helds, ` + cur + ` AS cur`
	}
	return `SELECT dim, k, toUInt64(sum(n)), ` + sumMapSQL("v", "v0") + `, toUInt64(sum(d)), toUInt64(sum(d0)),
	toUInt64(sum(u)), toUInt64(sum(u0)), toUInt64(sum(held))
FROM ` + sh.fanout(func(where string) string {
		return row("'step', 'reason'", "toString(step_index), reason", "n, n",
			first(0)+", "+first(1), first(2)+", "+none,
			first(3)+", "+first(4), first(5)+", "+none,
			value(3)+", "+value(4), value(5)+", "+zero, none+", "+none, "cur") + `
		FROM (
			SELECT step_index, reason, cur, ` + code("p1", "p2", "p0", "fs", "fr", "f0") + `, count() AS n, sum(amt) AS a
			` + pass(where, deal, "miss_times, miss_steps, miss_reasons, miss_prev, miss_prev_step, miss_prev_reason, miss_deal_prev_step, miss_deal_prev_reason",
			"miss_times AS t, miss_steps AS step_index, miss_reasons AS reason, miss_prev AS p0, miss_prev_step AS p1, miss_prev_reason AS p2, miss_deal_prev_step AS fs, miss_deal_prev_reason AS fr, "+prev+" AS f0") + `
			GROUP BY step_index, reason, cur, code
		)
	UNION ALL
		` + row("'owner'", "owner_id", "n", first(0), none, first(1), none, value(1), zero, none, "cur") + `
		FROM (
			SELECT owner_id, cur, ` + code("p3", "f") + `, count() AS n, sum(amt) AS a
			` + pass(where, deal, "miss_times, miss_owners, miss_prev_owner, miss_deal_prev_owner",
			"miss_times AS t, miss_owners AS owner_id, miss_prev_owner AS p3, miss_deal_prev_owner AS f") + `
			GROUP BY owner_id, cur, code
		)
	UNION ALL
		` + row("'step'", "toString(step_index)", none, none, none, none, none, zero, zero, "count()", "toUInt32(0)") + `
		` + pass(where, "", "held_times, held_steps", "held_times AS t, held_steps AS step_index") + `
		GROUP BY step_index
	UNION ALL
		` + row("'owner'", "owner_id", none, none, none, none, none, zero, zero, "count()", "toUInt32(0)") + `
		` + pass(where, "", "held_times, held_owners", "held_times AS t, held_owners AS owner_id") + `
		GROUP BY owner_id`
	}) + `
ARRAY JOIN dims AS dim, ks AS k, ns AS n, us AS u, u0s AS u0, ds AS d, d0s AS d0, vs AS v, v0s AS v0, helds AS held
GROUP BY dim, k
ORDER BY dim, k`
}

// missedRow is one row of missedSQL: the misses of the step, reason or
// owner (dim) k. sums[0] is the value at stake of the deals whose first
// miss in range with k it holds, sums[1] (steps only) of those whose first
// miss in range over all steps it holds, per currency curs; deals and
// deals0 count those deals, firstInts (steps only) the interactions whose
// first miss in range it holds.
type missedRow struct {
	dim, k                                     string
	missed                                     uint64
	curs                                       []uint32
	sums                                       [][]float64
	deals, deals0, missedInts, firstInts, held uint64
}

// dest returns the scan destinations of r's columns.
func (r *missedRow) dest() []any {
	r.sums = make([][]float64, 2)
	dest := append([]any{&r.dim, &r.k, &r.missed}, sumMapDest(&r.curs, r.sums)...)
	return append(dest, &r.deals, &r.deals0, &r.missedInts, &r.firstInts, &r.held)
}

// assembleMissed makes the missed answer of c in [from, to) from the rows
// of missedSQL: the rows by step (named by the ladder), reason and owner,
// sorted, the total summed from the steps' rows, the miss rates and the
// scalar amounts as ask says.
func assembleMissed(c common, from, to time.Time, rows []missedRow, ask moneyAsk) (*MissedResult, error) {
	res := &MissedResult{Definitions: c.defs, ByStep: []MissedRow{}, ByReason: []MissedRow{}, ByOwner: []MissedRow{}}
	res.Definitions.From, res.Definitions.To = timePtr(from), timePtr(to)
	res.Definitions.Rules = missedRules
	for _, row := range rows {
		r := MissedRow{Key: row.k, Missed: int64(row.missed), Deals: int64(row.deals), AmountsByCurrency: byCurrency(row.curs, row.sums[:1], missedAmounts),
			MissedInteractions: int64(row.missedInts), Interactions: int64(row.held)}
		switch row.dim {
		case "step":
			i, err := strconv.Atoi(row.k)
			if err != nil {
				return nil, fmt.Errorf("missed: step index %q: %w", row.k, err)
			}
			r.StepIndex, r.Key = i, stepName(c.ladder, i)
			r.MissRate = ratio(float64(r.MissedInteractions), float64(r.Interactions))
			res.ByStep = append(res.ByStep, r)
			res.Total.Missed += r.Missed
			res.Total.Deals += int64(row.deals0)
			addMissed(&res.Total.AmountsByCurrency, byCurrency(row.curs, row.sums[1:], missedAmounts))
			res.Total.MissedInteractions += int64(row.firstInts)
			res.Total.Interactions += r.Interactions
		case "reason":
			res.ByReason = append(res.ByReason, r)
		case "owner":
			r.MissRate = ratio(float64(r.MissedInteractions), float64(r.Interactions))
			res.ByOwner = append(res.ByOwner, r)
		}
	}
	res.Total.MissRate = ratio(float64(res.Total.MissedInteractions), float64(res.Total.Interactions))
	sort.Slice(res.ByStep, func(a, b int) bool { return res.ByStep[a].StepIndex < res.ByStep[b].StepIndex })
	sort.Slice(res.ByReason, func(a, b int) bool { return res.ByReason[a].Key < res.ByReason[b].Key })
	sort.Slice(res.ByOwner, func(a, b int) bool { return res.ByOwner[a].Key < res.ByOwner[b].Key })
	present := map[string]bool{}
	addCurrencies(present, res.Total.AmountsByCurrency)
	m, err := ask.money(c.asOf, present, &res.Definitions)
	if err != nil {
		return nil, err
	}
	amount := func(r *MissedRow) {
		r.ValueAtStake = sum(m, r.AmountsByCurrency, func(a MissedAmounts) float64 { return a.ValueAtStake })
	}
	amount(&res.Total)
	for _, rows := range [][]MissedRow{res.ByStep, res.ByReason, res.ByOwner} {
		for i := range rows {
			amount(&rows[i])
		}
	}
	return res, nil
}

// addMissed adds the value at stake per currency of by to *to.
func addMissed(to *map[string]MissedAmounts, by map[string]MissedAmounts) {
	for c, a := range by {
		if *to == nil {
			*to = map[string]MissedAmounts{}
		}
		t := (*to)[c]
		t.ValueAtStake += a.ValueAtStake
		(*to)[c] = t
	}
}
