package metrics

import (
	"context"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/commitflow/commitflow/internal/fx"
	"github.com/commitflow/commitflow/internal/readmodel"
)

// MovementQuery asks how the pipeline moved between From and To.
type MovementQuery struct {
	Tenant string
	// AsOf is the instant the answer is computed at; zero means now.
	// Events after AsOf are ignored even when To is later.
	AsOf          time.Time
	From, To      time.Time
	Ladder        []string
	LadderVersion string
	// Currency is the currency to convert the amounts to with the
	// Querier's rate table; "" means its base currency.
	Currency string
}

// MovementResult is the pipeline movement in total and by step.
type MovementResult struct {
	Definitions Definitions    `json:"definitions"`
	Total       MovementCounts `json:"total"`
	// ByStep is by highest step reached at To: step 0 to the last ladder
	// step, and any higher index that has movement.
	ByStep []MovementStep `json:"by_step"`
}

// MovementStep is the movement of opportunities whose highest step at To is
// StepIndex.
type MovementStep struct {
	StepIndex int    `json:"step_index"`
	Step      string `json:"step"`
	MovementCounts
}

// MovementCounts counts opportunities per kind of movement, and sums their
// amount as of To. One opportunity may count in several kinds. The scalar
// amounts follow the rule of FunnelCounts: one currency, converted, or nil.
type MovementCounts struct {
	New             int64    `json:"new"`
	NewAmount       *float64 `json:"new_amount"`
	Advanced        int64    `json:"advanced"`
	AdvancedAmount  *float64 `json:"advanced_amount"`
	Regressed       int64    `json:"regressed"`
	RegressedAmount *float64 `json:"regressed_amount"`
	Stalled         int64    `json:"stalled"`
	StalledAmount   *float64 `json:"stalled_amount"`
	PulledIn        int64    `json:"pulled_in"`
	PulledInAmount  *float64 `json:"pulled_in_amount"`
	PushedOut       int64    `json:"pushed_out"`
	PushedOutAmount *float64 `json:"pushed_out_amount"`
	Won             int64    `json:"won"`
	WonAmount       *float64 `json:"won_amount"`
	Lost            int64    `json:"lost"`
	LostAmount      *float64 `json:"lost_amount"`
	// AmountsByCurrency holds the amounts per currency, unconverted.
	AmountsByCurrency map[string]MovementAmounts `json:"amounts_by_currency,omitempty"`
}

// MovementAmounts are the amounts of each kind of movement in one
// currency.
type MovementAmounts struct {
	NewAmount       float64 `json:"new_amount"`
	AdvancedAmount  float64 `json:"advanced_amount"`
	RegressedAmount float64 `json:"regressed_amount"`
	StalledAmount   float64 `json:"stalled_amount"`
	PulledInAmount  float64 `json:"pulled_in_amount"`
	PushedOutAmount float64 `json:"pushed_out_amount"`
	WonAmount       float64 `json:"won_amount"`
	LostAmount      float64 `json:"lost_amount"`
}

// movementAmounts makes the MovementAmounts of the sums a, in the order
// of the query's a0..a7.
func movementAmounts(a []float64) MovementAmounts {
	return MovementAmounts{NewAmount: a[0], AdvancedAmount: a[1], RegressedAmount: a[2], StalledAmount: a[3],
		PulledInAmount: a[4], PushedOutAmount: a[5], WonAmount: a[6], LostAmount: a[7]}
}

// add adds the counts and the amounts per currency of o.
func (m *MovementCounts) add(o MovementCounts) {
	m.New += o.New
	m.Advanced += o.Advanced
	m.Regressed += o.Regressed
	m.Stalled += o.Stalled
	m.PulledIn += o.PulledIn
	m.PushedOut += o.PushedOut
	m.Won += o.Won
	m.Lost += o.Lost
	for c, a := range o.AmountsByCurrency {
		if m.AmountsByCurrency == nil {
			m.AmountsByCurrency = map[string]MovementAmounts{}
		}
		t := m.AmountsByCurrency[c]
		t.NewAmount += a.NewAmount
		t.AdvancedAmount += a.AdvancedAmount
		t.RegressedAmount += a.RegressedAmount
		t.StalledAmount += a.StalledAmount
		t.PulledInAmount += a.PulledInAmount
		t.PushedOutAmount += a.PushedOutAmount
		t.WonAmount += a.WonAmount
		t.LostAmount += a.LostAmount
		m.AmountsByCurrency[c] = t
	}
}

// setAmounts fills the scalar amounts from AmountsByCurrency, as mo says.
func (m *MovementCounts) setAmounts(mo fx.Money) {
	by := m.AmountsByCurrency
	m.NewAmount = sum(mo, by, func(a MovementAmounts) float64 { return a.NewAmount })
	m.AdvancedAmount = sum(mo, by, func(a MovementAmounts) float64 { return a.AdvancedAmount })
	m.RegressedAmount = sum(mo, by, func(a MovementAmounts) float64 { return a.RegressedAmount })
	m.StalledAmount = sum(mo, by, func(a MovementAmounts) float64 { return a.StalledAmount })
	m.PulledInAmount = sum(mo, by, func(a MovementAmounts) float64 { return a.PulledInAmount })
	m.PushedOutAmount = sum(mo, by, func(a MovementAmounts) float64 { return a.PushedOutAmount })
	m.WonAmount = sum(mo, by, func(a MovementAmounts) float64 { return a.WonAmount })
	m.LostAmount = sum(mo, by, func(a MovementAmounts) float64 { return a.LostAmount })
}

// isZero reports whether m counts nothing (its amounts are then none).
func (m MovementCounts) isZero() bool {
	return m.New == 0 && m.Advanced == 0 && m.Regressed == 0 && m.Stalled == 0 &&
		m.PulledIn == 0 && m.PushedOut == 0 && m.Won == 0 && m.Lost == 0
}

var movementRules = []string{
	"state at a date D = derived events with occurred_at <= D (and <= as_of); facts = the facts after every input event up to D, in the fold's order",
	"new = created in [from, to): the creation time the CRM gave, else its deal.created; a deal the CRM had not shown by min(to, as_of) is not new yet",
	"advanced = highest commitment.gained step at to > highest at from (0 when none)",
	"regressed = a stage.regressed in [from, to); stalled = a deal.stalled in [from, to)",
	"open at D = has an event at or before D and no deal.closed at or before D",
	"pulled_in / pushed_out = open at from and at to, both close dates known, close date at to earlier / later than at from",
	"won / lost = a deal.closed in [from, to) with that status",
	"amounts are the opportunity's amount as of to (or as_of when earlier); by step = highest step at to",
}

// Movement computes how the pipeline moved between From and To.
func (q *Querier) Movement(ctx context.Context, mq MovementQuery) (*MovementResult, error) {
	r, err := q.checkRanged(mq.Tenant, mq.AsOf, mq.Ladder, mq.LadderVersion, mq.Currency, mq.From, mq.To)
	if err != nil {
		return nil, err
	}
	c, ask, from, to := r.c, r.ask, r.from, r.to
	limit := movementLimit(c.asOf, to)
	rows, err := readScan(ctx, q, c.tenant, func(s *scan) ([]movementRow, error) {
		args := append(s.args,
			clickhouse.Named("tenant", c.tenant),
			clickhouse.Named("limit", limit),
			clickhouse.Named("flimit", min(ts(from), limit)),
			clickhouse.Named("from", ts(from)),
			clickhouse.Named("to", ts(to)))
		return queryRows(s, q.conn, "movement", movementSQL(s.shape), args, (*movementRow).dest)
	})
	if err != nil {
		return nil, err
	}
	return assembleMovement(c, from, to, rows, ask)
}

// movementLimit is @limit = min(to, as_of), the instant "as of to" means.
func movementLimit(asOf, to time.Time) uint32 {
	return min(ts(asOf), ts(to))
}

// movementSQL is the query of the movement answer on sh: per highest step
// at @limit, the count and the amounts per currency of each kind of
// movement (movementRow).
//
// @limit = min(to, as_of) bounds everything "as of to"; @flimit =
// min(from, @limit) everything "as of from". Open at both dates: has an
// event at or before from, and its facts say open as of from and as of to
// (a deal closed and reopened in between is open at both).
func movementSQL(sh shape) string {
	inRange := "t >= toDateTime(@from) AND t < toDateTime(@to) AND t <= toDateTime(@limit)"
	perOpp := func(from, prewhere, where string) string {
		return `SELECT
			created_at >= toDateTime(@from) AND created_at < toDateTime(@to) AND created_seen <= toDateTime(@limit) AS is_new,
			` + readmodel.HighestStep("@flimit") + ` AS top_from,
			` + readmodel.HighestStep("@limit") + ` AS top_to,
			arrayExists(t -> ` + inRange + `, regress_times) AS reg,
			arrayExists(t -> ` + inRange + `, stall_times) AS stl,
			arrayExists((t, s) -> ` + inRange + ` AND s = 'won', close_times, close_statuses) AS won,
			arrayExists((t, s) -> ` + inRange + ` AND s = 'lost', close_times, close_statuses) AS lost,
			` + readmodel.FactIndex("@flimit") + ` AS ffi,
			` + readmodel.FactIndex("@limit") + ` AS fi,
			first_at <= toDateTime(@flimit) AND fact_closed[ffi] = 0 AND fact_closed[fi] = 0 AS both_open,
			toUInt16(close_dates[ffi]) AS cd_from,
			toUInt16(close_dates[fi]) AS cd_to,
			amounts[fi] AS amt,
			` + sh.sumCurSQL("fi") + ` AS cur
		FROM ` + from + `
		` + prewhere + `
		WHERE ` + where + `
			AND first_at != toDateTime(0) AND first_at <= toDateTime(@limit)`
	}
	pulled := "both_open AND cd_from != 0 AND cd_to != 0 AND cd_to < cd_from"
	pushed := "both_open AND cd_from != 0 AND cd_to != 0 AND cd_to > cd_from"
	return `SELECT toUInt8(top_to),
		toUInt64(sum(n0)), toUInt64(sum(n1)), toUInt64(sum(n2)), toUInt64(sum(n3)),
		toUInt64(sum(n4)), toUInt64(sum(n5)), toUInt64(sum(n6)), toUInt64(sum(n7)),
		` + sumMapSQL("a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7") + `
	FROM ` + sh.fanout(func(where string) string {
		return `SELECT top_to, cur,
			countIf(is_new) AS n0, sumIf(amt, is_new) AS a0,
			countIf(top_to > top_from) AS n1, sumIf(amt, top_to > top_from) AS a1,
			countIf(reg) AS n2, sumIf(amt, reg) AS a2,
			countIf(stl) AS n3, sumIf(amt, stl) AS a3,
			countIf(` + pulled + `) AS n4, sumIf(amt, ` + pulled + `) AS a4,
			countIf(` + pushed + `) AS n5, sumIf(amt, ` + pushed + `) AS a5,
			countIf(won) AS n6, sumIf(amt, won) AS a6,
			countIf(lost) AS n7, sumIf(amt, lost) AS a7
		FROM (` + perOpp(sh.from, sh.prewhere, where) + `)
		GROUP BY top_to, cur`
	}) + `
	GROUP BY top_to
	ORDER BY top_to`
}

// movementRow is one row of movementSQL: the opportunities whose highest
// step at @limit is top, counted per kind of movement (new, advanced,
// regressed, stalled, pulled in, pushed out, won, lost), with their
// amounts per currency curs in sums, in the same order.
type movementRow struct {
	top  uint8
	n    [8]uint64
	curs []uint32
	sums [][]float64
}

// dest returns the scan destinations of r's columns.
func (r *movementRow) dest() []any {
	r.sums = make([][]float64, 8)
	dest := []any{&r.top}
	for i := range r.n {
		dest = append(dest, &r.n[i])
	}
	return append(dest, sumMapDest(&r.curs, r.sums)...)
}

// assembleMovement makes the movement answer of c between from and to
// from the rows of movementSQL: every step from 0 to the ladder's last and
// any higher one with movement, the total, and the scalar amounts as ask
// says at the rates of min(to, as_of), when the amounts are.
func assembleMovement(c common, from, to time.Time, rows []movementRow, ask moneyAsk) (*MovementResult, error) {
	res := &MovementResult{Definitions: c.defs}
	res.Definitions.From, res.Definitions.To = timePtr(from), timePtr(to)
	res.Definitions.Rules = movementRules
	found := map[int]MovementCounts{}
	for _, r := range rows {
		m := MovementCounts{
			New: int64(r.n[0]), Advanced: int64(r.n[1]), Regressed: int64(r.n[2]), Stalled: int64(r.n[3]),
			PulledIn: int64(r.n[4]), PushedOut: int64(r.n[5]), Won: int64(r.n[6]), Lost: int64(r.n[7]),
			AmountsByCurrency: byCurrency(r.curs, r.sums, movementAmounts),
		}
		if !m.isZero() {
			found[int(r.top)] = m
		}
	}
	extra := map[int]bool{}
	for i := range found {
		extra[i] = true
	}
	for _, i := range stepRows(c.ladder, extra) {
		s := MovementStep{StepIndex: i, Step: stepName(c.ladder, i), MovementCounts: found[i]}
		res.Total.add(s.MovementCounts)
		res.ByStep = append(res.ByStep, s)
	}
	present := map[string]bool{}
	addCurrencies(present, res.Total.AmountsByCurrency)
	m, err := ask.money(time.Unix(int64(movementLimit(c.asOf, to)), 0), present, &res.Definitions)
	if err != nil {
		return nil, err
	}
	res.Total.setAmounts(m)
	for i := range res.ByStep {
		res.ByStep[i].setAmounts(m)
	}
	return res, nil
}
